"""SHRED (Algorithm 1): restore an image by optimising the starting noise x_T of a few-step DDIM.

    x_0 = f(x_T)                     deterministic DDIM with skip delta_t (eqs. 13-14)
    L_IR(x_T) = ||y - H(f(x_T))||    measurement loss (eq. 15; the authors' code uses the MSE)
    x_T <- Adam step on L_IR         (eq. 16; x_T is the only variable, the network is frozen)

:meth:`Shred.solve` is that loop, line by line. Everything that is not the algorithm (freezing the
images that stopped, stopping rules, the progress bar, the blind variant's kernel) is bookkeeping
passed in as callbacks, as k-diffusion's samplers take ``callback``.

Options beyond the paper come from the authors' released code (see ``docs``/README): the surrogate
gradient, x0 clipping, the projection of x_T onto a sphere, leading timesteps. SHRED+ (the ``plus``
preset) adds a warm start, a coarse-to-fine trajectory and a final consistency step (all off by
default, so that the paper's and the authors' presets compute what they always did).
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable

import torch

from ..diffusion import ddim_invert, ddim_sample, time_pairs
from ..errors import ShredError
from ..models.base import Denoiser, check_image_shape, module_device
from ..operators import Operator
from .ancestral import jump_schedule
from .base import Result, Solver, measurement_loss, seeded_noise, to_image_space, to_model_space
from .ddnm import Ddnm
from .registry import register_solver
from .shred_config import FINISH_NOISE, FINISHES, INITS, LOSSES, LR_DECAYS, WARM_FROM, ShredConfig
from .stopping import make_stop_rule

__all__ = ["FINISH_NOISE", "FINISHES", "INITS", "LOSSES", "LR_DECAYS", "WARM_FROM", "Keep", "Progress", "Shred",
           "ShredConfig", "Stopping", "check_interval", "measurement_loss", "project_to_sphere"]

def check_interval(check_every: int | None, device: torch.device) -> int:
    """Iterations between reads of the loss: ``check_every``, or 10 on a GPU and 1 on a CPU."""
    if check_every is not None:
        return check_every
    return 10 if torch.device(device).type == "cuda" else 1


def project_to_sphere(x_T: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """x_T rescaled to norm ``radius`` ([B]) per image."""
    scale = radius / x_T.flatten(1).norm(dim=1).clamp_min(1e-12)
    return x_T * scale.view(-1, *([1] * (x_T.dim() - 1)))


class Progress:
    """What SHRED's loop hands the callbacks at iteration k (before the Adam step).

    Attributes:
        k: the iteration (0-based).
        x0: [B, C, H, W] f(x_T) in [0, 1] (with its graph: do not backpropagate from a callback).
        x_T: [B, C, H, W] the latent that made x0.
        loss: [B] L_IR of x0.
        active: [B] bool, the images still running; callbacks may clear entries (stopping).
    """

    def __init__(self, k: int, x0: torch.Tensor, x_T: torch.Tensor, loss: torch.Tensor, active: torch.Tensor):
        self.k, self.x0, self.x_T, self.loss, self.active = k, x0, x_T, loss, active


class Keep:
    """Bookkeeping callback: each image's last x0, x_T and loss while it ran, its iteration count,
    the loss history; images that stopped keep what they had."""

    def __init__(self, x_T: torch.Tensor):
        B = x_T.shape[0]
        self.x0 = torch.zeros_like(x_T)
        self.x_T = x_T.detach().clone()
        self.iterations = torch.zeros(B, dtype=torch.long, device=x_T.device)
        self.history: list[torch.Tensor] = []

    @torch.no_grad()
    def __call__(self, p: Progress) -> None:
        a = p.active.view(-1, 1, 1, 1)
        self.x0 = torch.where(a, p.x0.detach(), self.x0)
        self.x_T = torch.where(a, p.x_T.detach(), self.x_T)
        self.iterations += p.active.long()
        last = self.history[-1] if self.history else p.loss.detach()
        self.history.append(torch.where(p.active, p.loss.detach(), last))

    def frozen(self, x_T: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """x_T with the stopped images' latents put back (the Adam step moved every row)."""
        return torch.where(active.view(-1, 1, 1, 1), x_T, self.x_T)


