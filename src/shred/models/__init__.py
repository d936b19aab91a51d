"""Denoisers: one interface (``eps = denoiser(x_t, t)``), adapters, loaders and the model registry."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError
from .analytic import GaussianPrior
from .base import Denoiser, UNetDenoiser
from .registry import MODELS, ModelEntry, bundled_models, default_model, register_model, resolve_model_path
from .unet import build_unet, load_folder, save_folder


def load_model(spec: str | Path, *, device: str | torch.device | None = None,
               class_label: int | None = None) -> Denoiser:
    """Load a denoiser by registry name, model folder or checkpoint file.

    The network is put in eval mode with frozen weights, in float32, on ``device`` (default CPU).
    """
    path = resolve_model_path(spec)
    if path.is_dir():
        den = load_folder(path, name=str(spec) if str(spec) in MODELS else None)
    else:
        from .convert import load_checkpoint_file
        den = load_checkpoint_file(path, name=str(spec) if str(spec) in MODELS else None)
    if class_label is not None:
        if not getattr(den, "num_classes", None):
            raise CheckpointError(f"{den.name} is not class-conditional; drop the class label")
        den.class_label = int(class_label)
    return den.to(device) if device is not None else den


__all__ = ["Denoiser", "UNetDenoiser", "GaussianPrior", "ModelEntry", "MODELS", "bundled_models",
           "default_model", "register_model", "resolve_model_path", "build_unet", "load_folder",
           "save_folder", "load_model"]
