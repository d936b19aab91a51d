"""The registry of released checkpoint layouts: what a layout is, and how a state_dict is matched
to one.

A leaf module: :mod:`shred.models.ddim_format` and :mod:`shred.models.adm_format` register their
layout here on import, and :mod:`shred.models.convert` (the loader) imports them, so neither side
imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import CheckpointError


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
