"""The ermongroup DDIM ``Model`` layout (SDEdit's ``celeba_hq.ckpt``, used by DDRM, DDNM and SHRED).

It maps onto ``UNet2DModel`` by renames alone:

=================================  =============================================
ermongroup key                     diffusers key
=================================  =============================================
``temb.dense.{0,1}``               ``time_embedding.linear_{1,2}``
``down.l.block.j.*``               ``down_blocks.l.resnets.j.*`` (``temb_proj`` ->
                                   ``time_emb_proj``, ``nin_shortcut`` -> ``conv_shortcut``)
``down.l.attn.j.{norm,q,k,v,proj_out}``  ``down_blocks.l.attentions.j.{group_norm,to_q,to_k,to_v,to_out.0}``
                                   (1x1 convolutions become linear weights)
``down.l.downsample.conv``         ``down_blocks.l.downsamplers.0.conv``
``mid.{block_1,attn_1,block_2}``   ``mid_block.{resnets.0,attentions.0,resnets.1}``
``up.l.*``                         ``up_blocks.(L-1-l).*`` (ermongroup numbers up levels by resolution)
``norm_out``                       ``conv_norm_out``
=================================  =============================================

The network: sinusoidal time embedding ``[sin, cos]`` with frequencies ``10000^(-i/(half-1))``
(diffusers ``flip_sin_to_cos=False, freq_shift=1``), GroupNorm(32, eps 1e-6), one attention head,
strided 3x3 down-sampling convolution after (0, 1, 0, 1) padding (``downsample_padding=0``).
"""
from __future__ import annotations

import re

import torch

from ..errors import CheckpointError
from .formats import CheckpointFormat, Converted, register_format

