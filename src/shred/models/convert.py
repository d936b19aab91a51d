"""Released single-file checkpoints mapped exactly onto diffusers ``UNet2DModel``.

A file is recognised by its content (key names and tensor shapes), never by its name. Each known
layout is a :class:`CheckpointFormat` in :data:`FORMATS`; its ``convert`` infers the architecture's
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..diffusion import NoiseSchedule
from ..errors import CheckpointError
from .base import UNetDenoiser
from .checkpoints import read_torch_file
from .unet import build_unet, load_state_strict


@dataclass(frozen=True)
class Converted:
    """A checkpoint in diffusers terms.

    Attributes:
        config: ``UNet2DModel`` constructor arguments (``sample_size`` filled in by the loader).
        state: diffusers key -> tensor (views of the file's tensors wherever possible).
        levels: number of resolution levels (sets the default image size).
        summary: what was found, in a phrase (shown in errors and ``info``).
    """

    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    levels: int
    summary: str


@dataclass(frozen=True)
class CheckpointFormat:
    """One released checkpoint layout.

    Attributes:
        name: short name (``ddim``, ``adm``).
        description: where files of this layout come from.
        matches: does a state_dict look like this layout (its marker keys)?
        convert: ``convert(state, **options) -> Converted``; raises :class:`CheckpointError`
            naming what was found when the layout is recognised but the architecture is not one
            shred can map exactly.
        default_sizes: image side of the released models, by number of levels.
    """

    name: str
    description: str
    matches: Callable[[dict[str, torch.Tensor]], bool]
    convert: Callable[..., Converted]
    default_sizes: dict[int, int] = field(default_factory=dict)


FORMATS: dict[str, CheckpointFormat] = {}


def register_format(fmt: CheckpointFormat) -> CheckpointFormat:
    FORMATS[fmt.name] = fmt
    return fmt


def detect_format(state: dict[str, torch.Tensor], source: str = "checkpoint") -> CheckpointFormat:
    """The format whose marker keys the state_dict has, or a CheckpointError saying what it holds."""
    for fmt in FORMATS.values():
        if fmt.matches(state):
            return fmt
    if "time_embedding.linear_1.weight" in state and any(k.startswith("down_blocks.") for k in state):
        raise CheckpointError(f"{source}: diffusers UNet weights without their config.json; give the "
                              "model folder (config.json next to the weights) instead of the file")
    keys = list(state)
    raise CheckpointError(f"{source}: not a diffusion UNet shred knows ({len(keys)} tensors, first keys "
                          f"{keys[:3]}); supported: "
                          + "; ".join(f"{f.name} ({f.description})" for f in FORMATS.values()))


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


# The formats register themselves on import.
from . import adm_format, ddim_format  # noqa: E402,F401