class Stopping:
    """Stopping callback: every ``every`` iterations, images whose loss is below ``epsilon`` or that
    the stop rule (:mod:`shred.solvers.stopping`) ends leave the active set; the progress bar moves.
    No image stops before iteration ``first`` (0-based): with coarse-to-fine, the answer is an x0 of
    the fine trajectory, so an image done early still runs its first fine iteration."""

    def __init__(self, keep: Keep, epsilon: float | None, rule, every: int, iterations: int, bar, first: int = 0):
        self.keep, self.epsilon, self.rule, self.every, self.iterations, self.bar = keep, epsilon, rule, every, iterations, bar
        self.first = first

    def __call__(self, p: Progress) -> None:
        k = p.k
        if (k + 1) % self.every and k + 1 != self.iterations and k != self.first:
            return
        last = self.keep.history[-1]
        done = torch.zeros_like(p.active)
        if self.epsilon is not None and k >= self.first:
            done |= last < self.epsilon
        if self.rule is not None and k >= self.first:
            done |= self.rule.done(last).to(p.active.device)
        # The stop takes effect after this iteration's x0 was kept: it is the image's answer.
        p.active.copy_(p.active & ~done)
        self.bar.set_postfix(loss=f"{float(last.max()):.3g}", refresh=False)
        self.bar.update(k + 1 - self.bar.n)


def weighted_maps(operator: Operator) -> tuple[Callable, Callable]:
    """(A, A^T) restricted to the measured entries (zeros elsewhere, as for a mask's y), for
    corrections that work on residuals y - A x."""
    weight = operator.measurement_weight()
    if weight is None:
        return operator.A, operator.AT
    return ((lambda x: weight.to(x) * operator.A(x)),
            (lambda r: operator.AT(weight.to(r) * r)))


# The largest noise_gain at which SHRED+'s DDNM+ keeps its simplified form (finish_ddnm_plus="auto").
SIMPLIFIED_GAIN = 2.0


def noise_gain(operator: Operator) -> float:
    """By how much A^+ amplifies the measurement's noise, as SHRED+'s choice of DDNM+ reads it:
    1 where every nonzero singular value is 1 (the identity, masks, a canvas's crop); 1 / sqrt(c)
    for a coisometry A A^T = c I (average pooling by f: f; colorization: sqrt(3)); the product
    over a composition's factors (and what a wrapper such as :class:`shred.operators.Noisy`
    wraps); infinity for an uneven operator (blurs, whose singular values reach DDNM's cut, and
    bicubic down-sampling), which the rule sends to per singular value. Not the largest
    amplification: the product is exact for a box aligned with x2 pooling's 2 x 2 blocks (the
    benchmark's), but a mask that cuts blocks leaves smaller singular values (a block it keeps
    one pixel of: 1/4), so CS then x2 pooling counts 2 while it amplifies some noise up to 4
    times. There, at 30 % and noise 0.05, the two forms tie: 19.73 dB simplified against 19.76
    for the Tikhonov form, since it has no SVD (16 training images,
    bench/results/quantized-y-cs-sr-train.json)."""

    def gain(op: Operator) -> float:
        if op.coisometry is not None:
            return 1 / math.sqrt(op.coisometry)
        return math.inf if op.uneven else 1.0

    return math.prod(gain(op) for op in factors(operator))


def factors(operator: Operator) -> list[Operator]:
    """The operators A is made of, in the order they apply: a composition's operators, each taken
    apart in turn, and what a wrapper (:class:`shred.operators.Noisy`,
    :class:`shred.operators.krylov.WithoutSVD`) wraps; ``[operator]`` for any other."""
    parts = getattr(operator, "ops", None)
    if parts:
        return [op for part in parts for op in factors(part)]
    inner = getattr(operator, "op", None)
    if isinstance(inner, Operator):
        return factors(inner)
    return [operator]


def has_null_space(operator: Operator) -> bool:
    """Whether A sends some images to 0 by construction: some factor of it (the operator, each
    operator of a composition, what a wrapper such as :class:`shred.operators.Noisy` wraps) has
    fewer measurements than pixels (a mask, counted by its kept pixels; down-sampling;
    colorization; the crop of a larger canvas, :class:`shred.operators.canvas.Crop`, whose border
    is unseen). A blur has none here, however small its singular values."""
    return any(op.num_measurements() < math.prod(op.in_shape) for op in factors(operator))


