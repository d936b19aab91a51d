"""SHRED (Algorithm 1): restore an image by optimising the starting noise x_T of a few-step DDIM.

    x_0 = f(x_T)                     deterministic DDIM with skip delta_t (eqs. 13-14)
    L_IR(x_T) = ||y - H(f(x_T))||    measurement loss (eq. 15; the authors' code uses the MSE)
    x_T <- Adam step on L_IR         (eq. 16; x_T is the only variable, the network is frozen)

Options beyond the paper come from the authors' released code (see ``docs``/README): the surrogate
gradient, x0 clipping, the projection of x_T onto the sphere of radius sqrt(D), leading timesteps.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from ..config import (FrozenConfig, at_most, boolean, one_of, optional, positive, positive_int,
                      setting)
from ..diffusion import SPACINGS, ddim_invert, ddim_sample, time_pairs
from ..errors import ShredError
from ..models.base import Denoiser, module_device
from ..operators import Operator
from .base import Result, Solver, seeded_noise, to_image_space, to_model_space
from .registry import register_solver
from .stopping import STOPS, make_stop_rule

LOSSES = ("mse", "norm")
INITS = ("noise", "ddim-inversion")
LR_DECAYS = ("none", "cosine")


@dataclass(frozen=True)
class ShredConfig(FrozenConfig):
    """Settings of one SHRED run. Frozen; ``to_dict``/``from_dict`` round-trip through JSON.

    Attributes:
        delta_t: DDIM skip (paper: 100 of T = 1000, i.e. 10 network calls per iteration).
        spacing: ``"leading"`` (authors' code: t = 900 ... 0) or ``"trailing"`` (Algorithm 1: from T-1).
        lr: Adam learning rate alpha (at most 10: x_T has unit-variance entries).
        iterations: N, the maximum number of Adam steps (at most 100,000).
        loss: ``"mse"`` (mean squared error over the measurements, authors' code) or ``"norm"``
            (the Euclidean norm of eq. 15).
        grad: ``"surrogate"`` (network under no_grad, authors' code) or ``"exact"`` (eq. 16).
        clip_x0: clamp x0_hat to [-1, 1] inside every DDIM step (authors' code).
        sphere: after each step rescale x_T to norm sqrt(D), D = C*H*W (authors' code).
        epsilon: stop an image once L_IR < epsilon (section 6.1); None runs all iterations.
        init: ``"noise"`` (x_T ~ N(0, I), Algorithm 1) or ``"ddim-inversion"`` (DDIM-invert A^+ y).
        lr_decay: ``"none"`` (constant, as in the paper) or ``"cosine"`` (anneal to 0 over the
            iterations, which lets Adam settle instead of jittering at a floor set by lr).
        check_every: read the loss back from the device every k iterations (early stopping and the
            progress bar look only then; k > 1 avoids a host synchronisation per iteration on GPUs).
            None (default): 10 on a GPU, 1 on a CPU (where reading the loss costs nothing).
        stop: noise-aware stopping (:mod:`shred.solvers.stopping`): ``"none"``, ``"discrepancy"``
            (||y - H x|| <= tau sigma_y sqrt(m) with the operator's sigma_y), ``"auto"`` (sigma_y
            estimated from y when unknown) or ``"plateau"`` (the loss stopped improving).
        tau: the discrepancy principle's safety factor (about 1).
    """

    label = "SHRED"

    delta_t: int = setting(100, positive_int)
    spacing: str = setting("leading", one_of(*SPACINGS))
    lr: float = setting(0.003, at_most(10.0, positive))
    iterations: int = setting(100, at_most(100_000, positive_int))
    loss: str = setting("mse", one_of(*LOSSES))
    grad: str = setting("surrogate", one_of("surrogate", "exact"))
    clip_x0: bool = setting(True, boolean)
    sphere: bool = setting(True, boolean)
    epsilon: float | None = setting(None, optional(positive))
    init: str = setting("noise", one_of(*INITS))
    lr_decay: str = setting("none", one_of(*LR_DECAYS))
    check_every: int | None = setting(None, optional(positive_int))
    stop: str = setting("none", one_of(*STOPS))
    tau: float = setting(1.0, positive)


def check_interval(check_every: int | None, device: torch.device) -> int:
    """Iterations between reads of the loss: ``check_every``, or 10 on a GPU and 1 on a CPU."""
    if check_every is not None:
        return check_every
    return 10 if torch.device(device).type == "cuda" else 1


def measurement_loss(residual: torch.Tensor, kind: str, m: int) -> torch.Tensor:
    """Per-image loss [B] of residual y - H(x): ``mse`` = ||r||^2 / m, ``norm`` = ||r|| (eq. 15)."""
    sq = residual.flatten(1).pow(2).sum(1)
    return sq / m if kind == "mse" else sq.clamp_min(1e-30).sqrt()


@register_solver("shred")
class Shred(Solver):
    """The SHRED solver (Algorithm 1) for a known operator.

    Args:
        denoiser: the frozen eps_theta (:class:`shred.models.Denoiser`).
        config: a whole :class:`ShredConfig`; or leave it None and name a ``preset`` (default
            ``"auto"``, :mod:`shred.solvers.presets`) and the ``task`` whose settings to take.
        preset / task: see ``config``.
        device / dtype: where and in what precision x_T, the loss and Adam live (default: the
            denoiser's device, float32).
        **settings: :class:`ShredConfig` fields replacing the config's (``lr=0.05``).

    ``build_solver("shred@paper", den, task="sr", iterations=20)`` is the usual way to build one.
    """

    name = "shred"
    config_class = ShredConfig
    extra_settings = ("preset", "task")

    def __init__(self, denoiser: Denoiser, config: ShredConfig | None = None, *, preset: str | None = None,
                 task: str | None = None, device=None, dtype: torch.dtype = torch.float32, **settings):
        from .presets import task_config

        if config is None:
            config, preset = task_config(preset or "auto", task, denoiser)
        elif preset is not None:
            raise ShredError("give SHRED either a config or a preset, not both")
        self.preset, self.task = preset, task
        self.denoiser = denoiser
        self.config = config.replace(**settings) if settings else config
        self.pairs = time_pairs(denoiser.schedule.T, delta_t=self.config.delta_t, spacing=self.config.spacing)
        self.device = torch.device(device) if device is not None else module_device(denoiser)
        self.dtype = dtype

    @classmethod
    def unsupported(cls, operator: Operator) -> str | None:
        return None

    def f(self, x_T: torch.Tensor, grad: str | None = None) -> torch.Tensor:
        """x_0 = f(x_T) in the model's space, with this config's sampler settings."""
        return ddim_sample(self.denoiser, x_T, self.pairs, grad=grad or self.config.grad,
                           clip_x0=self.config.clip_x0)

    def initial_latent(self, y: torch.Tensor, operator: Operator, seeds) -> torch.Tensor:
        c = self.config
        shape = (self.denoiser.channels, *self.denoiser.image_size)
        if tuple(operator.in_shape) != shape:
            raise ShredError(f"the operator works on {tuple(operator.in_shape)} images but the model "
                             f"{self.denoiser.name} makes {shape}")
        if c.init == "noise":
            x_T = seeded_noise(shape, seeds, self.device, self.dtype)
        else:
            with torch.no_grad():
                x_pinv = operator.pinv(y).clamp(0, 1)
                x_T = ddim_invert(self.denoiser, to_model_space(x_pinv), self.pairs)
        if c.sphere:
            x_T = self._project(x_T)
        return x_T

    @staticmethod
    def _project(x_T: torch.Tensor) -> torch.Tensor:
        d = x_T[0].numel()
        return x_T * (math.sqrt(d) / x_T.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)

    def extra_parameters(self, operator: Operator) -> list[dict]:
        """Adam parameter groups optimised jointly with x_T (the blind variant adds H_theta)."""
        return []

    def record(self, active: torch.Tensor) -> None:
        """Called every iteration, after x0 = f(x_T) and H(x0) and before the Adam step, with the
        [B] mask of images still running: subclasses keep per-image state (the blind variant keeps
        the kernel that produced the kept x0)."""

    def solve(self, y, operator, seeds, progress) -> Result:
        from tqdm.auto import tqdm

        c = self.config
        start = time.perf_counter()
        y = y.to(self.device, self.dtype)
        operator = operator.to(self.device)
        weight = operator.measurement_weight()
        m = operator.num_measurements()
        x_T = self.initial_latent(y, operator, seeds).detach().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [x_T], "lr": c.lr}, *self.extra_parameters(operator)],
                               fused=self.device.type == "cuda")
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.iterations) if c.lr_decay == "cosine" else None)
        B = y.shape[0]
        active = torch.ones(B, dtype=torch.bool, device=self.device)
        x0_keep = torch.zeros_like(x_T)
        xT_keep = x_T.detach().clone()
        iters = torch.zeros(B, dtype=torch.long, device=self.device)
        losses: list[torch.Tensor] = []
        rule = make_stop_rule(c.stop, c.tau, c.loss, y, operator)
        every = check_interval(c.check_every, self.device)
        bar = tqdm(total=c.iterations, desc=self.name, unit="it", disable=not progress, leave=False)
        try:
            for k in range(c.iterations):
                x0 = to_image_space(self.f(x_T))
                residual = y - operator.A(x0)
                if weight is not None:
                    residual = residual * weight.to(residual)
                per_image = measurement_loss(residual, c.loss, m)
                with torch.no_grad():
                    a = active.view(-1, 1, 1, 1)
                    x0_keep = torch.where(a, x0.detach(), x0_keep)
                    xT_keep = torch.where(a, x_T.detach(), xT_keep)
                    iters += active.long()
                    self.record(active)
                    losses.append(torch.where(active, per_image.detach(), losses[-1] if losses else per_image.detach()))
                opt.zero_grad(set_to_none=True)
                (per_image * active).sum().backward()
                opt.step()
                if sched is not None:
                    sched.step()
                with torch.no_grad():
                    if c.sphere:
                        x_T.copy_(self._project(x_T))
                    x_T.copy_(torch.where(active.view(-1, 1, 1, 1), x_T, xT_keep))
                if (k + 1) % every == 0 or k + 1 == c.iterations:
                    last = losses[-1]
                    if c.epsilon is not None:
                        active &= ~(last < c.epsilon)
                    if rule is not None:
                        active &= ~rule.done(last).to(active.device)
                    bar.set_postfix(loss=f"{float(last.max()):.3g}", refresh=False)
                    bar.update(k + 1 - bar.n)
                    if not bool(active.any()):
                        break
        finally:
            bar.close()
        return Result(x0=x0_keep.detach(), x_T=xT_keep.detach(), loss_history=torch.stack(losses).float().cpu(),
                      iterations=iters.cpu(), wall_time=time.perf_counter() - start, seeds=list(seeds),
                      extras={**self.extras(operator), **({"stop": rule.info()} if rule else {})})

    def extras(self, operator: Operator) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "preset": self.preset}
