"""A dependency-free copy of the diffusers ``UNet2DModel`` forward pass for the small configurations
shred trains and ships.

Why: importing diffusers costs about 4 s of CPU time (it pulls in scipy.stats, sympy and its
transformer models), which is a large part of a 60-second CPU restoration. This module builds the
same network from the same ``config.json`` and loads the same state dict (identical key names and
shapes), so a shred model folder runs without importing diffusers. Configurations it does not
cover are built by diffusers as before (:func:`supports`); the tests check that both give the same
eps to float32 round-off.

Covered: block types ``DownBlock2D``, ``AttnDownBlock2D``, ``UpBlock2D``, ``AttnUpBlock2D``,
``UNetMidBlock2D``; positional time embedding; ``resnet_time_scale_shift = "default"``;
convolutional down/up-sampling; SiLU; no class embedding. The architecture is that of Ho et al.'s
DDPM UNet as diffusers lays it out (``ResnetBlock2D``, single-head or multi-head self-attention
with a group norm and a residual, nearest-neighbour up-sampling followed by a 3x3 convolution).
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DOWN = {"DownBlock2D": False, "AttnDownBlock2D": True}
UP = {"UpBlock2D": False, "AttnUpBlock2D": True}

# Constructor arguments this module implements for one value only (a missing key counts as that value).
_REQUIRED = {
    "center_input_sample": False, "time_embedding_type": "positional", "time_embedding_dim": None,
    "mid_block_type": "UNetMidBlock2D", "downsample_type": "conv", "upsample_type": "conv",
    "act_fn": "silu", "resnet_time_scale_shift": "default", "class_embed_type": None, "num_class_embeds": None,
    "add_attention": True, "attn_norm_num_groups": None,
}


def supports(config: dict[str, Any]) -> bool:
    """Whether :class:`LeanUNet` implements this ``UNet2DModel`` configuration."""
    if any(config.get(k, v) != v for k, v in _REQUIRED.items()):
        return False
    down, up = config.get("down_block_types", ()), config.get("up_block_types", ())
    return (len(down) == len(up) == len(config.get("block_out_channels", ())) > 0
            and all(b in DOWN for b in down) and all(b in UP for b in up)
            and float(config.get("dropout", 0.0)) == 0.0)


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as diffusers' ``Timesteps``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift))
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimeMLP(nn.Module):
    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class Resnet(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between, 1x1 shortcut when the
    channel count changes (diffusers ``ResnetBlock2D``, ``time_embedding_norm="default"``)."""

    def __init__(self, cin: int, cout: int, temb: int, groups: int, eps: float, scale: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.scale = scale

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        out = x + h
        return out / self.scale if self.scale != 1.0 else out


class SelfAttention(nn.Module):
    """Group norm, multi-head self-attention over the pixels, output projection, residual
    (diffusers ``Attention`` as built for UNet2DModel blocks)."""

    def __init__(self, channels: int, head_dim: int, groups: int, eps: float, rescale: float = 1.0):
        super().__init__()
        self.heads = channels // head_dim
        self.rescale = rescale
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Identity()])

    def forward(self, x):
        b, c, h, w = x.shape
        s = self.group_norm(x).view(b, c, h * w).transpose(1, 2)  # [B, HW, C]
        split = lambda z: z.view(b, h * w, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        a = F.scaled_dot_product_attention(split(self.to_q(s)), split(self.to_k(s)), split(self.to_v(s)))
        a = self.to_out[0](a.transpose(1, 2).reshape(b, h * w, c))
        out = a.transpose(1, 2).reshape(b, c, h, w) + x
        return out / self.rescale if self.rescale != 1.0 else out


class Down(nn.Module):
    def __init__(self, cin, cout, layers, attn, temb, groups, eps, head_dim, downsample, padding):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout, temb, groups, eps) for i in range(layers)])
        if attn:
            self.attentions = nn.ModuleList([SelfAttention(cout, head_dim or cout, groups, eps) for _ in range(layers)])
        self.attn = attn
        self.padding = padding
        if downsample:
            self.downsamplers = nn.ModuleList([SimpleConv(cout, stride=2, padding=padding)])
        self.downsample = downsample

    def forward(self, x, temb_act):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb_act)
            if self.attn:
                x = self.attentions[i](x)
            skips.append(x)
        if self.downsample:
            if self.padding == 0:
                x = F.pad(x, (0, 1, 0, 1))
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class SimpleConv(nn.Module):
    """Holds ``conv`` so that the state-dict keys read ``...samplers.0.conv.weight``."""

    def __init__(self, channels: int, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=padding)

    def forward(self, x):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout, prev, layers, attn, temb, groups, eps, head_dim, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            Resnet((prev if i == 0 else cout) + (cin if i == layers - 1 else cout), cout, temb, groups, eps)
            for i in range(layers)])
        if attn:
            self.attentions = nn.ModuleList([SelfAttention(cout, head_dim or cout, groups, eps) for _ in range(layers)])
        self.attn = attn
        if upsample:
            self.upsamplers = nn.ModuleList([SimpleConv(cout)])
        self.upsample = upsample

    def forward(self, x, skips, temb_act):
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb_act)
            if self.attn:
                x = self.attentions[i](x)
        if self.upsample:
            x = self.upsamplers[0](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class Mid(nn.Module):
    def __init__(self, channels, temb, groups, eps, head_dim, scale):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(channels, channels, temb, groups, eps, scale) for _ in range(2)])
        self.attentions = nn.ModuleList([SelfAttention(channels, head_dim or channels, groups, eps, scale)])

    def forward(self, x, temb_act):
        x = self.resnets[0](x, temb_act)
        return self.resnets[1](self.attentions[0](x), temb_act)


