"""Noise schedules: betas and the cumulative products abar_t in float64.

Notation (SHRED paper, section 3.1): ``alpha_t = 1 - beta_t`` and ``abar_t = prod_{s<=t} alpha_s``
(eq. 2). Timesteps are 0-based indices ``t = 0 .. T-1`` into ``abar``, the convention of DDPM, DDIM
and diffusers; ``t = -1`` stands for clean data, ``abar = 1`` (where the authors' code ends).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ShredError


class NoiseSchedule:
    """A diffusion noise schedule with T steps.

    Attributes:
        betas: float64 tensor [T].
        abar: float64 tensor [T], ``abar[t] = prod_{s<=t} (1 - betas[s])``.
        T: number of diffusion steps.
    """

    def __init__(self, betas, kind: str = "given", params: dict[str, Any] | None = None):
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten().clone()
        if betas.numel() < 1:
            raise ShredError("a noise schedule needs at least one beta")
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
            raise ShredError("betas must lie strictly between 0 and 1")
        self.betas = betas
        self.abar = torch.cumprod(1.0 - betas, dim=0)
        self.kind = kind
        self.params = dict(params or {})
        self._abar_on: dict[torch.device, torch.Tensor] = {}  # abar copied to each device once

    @property
    def T(self) -> int:
        return self.betas.numel()

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """DDPM's linear betas (Ho et al. 2020); the schedule of every model the paper uses."""
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        return cls(betas, "linear", {"T": T, "beta_start": beta_start, "beta_end": beta_end})

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Nichol & Dhariwal (2021) cosine schedule, betas clipped at ``max_beta``."""
        def f(u: float) -> float:
            return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = [min(1 - f(i + 1) / f(i), max_beta) for i in range(T)]
        return cls(betas, "cosine", {"T": T, "s": s, "max_beta": max_beta})

    def abar_at(self, t: int) -> float:
        """abar_t as a Python float (float64); ``t = -1`` gives 1 (clean data)."""
        if t == -1:
            return 1.0
        if not 0 <= t < self.T:
            raise ShredError(f"timestep {t} is outside 0..{self.T - 1}")
        return float(self.abar[t])

    def abar_of(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t for a tensor of timesteps (int64, any shape, values -1 .. T-1): float64 of the
        same shape on ``t``'s device; ``t = -1`` gives 1 (clean data), as :meth:`abar_at` does.
        A timestep >= T raises IndexError."""
        abar = self._abar_on.get(t.device)
        if abar is None:
            abar = self._abar_on[t.device] = self.abar.to(t.device)
        return torch.where(t < 0, 1.0, abar[t.clamp_min(0)])

    def to_dict(self) -> dict[str, Any]:
        if self.kind in ("linear", "cosine"):
            return {"kind": self.kind, **self.params}
        return {"kind": "given", "betas": self.betas.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NoiseSchedule":
        d = dict(d)
        kind = d.pop("kind", "linear")
        if kind == "linear":
            return cls.linear(**d)
        if kind == "cosine":
            return cls.cosine(**d)
        if kind == "given":
            return cls(d["betas"])
        raise ShredError(f"unknown noise schedule kind {kind!r}; use 'linear', 'cosine' or 'given'")

    def __repr__(self) -> str:
        return f"NoiseSchedule(kind={self.kind!r}, T={self.T})"
