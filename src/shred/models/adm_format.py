"""The OpenAI ADM ``UNetModel`` layout (guided-diffusion's ImageNet 256 models, DPS's FFHQ model).

ADM numbers its blocks flatly: ``input_blocks.0`` is the first convolution, then each level has
``n_res`` blocks ``[ResBlock, (AttentionBlock)]`` followed, except at the last level, by a
down-sampling ResBlock; ``output_blocks`` has ``n_res + 1`` blocks per level, the last of each level
(but the final one) ending in an up-sampling ResBlock. The depth L and ``n_res`` are read from
where those up-sampling blocks sit, the channel multipliers from the ResBlocks' widths.

=========================================  ==============================================
ADM                                        diffusers
=========================================  ==============================================
``time_embed.{0,2}``                       ``time_embedding.linear_{1,2}``
``label_emb``                              ``class_embedding``
ResBlock ``in_layers.{0,2}``,              ``norm1``, ``conv1``, ``time_emb_proj``,
``emb_layers.1``, ``out_layers.{0,3}``,    ``norm2``, ``conv2``, ``conv_shortcut``
``skip_connection``
AttentionBlock ``norm``, ``proj_out``      ``group_norm``, ``to_out.0`` (Conv1d -> Linear)
AttentionBlock ``qkv`` [3C, C, 1]          ``to_q``, ``to_k``, ``to_v`` [C, C] each
``out.{0,2}``                              ``conv_norm_out``, ``conv_out``
=========================================  ==============================================

The fused ``qkv`` rows are in the *legacy* order of ``QKVAttentionLegacy``: for each head h the rows
``[q_h, k_h, v_h]`` (``ch`` rows each), so ``W.view(H, 3, ch, C)[:, i]`` is q, k or v for all heads;
a plain ``chunk(3)`` (what diffusers' consistency-model converter does) mixes heads.

The network: time embedding ``[cos, sin]`` with frequencies ``10000^(-i/half)``
(``flip_sin_to_cos=True, freq_shift=0``), scale-shift normalisation, ResBlock resampling with
average pooling / nearest up-sampling, GroupNorm(32, eps 1e-5) including in the middle attention
(``attn_norm_num_groups=32``), ``ch / 64`` heads of 64 channels.

Not visible in the weights, hence assumed: heads of ``head_channels`` (64 in every released 256x256
model; guided-diffusion's 128x128 model uses 4 heads instead) and the legacy qkv order
(``use_new_attention_order=False``; the 64x64 ImageNet model uses the new order).
"""
from __future__ import annotations

from collections import defaultdict

import torch

from ..errors import CheckpointError
from .formats import CheckpointFormat, Converted, register_format

_RESBLOCK = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
             "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
# Sub-modules are named by 3 key parts in input_blocks.I.S.*, output_blocks.I.S.*, by 2 in middle_block.S.*
_DEPTH = {"input_blocks": 3, "output_blocks": 3, "middle_block": 2}
_TOP = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
        "label_emb": "class_embedding", "out.0": "conv_norm_out", "out.2": "conv_out"}


_NAMES = {"resblock": "a ResBlock", "attention": "an AttentionBlock", "conv-down": "a strided convolution",
          "conv-up": "an up-sampling convolution", "unknown": "something else"}


def _matches(state: dict[str, torch.Tensor]) -> bool:
    return "time_embed.0.weight" in state and "input_blocks.0.0.weight" in state


def _kind(params: dict[str, torch.Tensor]) -> str:
    if "in_layers.0.weight" in params:
        return "resblock"
    if "qkv.weight" in params:
        return "attention"
    if set(params) == {"op.weight", "op.bias"}:
        return "conv-down"
    if set(params) == {"conv.weight", "conv.bias"}:
        return "conv-up"
    return "unknown"


