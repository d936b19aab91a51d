"""DDRM (Kawar, Elad, Ermon and Song, "Denoising Diffusion Restoration Models", NeurIPS 2022),
following the official code bahjat-kawar/ddrm (``functions/denoising.py``
``efficient_generalized_steps``).

DDRM samples in the spectral basis of A = U diag(s) V^T (:mod:`shred.operators.svd`), in the
variance-exploding variables xbar = Vt(x_t / sqrt(abar_t)) with noise level
sigma_t = sqrt(1 - abar_t) / sqrt(abar_t). With ybar_i = (U^T y)_i / s_i, the measurement noise
sigma_y, x0bar = Vt(x0|t), epsbar = Vt(eps) and z ~ N(0, I), each coordinate i of the next latent
is (DDRM paper eq. 8 with the code's names etaA = etaC = eta, etaB = eta_b):

    s_i = 0:                    x0bar + sqrt(1 - eta^2) sigma' epsbar + eta sigma' z
    s_i sigma' < sigma_y:       x0bar + sqrt(1 - eta^2) sigma' (U^T y - s x0bar)_i / sigma_y + eta sigma' z
    s_i sigma' >= sigma_y:      eta_b ybar + (1 - eta_b) x0bar + sqrt(sigma'^2 - sigma_y^2 eta_b^2 / s_i^2) z

and x_next = sqrt(abar') V(xbar'). x_T is drawn from the paper's p(x_T | y): ybar_i +
sqrt(sigma_T^2 - sigma_y^2 / s_i^2) z_i where s_i sigma_T > sigma_y, sigma_T z_i elsewhere.

Differences from the official code (both from the paper's equations; see docs/PEERS.md):

* The last coordinate case uses ``>=`` as the paper does; the code's strict ``>`` leaves the last
  step (sigma' = 0) of a noise-free problem without any data term, so its output is the bare
  network estimate. Here A x0 = y holds exactly when sigma_y = 0.
* x_T = sqrt(abar_T) V(xbar_T); the code divides by sigma_T instead, a factor
  1 / sqrt(1 - abar_T) (1.00003 at t = 950) apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import FrozenConfig, at_most, non_negative, positive_int, setting, unit_interval
from ..diffusion import predict_x0
from ..errors import ShredError
from ..operators.svd import operator_svd
from .ancestral import spaced_timesteps
from .peer import PeerSolver, model_space_measurement
from .registry import register_solver


@dataclass(frozen=True)
class DdrmConfig(FrozenConfig):
    """DDRM settings; defaults from bahjat-kawar/ddrm.

    Attributes:
        steps: network calls, leading spacing t = 950, 900, ..., 0 (README: ``--timesteps 20``).
        eta: ``main.py --eta`` (default 0.85), used as etaA and etaC (``runners/diffusion.py``).
        eta_b: ``main.py --etaB`` (default 1).
        zero_below: singular values of each axis' matrix below this are treated as 0
            (``svd_replacement.py``: ``Deblurring`` and ``SRConv`` use ZERO = 3e-2; the average
            pooling and colorization singulars, >= 1/32, are never affected).
    """

    label = "DDRM"

    steps: int = setting(20, at_most(100_000, positive_int))
    eta: float = setting(0.85, unit_interval)
    eta_b: float = setting(1.0, unit_interval)
    zero_below: float = setting(3e-2, non_negative)


@register_solver("ddrm")
class Ddrm(PeerSolver):
    """DDRM for operators with a closed-form SVD (module docstring)."""

    name = "ddrm"
    config_class = DdrmConfig

    @classmethod
    def unsupported(cls, operator):
        try:
            operator_svd(operator)
        except ShredError as exc:
            return str(exc)
        return None

    def solve(self, y, operator, seeds, progress):
        c = self.config
        y, shape, trace, gens, started = self.start(y, operator, seeds)
        svd = operator_svd(operator).truncated(c.zero_below)
        k = svd.k
        sigma_y = 2 * operator.sigma_y
        Uty = svd.Ut(model_space_measurement(y, operator))
        s = svd.s(Uty)
        seen = s > 0
        s_safe = torch.where(seen, s, torch.ones_like(s))
        ybar = torch.where(seen, Uty / s_safe, torch.zeros_like(Uty))
        D = svd.D

        def with_seen(values_k, rest):
            """[B, D] from values on the first k coordinates and ``rest`` elsewhere."""
            return torch.cat([values_k, rest[:, k:]], dim=1)

        ts = spaced_timesteps(self.denoiser.schedule.T, c.steps, "leading")
        pairs = list(zip(ts[::-1], ts[::-1][1:] + [-1]))

        # x_T from p(x_T | y) (paper eq. 9; "init_y" in the code).
        a_T = self.abar(ts[-1])
        sigma_T = math.sqrt(1 - a_T) / math.sqrt(a_T)
        z = self.noise(gens, (D,))
        large = seen & (s * sigma_T > sigma_y)
        spread = torch.where(large, (sigma_T ** 2 - (sigma_y / s_safe) ** 2).clamp_min(0).sqrt(),
                             torch.full_like(s, sigma_T))
        xbar = with_seen(torch.where(large, ybar, torch.zeros_like(ybar)) + spread * z[:, :k], sigma_T * z)
        x = x_T = math.sqrt(a_T) * svd.V(xbar)

        bar = self.progress_bar(len(pairs), progress)
        try:
            with torch.no_grad():
                for t, t_next in pairs:
                    a_t, a_next = self.abar(t), self.abar(t_next)
                    eps = self.eps(x, t)
                    x0 = predict_x0(x, eps, a_t)
                    trace(x0)
                    sigma_n = math.sqrt(1 - a_next) / math.sqrt(a_next)
                    x0bar, epsbar = svd.Vt(x0), svd.Vt(eps)
                    z = self.noise(gens, (D,))
                    # Directions A does not see: DDIM with noise share eta ("missing pixels").
                    unseen = x0bar + math.sqrt(1 - c.eta ** 2) * sigma_n * epsbar + c.eta * sigma_n * z
                    x0k, zk = x0bar[:, :k], z[:, :k]
                    # Less noisy than y: pull towards y as far as its noise allows ("after").
                    after = x0k + math.sqrt(1 - c.eta ** 2) * sigma_n * (Uty - s * x0k) / max(sigma_y, 1e-30) \
                        + c.eta * sigma_n * zk
                    # Noisier than y: sample around y ("before").
                    before = c.eta_b * ybar + (1 - c.eta_b) * x0k \
                        + (sigma_n ** 2 - (sigma_y * c.eta_b / s_safe) ** 2).clamp_min(0).sqrt() * zk
                    seen_k = torch.where(s * sigma_n >= sigma_y, before, after)
                    xbar = with_seen(torch.where(seen, seen_k, unseen[:, :k]), unseen)
                    x = math.sqrt(a_next) * svd.V(xbar)
                    bar.update()
        finally:
            bar.close()
        return self.result(x, x_T, trace, started, seeds, sigma_y=operator.sigma_y)