def tikhonov_corrector(operator: Operator, y_m: torch.Tensor, sigma_y: float, eta: float, zero_below: float,
                       steps: int = 40) -> Callable:
    """DDNM+ for an operator without an SVD: the map (x0|t, eps, z, abar') -> x_next of SHRED+'s
    ``"ddnm"`` finish under noise with ``finish_ddnm_plus="tikhonov"`` (all in model space [-1, 1];
    ``sigma_y`` is the model-space noise level, twice the image one).

    DDNM+ per singular value (:meth:`shred.solvers.ddnm.Ddnm._corrector`) corrects coordinate i by
    lambda_i times A^+'s correction, with a = sqrt(abar'), sigma_t = sqrt(1 - abar') and
    s0 = a sigma_y / sigma_t: lambda_i = 1 where s_i >= s0, and sqrt(1 - eta^2) s_i / s0 below (a
    step from 1 to 0.53 at s0 for eta 0.85, then proportional to s_i). Without an SVD the
    correction here is the Tikhonov one, x0_hat = x0|t + (A^T A + mu I)^{-1} A^T (y - A x0|t), whose
    factor s_i^2 / (s_i^2 + mu) rises smoothly from 0 to 1; DiffPIR's data step (Zhu et al. 2023)
    has this form. mu = s1^2, s1 = s0 / sqrt(1 - eta^2), where DDNM+'s proportional branch would
    reach 1 (the factor is 1/2 there and 0.22 at s0); at least ``zero_below``^2, DDNM's cut.
    A review's unrecorded check (deblurring with the SVD hidden, sigma_y 0.05, 8 training images)
    preferred this mu to mu = s0^2; it is not tuned further. It is computed on a ``steps``-dimensional Golub-Kahan subspace
    (:class:`shred.operators.krylov.KrylovTikhonov`), in float64. The noise is DDIM's,
    sigma_t (eta z + sqrt(1 - eta^2) eps): the measurement noise the correction passes on is at
    most a sigma_y / (2 sqrt(mu)) = sigma_t sqrt(1 - eta^2) / 2 per direction, left uncounted. At
    sigma_t = 0 (the last step) nothing is corrected, as in DDNM+."""
    from ..operators.krylov import KrylovTikhonov

    A, AT = weighted_maps(operator)
    weight = operator.measurement_weight()
    if weight is not None:
        y_m = weight.to(y_m) * y_m
    root = max(math.sqrt(max(1 - eta ** 2, 0.0)), 1e-3)

    def ddnm_plus_tikhonov(x0_t, eps, z, a_next):
        a, sigma_t = math.sqrt(a_next), math.sqrt(max(1 - a_next, 0.0))
        x0_hat = x0_t
        if sigma_t > 0:
            mu = max((a * sigma_y / (sigma_t * root)) ** 2, zero_below ** 2)
            r = (y_m - A(x0_t)).to(torch.float64)
            krylov = KrylovTikhonov(A, AT, r, steps)
            x0_hat = x0_t + krylov.solve(torch.full((r.shape[0],), mu, dtype=r.dtype, device=r.device)).to(x0_t)
        return a * x0_hat + sigma_t * (eta * z + math.sqrt(max(1 - eta ** 2, 0.0)) * eps)
    return ddnm_plus_tikhonov


class _FormDdnm(Ddnm):
    """DDNM whose DDNM+ (sigma_y > 0) takes the form ``form`` (:meth:`Shred.ddnm_plus_form`):
    ``"tikhonov"`` runs :func:`tikhonov_corrector`, the others DDNM's own. SHRED+'s ``"ddnm"``
    finish and its start where DDRM cannot run; not a registered solver."""

    form = "svd"

    def _corrector(self, operator, y_m, sigma_y):
        if self.form == "tikhonov" and self.config.plus and sigma_y > 0:
            return tikhonov_corrector(operator, y_m, sigma_y, self.config.eta, self.config.zero_below)
        return super()._corrector(operator, y_m, sigma_y)