class _Mapper:
    """Renames ADM sub-modules onto diffusers ones, remembering which source tensors it used."""

    def __init__(self, modules: dict[str, dict[str, torch.Tensor]], head_channels: int):
        self.modules, self.head_channels = modules, head_channels
        self.out: dict[str, torch.Tensor] = {}
        self.used: set[str] = set()

    def _take(self, src: str, kind: str) -> dict[str, torch.Tensor]:
        params = self.modules.get(src, {})
        if _kind(params) != kind:
            found = _NAMES.get(_kind(params), "something else") if params else "missing"
            raise CheckpointError(f"ADM keys, but {src} is {found} where {_NAMES[kind]} belongs: not a "
                                  "layout shred can map")
        self.used.update(f"{src}.{k}" for k in params)
        return params

    def resblock(self, src: str, dst: str) -> None:
        for name, value in self._take(src, "resblock").items():
            stem, _, param = name.rpartition(".")
            if stem not in _RESBLOCK:
                raise CheckpointError(f"ADM keys, but {src}.{name} has no known role")
            self.out[f"{dst}.{_RESBLOCK[stem]}.{param}"] = value

    def attention(self, src: str, dst: str) -> None:
        params = self._take(src, "attention")
        extra = set(params) - {"qkv.weight", "qkv.bias", "proj_out.weight", "proj_out.bias", "norm.weight", "norm.bias"}
        if extra:
            raise CheckpointError(f"ADM keys, but {src}.{sorted(extra)[0]} has no known role")
        C = params["norm.weight"].shape[0]
        if C % self.head_channels:
            raise CheckpointError(f"{src} has {C} channels, not a multiple of {self.head_channels}-channel "
                                  "heads; pass head_channels to match the checkpoint")
        H, ch = C // self.head_channels, self.head_channels
        # Legacy order: rows [q_h, k_h, v_h] for each head h (QKVAttentionLegacy).
        w = params["qkv.weight"].reshape(H, 3, ch, C)
        b = params["qkv.bias"].reshape(H, 3, ch)
        for i, name in enumerate(("to_q", "to_k", "to_v")):
            self.out[f"{dst}.{name}.weight"] = w[:, i].reshape(C, C)
            self.out[f"{dst}.{name}.bias"] = b[:, i].reshape(C)
        self.out[f"{dst}.to_out.0.weight"] = params["proj_out.weight"].flatten(1)  # Conv1d [C, C, 1] -> [C, C]
        self.out[f"{dst}.to_out.0.bias"] = params["proj_out.bias"]
        self.out[f"{dst}.group_norm.weight"] = params["norm.weight"]
        self.out[f"{dst}.group_norm.bias"] = params["norm.bias"]


