"""Blind SHRED (eqs. 17-19): restore an image and estimate its blur at the same time.

    L_IR(x_T, theta) = ||y - H_theta(f(x_T))||                        (17)
    x_T   <- Adam step on L_IR at learning rate alpha                  (18)
    theta <- Adam step on L_IR at learning rate alpha_k                (19)

H_theta is a blur whose kernels come from SelfDeblur's kernel network (Ren et al. 2020; the
authors' code uses the same network). The paper uses one rate alpha for both; the authors' code
uses 3e-3 for x_T and 2e-4 for the kernel network (``presets.BLIND_KERNEL_LR``).

The operator handed to the solver describes the measurement, not the answer: only its shape,
noise level and blur *structure* are read (a :class:`Blur` gives a uniform kernel of its size, a
:class:`SpatiallyVaryingBlur` a grid of local kernels of its grid and size). Its kernels are never
looked at, so degrading with the true kernel and restoring with the same spec is still blind.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from ..errors import ShredError
from ..models.base import Denoiser
from ..operators import Blur, Noisy, Operator
from ..operators.blind import ParametricBlur, SpatiallyVaryingBlur, estimated_operator
from .base import Result
from .registry import register_solver
from .shred import Shred, ShredConfig

DEFAULT_KERNEL_SIZE = 41  # the paper's blind deconvolution kernels are 41 x 41


@dataclass(frozen=True)
class BlindConfig:
    """Settings of H_theta that are not ShredConfig fields. Frozen; round-trips through JSON.

    Attributes:
        kernel_lr: Adam learning rate of the kernel networks (eq. 19); the authors' code: 2e-4.
        kernel_size: odd side of the estimated kernels; None takes the operator's kernel size
            (41 if the operator has none).
        grid: (gh, gw) cells of a spatially varying blur; None takes the operator's (1 x 1 for a
            :class:`Blur`: one uniform kernel).
        hidden / input_size / input_scale: the kernel network (1000, 200, 0.1 as in SelfDeblur).
    """

    kernel_lr: float = 2e-4
    kernel_size: int | None = None
    grid: tuple[int, int] | None = None
    hidden: int = 1000
    input_size: int = 200
    input_scale: float = 0.1

    def __post_init__(self):
        if not (isinstance(self.kernel_lr, (int, float)) and math.isfinite(self.kernel_lr) and self.kernel_lr > 0):
            raise ShredError(f"the kernel learning rate must be a positive number, got {self.kernel_lr!r}")
        if self.kernel_size is not None and (not isinstance(self.kernel_size, int) or self.kernel_size < 1
                                             or self.kernel_size % 2 == 0):
            raise ShredError(f"the kernel size must be a positive odd integer, got {self.kernel_size!r}")
        if self.grid is not None:
            grid = tuple(self.grid)
            if len(grid) != 2 or not all(isinstance(g, int) and g >= 1 for g in grid):
                raise ShredError(f"the kernel grid must be two positive integers, got {self.grid!r}")
            object.__setattr__(self, "grid", grid)
        for name in ("hidden", "input_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ShredError(f"{name} must be a positive integer, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = list(self.grid) if self.grid is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BlindConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ShredError(f"unknown blind settings: {', '.join(sorted(unknown))}")
        d = dict(d)
        if d.get("grid") is not None:
            d["grid"] = tuple(d["grid"])
        return cls(**d)

    def replace(self, **changes) -> "BlindConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def blur_structure(operator: Operator) -> tuple[Operator, tuple[int, int] | None, tuple[int, int] | None]:
    """(the blur inside ``operator``, its kernel size, its grid); sizes None when it has no blur."""
    inner = operator.op if isinstance(operator, Noisy) else operator
    if isinstance(inner, Blur):
        return inner, tuple(inner.kernel.shape), (1, 1)
    if isinstance(inner, SpatiallyVaryingBlur):
        return inner, tuple(inner.kernels.shape[-2:]), inner.grid
    return inner, None, None


@register_solver("shred-blind")
class BlindShred(Shred):
    """SHRED with an unknown blur (eqs. 17-19): x_T and the kernel networks' weights theta are
    optimised jointly by one Adam with two parameter groups.

    Args:
        denoiser: the frozen eps_theta.
        config: :class:`ShredConfig` for x_T (``presets.preset_config(..., "blind-deblur")``).
        blind: :class:`BlindConfig` for H_theta.
        device / dtype: as for :class:`Shred`.

    ``result.extras["kernel"]`` holds the estimated kernels, [B, kh, kw] for a uniform blur or
    [B, gh, gw, kh, kw] for a grid, each non-negative and summing to 1, taken at the same iteration
    as ``result.x0``; ``result.extras["operators"]`` the frozen operators they define.
    """

    name = "shred-blind"

    def __init__(self, denoiser: Denoiser, config: ShredConfig | None = None, blind: BlindConfig | None = None, *,
                 device=None, dtype: torch.dtype = torch.float32):
        super().__init__(denoiser, config, device=device, dtype=dtype)
        self.blind = blind or BlindConfig()
        self._h: ParametricBlur | None = None
        self._kernel_keep: torch.Tensor | None = None

    def make_h_theta(self, operator: Operator, seeds) -> ParametricBlur:
        """H_theta for ``operator``'s blur structure, one kernel network per seed and cell."""
        b = self.blind
        _, size, grid = blur_structure(operator)
        if size is None and b.kernel_size is None:
            size = (DEFAULT_KERNEL_SIZE, DEFAULT_KERNEL_SIZE)
        if b.kernel_size is not None:
            size = (b.kernel_size, b.kernel_size)
        grid = b.grid or grid or (1, 1)
        if tuple(operator.out_shape) != tuple(operator.in_shape):
            raise ShredError(f"blind deblurring needs a measurement of the image's size {tuple(operator.in_shape)}, "
                             f"but this one is {tuple(operator.out_shape)}")
        h = ParametricBlur(operator.in_shape, size, grid, list(seeds), sigma_y=operator.sigma_y,
                           hidden=b.hidden, input_size=b.input_size, input_scale=b.input_scale)
        return h.to(device=self.device, dtype=self.dtype)

    def solve(self, y, operator, seeds, progress) -> Result:
        self._h = self.make_h_theta(operator, seeds)
        self._kernel_keep = None
        try:
            res = super().solve(y, self._h, seeds, progress)
        finally:
            self._h = None
        res.extras["operators"] = [estimated_operator(operator.in_shape, k) for k in res.extras["kernel"]]
        return res

    def extra_parameters(self, operator: Operator) -> list[dict]:
        return [{"params": list(operator.parameters()), "lr": self.blind.kernel_lr}]

    def record(self, active: torch.Tensor) -> None:
        with torch.no_grad():
            k = self._h.kernels().detach()
            if self._kernel_keep is None:
                self._kernel_keep = k.clone()
            else:
                a = active.view(-1, *([1] * (k.dim() - 1)))
                self._kernel_keep = torch.where(a, k, self._kernel_keep)

    def extras(self, operator: Operator) -> dict[str, Any]:
        k = self._kernel_keep.float().cpu()
        if k.shape[1:3] == (1, 1):
            k = k[:, 0, 0]
        return {**super().extras(operator), "blind": self.blind.to_dict(), "kernel": k}


def shred_for_task(denoiser: Denoiser, config: ShredConfig, task: str | None, preset: str, *,
                   kernel_lr: float | None = None, device=None) -> Shred:
    """The SHRED solver a task needs: :class:`BlindShred` for the blind tasks (preset group
    ``blind-deblur``), with the preset's kernel learning rate unless ``kernel_lr`` is given;
    plain :class:`Shred` otherwise."""
    from ..operators import preset_key
    from .presets import BLIND_KERNEL_LR

    if task and preset_key(task) == "blind-deblur":
        blind = BlindConfig(kernel_lr=kernel_lr or BLIND_KERNEL_LR.get(preset, BlindConfig.kernel_lr))
        return BlindShred(denoiser, config, blind, device=device)
    return Shred(denoiser, config, device=device)
