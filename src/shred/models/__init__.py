"""Denoisers: one interface (``eps = denoiser(x_t, t)``), adapters, loaders and the model registry."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, ShredError
from . import bundled, known  # noqa: F401  (register the bundled models and the released checkpoints)
from .analytic import GaussianPrior
from .base import (PREDICTION_TYPES, Denoiser, SamplePredictionDenoiser, UNetDenoiser, VPredictionDenoiser,
                   unet_denoiser)
from .registry import MODELS, ModelEntry, bundled_models, default_model, register_model
from .resolve import resolve_model_path
from .convert import load_checkpoint_file
from .fast import RunOptions, accelerate, run_options
from .unet import build_unet, load_folder, save_folder


_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def load_model(spec: str | Path, *, device: str | torch.device | None = None,
               class_label: int | None = None, dtype: torch.dtype | None = None) -> Denoiser:
    """Load a denoiser by registry name, model folder or checkpoint file.

    A registry name that is not in the cache yet is downloaded first (``shred-ir models`` lists them).
    Checkpoint files are recognised by their content (see :mod:`shred.models.convert`).
    The network is in eval mode with frozen weights, on ``device`` (default CPU), in ``dtype``
    (default float32; ``torch.bfloat16`` or ``torch.float16`` for half-precision inference: the
    denoiser casts ``x_t`` to it and eps back to the caller's dtype).

    Args:
        class_label: the class (0 .. K-1) a class-conditional network generates; it can also be
            given per call as ``den(x_t, t, class_labels)``.
    """
    entry = MODELS.get(str(spec))
    path = resolve_model_path(spec)
    name = entry.name if entry is not None else None
    try:
        if path.is_dir():
            den = load_folder(path, name=name)
        else:
            den = load_checkpoint_file(path, name=name, image_size=entry.resolution if entry is not None else None)
    except CheckpointError as exc:
        if entry is None or entry.kind != "download":
            raise
        # A cached download that does not load: say how to repair the cache, not just "download it again".
        raise CheckpointError(f"{str(exc).split('; the file is truncated')[0]}; the cached copy of {entry.name} is "
                              f"damaged: `shred-ir models download {entry.name}` checks and fetches it again "
                              f"(or delete {path})") from None
    if class_label is not None:
        classes = getattr(den, "num_classes", None)
        if not classes:
            raise CheckpointError(f"{den.name} is not class-conditional; drop the class label")
        if not 0 <= int(class_label) < classes:
            raise CheckpointError(f"class label {class_label} is out of range for {den.name}: give 0 .. {classes - 1}")
        den.class_label = int(class_label)
    if dtype is not None:
        if dtype not in _DTYPES:
            raise ShredError(f"dtype {dtype} is not a floating-point type; use torch.float32, torch.bfloat16 "
                             "or torch.float16")
        den = den.to(dtype=dtype)
    return den.to(device) if device is not None else den


__all__ = ["Denoiser", "UNetDenoiser", "VPredictionDenoiser", "SamplePredictionDenoiser", "PREDICTION_TYPES",
           "unet_denoiser", "GaussianPrior", "ModelEntry", "MODELS", "bundled_models",
           "default_model", "register_model", "resolve_model_path", "build_unet", "load_folder",
           "save_folder", "load_model", "load_checkpoint_file", "RunOptions", "accelerate", "run_options"]
