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

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShredError
from ..operators import AvgPoolSR, BicubicSR, Compose, Mask, Noisy, Operator
from ..operators.blind import KernelNet, convolve_same, estimated_operator, grid_weights, kernel_seed, sv_blur
from .base import Result, Solver
from ..seeding import generator
from .registry import register_solver


# --- the "skip" network ------------------------------------------------------------------------------
def _conv(cin: int, cout: int, k: int, stride: int = 1, pad: str = "reflection") -> nn.Sequential:
    """DIP's ``conv``: reflection padding by (k - 1) / 2, then a (strided) convolution."""
    p = (k - 1) // 2
    if pad == "reflection":
        return nn.Sequential(nn.ReflectionPad2d(p), nn.Conv2d(cin, cout, k, stride))
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=p))


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class _Concat(nn.Module):
    """Concatenate branch outputs along channels, centre-cropping to the smallest size (DIP's
    ``Concat``: odd sizes make the up-sampled branch one pixel larger)."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        h = min(o.shape[-2] for o in outs)
        w = min(o.shape[-1] for o in outs)
        outs = [o[..., (o.shape[-2] - h) // 2:(o.shape[-2] - h) // 2 + h,
                  (o.shape[-1] - w) // 2:(o.shape[-1] - w) // 2 + w] for o in outs]
        return torch.cat(outs, dim=1)


class NonLocalBlock(nn.Module):
    """Dot-product non-local block (Wang et al. 2018) as used inside SelfDeblur's generator:
    1x1 embeddings theta, phi, g to C/2 channels, phi and g max-pooled by 2, attention
    f = theta^T phi / N, output W(f g) + x with W = 1x1 conv + BatchNorm initialised to zero
    (so the block starts as the identity). Defaults of the Non-local_pytorch code it imports."""

    def __init__(self, channels: int):
        super().__init__()
        inter = max(channels // 2, 1)
        self.inter = inter
        self.g = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.MaxPool2d(2))
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.MaxPool2d(2))
        self.W = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x):
        b, _, h, w = x.shape
        g = self.g(x).flatten(2).transpose(1, 2)            # [B, N', C/2]
        theta = self.theta(x).flatten(2).transpose(1, 2)    # [B, N, C/2]
        phi = self.phi(x).flatten(2)                        # [B, C/2, N']
        f = theta @ phi
        y = (f / f.shape[-1]) @ g
        return self.W(y.transpose(1, 2).reshape(b, self.inter, h, w)) + x


class SkipNet(nn.Module):
    """DIP's "skip" encoder-decoder (``models/skip.py``), rebuilt from its description.

    Scale i (0 = finest): a skip branch (1x1 conv to ``skip[i]`` channels, BN, LeakyReLU) next to a
    deeper branch (stride-2 conv, BN, act, [non-local block], conv, BN, act, scale i + 1, up-sample x2);
    their concatenation goes through BN, a conv to ``up[i]`` channels, BN, act and, with
    ``need1x1_up``, a 1x1 conv, BN, act. A final 1x1 conv and a sigmoid give the image in [0, 1].
    Activations are LeakyReLU(0.2), padding is reflection, down-sampling is by stride.

    Args:
        in_channels / out_channels: channels of z and of the image.
        down / up / skip: channels per scale (DIP: 128 / 128 / 4 at 5 scales).
        filter_down / filter_up / filter_skip: kernel sides (3, 3, 1).
        upsample: ``"bilinear"`` or ``"nearest"``.
        non_local_from: add a non-local block after the first conv of every scale i >= this
            (SelfDeblur: 2); None for none (DIP).
    """

    def __init__(self, in_channels: int, out_channels: int, down=(128,) * 5, up=(128,) * 5, skip=(4,) * 5,
                 filter_down: int = 3, filter_up: int = 3, filter_skip: int = 1, upsample: str = "bilinear",
                 need1x1_up: bool = True, non_local_from: int | None = None):
        super().__init__()
        if not len(down) == len(up) == len(skip):
            raise ShredError("down, up and skip need one channel count per scale")
        n = len(down)
        align = dict(align_corners=False) if upsample == "bilinear" else {}

        def level(i: int, cin: int) -> nn.Module:
            deeper = [_conv(cin, down[i], filter_down, 2), nn.BatchNorm2d(down[i]), _act()]
            if non_local_from is not None and i >= non_local_from:
                deeper.append(NonLocalBlock(down[i]))
            deeper += [_conv(down[i], down[i], filter_down), nn.BatchNorm2d(down[i]), _act()]
            if i < n - 1:
                deeper.append(level(i + 1, down[i]))
                k = up[i + 1]
            else:
                k = down[i]
            deeper.append(nn.Upsample(scale_factor=2, mode=upsample, **align))
            deeper = nn.Sequential(*deeper)
            if skip[i]:
                branch = _Concat(nn.Sequential(_conv(cin, skip[i], filter_skip), nn.BatchNorm2d(skip[i]), _act()),
                                 deeper)
            else:
                branch = deeper
            layers = [branch, nn.BatchNorm2d(skip[i] + k), _conv(skip[i] + k, up[i], filter_up),
                      nn.BatchNorm2d(up[i]), _act()]
            if need1x1_up:
                layers += [_conv(up[i], up[i], 1), nn.BatchNorm2d(up[i]), _act()]
            return nn.Sequential(*layers)

        self.body = level(0, in_channels)
        self.head = nn.Sequential(_conv(up[0], out_channels, 1), nn.Sigmoid())

    def forward(self, z):
        return self.head(self.body(z))


def max_scales(h: int, w: int) -> int:
    """Most scales a SkipNet can have on an h x w input: the coarsest feature map must stay at least
    2 pixels wide for its reflection-padded 3x3 convolution."""
    return max(1, int(math.floor(math.log2(min(h, w)))) - 1)


def _init_from(net: nn.Module, g: torch.Generator) -> nn.Module:
    """Re-draw every conv's weights and biases (PyTorch's default scheme: uniform in
    +-1/sqrt(fan_in) for biases, Kaiming-uniform a=sqrt(5) for weights) from ``g``, so that a
    restoration depends only on its seed and not on the global RNG."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_ with a = sqrt(5) gives this bound too
            with torch.no_grad():
                m.weight.copy_((2 * torch.rand(m.weight.shape, generator=g) - 1) * bound)
                if m.bias is not None:
                    m.bias.copy_((2 * torch.rand(m.bias.shape, generator=g) - 1) * bound)
    for m in net.modules():  # the non-local blocks start as the identity
        if isinstance(m, NonLocalBlock):
            nn.init.zeros_(m.W[1].weight)
            nn.init.zeros_(m.W[1].bias)
    return net


