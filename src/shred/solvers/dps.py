"""DPS (Chung, Kim, Mccann, Klasky and Ye, "Diffusion Posterior Sampling for General Noisy Inverse
Problems", ICLR 2023), following the official code DPS2022/diffusion-posterior-sampling.

Every step is a DDPM ancestral step followed by a gradient step on the measurement distance of the
clean-image estimate, differentiated through the network (``guided_diffusion/gaussian_diffusion.py``
``p_sample_loop`` and ``condition_methods.py`` ``PosteriorSampling``):

    x0_hat  = clip((x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t), -1, 1)
    x'      = DDPM posterior step from x_t with x0_hat  (+ noise)
    x_next  = x' - zeta * grad_{x_t} || y - A(x0_hat) ||

The distance is the Euclidean norm (not squared) in the [-1, 1] units of the official code, i.e.
twice the norm of y - A(x0) in [0, 1] units. It is taken per image here (the official code takes
one norm over the whole batch, the same for its batch size 1), so image i depends only on seed i.
Works for any differentiable operator, linear or not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import FrozenConfig, at_most, boolean, non_negative, one_of, optional, positive_int, setting
from ..diffusion import predict_x0
from ..operators import Mask, Operator
from .ancestral import VARIANCES, ddpm_step, spaced_timesteps
from .base import to_image_space, task_stage
from .peer import PeerSolver
from .registry import register_solver

# zeta ("conditioning.params.scale") of the official task configs, by shred task group:
# configs/super_resolution_config.yaml 0.3, gaussian_deblur_config.yaml 0.3,
# motion_deblur_config.yaml 0.3, inpainting_config.yaml 0.5 (box or random masks: inpainting and
# pixel-subsampling compressed sensing). Colorization has no official config; it takes the 0.3 of
# the other full-image linear tasks.
DPS_SCALES = {"sr": 0.3, "deblur": 0.3, "inpaint": 0.5, "cs": 0.5, "colorize": 0.3}


def official_scale(operator: Operator) -> float:
    """zeta of the official config for the task ``operator`` stands for (:data:`DPS_SCALES`):
    0.5 for masks (inpainting, compressed sensing by pixel subsampling), 0.3 otherwise."""
    main = task_stage(operator)
    return DPS_SCALES["inpaint"] if isinstance(main, Mask) else DPS_SCALES["sr"]


@dataclass(frozen=True)
class DpsConfig(FrozenConfig):
    """DPS settings; defaults from DPS2022/diffusion-posterior-sampling.

    Attributes:
        steps: DDPM steps (``configs/diffusion_config.yaml``: ``steps: 1000``,
            ``timestep_respacing: 1000``); fewer steps use guided-diffusion's respacing.
        scale: the step size zeta; None (default) takes the official task config's for the
            operator (:func:`official_scale`: 0.5 for masks, 0.3 for super-resolution and blurs).
        clip_x0: clamp x0_hat to [-1, 1] before the DDPM step and the distance
            (``clip_denoised: True``); the gradient is zero where the clamp saturates.
        variance: ``"small"`` (posterior variance) or ``"large"`` (beta). The official code uses the
            network's learned variance (``model_var_type: learned_range``), which the eps-only
            :class:`shred.models.Denoiser` interface does not carry.
    """

    label = "DPS"

    steps: int = setting(1000, at_most(100_000, positive_int))
    scale: float | None = setting(None, optional(non_negative))
    clip_x0: bool = setting(True, boolean)
    variance: str = setting("small", one_of(*VARIANCES))


@register_solver("dps")
class Dps(PeerSolver):
    """DPS: DDPM ancestral sampling with a measurement gradient through the network."""

    name = "dps"
    config_class = DpsConfig

    def solve(self, y, operator, seeds, progress):
        c = self.config
        zeta = c.scale if c.scale is not None else official_scale(operator)
        y, shape, trace, gens, started = self.start(y, operator, seeds)
        weight = operator.measurement_weight()
        ts = spaced_timesteps(self.denoiser.schedule.T, c.steps, "respaced")
        pairs = list(zip(ts[::-1], ts[::-1][1:] + [-1]))
        x = x_T = self.noise(gens, shape)
        bar = self.progress_bar(len(pairs), progress)
        try:
            for t, t_next in pairs:
                a_t, a_next = self.abar(t), self.abar(t_next)
                z = self.noise(gens, shape)
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    x0 = predict_x0(x, self.eps(x, t), a_t)
                    if c.clip_x0:
                        x0 = x0.clamp(-1, 1)
                    residual = y - operator.A(to_image_space(x0))
                    if weight is not None:
                        residual = residual * weight.to(residual)
                    # ||y - A(x0_hat)|| in [-1, 1] units; clamp_min keeps the gradient finite at 0.
                    distance = 2 * residual.flatten(1).pow(2).sum(1).clamp_min(1e-30).sqrt()
                    grad = torch.autograd.grad(distance.sum(), x)[0]
                with torch.no_grad():
                    x0 = x0.detach()
                    trace(x0)
                    x = ddpm_step(x.detach(), x0, a_t, a_next, c.variance, z) - zeta * grad
                bar.update()
        finally:
            bar.close()
        return self.result(x.detach(), x_T, trace, started, seeds, scale=zeta)
