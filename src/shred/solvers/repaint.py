"""RePaint (Lugmayr, Danelljan, Romero, Yu, Timofte and Van Gool, "RePaint: Inpainting using
Denoising Diffusion Probabilistic Models", CVPR 2022), following the official code andreas128/RePaint
(``guided_diffusion/gaussian_diffusion.py`` ``p_sample`` / ``p_sample_loop_progressive`` and
``guided_diffusion/scheduler.py`` ``get_schedule_jump``).

Before every reverse step (except the first) the known pixels of x_t are replaced by the measured
image diffused to the same level (RePaint eqs. 8-10, ``inpa_inj_sched_prev``):

    x_t <- m * (sqrt(abar_t) y + sqrt(1 - abar_t) z) + (1 - m) * x_t
    x_{t-1} = DDPM ancestral step from x_t (x0 estimate clipped to [-1, 1])

and the resampling schedule goes back up ``jump_length`` steps, ``jump_n_sample - 1`` times at each
multiple of ``jump_length``, diffusing forward one (respaced) step at a time:
x_{t+1} = sqrt(1 - beta_{t+1}) x_t + sqrt(beta_{t+1}) z (``undo``).

RePaint is defined for masks only (inpainting; compressed sensing by random pixels is a mask too):
other operators raise :class:`ShredError`. Measurement noise is not modelled: the known pixels are
injected as measured. The output's known pixels are the network's estimate from the last step,
close to y (within the noise level sqrt(1 - abar_0) = 0.01 of the last x_t) but not equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import FrozenConfig, at_most, boolean, one_of, positive_int, setting
from ..diffusion import predict_x0
from ..errors import ShredError
from ..operators import Mask, Operator, unwrap
from .ancestral import VARIANCES, ddpm_step, jump_schedule, spaced_timesteps
from .base import to_model_space
from .peer import PeerSolver
from .registry import register_solver


@dataclass(frozen=True)
class RepaintConfig(FrozenConfig):
    """RePaint settings; defaults from andreas128/RePaint ``confs/face_example.yml`` (the same in
    the ``test_*`` configs).

    Attributes:
        steps: respaced DDPM steps (``timestep_respacing: '250'``, ``schedule_jump_params.t_T: 250``).
        jump_length: ``schedule_jump_params.jump_length: 10``.
        jump_n_sample: ``schedule_jump_params.jump_n_sample: 10`` (each stretch is run 10 times;
            2410 network calls in all with the defaults).
        clip_x0: ``clip_denoised: true``.
        variance: ``"small"`` or ``"large"``; the official code uses the network's learned variance
            (``learn_sigma: true``), which the eps-only Denoiser interface does not carry.
    """

    label = "RePaint"

    steps: int = setting(250, at_most(100_000, positive_int))
    jump_length: int = setting(10, positive_int)
    jump_n_sample: int = setting(10, at_most(1000, positive_int))
    clip_x0: bool = setting(True, boolean)
    variance: str = setting("small", one_of(*VARIANCES))


def known_pixel_mask(operator: Operator) -> torch.Tensor:
    """The [H, W] 0/1 mask of a masking operator (also inside Noisy or a one-element Compose)."""
    inner = unwrap(operator)
    if isinstance(inner, Mask):
        return inner.mask
    raise ShredError(f"RePaint supports masking operators only (inpainting, compressed sensing), "
                     f"not {operator.name!r}; use ddnm, ddrm, dps or shred for this task")


@register_solver("repaint")
class Repaint(PeerSolver):
    """RePaint: inpainting by known-pixel injection and resampling (module docstring)."""

    name = "repaint"
    config_class = RepaintConfig

    @classmethod
    def unsupported(cls, operator):
        try:
            known_pixel_mask(operator)
        except ShredError as exc:
            return str(exc)
        return None

    def solve(self, y, operator, seeds, progress):
        c = self.config
        mask = known_pixel_mask(operator)
        y, shape, trace, gens, started = self.start(y, operator, seeds)
        m = mask.to(device=self.device, dtype=self.dtype)
        known = to_model_space(y) * m
        ts = spaced_timesteps(self.denoiser.schedule.T, c.steps, "respaced")
        schedule = jump_schedule(c.steps, c.jump_length, c.jump_n_sample)
        x = x_T = self.noise(gens, shape)
        first = True
        bar = self.progress_bar(len(schedule) - 1, progress)
        try:
            with torch.no_grad():
                for k, k_next in zip(schedule[:-1], schedule[1:]):
                    if k_next < k:
                        t, t_next = ts[k], (ts[k_next] if k_next >= 0 else -1)
                        a_t, a_next = self.abar(t), self.abar(t_next)
                        z_known, z = self.noise(gens, shape), self.noise(gens, shape)
                        if not first:
                            # Known region: y diffused to level t (RePaint eq. 8).
                            x = m * (math.sqrt(a_t) * known + math.sqrt(1 - a_t) * z_known) + (1 - m) * x
                        first = False
                        x0 = predict_x0(x, self.eps(x, t), a_t)
                        if c.clip_x0:
                            x0 = x0.clamp(-1, 1)
                        trace(x0)
                        x = ddpm_step(x, x0, a_t, a_next, c.variance, z)                  # eq. (9)
                    else:
                        # Resampling: diffuse forward one step of the respaced chain ("undo").
                        alpha = self.abar(ts[k_next]) / self.abar(ts[k])
                        x = math.sqrt(alpha) * x + math.sqrt(1 - alpha) * self.noise(gens, shape)
                    bar.update()
        finally:
            bar.close()
        return self.result(x, x_T, trace, started, seeds)