# --- DIP ------------------------------------------------------------------------------------------------
def _main_operator(op: Operator) -> Operator:
    while isinstance(op, Noisy):
        op = op.op
    return op.ops[-1] if isinstance(op, Compose) else op


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
    main = _main_operator(operator)
    if isinstance(main, (AvgPoolSR, BicubicSR)):
        big = main.scale >= 8
        return dict(iterations=4000 if big else 2000, reg_noise_std=0.05 if big else 0.03, skip_channels=4,
                    upsample="bilinear")
    if isinstance(main, Mask):
        return dict(iterations=6001, reg_noise_std=0.03, skip_channels=128, upsample="nearest")
    return dict(iterations=3000, reg_noise_std=1 / 30, skip_channels=4, upsample="bilinear")


@dataclass(frozen=True)
class DIPConfig:
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

    iterations: int | None = None
    lr: float = 0.01
    input_depth: int = 32
    input_scale: float = 0.1
    reg_noise_std: float | None = None
    channels: int = 128
    skip_channels: int | None = None
    scales: int = 5
    upsample: str | None = None

    def __post_init__(self):
        for name in ("iterations", "input_depth", "channels", "skip_channels", "scales"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "skip_channels" else 1)):
                raise ShredError(f"{name} must be a positive integer, got {v!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ShredError(f"the learning rate must be a positive number, got {self.lr!r}")
        if self.reg_noise_std is not None and not (math.isfinite(self.reg_noise_std) and self.reg_noise_std >= 0):
            raise ShredError(f"reg_noise_std must be >= 0, got {self.reg_noise_std!r}")
        if self.upsample not in (None, "bilinear", "nearest"):
            raise ShredError(f"upsample must be bilinear or nearest, got {self.upsample!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DIPConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ShredError(f"unknown DIP settings: {', '.join(sorted(unknown))}")
        return cls(**d)

    def resolved(self, operator: Operator) -> "DIPConfig":
        """This config with every None replaced by the official value for ``operator``'s task."""
        official = dip_official_settings(operator)
        return replace(self, **{k: v for k, v in official.items() if getattr(self, k) is None})


def _make_config(cls, config, settings: dict):
    if config is not None and settings:
        config = replace(config, **settings)
    return config or cls(**settings)


class _NetSolver(Solver):
    """What DIP and SelfDeblur share: one untrained network per restoration, run one image at a time."""

    def __init__(self, denoiser=None, config=None, *, device=None, dtype: torch.dtype = torch.float32, **settings):
        self.config = _make_config(self.config_class, config, settings)
        self.device = torch.device(device or "cpu")
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
        return _init_from(net, g)

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
class SelfDeblurConfig:
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

    iterations: int = 5000
    lr: float = 0.01
    kernel_lr: float = 1e-4
    milestones: tuple[float, ...] = (0.4, 0.6, 0.8)
    ssim_from: float = 0.2
    input_depth: int = 8
    input_scale: float = 0.1
    reg_noise_std: float = 0.001
    channels: int = 128
    skip_channels: int = 16
    scales: int = 5
    non_local_from: int | None = 2
    kernel_size: int | None = None
    hidden: int = 1000
    kernel_input: int = 200
    boundary: str = "valid"

    def __post_init__(self):
        for name in ("iterations", "input_depth", "channels", "scales", "hidden", "kernel_input"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ShredError(f"{name} must be a positive integer, got {v!r}")
        if self.kernel_size is not None and (self.kernel_size < 1 or self.kernel_size % 2 == 0):
            raise ShredError(f"the kernel size must be a positive odd integer, got {self.kernel_size!r}")
        for name in ("lr", "kernel_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ShredError(f"{name} must be a positive number, got {v!r}")
        if self.boundary not in ("valid", "same"):
            raise ShredError(f"boundary must be 'valid' or 'same', got {self.boundary!r}")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SelfDeblurConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ShredError(f"unknown SelfDeblur settings: {', '.join(sorted(unknown))}")
        return cls(**d)


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
        net = _init_from(SkipNet(c.input_depth, ch, down=(c.channels,) * n, up=(c.channels,) * n,
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
