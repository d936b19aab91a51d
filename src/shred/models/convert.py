"""Released single-file checkpoints mapped exactly onto diffusers ``UNet2DModel``.

A file is recognised by its content (key names and tensor shapes), never by its name. Each known
layout is a :class:`~shred.models.formats.CheckpointFormat` in :data:`~shred.models.formats.FORMATS`; its ``convert`` infers the architecture's
hyper-parameters from the shapes and renames (and, for ADM's fused attention, re-slices) every
tensor onto the diffusers layout. The result is loaded strictly (no missing or unexpected key) into
a network built on the meta device, with the file's memory-mapped tensors assigned, not copied.

The formats (facts in ``../shared/docs/FACTS.md`` section 3):

* ``ddim``: ermongroup DDIM ``Model`` (SDEdit's ``celeba_hq.ckpt``): ``temb.dense.*``, ``down.i.block.j.*``.
* ``adm``: OpenAI ADM ``UNetModel`` (guided-diffusion, DPS's ``ffhq_10m.pt``): ``time_embed.*``,
  ``input_blocks.*``, ``middle_block.*``, ``output_blocks.*``, optional ``label_emb``.

Neither file records the image size it was trained at; it comes from the registry entry, the
``image_size`` argument, or the released configuration with the same number of levels.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..diffusion import NoiseSchedule
from ..errors import CheckpointError
from . import adm_format, ddim_format  # noqa: F401  (each registers its layout in formats.FORMATS)
from .base import UNetDenoiser
from .checkpoints import read_torch_file
from .formats import FORMATS, CheckpointFormat, Converted, detect_format, register_format  # noqa: F401
from .unet import build_unet, load_state_strict


def unet_from_state(state: dict[str, torch.Tensor], source: str = "checkpoint", *,
                    image_size: int | None = None, **options) -> tuple[Any, Converted]:
    """Recognise, convert and load a released state_dict into a ``UNet2DModel`` (eval, frozen).

    Returns ``(unet, converted)``. ``options`` go to the format's converter (e.g. ADM's
    ``head_channels``).
    """
    fmt = detect_format(state, source)
    try:
        conv = fmt.convert(state, **options)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{source}: {fmt.name} keys, but a layout shred cannot read "
                              f"({type(exc).__name__}: {exc})") from None
    size = image_size or fmt.default_sizes.get(conv.levels) or 2 ** (conv.levels + 2)
    config = {**conv.config, "sample_size": int(size)}
    unet = build_unet(config, empty=True)
    try:
        load_state_strict(unet, conv.state, source, assign=True)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} -- found {conv.summary}, which matches no architecture shred "
                              "can load exactly") from None
    return unet.eval().requires_grad_(False), conv


def load_checkpoint_file(path: str | os.PathLike, name: str | None = None, *, image_size: int | None = None,
                         schedule: NoiseSchedule | None = None, **options) -> UNetDenoiser:
    """Load a released single-file checkpoint as a float32 :class:`UNetDenoiser` on the CPU.

    Args:
        path: a ``torch.save``-d state_dict (``.ckpt``, ``.pt``, ``.bin``); memory-mapped.
        name: the denoiser's name (default: the file's stem).
        image_size: side the network was trained at (default: from the released configuration
            with the same depth, e.g. 256 for six levels).
        schedule: training noise schedule (default: linear betas 1e-4 .. 0.02, T = 1000, which all
            supported releases use).
        options: format-specific (ADM: ``head_channels``, default 64).

    Raises:
        CheckpointError: truncated or corrupt file, a state_dict of something else, or an
            architecture that cannot be mapped exactly (the message says what was found).
    """
    path = Path(path)
    state = read_torch_file(path)
    unet, conv = unet_from_state(state, str(path), image_size=image_size, **options)
    den = UNetDenoiser(unet, schedule or NoiseSchedule.linear(), name=name or path.stem)
    den.info = {"name": den.name, "source": str(path), "format": conv.summary, "data_range": [-1.0, 1.0]}
    return den