def _convert(state: dict[str, torch.Tensor], *, head_channels: int = 64) -> Converted:
    # modules["input_blocks.3.1"] = {"qkv.weight": ..., ...}
    modules: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    top: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        stem, _, param = key.rpartition(".")
        if stem in _TOP:
            top[f"{_TOP[stem]}.{param}"] = value
        else:
            parts = key.split(".")
            depth = _DEPTH.get(parts[0], len(parts))
            modules[".".join(parts[:depth])][".".join(parts[depth:])] = value
    modules = dict(modules)
    n_in = 1 + max((int(k.split(".")[1]) for k in modules if k.startswith("input_blocks.")), default=0)
    n_out = 1 + max((int(k.split(".")[1]) for k in modules if k.startswith("output_blocks.")), default=-1)

    def submodules(group: str, idx: int) -> dict[int, dict[str, torch.Tensor]]:
        return {int(k.rsplit(".", 1)[1]): v for k, v in modules.items() if k.startswith(f"{group}.{idx}.")}

    ch = int(state["input_blocks.0.0.weight"].shape[0])
    in_channels = int(state["input_blocks.0.0.weight"].shape[1])
    out_channels = int(state["out.2.weight"].shape[0]) if "out.2.weight" in state else 0
    # Output blocks ending in an up-sampler sit at (n_res + 1) * (u + 1) - 1 for u < L - 1.
    ups = [k for k in range(n_out)
           if any(_kind(p) in ("resblock", "conv-up") for s, p in submodules("output_blocks", k).items() if s > 0)]
    L = len(ups) + 1
    n_res = n_out // L - 1
    if n_res < 1 or n_out != L * (n_res + 1) or n_in != L * (n_res + 1) \
            or ups != [(n_res + 1) * (u + 1) - 1 for u in range(L - 1)]:
        raise CheckpointError(f"ADM keys, but {n_in} input and {n_out} output blocks with up-samplers at "
                              f"{ups}: not a layout shred can map")

    down_attn = [1 in submodules("input_blocks", 1 + lvl * (n_res + 1)) for lvl in range(L)]
    up_attn = [any(_kind(p) == "attention" for p in submodules("output_blocks", u * (n_res + 1)).values())
               for u in range(L)]
    first = [modules.get(f"input_blocks.{1 + lvl * (n_res + 1)}.0", {}) for lvl in range(L)]
    block_out = [int(p["out_layers.3.weight"].shape[0]) if "out_layers.3.weight" in p else 0 for p in first]
    resample = {_kind(submodules("input_blocks", (n_res + 1) * (lvl + 1))[0]) for lvl in range(L - 1)}
    t_dim, t_in = (int(s) for s in state["time_embed.0.weight"].shape)
    classes = int(state["label_emb.weight"].shape[0]) if "label_emb.weight" in state else None
    emb_rows = first[0].get("emb_layers.1.weight")
    scale_shift = emb_rows is not None and emb_rows.shape[0] == 2 * block_out[0]
    learned_sigma = out_channels == 2 * in_channels
    mult = tuple(c / ch if c % ch else c // ch for c in block_out)
    summary = (f"ADM UNet: {ch} channels x {mult}, {n_res} res block{'s' * (n_res != 1)}, attention at "
               f"down-sampling factors {[2 ** lvl for lvl in range(L) if down_attn[lvl]]}, "
               f"{in_channels} -> {out_channels} channels{', learned sigma' if learned_sigma else ''}"
               f"{f', {classes} classes' if classes else ''}")
    problems = []
    if t_in != ch:
        problems.append(f"a time embedding of width {t_in} for {ch} channels after the first convolution")
    if not scale_shift:
        problems.append("use_scale_shift_norm=False")
    if not resample <= {"resblock"}:
        problems.append("resblock_updown=False")
    if down_attn != list(reversed(up_attn)):
        problems.append("attention at different levels going down and up")
    if problems:
        raise CheckpointError(f"found {summary}, with {', '.join(problems)}: no architecture shred can map "
                              "exactly (it loads ADM with scale-shift norm and ResBlock resampling, as in "
                              "the released 256x256 ImageNet and FFHQ models)")

    m = _Mapper(modules, head_channels)
    m.used.update(k for k in state if k.rpartition(".")[0] in _TOP)
    for param in ("weight", "bias"):
        m.out[f"conv_in.{param}"] = state[f"input_blocks.0.0.{param}"]
        m.used.add(f"input_blocks.0.0.{param}")
    for lvl in range(L):
        for j in range(n_res):
            idx = 1 + lvl * (n_res + 1) + j
            m.resblock(f"input_blocks.{idx}.0", f"down_blocks.{lvl}.resnets.{j}")
            if down_attn[lvl]:
                m.attention(f"input_blocks.{idx}.1", f"down_blocks.{lvl}.attentions.{j}")
        if lvl < L - 1:
            m.resblock(f"input_blocks.{(n_res + 1) * (lvl + 1)}.0", f"down_blocks.{lvl}.downsamplers.0")
    m.resblock("middle_block.0", "mid_block.resnets.0")
    m.attention("middle_block.1", "mid_block.attentions.0")
    m.resblock("middle_block.2", "mid_block.resnets.1")
    for u in range(L):
        for j in range(n_res + 1):
            idx = u * (n_res + 1) + j
            m.resblock(f"output_blocks.{idx}.0", f"up_blocks.{u}.resnets.{j}")
            if up_attn[u]:
                m.attention(f"output_blocks.{idx}.1", f"up_blocks.{u}.attentions.{j}")
            if j == n_res and u < L - 1:
                m.resblock(f"output_blocks.{idx}.{2 if up_attn[u] else 1}", f"up_blocks.{u}.upsamplers.0")
    m.out.update(top)
    unused = [k for k in state if k not in m.used]
    if unused:
        raise CheckpointError(f"found {summary}, but {len(unused)} tensors of no known role, e.g. {unused[:3]}")

    down_types = ["AttnDownBlock2D" if a else "ResnetDownsampleBlock2D" for a in down_attn]
    up_types = ["AttnUpBlock2D" if a else "ResnetUpsampleBlock2D" for a in up_attn]
    config = dict(
        in_channels=in_channels, out_channels=out_channels, block_out_channels=tuple(block_out),
        layers_per_block=n_res, down_block_types=tuple(down_types), up_block_types=tuple(up_types),
        time_embedding_type="positional", freq_shift=0, flip_sin_to_cos=True,
        time_embedding_dim=t_dim if t_dim != 4 * ch else None,
        resnet_time_scale_shift="scale_shift", downsample_type="resnet", upsample_type="resnet",
        attention_head_dim=head_channels, norm_num_groups=32, attn_norm_num_groups=32, norm_eps=1e-5,
        act_fn="silu", num_class_embeds=classes, dropout=0.0, center_input_sample=False,
    )
    return Converted(config=config, state=m.out, levels=L, summary=summary)


register_format(CheckpointFormat(
    name="adm",
    description="OpenAI guided-diffusion UNetModel, e.g. 256x256_diffusion_uncond.pt or DPS's ffhq_10m.pt",
    matches=_matches,
    convert=_convert,
    # guided-diffusion's channel multipliers by image size: 64 (4 levels), 128 (5), 256 (6), 512 (7).
    default_sizes={4: 64, 5: 128, 6: 256, 7: 512},
))