_RESNET = {"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2",
           "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}

_BLOCK = re.compile(r"(down|up)\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$")
_ATTN = re.compile(r"(down|up)\.(\d+)\.attn\.(\d+)\.(\w+)\.(weight|bias)$")
_RESAMPLE = re.compile(r"(down|up)\.(\d+)\.(downsample|upsample)\.conv\.(weight|bias)$")
_MID = re.compile(r"mid\.(block_1|block_2|attn_1)\.(\w+)\.(weight|bias)$")
_TOP = {"temb.dense.0": "time_embedding.linear_1", "temb.dense.1": "time_embedding.linear_2",
        "conv_in": "conv_in", "norm_out": "conv_norm_out", "conv_out": "conv_out"}


def _matches(state: dict[str, torch.Tensor]) -> bool:
    return "temb.dense.0.weight" in state and "conv_in.weight" in state


def _attention_tensor(part: str, value: torch.Tensor) -> torch.Tensor:
    # A 1x1 convolution [C, C, 1, 1] is a linear map [C, C]; flatten(1) keeps it a view.
    return value.flatten(1) if part != "norm" and value.dim() == 4 else value


def _rename(key: str, value: torch.Tensor, levels: int) -> tuple[str, torch.Tensor] | None:
    """The diffusers key and tensor for one ermongroup tensor, or None for a key of no known role."""
    stem, _, param = key.rpartition(".")
    if stem in _TOP:
        return f"{_TOP[stem]}.{param}", value
    if m := _BLOCK.match(key):
        side, lvl, j, part, param = m.groups()
        if part not in _RESNET:
            return None
        block = int(lvl) if side == "down" else levels - 1 - int(lvl)
        return f"{side}_blocks.{block}.resnets.{j}.{_RESNET[part]}.{param}", value
    if m := _ATTN.match(key):
        side, lvl, j, part, param = m.groups()
        if part not in _ATTENTION:
            return None
        block = int(lvl) if side == "down" else levels - 1 - int(lvl)
        return f"{side}_blocks.{block}.attentions.{j}.{_ATTENTION[part]}.{param}", _attention_tensor(part, value)
    if m := _RESAMPLE.match(key):
        side, lvl, kind, param = m.groups()
        block = int(lvl) if side == "down" else levels - 1 - int(lvl)
        return f"{side}_blocks.{block}.{kind}rs.0.conv.{param}", value
    if m := _MID.match(key):
        module, part, param = m.groups()
        if module == "attn_1":
            if part not in _ATTENTION:
                return None
            return f"mid_block.attentions.0.{_ATTENTION[part]}.{param}", _attention_tensor(part, value)
        if part not in _RESNET:
            return None
        return f"mid_block.resnets.{int(module[-1]) - 1}.{_RESNET[part]}.{param}", value
    return None


def _convert(state: dict[str, torch.Tensor]) -> Converted:
    levels = sorted({int(k.split(".")[1]) for k in state if k.startswith("down.")})
    if not levels or levels != list(range(len(levels))):
        raise CheckpointError(f"ermongroup DDIM keys but down levels {levels}; expected 0, 1, ..., L-1")
    L = len(levels)
    ch = state["conv_in.weight"].shape[0]
    in_channels = state["conv_in.weight"].shape[1]
    out_channels = state["conv_out.weight"].shape[0] if "conv_out.weight" in state else 0
    n_res = len({k.split(".")[3] for k in state if k.startswith("down.0.block.")})
    block_out = [int(state[f"down.{lvl}.block.0.conv1.weight"].shape[0])
                 for lvl in levels if f"down.{lvl}.block.0.conv1.weight" in state]
    attention = [lvl for lvl in levels if f"down.{lvl}.attn.0.q.weight" in state]
    t_in = state["temb.dense.0.weight"].shape[1]
    t_dim = state["temb.dense.0.weight"].shape[0]
    mult = tuple(c // ch for c in block_out)
    summary = (f"ermongroup DDIM UNet: {ch} channels x {mult}, {n_res} res block{'s' * (n_res != 1)}, attention at "
               f"down-sampling factors {[2 ** lvl for lvl in attention]}, {in_channels} -> {out_channels} channels")
    problems = []
    if len(block_out) != L:
        problems.append("a level without res blocks")
    if t_in != ch:
        problems.append(f"time embedding of width {t_in} for {ch} base channels")
    missing_resample = [lvl for lvl in levels[:-1] if f"down.{lvl}.downsample.conv.weight" not in state]
    if missing_resample:
        problems.append("down-sampling without convolution (resamp_with_conv=False)")
    if problems:
        raise CheckpointError(f"found {summary}, with {', '.join(problems)}: no architecture shred can "
                              "map exactly (it loads the released ermongroup/SDEdit configurations)")

    renamed, unknown = {}, []
    for key, value in state.items():
        new = _rename(key, value, L)
        if new is None:
            unknown.append(key)
        else:
            renamed[new[0]] = new[1]
    if unknown:
        raise CheckpointError(f"found {summary}, but {len(unknown)} tensors of no known role, e.g. "
                              f"{unknown[:3]}")

    down_types = ["AttnDownBlock2D" if lvl in attention else "DownBlock2D" for lvl in levels]
    config = dict(
        in_channels=int(in_channels), out_channels=int(out_channels), block_out_channels=tuple(block_out),
        layers_per_block=n_res, down_block_types=tuple(down_types),
        up_block_types=tuple(t.replace("Down", "Up") for t in reversed(down_types)),
        time_embedding_type="positional", freq_shift=1, flip_sin_to_cos=False,
        time_embedding_dim=int(t_dim) if t_dim != 4 * ch else None,
        downsample_padding=0, downsample_type="conv", upsample_type="conv", mid_block_scale_factor=1,
        act_fn="silu", attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6,
        resnet_time_scale_shift="default", dropout=0.0, center_input_sample=False,
    )
    return Converted(config=config, state=renamed, levels=L, summary=summary)


register_format(CheckpointFormat(
    name="ddim",
    description="ermongroup DDIM Model, e.g. SDEdit's celeba_hq.ckpt",
    matches=_matches,
    convert=_convert,
    # ermongroup's released configs: CIFAR-10 (1, 2, 2, 2) at 32; CelebA-HQ and LSUN at 256.
    default_sizes={4: 32, 6: 256},
))
