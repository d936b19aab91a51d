"""Deep Image Prior (Ulyanov, Vedaldi and Lempitsky, CVPR 2018) and SelfDeblur (Ren, Zhang, Wang,
Hu and Zuo, CVPR 2020): untrained-network baselines behind the common solver call.

    x = g_w(z),  z fixed noise;   w <- Adam step on ||y - H(g_w(z + reg_noise_std * n))||^2

DIP optimises the weights w of a randomly initialised encoder-decoder (the "skip" network) for a
known H; SelfDeblur adds the kernel network of :class:`shred.operators.blind.KernelNet` and
optimises both jointly for an unknown blur. Neither uses the diffusion model: build them with
``build_solver("dip", None, ...)`` (a denoiser passed in is ignored).

Defaults follow the official code (DmitryUlyanov/deep-image-prior notebooks; csdwren/SelfDeblur
``selfdeblur_levin.py``), listed per setting below. Iteration counts are in the thousands: on a CPU
pass ``iterations=`` small.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import (FrozenConfig, at_most, non_negative, non_negative_int, odd_positive_int, one_of, optional,
                      positive, positive_int, setting, tuple_of, unit_interval)
from ..errors import ShredError
from ..models.base import module_device
from ..operators import AvgPoolSR, BicubicSR, Mask, Operator
from ..operators.blind import KernelNet, convolve_same, estimated_operator, grid_weights, kernel_seed, sv_blur
from ..seeding import generator
from .base import Result, Solver, task_stage
from .dip_net import SkipNet, init_from, max_scales
from .registry import register_solver


# --- DIP ------------------------------------------------------------------------------------------------
def dip_official_settings(operator: Operator) -> dict[str, Any]:
    """The official DIP settings for the task ``operator`` stands for (fields left None in
    :class:`DIPConfig` take these):

    * super-resolution (``super-resolution.ipynb``): x4: 2000 iterations, reg_noise_std 0.03;
      x8 and more: 4000, 0.05 (x2 and x3 take x4's); skip channels 4, bilinear up-sampling.
    * inpainting and pixel subsampling (``inpainting.ipynb``, "kate"/"peppers", the settings it
      calls "same as in super-resolution and denoising"): 6001, 0.03, skip channels 128, nearest.
    * denoising (``denoising.ipynb``): 3000, 1/30, skip channels 4, bilinear. Other operators (blur,
      colorization), for which DIP publishes no script, take these too.
    """
    main = task_stage(operator)
    if isinstance(main, (AvgPoolSR, BicubicSR)):
        big = main.scale >= 8
        return dict(iterations=4000 if big else 2000, reg_noise_std=0.05 if big else 0.03, skip_channels=4,
                    upsample="bilinear")
    if isinstance(main, Mask):
        return dict(iterations=6001, reg_noise_std=0.03, skip_channels=128, upsample="nearest")
    return dict(iterations=3000, reg_noise_std=1 / 30, skip_channels=4, upsample="bilinear")


@dataclass(frozen=True)
class DIPConfig(FrozenConfig):
    """Settings of DIP. None means "the official value for this task" (:func:`dip_official_settings`).

    Attributes:
        iterations: Adam steps (official: 2000-6001 by task).
        lr: Adam learning rate (0.01 in every DIP script).
        input_depth: channels of z (32).
        input_scale: z is uniform in [0, input_scale) (DIP's ``get_noise``: 0.1).
        reg_noise_std: std of the fresh noise added to z at every step (0.03 or 1/30 by task).
        channels: channels of every encoder and decoder scale (128).
        skip_channels: channels of the skip branches (4, or 128 for inpainting).
        scales: encoder depth (5), capped for small images by :func:`max_scales`.
        upsample: ``"bilinear"`` or ``"nearest"``.
    """

    label = "DIP"

    iterations: int | None = setting(None, optional(at_most(1_000_000, positive_int)))
    lr: float = setting(0.01, at_most(10.0, positive))
    input_depth: int = setting(32, at_most(4096, positive_int))
    input_scale: float = setting(0.1, positive)
    reg_noise_std: float | None = setting(None, optional(non_negative))
    channels: int = setting(128, at_most(4096, positive_int))
    skip_channels: int | None = setting(None, optional(at_most(4096, non_negative_int)))
    scales: int = setting(5, at_most(16, positive_int))
    upsample: str | None = setting(None, optional(one_of("bilinear", "nearest")))

    def resolved(self, operator: Operator) -> "DIPConfig":
        """This config with every None replaced by the official value for ``operator``'s task."""
        official = dip_official_settings(operator)
        return self.replace(**{k: v for k, v in official.items() if getattr(self, k) is None})


class _NetSolver(Solver):
    """What DIP and SelfDeblur share: one untrained network per restoration, run one image at a
    time (each restoration optimises its own network's weights, so there is nothing to batch;
    ``batched = False`` tells the comparison to save each image as soon as it is done).

    ``device``: where the networks run (default: the denoiser's device when one is given, which
    these methods do not otherwise use; else the CPU)."""

    batched = False

    def __init__(self, denoiser=None, config=None, *, device=None, dtype: torch.dtype = torch.float32, **settings):
        config = config if config is not None else self.config_class()
        self.config = config.replace(**settings) if settings else config
        if device is None:
            device = module_device(denoiser) if isinstance(denoiser, nn.Module) else "cpu"
        self.device = torch.device(device)
        self.dtype = dtype

    def solve(self, y, operator, seeds, progress) -> Result:
        from tqdm.auto import tqdm

        start = time.perf_counter()
        y = y.to(self.device, self.dtype)
        outs, histories, kernels = [], [], []
        n_iter = self.iterations(operator)
        bar = tqdm(total=n_iter * len(seeds), desc=self.name, unit="it", disable=not progress, leave=False)
        try:
            for i, seed in enumerate(seeds):
                x0, hist, k = self.solve_one(y[i:i + 1], operator, seed, bar)
                outs.append(x0)
                histories.append(hist)
                if k is not None:
                    kernels.append(k)
        finally:
            bar.close()
        extras: dict[str, Any] = {"config": self.config.to_dict()}
        if kernels:
            extras["kernel"] = torch.stack(kernels).float().cpu()
            extras["operators"] = [estimated_operator(operator.in_shape, k) for k in extras["kernel"]]
        return Result(x0=torch.cat(outs).detach(), x_T=None, loss_history=torch.stack(histories, 1).float().cpu(),
                      iterations=torch.full((len(seeds),), n_iter, dtype=torch.long), wall_time=time.perf_counter() - start,
                      seeds=list(seeds), extras=extras)


@register_solver("dip")
class DIP(_NetSolver):
    """Deep Image Prior for a known operator: ``build_solver("dip", None, iterations=200)``.

    Loss: the mean squared error over the measurements (masked entries excluded), as in every DIP
    script. The result is the network's output after the last step, with the un-perturbed z.
    Keyword settings are :class:`DIPConfig` fields; ``config=`` takes a whole one.
    """

    name = "dip"
    config_class = DIPConfig

    def iterations(self, operator: Operator) -> int:
        return self.config.resolved(operator).iterations

    def build_net(self, shape, c: DIPConfig, g: torch.Generator) -> SkipNet:
        ch, h, w = shape
        n = min(c.scales, max_scales(h, w))
        net = SkipNet(c.input_depth, ch, down=(c.channels,) * n, up=(c.channels,) * n, skip=(c.skip_channels,) * n,
                      upsample=c.upsample)
        return init_from(net, g)

    def solve_one(self, y, operator, seed, bar):
        c = self.config.resolved(operator)
        g = generator(seed)
        net = self.build_net(operator.in_shape, c, g).to(self.device, self.dtype).train()
        h, w = operator.in_shape[1:]
        z = (c.input_scale * torch.rand((1, c.input_depth, h, w), generator=g)).to(self.device, self.dtype)
        weight = operator.measurement_weight()
        m = operator.num_measurements()
        opt = torch.optim.Adam(net.parameters(), lr=c.lr)
        hist = []
        for _ in range(c.iterations):
            z_k = z + c.reg_noise_std * torch.randn(z.shape, generator=g).to(z) if c.reg_noise_std > 0 else z
            r = y - operator.A(net(z_k))
            if weight is not None:
                r = r * weight.to(r)
            loss = r.pow(2).sum() / m
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hist.append(float(loss.detach()))
            bar.update(1)
        with torch.no_grad():
            x0 = net(z)
        return x0, torch.tensor(hist), None


# --- SelfDeblur -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelfDeblurConfig(FrozenConfig):
    """Settings of SelfDeblur; defaults from the official ``selfdeblur_levin.py``.

    Attributes:
        iterations: Adam steps (5000).
        lr: learning rate of the image generator (0.01).
        kernel_lr: learning rate of the kernel network (1e-4).
        milestones: fractions of ``iterations`` at which both rates halve (official: steps 2000,
            3000 and 4000 of 5000, i.e. 0.4, 0.6, 0.8).
        ssim_from: fraction of ``iterations`` after which the loss is 1 - SSIM instead of the MSE
            (official: step 1000 of 5000, i.e. 0.2).
        input_depth: channels of z (8).
        reg_noise_std: std of the noise added to z at every step (0.001).
        channels / skip_channels / scales: generator widths (128, 16, 5).
        non_local_from: non-local blocks at scales >= this (2, as in SelfDeblur's ``skip.py``).
        kernel_size: odd kernel side; None takes the operator's.
        hidden / kernel_input: the kernel network (1000 hidden units, input of 200).
        boundary: ``"valid"`` (official: the generator makes an image larger by the kernel size
            minus one, and the valid part of its blur is compared with y) or ``"same"`` (the
            generator makes an image of y's size, blurred with zero padding: the measurement model
            of this project's ``Blur``, which darkens y's borders; under ``"valid"`` the restoration
            has to explain those dark borders itself).

    A :class:`SpatiallyVaryingBlur` operator (task ``blind-deblur-sv``) makes SelfDeblur estimate
    a grid of kernels, one network per cell, blended as in that operator. This is this project's
    extension for the non-uniform comparison; the official SelfDeblur is uniform.
    """

    label = "SelfDeblur"

    iterations: int = setting(5000, at_most(1_000_000, positive_int))
    lr: float = setting(0.01, at_most(10.0, positive))
    kernel_lr: float = setting(1e-4, at_most(10.0, positive))
    milestones: tuple[float, ...] = setting((0.4, 0.6, 0.8), tuple_of(unit_interval))
    ssim_from: float = setting(0.2, unit_interval)
    input_depth: int = setting(8, at_most(4096, positive_int))
    input_scale: float = setting(0.1, positive)
    reg_noise_std: float = setting(0.001, non_negative)
    channels: int = setting(128, at_most(4096, positive_int))
    skip_channels: int = setting(16, at_most(4096, non_negative_int))
    scales: int = setting(5, at_most(16, positive_int))
    non_local_from: int | None = setting(2, optional(non_negative_int))
    kernel_size: int | None = setting(None, optional(at_most(255, odd_positive_int)))
    hidden: int = setting(1000, at_most(100_000, positive_int))
    kernel_input: int = setting(200, at_most(100_000, positive_int))
    boundary: str = setting("valid", one_of("valid", "same"))


@register_solver("selfdeblur")
class SelfDeblur(_NetSolver):
    """SelfDeblur: blind deconvolution with two untrained networks, x = G_x(z_x), k = G_k(z_k).

    As in the official code, G_x makes an image larger by the kernel size minus one, the 'valid'
    convolution with k brings it back to the measurement's size, and the restoration is the centre
    crop; every colour channel is blurred by the same kernel (the official code treats grey images,
    or the Y channel of colour ones). ``result.extras["kernel"]`` holds the estimated kernels. The
    operator must be a blur (tasks ``blind-deblur``, ``deblur``); only its kernel *size* is read.
    """

    name = "selfdeblur"
    config_class = SelfDeblurConfig
    blind = True

    @classmethod
    def unsupported(cls, operator):
        from .blind import blur_structure

        if blur_structure(operator)[1] is None:
            return "selfdeblur restores a blurred image: use task blind-deblur, blind-deblur-sv or deblur"
        return None

    def iterations(self, operator: Operator) -> int:
        return self.config.iterations

    def solve_one(self, y, operator, seed, bar):
        from ..metrics import ssim
        from .blind import blur_structure

        c = self.config
        _, size, grid = blur_structure(operator)
        if size is None:
            raise ShredError("selfdeblur restores a blurred image: use task blind-deblur, blind-deblur-sv or deblur")
        kh, kw = (c.kernel_size, c.kernel_size) if c.kernel_size is not None else size
        cells = grid[0] * grid[1]
        ch, h, w = operator.in_shape
        g = generator(seed)
        valid = c.boundary == "valid"
        hp, wp = (h + kh - 1, w + kw - 1) if valid else (h, w)
        top, left = (kh // 2, kw // 2) if valid else (0, 0)
        n = min(c.scales, max_scales(hp, wp))
        net = init_from(SkipNet(c.input_depth, ch, down=(c.channels,) * n, up=(c.channels,) * n,
                                 skip=(c.skip_channels,) * n, upsample="bilinear",
                                 non_local_from=c.non_local_from), g).to(self.device, self.dtype).train()
        base = kernel_seed(seed)
        knet = KernelNet((kh, kw), [None if base is None else (base + j) % 2 ** 63 for j in range(cells)],
                         hidden=c.hidden, input_size=c.kernel_input).to(self.device, self.dtype)
        # The grid spans the enlarged image; its nodes then sit where they sit in the operator's.
        weights = grid_weights((hp, wp), grid)
        z = (0.1 * torch.rand((1, c.input_depth, hp, wp), generator=g)).to(self.device, self.dtype)
        opt = torch.optim.Adam([{"params": net.parameters()}, {"params": knet.parameters(), "lr": c.kernel_lr}], lr=c.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [round(m * c.iterations) for m in c.milestones], gamma=0.5)
        ssim_from = round(c.ssim_from * c.iterations)
        hist = []

        def forward(z_in):
            x_big = net(z_in)
            k = knet()
            blurred = convolve_same(x_big, k[0]) if cells == 1 else sv_blur(x_big, k.view(*grid, kh, kw), weights)
            # 'valid': the valid part of the blurred enlarged image is the measurement's size again.
            y_hat = blurred[..., top:top + h, left:left + w]
            return x_big, (k[0] if cells == 1 else k.view(*grid, kh, kw)), y_hat

        for step in range(c.iterations):
            z_k = z + c.reg_noise_std * torch.randn(z.shape, generator=g).to(z)
            _, _, y_hat = forward(z_k)
            mse = F.mse_loss(y_hat, y)
            loss = mse if step < ssim_from else 1 - ssim(y_hat, y, padding="same").mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            hist.append(float(mse.detach()))
            bar.update(1)
        with torch.no_grad():
            x_big, k, _ = forward(z)
        x0 = x_big[..., top:top + h, left:left + w]
        return x0, torch.tensor(hist), k
