"""DDNM and DDNM+ (Wang, Yu and Zhang, "Zero-Shot Image Restoration Using Denoising Diffusion
Null-Space Model", ICLR 2023), following the official code wyhuai/DDNM.

At every step the clean-image estimate is replaced by the one that agrees with y in the range of
A and keeps the network's guess in its null space (DDNM paper eqs. 12-13):

    x0|t     = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    x0_hat   = A^+ y + (I - A^+ A) x0|t  =  x0|t - A^+ (A x0|t - y)
    x_next   = sqrt(abar') x0_hat + sqrt(1 - abar') (eta z + sqrt(1 - eta^2) eps),   z ~ N(0, I)

with abar' = abar_next (``functions/svd_ddnm.py`` ``ddnm_diffusion``; "different from the paper,
we use DDIM here instead of DDPM"). At the last step abar' = 1, so A x0 = y exactly.

DDNM+ (paper section 3.3, appendix I; ``ddnm_plus_diffusion`` and ``Lambda`` / ``Lambda_noise`` in
``functions/svd_operators.py``) scales the range correction and the noise per singular value s_i
of A when y carries noise sigma_y, with a = sqrt(abar') and sigma_t = sqrt(1 - abar'):

    lambda_i = 1                                   if sigma_t >= a sigma_y / s_i
             = s_i sigma_t sqrt(1 - eta^2) / (a sigma_y)   otherwise
    x_next   = a x0_hat + V (d1 * Vt z + d2 * Vt eps)
    d1, d2   = sigma_t eta, sigma_t sqrt(1 - eta^2)   for s_i = 0 (null space)
             = sigma_t eta, 0                          if sigma_t < a sigma_y / s_i
             = sqrt(sigma_t^2 - a^2 sigma_y^2 / s_i^2), 0   otherwise.

With sigma_y = 0 DDNM+ is DDNM (the official ``main.py`` runs DDNM+ exactly when sigma_y > 0).
``simplified=True`` is the SVD-free DDNM+ of the README and eq. (19) for operators without an SVD:
one scalar lambda_t = min(1, sigma_t / (a sigma_y)) and noise scale
gamma_t = sqrt(sigma_t^2 - (a lambda_t sigma_y)^2) in place of sigma_t.

Time travel (paper section 3.3; ``time_travel`` in the configs): the jump schedule of RePaint over
the step indices; a backward jump re-noises the last x0|t to the later timestep. The official
configs (``configs/celeba_hq.yml``, ``imagenet_256.yml``) set travel_length = travel_repeat = 1,
i.e. no time travel, which is the default here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import FrozenConfig, at_most, boolean, non_negative, positive_int, setting, unit_interval
from ..diffusion import predict_x0
from ..operators.svd import cut_maps, operator_svd
from .ancestral import jump_schedule, spaced_timesteps
from .peer import PeerSolver, model_space_measurement
from .registry import register_solver


@dataclass(frozen=True)
class DdnmConfig(FrozenConfig):
    """DDNM settings; defaults from wyhuai/DDNM.

    Attributes:
        steps: network calls, leading spacing t = 990, 980, ..., 0 (``configs/celeba_hq.yml``
            ``time_travel.T_sampling: 100``).
        eta: share of fresh noise in each step (``main.py --eta``, default 0.85).
        travel_length: time-travel jump length l (``time_travel.travel_length: 1``).
        travel_repeat: time-travel repetitions r (``time_travel.travel_repeat: 1``: none).
        plus: DDNM+, the noise-aware scaling of the range correction (sigma_y > 0).
        simplified: DDNM+ without an SVD (``main.py --simplified``), one scalar lambda_t.
        zero_below: A and A^+ come from the operator's SVD with every per-axis singular value below
            this set to zero (``functions/svd_operators.py``, class ``Deblurring``: ``ZERO = 3e-2``,
            applied to A, A^+ and the Lambda functions alike). It changes only blurs: the average
            pooling and colorization singulars (>= 1/32) and masks (1) are above it. ``0`` uses the
            exact pseudo-inverse, which divides by the blur's tiny singular values.
    """

    label = "DDNM"

    steps: int = setting(100, at_most(100_000, positive_int))
    eta: float = setting(0.85, unit_interval)
    travel_length: int = setting(1, positive_int)
    travel_repeat: int = setting(1, positive_int)
    plus: bool = setting(False, boolean)
    simplified: bool = setting(False, boolean)
    zero_below: float = setting(3e-2, non_negative)


@register_solver("ddnm")
class Ddnm(PeerSolver):
    """DDNM: range-null space decomposition inside a DDIM-like sampler (module docstring).

    ``plus=False`` (this name) ignores the measurement noise: A x0 = y exactly, noise included.
    """

    name = "ddnm"
    config_class = DdnmConfig

    def solve(self, y, operator, seeds, progress):
        c = self.config
        y, shape, trace, gens, started = self.start(y, operator, seeds)
        y_m = model_space_measurement(y, operator)
        sigma_y = 2 * operator.sigma_y
        correct = self._corrector(operator, y_m, sigma_y)
        ts = spaced_timesteps(self.denoiser.schedule.T, c.steps, "leading")
        schedule = jump_schedule(c.steps, c.travel_length, c.travel_repeat)
        x = x_T = self.noise(gens, shape)
        x0_t = None
        bar = self.progress_bar(len(schedule) - 1, progress)
        try:
            with torch.no_grad():
                for k, k_next in zip(schedule[:-1], schedule[1:]):
                    t_next = ts[k_next] if k_next >= 0 else -1
                    a_next = self.abar(t_next)
                    z = self.noise(gens, shape)
                    if k_next < k:
                        t = ts[k]
                        eps = self.eps(x, t)
                        x0_t = predict_x0(x, eps, self.abar(t))                         # eq. (12)
                        trace(x0_t)
                        x = correct(x0_t, eps, z, a_next)
                    else:
                        # Time travel: re-noise the last x0|t to the later timestep (svd_ddnm.py).
                        x = math.sqrt(a_next) * x0_t + math.sqrt(1 - a_next) * z
                    bar.update()
        finally:
            bar.close()
        return self.result(x, x_T, trace, started, seeds, sigma_y=operator.sigma_y)

    @classmethod
    def unsupported(cls, operator):
        return None if operator.linear else f"DDNM needs a linear operator, not {operator.name!r}"

    def range_maps(self, operator):
        """(A, A^+) of the range-null space step (:func:`shred.operators.svd.cut_maps`)."""
        return cut_maps(operator, self.config.zero_below)

    def _corrector(self, operator, y_m, sigma_y):
        """The map (x0|t, eps, z, abar') -> x_next for the configured variant."""
        eta = self.config.eta
        A, A_pinv = self.range_maps(operator)
        if not self.config.plus or sigma_y == 0:
            def ddnm(x0_t, eps, z, a_next):
                x0_hat = x0_t - A_pinv(A(x0_t) - y_m)                               # eq. (13)
                sigma_t = math.sqrt(1 - a_next)
                return math.sqrt(a_next) * x0_hat + sigma_t * (eta * z + math.sqrt(1 - eta ** 2) * eps)
            return ddnm
        if self.config.simplified:
            def ddnm_plus_simplified(x0_t, eps, z, a_next):
                a, sigma_t = math.sqrt(a_next), math.sqrt(1 - a_next)
                lam = 1.0 if sigma_t >= a * sigma_y else sigma_t / (a * sigma_y)    # eq. (19)
                gamma = math.sqrt(max(sigma_t ** 2 - (a * lam * sigma_y) ** 2, 0.0))
                x0_hat = x0_t - lam * A_pinv(A(x0_t) - y_m)                          # eq. (17)
                return a * x0_hat + gamma * (eta * z + math.sqrt(1 - eta ** 2) * eps)
            return ddnm_plus_simplified

        svd = operator_svd(operator).truncated(self.config.zero_below)
        c_y = svd.Ut(y_m)
        k = svd.k

        def ddnm_plus(x0_t, eps, z, a_next):
            a, sigma_t = math.sqrt(a_next), math.sqrt(1 - a_next)
            s = svd.s(x0_t)
            seen = s > 0
            s_safe = torch.where(seen, s, torch.ones_like(s))
            noise_dominates = seen & (sigma_t * s < a * sigma_y)  # sigma_t < a sigma_y / s_i
            lam = torch.where(noise_dominates, s * sigma_t * math.sqrt(1 - eta ** 2) / (a * sigma_y),
                              torch.ones_like(s))
            xb = svd.Vt(x0_t)
            # Range correction lambda * A^+ (A x0|t - y), coordinate-wise (Lambda in svd_operators.py).
            range_fix = torch.where(seen, lam * (s * xb[:, :k] - c_y) / s_safe, torch.zeros_like(s))
            xb_hat = xb - svd.pad(range_fix)
            d1 = torch.full_like(xb[0], sigma_t * eta)
            d2 = torch.full_like(xb[0], sigma_t * math.sqrt(1 - eta ** 2))
            d1_seen = torch.where(noise_dominates, torch.full_like(s, sigma_t * eta),
                                  (sigma_t ** 2 - (a * sigma_y / s_safe) ** 2).clamp_min(0).sqrt())
            d1 = torch.cat([torch.where(seen, d1_seen, d1[:k]), d1[k:]])
            d2 = torch.cat([torch.where(seen, torch.zeros_like(s), d2[:k]), d2[k:]])
            # V is orthogonal, so Vt z is standard normal too; it is drawn in the pixel basis.
            return svd.V(a * xb_hat + d1 * svd.Vt(z) + d2 * svd.Vt(eps))          # eq. (51)
        return ddnm_plus


@register_solver("ddnm+")
class DdnmPlus(Ddnm):
    """DDNM+ (``plus=True``): the official program's behaviour, DDNM when sigma_y = 0."""

    name = "ddnm+"

    def __init__(self, denoiser, config: DdnmConfig | None = None, **kwargs):
        super().__init__(denoiser, config if config is not None else DdnmConfig(plus=True), **kwargs)