class UNetConfig(dict):
    """The constructor arguments, readable as attributes (``unet.config.in_channels``) like diffusers'."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class LeanUNet(nn.Module):
    """``UNet2DModel(**config)`` without diffusers: same parameters, same keys, same output.

    ``forward(sample, timestep)`` returns an object with ``.sample`` (eps), like diffusers.
    """

    def __init__(self, **config):
        super().__init__()
        if not supports(config):
            raise ValueError("configuration not covered by LeanUNet; build it with diffusers")
        c = {"sample_size": None, "in_channels": 3, "out_channels": 3, "freq_shift": 0, "flip_sin_to_cos": True,
             "layers_per_block": 2, "mid_block_scale_factor": 1.0, "downsample_padding": 1,
             "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5, **config}
        self.config = UNetConfig(c)
        boc = list(c["block_out_channels"])
        temb = boc[0] * 4
        groups, eps, head = c["norm_num_groups"], c["norm_eps"], c["attention_head_dim"]
        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = TimeMLP(boc[0], temb)
        self.down_blocks = nn.ModuleList()
        cout = boc[0]
        for i, kind in enumerate(c["down_block_types"]):
            cin, cout = cout, boc[i]
            self.down_blocks.append(Down(cin, cout, c["layers_per_block"], DOWN[kind], temb, groups, eps, head,
                                         i < len(boc) - 1, c["downsample_padding"]))
        self.mid_block = Mid(boc[-1], temb, groups, eps, head, float(c["mid_block_scale_factor"]))
        self.up_blocks = nn.ModuleList()
        rev = boc[::-1]
        cout = rev[0]
        for i, kind in enumerate(c["up_block_types"]):
            prev, cout, cin = cout, rev[i], rev[min(i + 1, len(boc) - 1)]
            self.up_blocks.append(Up(cin, cout, prev, c["layers_per_block"] + 1, UP[kind], temb, groups, eps, head,
                                     i < len(boc) - 1))
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], 3, padding=1)
        self._emb = (boc[0], bool(c["flip_sin_to_cos"]), float(c["freq_shift"]))

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, sample: torch.Tensor, timestep, class_labels=None, return_dict: bool = True):
        if class_labels is not None:
            raise ValueError("LeanUNet is unconditional")
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0]) if t.numel() in (1, sample.shape[0]) else t
        emb = self.time_embedding(timestep_embedding(t, *self._emb).to(sample.dtype))
        temb_act = F.silu(emb)
        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, s = block(x, temb_act)
            skips += s
        x = self.mid_block(x, temb_act)
        for block in self.up_blocks:
            x = block(x, skips, temb_act)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return SimpleNamespace(sample=x) if return_dict else (x,)
