"""The settings of a SHRED run (:class:`ShredConfig`), apart from the solver so that the presets
(:mod:`.presets`) and the solver (:mod:`.shred`) can both use them."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import (FrozenConfig, at_most, boolean, non_negative_int, one_of, optional, positive, positive_int,
                      setting, unit_interval)
from ..diffusion import SPACINGS
from .stopping import STOPS

LOSSES = ("mse", "norm")
INITS = ("noise", "ddim-inversion", "warm")
WARM_FROM = ("pinv", "ddrm", "ddnm")
LR_DECAYS = ("none", "cosine")
FINISHES = ("none", "consistency", "ddnm")
FINISH_NOISE = ("none", "tikhonov")
FINISH_DDNM_PLUS = ("auto", "svd", "simplified", "tikhonov")


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
        sphere: after each step rescale x_T back onto the sphere it started on (authors' code): radius
            sqrt(D), D = C*H*W, for a start from noise; the start's own norm for a warm start, whose
            DDIM-inverted latent is shorter than noise (rescaling it to sqrt(D) would undo it).
        epsilon: stop an image once L_IR < epsilon (section 6.1); None runs all iterations.
        init: ``"noise"`` (x_T ~ N(0, I), Algorithm 1), ``"ddim-inversion"`` (DDIM-invert A^+ y) or
            ``"warm"`` (SHRED+: x_T = sqrt(a) x_inv + sqrt(1 - a) eps, x_inv the DDIM inversion of a
            cheap estimate ``warm_from``, a = ``warm_strength``, eps ~ N(0, I) from the seed).
        warm_from: the cheap estimate a warm start inverts: ``"pinv"`` (A^+ y, no network call),
            ``"ddnm"`` (20-step DDNM, DDNM+ under noise; 20 network calls) or ``"ddrm"`` (20-step
            DDRM with its official settings; where A has no closed-form SVD, 20-step DDNM if A has
            a null space (a mask composed with other operators, a canvas's border), else A^+ y,
            or under noise the Tikhonov estimate at the noise level, since A^+ y amplifies a
            blur's noise: :meth:`shred.solvers.shred.Shred.cheap_estimate`).
        warm_strength: a in [0, 1], the share of the inverted latent in a warm start.
        invert_fixed_point: fixed-point iterations per step of the DDIM inversion of a warm or
            ``ddim-inversion`` start (:func:`shred.diffusion.ddim_invert`): 1 is the usual
            one-pass inversion (10 network calls at delta_t 100), k costs 10 k calls and reproduces
            the estimate far better (with ``clip_x0`` off: 17 dB at k = 1, 33 dB at k = 3).
        lr_decay: ``"none"`` (constant, as in the paper) or ``"cosine"`` (anneal to 0 over the
            iterations, which lets Adam settle instead of jittering at a floor set by lr).
        coarse_iterations / coarse_stride: SHRED+'s coarse-to-fine trajectory: the first
            ``coarse_iterations`` iterations run f through every ``coarse_stride``-th timestep of
            the trajectory (stride 2: 5 network calls instead of 10, from the same t of x_T).
            Early stopping (``epsilon``, ``stop``) waits for the first fine iteration, so the
            answer is an x0 of the fine trajectory whenever ``coarse_iterations`` < ``iterations``
            (otherwise every iteration is coarse, and the solver warns).
        render_delta_t: SHRED+: after the last iteration, x0 = f(x_T) again through a finer
            trajectory from the same t of x_T (skip ``render_delta_t`` < delta_t: more network calls,
            a more accurate ODE solve); None keeps the optimised trajectory's x0.
        finish: ``"none"``; ``"consistency"`` (SHRED+: after the last iteration, for a linear
            operator, x0 <- x0 + A^+ (y - A x0), A^+ with singular values below 3e-2 cut as DDNM's;
            with measurement noise only the part of the residual above tau sigma_y sqrt(m)); or
            ``"ddnm"`` (SHRED+: x0 diffused to ``finish_t`` with seeded noise, then ``finish_steps``
            DDNM steps back to t = 0, each with the range-null space correction: exact consistency
            and a stochastic sampler's last steps, for ``finish_steps`` more network calls; blind
            SHRED uses each image's estimated kernel, and ``"consistency"`` does nothing there).
        finish_t / finish_steps: where the ``"ddnm"`` finish starts and how many steps it takes
            (each at most 100000; a finish_t past the model's T - 1 starts from T - 1, and steps
            that would round to the same timestep are taken once, so a finish from t_s has about
            t_s steps at most: both said in a warning when asked for).
        finish_travel_length / finish_travel_repeat: DDNM's time travel (paper section 3.3, its
            ``travel_length`` / ``travel_repeat``; RePaint's jump schedule, DDNM's
            ``get_schedule_jump``) inside the ``"ddnm"`` finish. With S finish steps, L = length
            (1..1000) and R = repeat (1..100): at step indices 0, L, 2L, ... below S - L (counted
            from the end, t near 0) the walk re-noises the last x0|t L steps back up and comes down
            again, R - 1 times at each place; every jump costs L network calls, (R - 1) x L x
            ceil((S - L) / L) in all (15 steps, L = 3, R = 2: 4 places, 12 calls). 1 / 1
            (default), R = 1, L >= S or a finish other than ``"ddnm"``: no time travel (the
            solver warns when the settings ask for it but cannot jump).
        finish_noise: the last correction when y carries noise (sigma_y > 0, a file's counted
            rounding included; nothing changes when sigma_y = 0). ``"none"`` (default): the
            finish's own rule (``"ddnm"``: DDNM+'s last step, which corrects nothing once sigma_t
            is below the noise; ``"consistency"``: the scalar gamma above). ``"tikhonov"``: then
            x0 <- x0 + V diag(s / (s^2 + mu)) U^T (y - A x0), mu per image by the discrepancy
            principle so that ||y - A x0|| = tau sigma_y sqrt(m)
            (:func:`shred.operators.svd.discrepancy_tikhonov`; in place of ``"consistency"``'s
            gamma, after ``"ddnm"``'s steps, or alone with ``"none"``); no network call; for
            operators without an SVD (a mask composed with others, a non-separable blur on an
            image over 1024 pixels, a spatially varying blur) the same correction on a 40-step
            Golub-Kahan subspace (:func:`shred.operators.krylov.discrepancy_tikhonov_krylov`).
        finish_ddnm_plus: which DDNM+ the ``"ddnm"`` finish runs under noise: ``"svd"`` (lambda per
            singular value, as DDNM's program; needs an SVD), ``"simplified"`` (one scalar
            lambda_t, the SVD-free form of DDNM's README, which applies A^+ in full while
            sigma_t >= sigma_y), ``"tikhonov"`` (the range correction replaced by the Tikhonov one
            whose strength has DDNM+'s crossover, on Golub-Kahan subspaces; no SVD needed:
            :func:`shred.solvers.shred.tikhonov_corrector`) or ``"auto"`` (default):
            ``"simplified"`` where A^+ amplifies the noise at most twice
            (:func:`shred.solvers.shred.noise_gain`: the identity, masks, x2 average pooling,
            colorization and their compositions), else ``"svd"`` (blurs, bicubic down-sampling,
            average pooling by 4 or more), which runs ``"tikhonov"`` for an operator without an
            SVD (a non-separable blur on an image over 1024 pixels, a spatially varying blur, a
            mask composed with a blur or with x4 pooling).
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
    warm_from: str = setting("pinv", one_of(*WARM_FROM))
    warm_strength: float = setting(0.5, unit_interval)
    invert_fixed_point: int = setting(1, at_most(100, positive_int))
    lr_decay: str = setting("none", one_of(*LR_DECAYS))
    coarse_iterations: int = setting(0, at_most(100_000, non_negative_int))
    coarse_stride: int = setting(2, at_most(1000, positive_int))
    render_delta_t: int | None = setting(None, optional(positive_int))
    finish: str = setting("none", one_of(*FINISHES))
    finish_t: int = setting(300, at_most(100_000, positive_int))
    finish_steps: int = setting(15, at_most(100_000, positive_int))
    finish_travel_length: int = setting(1, at_most(1000, positive_int))
    finish_travel_repeat: int = setting(1, at_most(100, positive_int))
    finish_noise: str = setting("none", one_of(*FINISH_NOISE))
    finish_ddnm_plus: str = setting("auto", one_of(*FINISH_DDNM_PLUS))
    check_every: int | None = setting(None, optional(positive_int))
    stop: str = setting("none", one_of(*STOPS))
    tau: float = setting(1.0, positive)
