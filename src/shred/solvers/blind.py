"""Blind SHRED (eqs. 17-19): restore an image and estimate its blur at the same time.

    L_IR(x_T, theta) = ||y - H_theta(f(x_T))||                        (17)
    x_T   <- Adam step on L_IR at learning rate alpha                  (18)
    theta <- Adam step on L_IR at learning rate alpha_k                (19)

H_theta is a blur whose kernels come from SelfDeblur's kernel network (Ren et al. 2020; the
authors' code uses the same network). The paper uses one rate alpha for both; the authors' code
uses 3e-3 for x_T and 2e-4 for the kernel network (``presets.BLIND_KERNEL_LR``).

The operator handed to the solver describes the measurement, not the answer: only its shape,
noise level and blur *structure* are read (a :class:`Blur` gives a uniform kernel of its size, a
:class:`SpatiallyVaryingBlur` a grid of local kernels of its grid and size). Its kernels are never
looked at, so degrading with the true kernel and restoring with the same spec is still blind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import (FrozenConfig, at_most, non_negative_int, odd_positive_int, optional, positive, positive_int,
                      setting, tuple_of)
from ..errors import ShredError
from ..models.base import Denoiser
from ..operators import Blur, Operator, unwrap
from ..operators.blind import ParametricBlur, SpatiallyVaryingBlur, estimated_operator
from .base import Result
from .registry import register_solver
from .shred import Shred, ShredConfig

DEFAULT_KERNEL_SIZE = 41  # the paper's blind deconvolution kernels are 41 x 41
MAX_KERNEL_SIZE = 255  # a 255 x 255 kernel network already has 65 M weights per seed


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
    """

    label = "blind SHRED"

    kernel_lr: float = setting(2e-4, at_most(10.0, positive))
    kernel_size: int | None = setting(None, optional(at_most(MAX_KERNEL_SIZE, odd_positive_int)))
    grid: tuple[int, int] | None = setting(None, optional(tuple_of(at_most(64, positive_int), 2)))
    hidden: int = setting(1000, at_most(100_000, positive_int))
    input_size: int = setting(200, at_most(100_000, positive_int))
    input_scale: float = setting(0.1, positive)
    kernel_steps: int = setting(0, at_most(10_000, non_negative_int))


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
    as ``result.x0``; ``result.extras["operators"]`` the frozen operators they define.
    """

    name = "shred-blind"
    blind = True
    extra_settings = ("preset", "task", *BlindConfig.names())

    def __init__(self, denoiser: Denoiser, config: ShredConfig | None = None, blind: BlindConfig | None = None, *,
                 preset: str | None = None, task: str | None = None, device=None, dtype: torch.dtype = torch.float32,
                 **settings):
        from .presets import BLIND_KERNEL_LR

        blind_settings = {k: settings.pop(k) for k in BlindConfig.names() if k in settings}
        super().__init__(denoiser, config, preset=preset, task=task or ("blind-deblur" if config is None else None),
                         device=device, dtype=dtype, **settings)
        if blind is None:
            blind = BlindConfig(kernel_lr=BLIND_KERNEL_LR.get(self.preset, BlindConfig.kernel_lr))
        self.blind = blind.replace(**blind_settings) if blind_settings else blind
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
