"""Blind SHRED (eqs. 17-19): restore an image and estimate its blur at the same time.

    L_IR(x_T, theta) = ||y - H_theta(f(x_T))||                        (17)
    x_T   <- Adam step on L_IR at learning rate alpha                  (18)
    theta <- Adam step on L_IR at learning rate alpha_k                (19)

H_theta is a blur whose kernels come from SelfDeblur's kernel network (Ren et al. 2020; the
authors' code uses the same network). The paper uses one rate alpha for both; the authors' code
uses 3e-3 for x_T and 2e-4 for the kernel network (``presets.BLIND_KERNEL_LR``).

SHRED+ (preset ``plus``, ``kernel_estimate="auto"``) does not optimise H_theta: for one uniform
blur it chooses a Gaussian among a few widths by how much of y DDRM's prior leaves unexplained
under each (:meth:`BlindShred.search_kernels`), then restores x_T alone under it as on a known blur.

The operator handed to the solver describes the measurement, not the answer: only its shape,
noise level and blur *structure* are read (a :class:`Blur` gives a uniform kernel of its size, a
:class:`SpatiallyVaryingBlur` a grid of local kernels of its grid and size). Its kernels are never
looked at, so degrading with the true kernel and restoring with the same spec is still blind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import (FrozenConfig, _Invalid, at_most, non_negative_int, odd_positive_int, one_of, optional, positive,
                      positive_int, setting, tuple_of)
from ..errors import ShredError
from ..models.base import Denoiser
from ..operators import Blur, Operator, unwrap
from ..operators.blind import ParametricBlur, SpatiallyVaryingBlur, estimated_operator
from .base import Result
from .registry import register_solver
from .shred import Shred, ShredConfig

DEFAULT_KERNEL_SIZE = 41  # the paper's blind deconvolution kernels are 41 x 41
MAX_KERNEL_SIZE = 255  # a 255 x 255 kernel network already has 65 M weights per seed
KERNEL_ESTIMATES = ("network", "search", "auto")
# The default search widths, as fractions of the kernel side: 9 standard deviations in geometric
# progression from 0.045 to 0.21 of it (0.40 .. 1.9 px for a 9 x 9 kernel, 1.8 .. 8.6 px for the
# paper's 41 x 41, whose random Gaussians have 2 .. 8 px).
SEARCH_WIDTHS = (0.045, 0.21, 9)


def search_widths(kernel_size: int) -> tuple[float, ...]:
    """The default Gaussian standard deviations (pixels) searched for a kernel of side ``kernel_size``."""
    lo, hi, n = SEARCH_WIDTHS
    return tuple(kernel_size * lo * (hi / lo) ** (j / (n - 1)) for j in range(n))


def _widths(v):
    v = tuple_of(at_most(1000.0, positive))(v)
    if not v:
        raise _Invalid("a list of at least one width")
    return v


@dataclass(frozen=True)
class BlindConfig(FrozenConfig):
    """Settings of H_theta that are not ShredConfig fields. Frozen; round-trips through JSON.

    Attributes:
        kernel_lr: Adam learning rate of the kernel networks (eq. 19); the authors' code: 2e-4.
        kernel_size: odd side of the estimated kernels; None takes the operator's kernel size
            (41 if the operator has none).
        grid: (gh, gw) cells of a spatially varying blur; None takes the operator's (1 x 1 for a
            :class:`Blur`: one uniform kernel).
        hidden / input_size / input_scale: the kernel network (1000, 200, 0.1 as in SelfDeblur).
        kernel_steps: extra Adam steps (at ``kernel_lr``) on the kernel networks alone at every
            iteration, fitting H_theta to that iteration's x0 before the joint step of eqs. (18)-(19)
            (alternating minimisation, as classical blind deconvolution does). They cost no call of
            the diffusion network. 0 (the paper's and the authors' code's joint steps only) by
            default, in every preset (for SHRED+'s blind entry they cost realism:
            :data:`shred.solvers.presets.BLIND_KERNEL_LR`'s comment, docs/BLIND.md).
        kernel_estimate: ``"network"`` (eqs. 17-19: the kernel network optimised jointly with x_T),
            ``"search"`` (the blur is chosen among isotropic Gaussians by how well DDRM's prior
            explains y under each, then x_T alone is optimised under it:
            :meth:`BlindShred.search_kernels`; one uniform blur only) or ``"auto"`` (SHRED+'s:
            the search for a uniform blur, the network for a grid of kernels).
        search_widths: the Gaussian standard deviations (pixels) searched; None: 9 in geometric
            progression from 0.045 to 0.21 of the kernel side (:func:`search_widths`).
        search_steps: DDRM steps (network calls) per candidate and image (20, DDRM's own).
        search_sigma: the measurement noise DDRM is told on top of the operator's (in quadrature,
            [0, 1] image units). It lets DDRM's image leave y where its prior disagrees, so that
            the part of y it leaves unexplained measures the candidate.
        restore_sigma: the noise the final SHRED run under the chosen blur is told on top of the
            operator's (in quadrature), so that the chosen kernel's misfit is not amplified by its
            small singular values; None takes ``search_sigma``. The defaults (20 steps, 0.05,
            0.02) were chosen on 40 cifar10-train images under two blurs, among 10 settings
            (bench/check_defaults.sh PART=blind-search; docs/BLIND.md).
    """

    label = "blind SHRED"

    kernel_lr: float = setting(2e-4, at_most(10.0, positive))
    kernel_size: int | None = setting(None, optional(at_most(MAX_KERNEL_SIZE, odd_positive_int)))
    grid: tuple[int, int] | None = setting(None, optional(tuple_of(at_most(64, positive_int), 2)))
    hidden: int = setting(1000, at_most(100_000, positive_int))
    input_size: int = setting(200, at_most(100_000, positive_int))
    input_scale: float = setting(0.1, positive)
    kernel_steps: int = setting(0, at_most(10_000, non_negative_int))
    kernel_estimate: str = setting("network", one_of(*KERNEL_ESTIMATES))
    search_widths: tuple[float, ...] | None = setting(None, optional(_widths))
    search_steps: int = setting(20, at_most(1000, positive_int))
    search_sigma: float = setting(0.05, at_most(1.0, positive))
    restore_sigma: float | None = setting(0.02, optional(at_most(1.0, positive)))


def blur_structure(operator: Operator) -> tuple[Operator, tuple[int, int] | None, tuple[int, int] | None]:
    """(the blur inside ``operator``, its kernel size, its grid); sizes None when it has no blur."""
    inner = unwrap(operator)
    if isinstance(inner, Blur):
        return inner, tuple(inner.kernel.shape), (1, 1)
    if isinstance(inner, SpatiallyVaryingBlur):
        return inner, tuple(inner.kernels.shape[-2:]), inner.grid
    return inner, None, None


@register_solver("shred-blind")
class BlindShred(Shred):
    """SHRED with an unknown blur (eqs. 17-19): x_T and the kernel networks' weights theta are
    optimised jointly by one Adam with two parameter groups.

    Args:
        denoiser: the frozen eps_theta.
        config: :class:`ShredConfig` for x_T; or None and a ``preset`` (default ``"auto"``) whose
            ``blind-deblur`` settings to take (``task`` picks another group, e.g. ``old-photo``).
        blind: :class:`BlindConfig` for H_theta (default: the preset's kernel learning rate,
            :data:`shred.solvers.presets.BLIND_KERNEL_LR`).
        device / dtype: as for :class:`Shred`.
        **settings: :class:`ShredConfig` and :class:`BlindConfig` fields.

    ``result.extras["kernel"]`` holds the estimated kernels, [B, kh, kw] for a uniform blur or
    [B, gh, gw, kh, kw] for a grid, each non-negative and summing to 1, taken at the same iteration
    as ``result.x0``; ``result.extras["operators"]`` the frozen operators they define. With the
    kernel search, ``result.extras["kernel_sigma"]`` ([B], pixels) is each image's chosen width
    and ``result.extras["search_unexplained"]`` ([G, B]) what each candidate left of y.
    """

    name = "shred-blind"
    blind = True
    extra_settings = ("preset", "task", *BlindConfig.names())

    def __init__(self, denoiser: Denoiser, config: ShredConfig | None = None, blind: BlindConfig | None = None, *,
                 preset: str | None = None, task: str | None = None, device=None, dtype: torch.dtype = torch.float32,
                 **settings):
        from .presets import BLIND_KERNEL_ESTIMATE, BLIND_KERNEL_LR, task_config

        blind_settings = {k: settings.pop(k) for k in BlindConfig.names() if k in settings}
        super().__init__(denoiser, config, preset=preset, task=task or ("blind-deblur" if config is None else None),
                         device=device, dtype=dtype, **settings)
        if blind is None:
            blind = BlindConfig(kernel_lr=BLIND_KERNEL_LR.get(self.preset, BlindConfig.kernel_lr),
                                kernel_estimate=BLIND_KERNEL_ESTIMATE.get(self.preset, BlindConfig.kernel_estimate))
        self.blind = blind.replace(**blind_settings) if blind_settings else blind
        # kernel_estimate="search" restores under the chosen blur with the preset's (known-blur)
        # deblurring settings, given settings applied; a whole config given is taken as it is.
        self.search_config = self.config
        if config is None and self.blind.kernel_estimate != "network":
            self.search_config = task_config(self.preset, "deblur", denoiser)[0].replace(**settings)
        self._h: ParametricBlur | None = None
        self._kernel_keep: torch.Tensor | None = None
        self._kernel_opt: torch.optim.Optimizer | None = None

    @classmethod
    def unsupported(cls, operator: Operator) -> str | None:
        if tuple(operator.out_shape) != tuple(operator.in_shape):
            return "blind deblurring needs a measurement of the image's size"
        return None

    def make_h_theta(self, operator: Operator, seeds) -> ParametricBlur:
        """H_theta for ``operator``'s blur structure, one kernel network per seed and cell."""
        b = self.blind
        _, size, grid = blur_structure(operator)
        if size is None and b.kernel_size is None:
            size = (DEFAULT_KERNEL_SIZE, DEFAULT_KERNEL_SIZE)
        if b.kernel_size is not None:
            size = (b.kernel_size, b.kernel_size)
        grid = b.grid or grid or (1, 1)
        if tuple(operator.out_shape) != tuple(operator.in_shape):
            raise ShredError(f"blind deblurring needs a measurement of the image's size {tuple(operator.in_shape)}, "
                             f"but this one is {tuple(operator.out_shape)}")
        h = ParametricBlur(operator.in_shape, size, grid, list(seeds), sigma_y=operator.sigma_y, rounding=operator.rounding,
                           hidden=b.hidden, input_size=b.input_size, input_scale=b.input_scale)
        return h.to(device=self.device, dtype=self.dtype)

    def solve(self, y, operator, seeds, progress) -> Result:
        if self.estimate(operator) == "search":
            return self.solve_search(y, operator, seeds, progress)
        self._h = self.make_h_theta(operator, seeds)
        self._kernel_keep = None
        self._kernel_opt = (torch.optim.Adam(list(self._h.parameters()), lr=self.blind.kernel_lr)
                            if self.blind.kernel_steps else None)
        try:
            res = super().solve(y, self._h, seeds, progress)
        finally:
            self._h = self._kernel_opt = None
        res.extras["operators"] = [estimated_operator(operator.in_shape, k) for k in res.extras["kernel"]]
        return res

    def searches(self, task: str | None = None) -> bool:
        """Whether a run on ``task`` (a task name; None: a uniform blur) searches the blur: always
        for ``"search"``, never for ``"network"``, and for ``"auto"`` unless the task or the
        ``grid`` setting has a grid of kernels (``blind-deblur-sv``). :meth:`estimate` decides from
        the operator itself."""
        if self.blind.kernel_estimate != "auto":
            return self.blind.kernel_estimate == "search"
        return task != "blind-deblur-sv" and tuple(self.blind.grid or (1, 1)) == (1, 1)

    def run_config(self, task: str | None = None) -> ShredConfig:
        """The SHRED settings a run on ``task`` uses: ``search_config`` (the deblurring entry under
        the chosen blur) when it searches, ``config`` (the blind entry) with the kernel network."""
        return self.search_config if self.searches(task) else self.config

    def estimate(self, operator: Operator) -> str:
        """How the blur of ``operator`` is estimated: ``kernel_estimate``, with ``"auto"`` resolved
        (``"search"`` for one uniform blur, ``"network"`` for a grid of kernels)."""
        if self.blind.kernel_estimate != "auto":
            return self.blind.kernel_estimate
        _, _, grid = blur_structure(operator)
        return "search" if tuple(self.blind.grid or grid or (1, 1)) == (1, 1) else "network"

    # -- kernel_estimate="search" (SHRED+) ----------------------------------------------------------------
    def search_size(self, operator: Operator) -> int:
        """The side of the searched kernels: ``kernel_size``, else the operator's (the larger side),
        else 41. Raises :class:`ShredError` for a grid of kernels or a measurement of another size."""
        b = self.blind
        _, size, grid = blur_structure(operator)
        grid = b.grid or grid or (1, 1)
        if tuple(grid) != (1, 1):
            raise ShredError(f"the kernel search estimates one uniform blur, not a {grid[0]}x{grid[1]} grid of kernels; "
                             "use kernel_estimate='network' (--kernel-estimate network)")
        if tuple(operator.out_shape) != tuple(operator.in_shape):
            raise ShredError(f"blind deblurring needs a measurement of the image's size {tuple(operator.in_shape)}, "
                             f"but this one is {tuple(operator.out_shape)}")
        if b.kernel_size is not None:
            return b.kernel_size
        return max(size) if size is not None else DEFAULT_KERNEL_SIZE

    def search_grid(self, size: int) -> tuple[float, ...]:
        """The Gaussian standard deviations (pixels) searched for kernels of side ``size``."""
        return self.blind.search_widths or search_widths(size)

    def search_operator(self, operator: Operator, kernel: torch.Tensor, sigma: float) -> Operator:
        """The blur of ``kernel`` as the search or the final run sees it: told the operator's noise
        and ``sigma`` in quadrature (:class:`shred.operators.Noisy`)."""
        import math

        from ..operators import Noisy

        blur = Blur(operator.in_shape, kernel, kind="estimated")
        return Noisy(operator.in_shape, blur, math.hypot(operator.sigma_y, sigma))

    @torch.no_grad()
    def search_kernels(self, y: torch.Tensor, operator: Operator, seeds, *,
                       progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Choose each image's blur among isotropic Gaussians (``search_widths``, standard deviations
        in pixels): for each candidate k, DDRM (``search_steps`` steps, told ``search_sigma``)
        restores y as if k were the blur, and the candidate that leaves the least of y unexplained,
        ||y - k * x_k|| / ||y|| per image, is chosen. Under a kernel narrower than the true one,
        DDRM's image is pulled towards the sharp images the model learnt, and blurred by k it is
        sharper than y; under a wider one, y would need detail the prior does not give: both leave
        more of y unexplained than the true width (docs/BLIND.md, measured on cifar10-train). Model
        selection by the prior, in the spirit of the E-step of diffusion EM (Laroche et al. 2024),
        without its kernel update.

        Args:
            y: [B, C, H, W] blurred measurements in [0, 1].
            operator: the blind operator (its structure and noise are read, never its kernel).
            seeds: one per image; candidate j runs DDRM from each image's seed.

        Returns:
            (kernels [B, k, k] float64, chosen widths [B] in pixels, unexplained parts [G, B]: the
            relative residual of each of the G candidates).
        """
        from tqdm.auto import tqdm

        from ..operators import gaussian_kernel
        from .ddrm import Ddrm

        size = self.search_size(operator)
        widths = self.search_grid(size)
        ddrm = Ddrm(self.denoiser, steps=self.blind.search_steps, device=self.device)
        y = y.to(self.device)
        norm = y.flatten(1).norm(dim=1).clamp_min(1e-12)
        unexplained = []
        for w in tqdm(widths, desc="kernel search", unit="blur", disable=not progress, leave=False):
            op = self.search_operator(operator, gaussian_kernel(size, w), self.blind.search_sigma).to(self.device)
            x = ddrm(y, op, seeds=list(seeds)).x0.clamp(0, 1)
            unexplained.append((y - op.A(x.to(y))).flatten(1).norm(dim=1) / norm)
        unexplained = torch.stack(unexplained).float().cpu()
        best = unexplained.argmin(dim=0)
        chosen = torch.tensor([widths[int(j)] for j in best], dtype=torch.float64)
        kernels = torch.stack([gaussian_kernel(size, float(w)) for w in chosen])
        return kernels, chosen, unexplained

    def solve_search(self, y, operator, seeds, progress) -> Result:
        """Blind SHRED+: the blur from :meth:`search_kernels`, then SHRED (the preset's deblurring
        settings, ``search_config``) with x_T alone optimised under it, told ``restore_sigma`` of
        noise; the images that chose the same blur in one batch."""
        import time

        started = time.perf_counter()
        kernels, chosen, unexplained = self.search_kernels(y, operator, seeds, progress=progress)
        final = Shred(self.denoiser, self.search_config, device=self.device, dtype=self.dtype)
        final.preset, final.task = self.preset, "deblur"
        sigma = self.blind.search_sigma if self.blind.restore_sigma is None else self.blind.restore_sigma
        parts = []
        for w in torch.unique(chosen):
            idx = (chosen == w).nonzero().flatten().tolist()
            op = self.search_operator(operator, kernels[idx[0]], sigma)
            parts.append((idx, final.solve(y[idx], op, [seeds[i] for i in idx], progress)))
        B = y.shape[0]
        x0 = torch.empty((B, *parts[0][1].x0.shape[1:]), dtype=parts[0][1].x0.dtype, device=parts[0][1].x0.device)
        x_T = torch.empty_like(x0, dtype=parts[0][1].x_T.dtype)
        steps = max(r.loss_history.shape[0] for _, r in parts)
        history = torch.empty(steps, B, dtype=torch.float32)
        iterations = torch.empty(B, dtype=parts[0][1].iterations.dtype)
        for idx, r in parts:
            x0[idx], x_T[idx], iterations[idx] = r.x0, r.x_T, r.iterations
            h = r.loss_history
            history[:, idx] = torch.cat([h, h[-1:].expand(steps - h.shape[0], -1)]) if h.shape[0] < steps else h
        size = kernels.shape[-1]
        used = {**self.blind.to_dict(), "kernel_size": size, "grid": [1, 1], "search_widths": list(self.search_grid(size))}
        extras = {"config": self.search_config.to_dict(), "preset": self.preset, "blind": used,
                  "kernel": kernels.float(), "kernel_sigma": chosen, "search_unexplained": unexplained,
                  "operators": [estimated_operator(operator.in_shape, k) for k in kernels]}
        stops = [(idx, r.extras["stop"]) for idx, r in parts if "stop" in r.extras]
        if stops:  # the stop rule's per-image entries (lists) put back in the images' order
            extras["stop"] = dict(stops[0][1])
            for key, value in stops[0][1].items():
                if isinstance(value, list) and len(value) == len(stops[0][0]):
                    merged = [None] * B
                    for idx, info in stops:
                        for i, v in zip(idx, info[key]):
                            merged[i] = v
                    extras["stop"][key] = merged
        return Result(x0=x0, x_T=x_T, loss_history=history, iterations=iterations,
                      wall_time=time.perf_counter() - started, seeds=list(seeds), extras=extras)

    def extra_parameters(self, operator: Operator) -> list[dict]:
        return [{"params": list(operator.parameters()), "lr": self.blind.kernel_lr}]

    def refit(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator) -> None:
        """``kernel_steps`` Adam steps on H_theta alone, x0 held fixed: min_theta L_IR(theta) of eq.
        (17) with f(x_T) frozen. Every image's kernel network is stepped (one batched loss); an image
        that stopped keeps the kernel recorded with its x0."""
        if not self.blind.kernel_steps:
            return
        from .base import measurement_loss

        c, m = self.config, operator.num_measurements()
        y = y.to(x0)
        with torch.enable_grad():
            for _ in range(self.blind.kernel_steps):
                loss = measurement_loss(y - operator.A(x0), c.loss, m).sum()
                self._kernel_opt.zero_grad(set_to_none=True)
                loss.backward()
                self._kernel_opt.step()

    def cheap_estimate(self, y: torch.Tensor, operator: Operator, seeds, *, progress: bool = False) -> torch.Tensor:
        """A warm start inverts the blurred measurement itself: the blur is what is unknown."""
        return y.clamp(0, 1)

    def consistent(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator) -> torch.Tensor:
        """No consistency finish: the operator is estimated, not known."""
        return x0

    def tikhonov(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator) -> torch.Tensor:
        """No Tikhonov step (``finish_noise="tikhonov"``): the operator is estimated, not known, and
        H_theta's last kernels need not be those of the kept x0."""
        return x0

    def ddnm_finish(self, x0: torch.Tensor, y: torch.Tensor, operator: Operator, seeds, *,
                    progress: bool = False) -> torch.Tensor:
        """The ``"ddnm"`` finish with each image's estimated kernel (the kept H_theta), one image at
        a time: DDNM's steps from ``finish_t`` with the range-null space step of that blur, its
        singular values below ``zero_below`` cut (a dense SVD: :class:`shred.operators.svd.DenseSVD`
        for images of at most 1024 pixels). Images whose estimate has no SVD (a grid of kernels, a
        larger image) keep x0. No preset uses it: with kernels estimated in 15 iterations it fell to
        8.41 dB on 10 cifar10-train images (bench/results/check-blind-train.md), the range-null
        space step amplifying the estimate's misfit to y."""
        from ..operators import Noisy, with_rounding
        from ..operators.svd import operator_svd

        kernels = self._kernel_keep
        out = []
        for i, seed in enumerate(seeds):
            op = estimated_operator(operator.in_shape, kernels[i])
            try:
                operator_svd(op)
            except ShredError:
                out.append(x0[i:i + 1])
                continue
            if operator.sigma_y > 0:  # the same noise, declared and rounding, under the estimated kernel
                op = with_rounding(Noisy(op.in_shape, op, operator.declared_sigma_y), operator.rounding)
            out.append(super().ddnm_finish(x0[i:i + 1], y[i:i + 1], op, [seed], progress=progress))
        return torch.cat(out)

    def callbacks(self):
        return [self._keep_kernel]

    @torch.no_grad()
    def _keep_kernel(self, p) -> None:
        """The kernel that made each image's kept x0 (eq. 17's H_theta at that iteration)."""
        k = self._h.kernels().detach()
        if self._kernel_keep is None:
            self._kernel_keep = k.clone()
        else:
            a = p.active.view(-1, *([1] * (k.dim() - 1)))
            self._kernel_keep = torch.where(a, k, self._kernel_keep)

    def extras(self, operator: Operator) -> dict[str, Any]:
        k = self._kernel_keep.float().cpu()
        if k.shape[1:3] == (1, 1):
            k = k[:, 0, 0]
        # The settings as run: the kernel size and grid taken from the operator when not given.
        kh, kw = self._h.kernel_size
        used = {**self.blind.to_dict(), "kernel_size": kh if kh == kw else [kh, kw], "grid": list(self._h.grid)}
        return {**super().extras(operator), "blind": used, "kernel": k}