@register_solver("shred")
class Shred(Solver):
    """The SHRED solver (Algorithm 1) for a known operator.

    Args:
        denoiser: the frozen eps_theta (:class:`shred.models.Denoiser`). It may be swapped for an
            execution wrapper of the same network (:func:`shred.models.fast.accelerate`).
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
        ts = [t for t, _ in self.pairs][:: self.config.coarse_stride]
        self.coarse_pairs = list(zip(ts, ts[1:] + [-1]))
        if self.config.render_delta_t is not None:
            ts = list(range(self.pairs[0][0], -1, -self.config.render_delta_t))
            self.render_pairs = list(zip(ts, ts[1:] + [-1]))
        self.device = torch.device(device) if device is not None else module_device(denoiser)
        self.dtype = dtype
        c, T = self.config, denoiser.schedule.T
        t_s = min(c.finish_t, T - 1)
        steps = min(c.finish_steps, t_s + 1)
        # The "ddnm" finish's timesteps (ascending, the last is t_s) and its walk over their indices.
        self.finish_timesteps = sorted({round(t_s * (1 - k / steps)) for k in range(steps)})
        self.finish_schedule = jump_schedule(len(self.finish_timesteps), c.finish_travel_length,
                                             c.finish_travel_repeat)
        from ..errors import SettingsWarning

        for note in (self.finish_note(), self.travel_note(), self.coarse_note()):
            if note is not None:
                warnings.warn(note, SettingsWarning, stacklevel=2)

    def finish_note(self) -> str | None:
        """What the ``"ddnm"`` finish takes instead of what was asked (a one-line warning), or None:
        a ``finish_t`` past the model's last timestep starts from T - 1, and steps that round to
        the same timestep are taken once (a finish from t_s has about t_s of them at most)."""
        c, T = self.config, self.denoiser.schedule.T
        if c.finish != "ddnm":
            return None
        took = len(self.finish_timesteps)
        notes = []
        if c.finish_t > T - 1:
            notes.append(f"finish_t={c.finish_t} is past the model's last timestep: the finish starts from "
                         f"t = {T - 1}")
        if took < c.finish_steps:
            notes.append(f"finish_steps={c.finish_steps}: a finish from t = {self.finish_timesteps[-1]} has "
                         f"{took} distinct steps, and takes {took} (one network call each)")
        return "; ".join(notes) or None

    def travel_note(self) -> str | None:
        """Why the configured time travel changes nothing (a one-line warning), or None: it is off
        (1 / 1) or it jumps."""
        c = self.config
        if (c.finish_travel_length, c.finish_travel_repeat) == (1, 1):
            return None
        what = f"finish_travel_length={c.finish_travel_length}, finish_travel_repeat={c.finish_travel_repeat}"
        if c.finish != "ddnm":
            return f"{what} do nothing: time travel is part of the 'ddnm' finish, and this run's finish is {c.finish!r}"
        if c.finish_travel_repeat == 1:
            return f"{what} do nothing: finish_travel_repeat=1 makes no jump (set 2 or more)"
        if len(self.finish_schedule) == len(self.finish_timesteps) + 1:
            return (f"{what} do nothing: a jump of {c.finish_travel_length} steps needs a finish of more steps, "
                    f"and this one takes {len(self.finish_timesteps)} (finish_steps, at most finish_t + 1)")
        return None

    def coarse_note(self) -> str | None:
        """A one-line warning when every iteration is coarse (``coarse_iterations`` >= ``iterations``
        with a coarse trajectory shorter than the fine one): the answer is then an x0 of the coarse
        trajectory, not of the fine one; else None."""
        c = self.config
        if c.coarse_iterations < c.iterations or len(self.coarse_pairs) == len(self.pairs):
            return None
        return (f"coarse_iterations={c.coarse_iterations} covers all {c.iterations} iterations: every one, and the "
                f"answer, goes through {len(self.coarse_pairs)} DDIM steps instead of {len(self.pairs)} (set "
                f"coarse_iterations below iterations={c.iterations} to end on a fine one)")

    # -- the pieces of Algorithm 1 -----------------------------------------------------------------
    def f(self, x_T: torch.Tensor, grad: str | None = None, pairs=None) -> torch.Tensor:
        """x_0 = f(x_T) in the model's space: deterministic DDIM through ``pairs`` (default: the
        config's trajectory), eqs. (13)-(14)."""
        return ddim_sample(self.denoiser, x_T, pairs or self.pairs, grad=grad or self.config.grad,
                           clip_x0=self.config.clip_x0)

    def trajectory(self, k: int) -> list[tuple[int, int]]:
        """The (t, t_next) pairs of iteration k: coarse for the first ``coarse_iterations``."""
        return self.coarse_pairs if k < self.config.coarse_iterations else self.pairs

    def initial_latent(self, y: torch.Tensor, operator: Operator, seeds, *, progress: bool = False) -> torch.Tensor:
        """x_T^0: noise (Algorithm 1), or a warm start from the DDIM inversion of a cheap estimate
        (with ``progress``, the estimate's steps and the inversion's each show a bar)."""
        from tqdm.auto import tqdm

        c = self.config
        shape = check_image_shape(self.denoiser, operator.in_shape)
        noise = seeded_noise(shape, seeds, self.device, self.dtype)
        if c.init == "noise":
            return noise
        with torch.no_grad():
            estimate = self.cheap_estimate(y, operator, seeds if c.init == "warm" else None, progress=progress)
            with tqdm(total=len(self.pairs), desc="inversion", unit="step", disable=not progress, leave=False) as bar:
                x_inv = ddim_invert(self.denoiser, to_model_space(estimate), self.pairs, c.invert_fixed_point,
                                    on_step=bar.update)
        if c.init == "ddim-inversion":
            return x_inv
        a = c.warm_strength
        return math.sqrt(a) * x_inv + math.sqrt(1 - a) * noise

    def cheap_estimate(self, y: torch.Tensor, operator: Operator, seeds, *, progress: bool = False) -> torch.Tensor:
        """The image a warm start inverts, [B, C, H, W] in [0, 1], by ``warm_from`` (A^+ y,
        ``operator.pinv``, whenever there are no seeds or the operator is nonlinear; ``progress``
        shows the 20 steps' bar):

        - ``"pinv"``: A^+ y.
        - ``"ddnm"``: DDNM's 20-step restoration (official eta 0.85; under noise DDNM+ in the form
          the ``"ddnm"`` finish takes, :meth:`ddnm_plus_form`, so no SVD is needed).
        - ``"ddrm"``: DDRM's 20-step restoration (official settings). Where DDRM cannot run (no
          closed-form SVD: a mask composed with other operators, a non-separable blur over 1024
          pixels, a spatially varying blur) and A has a null space (:func:`has_null_space`: a
          mask, down-sampling, colorization or a canvas's crop among its factors), DDNM's as
          above: A^+ y is zero there, and a mask's hole stays black. Where it has none (those
          blurs) the Tikhonov estimate at the noise level under noise (:meth:`tikhonov` from 0;
          A^+ y amplifies a blur's noise), else A^+ y: DDNM's start gained nothing there for 20
          more network calls.
          ``bench/quantized_y.py --pinv-start --ddnm-start`` measures both (docs/RESULTS.md)."""
        choice = self.config.warm_from
        if choice != "pinv" and seeds is not None:
            from .ddrm import Ddrm

            if choice == "ddrm" and Ddrm.unsupported(operator) is None:
                return Ddrm(self.denoiser, device=self.device)(y, operator, seeds=list(seeds),
                                                               progress=progress).x0.clamp(0, 1)
            if operator.linear and (choice == "ddnm" or has_null_space(operator)):
                start = self.ddnm_sampler(operator, steps=20)
                return start(y, operator, seeds=list(seeds), progress=progress).x0.clamp(0, 1)
            if operator.linear and operator.sigma_y > 0:
                return self.tikhonov(torch.zeros((y.shape[0], *operator.in_shape), dtype=y.dtype, device=y.device),
                                     y, operator)
        return operator.pinv(y).clamp(0, 1)

    def ddnm_plus_form(self, operator: Operator) -> str:
        """Which DDNM+ runs under noise (``finish_ddnm_plus`` resolved for this operator):
        ``"simplified"``, ``"svd"`` or ``"tikhonov"`` (``"svd"`` asked of an operator without an
        SVD). Which is taken where, and what it measured, is said in :meth:`ddnm_finish`."""
        form = self.config.finish_ddnm_plus
        if form == "auto":
            form = "simplified" if noise_gain(operator) <= SIMPLIFIED_GAIN else "svd"
        if form == "svd" and self.svd_of(operator) is None:
            form = "tikhonov"
        return form

    def ddnm_sampler(self, operator: Operator, **settings) -> _FormDdnm:
        """DDNM (:class:`shred.solvers.ddnm.Ddnm` with ``settings``), DDNM+ when the operator
        carries noise, in the form :meth:`ddnm_plus_form` picks: SHRED+'s finish and its start
        where DDRM cannot run."""
        form = self.ddnm_plus_form(operator)
        sampler = _FormDdnm(self.denoiser, device=self.device, plus=operator.sigma_y > 0,
                            simplified=form == "simplified", **settings)
        sampler.form = form
        return sampler

    def sphere_radius(self, x_T: torch.Tensor) -> torch.Tensor:
        """[B] radius of the sphere x_T is kept on: sqrt(D) from noise (authors' code), else the
        start's own norm."""
        if self.config.init == "noise":
            return torch.full((x_T.shape[0],), math.sqrt(x_T[0].numel()), device=x_T.device, dtype=x_T.dtype)
        return x_T.flatten(1).norm(dim=1)

    def consistent(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator) -> torch.Tensor:
        """SHRED+'s finish: x0 + gamma A^+ (y - A x0) per image, A^+ with singular values below 3e-2
        cut (DDNM's ``Deblurring``). gamma = 1 without noise; with noise sigma_y, the largest gamma in
        [0, 1] that keeps ||y - A x|| >= tau sigma_y sqrt(m), i.e. 1 - tau sigma_y sqrt(m) / ||r||
        (the exact residual scaling where A A^+ = I on the range, as for masks and pooling)."""
        if not operator.linear:
            return x0
        from ..operators.svd import cut_maps

        A, A_pinv = cut_maps(operator, 3e-2)
        weight = operator.measurement_weight()
        r = y - A(x0)
        if weight is not None:
            r = r * weight.to(r)
        gamma = torch.ones(x0.shape[0], dtype=x0.dtype, device=x0.device)
        if operator.sigma_y > 0:
            floor = self.config.tau * operator.sigma_y * math.sqrt(operator.num_measurements())
            gamma = (1 - floor / r.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(0, 1)
        return (x0 + gamma.view(-1, 1, 1, 1) * A_pinv(r)).clamp(0, 1)

    @staticmethod
    def svd_of(operator: Operator):
        """The operator's SVD (:func:`shred.operators.svd.operator_svd`), which the ``"tikhonov"``
        correction and DDNM+'s per-singular-value finish need, or None (a nonlinear operator, or
        one without a closed-form SVD)."""
        if not operator.linear:
            return None
        from ..errors import ShredError
        from ..operators.svd import operator_svd

        try:
            return operator_svd(operator)
        except ShredError:
            return None

    @torch.no_grad()
    def tikhonov(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator) -> torch.Tensor:
        """``finish_noise="tikhonov"``: x0 ([B, C, H, W] in [0, 1]) + the Tikhonov correction of
        y - A x0 whose residual is tau sigma_y sqrt(m), clamped to [0, 1]: from the operator's SVD
        (:func:`shred.operators.svd.discrepancy_tikhonov`), or where it has none (a non-separable
        blur over 1024 pixels, a spatially varying blur) from a 40-step Golub-Kahan subspace
        (:func:`shred.operators.krylov.discrepancy_tikhonov_krylov`)."""
        from ..operators.krylov import discrepancy_tikhonov_krylov
        from ..operators.svd import discrepancy_tikhonov

        svd = self.svd_of(operator)
        r = (y - operator.A(x0)).to(torch.float64)
        weight = operator.measurement_weight()
        if weight is not None:
            r = r * weight.to(r)
        target = torch.full((x0.shape[0],), self.config.tau * operator.sigma_y * math.sqrt(operator.num_measurements()),
                            dtype=torch.float64, device=x0.device)
        if svd is not None:
            dx = discrepancy_tikhonov(svd, r, target)
        else:
            dx = discrepancy_tikhonov_krylov(*weighted_maps(operator), r, target)
        return (x0 + dx.to(x0)).clamp(0, 1)

    @torch.no_grad()
    def ddnm_finish(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator, seeds, *,
                    progress: bool = False) -> torch.Tensor:
        """SHRED+'s ``"ddnm"`` finish: x0 ([B, C, H, W] in [0, 1]) diffused to t = ``finish_t`` and
        taken back to t = 0 by ``finish_steps`` DDNM steps (the official eta 0.85; DDNM+ when
        sigma_y > 0: its simplified scalar form where A^+ amplifies the noise at most twice,
        :func:`noise_gain`, as for the identity, masks, x2 pooling and colorization; else lambda
        per singular value where A has an SVD, the Tikhonov form of :func:`tikhonov_corrector`
        where it has none), so A x0 = y holds as in DDNM, with DDNM's time travel when
        ``finish_travel_repeat`` > 1 and ``finish_travel_length`` is below the number of steps
        (its ``svd_ddnm.py`` loop: a jump re-noises the last x0|t; the cost is in
        :class:`ShredConfig`'s docstring).
        The noise of image i comes from its seed, drawn after everything SHRED drew. ``progress``
        shows a bar over the steps."""
        if not operator.linear:
            return x0
        from tqdm.auto import tqdm

        from ..diffusion import predict_x0
        from .ancestral import image_generators
        from .base import randn
        from .peer import model_space_measurement

        ts, schedule = self.finish_timesteps, self.finish_schedule           # ascending; ts[-1] = t_s
        t_s = ts[-1]
        # Under noise, DDNM+. Its SVD-free simplified form (one scalar lambda_t) applies A^+ in full
        # while sigma_t >= sigma_y, as if A^+ passed the noise on unamplified (every singular value
        # 1). On a blur A^+ amplifies it up to 33 times (DDNM's cut at 3e-2): 6.18 dB on deblurring
        # at sigma_y 0.05 (16 training images, input 16.99; bench/quantized_y.py); average pooling
        # x4 and x8 amplify it 4 and 8 times. So the finish takes DDNM+ per singular value, as
        # DDNM's program runs it, where A^+ amplifies the noise more than twice (noise_gain):
        # deblurring 22.91 dB, SR x4 20.33 against 19.95 simplified, SR x8 17.15 against 16.96
        # (--svd, 16 training images). At most twice it keeps the simplified form, which denoises
        # better there: denoising at sigma_y 0.05 33.22 dB against 31.26 per singular value
        # (PART=denoise-finish bench/check_defaults.sh, 10 training images), inpainting 20.33
        # against 20.03, SR x2 25.14 against 24.97, inpainting then x2 SR 19.37 against 18.86,
        # colorization then inpainting 17.81 against 17.59 (--simplified-form, 16 training
        # images, quantized-y-form-train.json). finish_ddnm_plus chooses otherwise.
        # Without an SVD (a non-separable blur over 1024 pixels, a spatially varying blur) the
        # per-singular-value form becomes the "tikhonov" form (tikhonov_corrector): 22.27 dB there
        # with the SVD hidden (bench/quantized_y.py --no-svd), where the simplified form gave 6.18.
        y_m = model_space_measurement(y, operator)
        correct = self.ddnm_sampler(operator)._corrector(operator, y_m, 2 * operator.sigma_y)
        gens = image_generators([None if s is None else (s + 1) % 2 ** 63 for s in seeds])
        abar = self.denoiser.schedule.abar_at
        x = math.sqrt(abar(t_s)) * to_model_space(x0) + math.sqrt(1 - abar(t_s)) * randn(gens, x0.shape[1:], self.device, self.dtype)
        x0_t = None
        with tqdm(total=len(schedule) - 1, desc="finish", unit="step", disable=not progress, leave=False) as bar:
            for k, k_next in zip(schedule[:-1], schedule[1:]):
                a_next = abar(ts[k_next] if k_next >= 0 else -1)
                z = randn(gens, x0.shape[1:], self.device, self.dtype)
                if k_next < k:                                               # a DDNM step down
                    eps = self.denoiser(x, torch.full((x.shape[0],), ts[k], dtype=torch.long, device=x.device))
                    x0_t = predict_x0(x, eps, abar(ts[k]))
                    x = correct(x0_t, eps, z, a_next)
                else:                                                        # time travel back up
                    x = math.sqrt(a_next) * x0_t + math.sqrt(1 - a_next) * z
                bar.update()
        return to_image_space(x).clamp(0, 1)

    def extra_parameters(self, operator: Operator) -> list[dict]:
        """Adam parameter groups optimised jointly with x_T (the blind variant adds H_theta)."""
        return []

    def refit(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator) -> None:
        """Fit whatever else is unknown to this iteration's x0 ([B, C, H, W] in [0, 1], detached)
        before the loss is taken; no network call. Nothing here (the blind variant fits its kernel)."""

    def callbacks(self) -> list[Callable[[Progress], None]]:
        """Bookkeeping of subclasses, called with every iteration's :class:`Progress` after
        x0 was kept (the blind variant keeps the kernel that made the kept x0)."""
        return []

    # -- Algorithm 1 ------------------------------------------------------------------------------------
    def solve(self, y, operator, seeds, progress, callback: Callable[[Progress], None] | None = None) -> Result:
        from tqdm.auto import tqdm

        c = self.config
        started = time.perf_counter()
        y, operator = y.to(self.device, self.dtype), operator.to(self.device)
        weight, m = operator.measurement_weight(), operator.num_measurements()

        x_T = self.initial_latent(y, operator, seeds, progress=progress)     # x_T^0             line 1
        radius = self.sphere_radius(x_T)
        if c.sphere:
            x_T = project_to_sphere(x_T, radius)
        x_T = x_T.detach().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [x_T], "lr": c.lr}, *self.extra_parameters(operator)],
                               fused=self.device.type == "cuda")
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.iterations) if c.lr_decay == "cosine" else None

        active = torch.ones(y.shape[0], dtype=torch.bool, device=self.device)
        keep = Keep(x_T)
        rule = make_stop_rule(c.stop, c.tau, c.loss, y, operator)
        bar = tqdm(total=c.iterations, desc=self.name, unit="it", disable=not progress, leave=False)
        stopping = Stopping(keep, c.epsilon, rule, check_interval(c.check_every, self.device), c.iterations, bar,
                            first=min(c.coarse_iterations, c.iterations - 1))
        watchers = [keep, *self.callbacks(), stopping, *([callback] if callback else [])]
        try:
            for k in range(c.iterations):                                    # for N iterations  line 2
                x0 = to_image_space(self.f(x_T, pairs=self.trajectory(k)))   # x_0 = f(x_T)      eqs. (13)-(14)
                self.refit(x0.detach(), y, operator)                         # (blind: fit H to x_0)
                residual = y - operator.A(x0)                                # y - H(x_0)
                if weight is not None:
                    residual = residual * weight.to(residual)                # measured entries only
                loss = measurement_loss(residual, c.loss, m)                 # L_IR              eq. (15)
                running = active.clone()
                step = Progress(k, x0, x_T, loss, active)
                for watch in watchers:
                    watch(step)
                opt.zero_grad(set_to_none=True)
                (loss * running).sum().backward()                            # grad of L_IR wrt x_T
                opt.step()                                                   # Adam step         eq. (16)
                if decay is not None:
                    decay.step()
                with torch.no_grad():
                    if c.sphere:
                        x_T.copy_(project_to_sphere(x_T, radius))            # back on the sphere
                    x_T.copy_(keep.frozen(x_T, running))                     # stopped images stay
                if not bool(active.any()):
                    break
        finally:
            bar.close()
        x0 = keep.x0
        if c.render_delta_t is not None:
            with torch.no_grad():                                            # SHRED+: a finer ODE solve
                x0 = to_image_space(self.f(keep.x_T, grad="surrogate", pairs=self.render_pairs))
        tikhonov = c.finish_noise == "tikhonov" and operator.sigma_y > 0 and operator.linear
        if c.finish == "consistency" and not tikhonov:
            x0 = self.consistent(x0, y, operator)
        elif c.finish == "ddnm":
            x0 = self.ddnm_finish(x0, y, operator, seeds, progress=progress)
        if tikhonov:
            x0 = self.tikhonov(x0, y, operator)
        return Result(x0=x0.detach(), x_T=keep.x_T, loss_history=torch.stack(keep.history).float().cpu(),
                      iterations=keep.iterations.cpu(), wall_time=time.perf_counter() - started, seeds=list(seeds),
                      extras={**self.extras(operator), **({"stop": rule.info()} if rule else {})})

    def extras(self, operator: Operator) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "preset": self.preset}
