"""The analytic Gaussian prior: data ~ N(mu, diag(sigma^2)), whose exact eps is known.

With x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, x_t is Gaussian per pixel with mean
sqrt(abar_t) mu and variance abar_t sigma^2 + 1 - abar_t, and the minimum-mean-squared-error noise
prediction (what a perfectly trained eps_theta outputs) is

    E[eps | x_t] = sqrt(1 - abar_t) (x_t - sqrt(abar_t) mu) / (abar_t sigma^2 + 1 - abar_t).

DDIM, its inversion and SHRED can therefore be checked against formulas instead of themselves.
"""
from __future__ import annotations

import torch

from ..diffusion import NoiseSchedule
from .base import Denoiser


class GaussianPrior(Denoiser):
    """Exact noise predictor for data ~ N(mu, diag(sigma^2)).

    Args:
        mu: [C, H, W] mean in model space.
        sigma: [C, H, W] (or scalar) standard deviation, > 0.
        schedule: noise schedule (default: linear, T = 1000).
    """

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor | float, schedule: NoiseSchedule | None = None):
        super().__init__()
        mu = torch.as_tensor(mu, dtype=torch.float64)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).expand_as(mu).clone()
        if mu.dim() != 3:
            raise ValueError("mu must have shape [C, H, W]")
        if (sigma <= 0).any():
            raise ValueError("sigma must be positive")
        self.register_buffer("mu", mu)
        self.register_buffer("sigma", sigma)
        self.schedule = schedule or NoiseSchedule.linear()
        self.channels = mu.shape[0]
        self.image_size = (mu.shape[1], mu.shape[2])
        self.name = "gaussian-prior"

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # t = -1 is clean data (abar = 1, where the exact eps is 0), as for every other model.
        abar = self.schedule.abar_of(t).to(device=x_t.device, dtype=x_t.dtype).view(-1, 1, 1, 1)
        mu, var = self.mu.to(x_t.dtype), (self.sigma ** 2).to(x_t.dtype)
        return (1 - abar).sqrt() * (x_t - abar.sqrt() * mu) / (abar * var + 1 - abar)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of the data distribution, [n, C, H, W] float64."""
        z = torch.randn((n, *self.mu.shape), generator=generator, dtype=torch.float64)
        return self.mu + self.sigma * z
