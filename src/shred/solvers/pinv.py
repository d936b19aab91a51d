"""The prior-free baseline: the pseudo-inverse of the measurement, x = A^+ y.

For the benchmark's tasks this is nearest-neighbour up-sampling (average-pooling SR), the observed
pixels with zeros elsewhere (inpainting, compressed sensing), the grey image (colorization) and the
minimum-norm deconvolution (deblurring). It uses no image prior, so a method that does not beat it
has not used its prior to any effect. No seed or denoiser is involved.
"""
from __future__ import annotations

import time

import torch

from ..models.base import module_device
from .base import Result, Solver
from .registry import register_solver


@register_solver("pinv")
class PseudoInverse(Solver):
    """``x0 = clamp(A^+ y, 0, 1)`` for each measurement (the denoiser argument is ignored)."""

    name = "pinv"

    def __init__(self, denoiser=None, *, device=None, dtype: torch.dtype = torch.float32):
        self.denoiser = denoiser
        if device is None:
            device = module_device(denoiser) if isinstance(denoiser, torch.nn.Module) else "cpu"
        self.device = torch.device(device)

    @classmethod
    def unsupported(cls, operator):
        return None if operator.linear else f"the pseudo-inverse needs a linear operator, not {operator.name!r}"

    def solve(self, y, operator, seeds, progress) -> Result:
        start = time.perf_counter()
        with torch.no_grad():
            x0 = operator.to(self.device).pinv(y.to(self.device).double()).float().clamp(0, 1)
        return Result(x0=x0, x_T=None, loss_history=torch.zeros(0, y.shape[0]),
                      iterations=torch.zeros(y.shape[0], dtype=torch.long),
                      wall_time=time.perf_counter() - start, seeds=list(seeds))
