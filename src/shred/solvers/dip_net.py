"""The untrained generator of Deep Image Prior and SelfDeblur: DIP's "skip" encoder-decoder.

Rebuilt from its description in DmitryUlyanov/deep-image-prior (``models/skip.py``) and
csdwren/SelfDeblur (which adds non-local blocks). Used by :mod:`shred.solvers.dip`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ShredError


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


def init_from(net: nn.Module, g: torch.Generator) -> nn.Module:
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
