"""State dicts in the released checkpoint layouts, generated from a handful of hyper-parameters.

They let the loaders' tests run without ../shared/data; ``test_checkpoints.py`` checks that, with the
released settings, they have exactly the keys and shapes of the reference files.
"""
from __future__ import annotations

import torch


class _Filler:
    """Tensors of the requested shapes: random (scaled to keep activations O(1)) or zeros."""

    def __init__(self, seed: int | None):
        self.g = None if seed is None else torch.Generator().manual_seed(seed)

    def __call__(self, *shape: int, norm: bool = False) -> torch.Tensor:
        if self.g is None:
            return torch.zeros(shape)
        x = torch.randn(shape, generator=self.g)
        if norm:
            return 1 + 0.1 * x
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        return x / fan_in ** 0.5


def adm_state(ch=32, mult=(1, 1, 2, 2, 4, 4), n_res=2, attention=(8, 16, 32), in_ch=3, out_ch=6,
              classes=None, seed: int | None = 0) -> dict[str, torch.Tensor]:
    """An ADM ``UNetModel`` state_dict (scale-shift norm, ResBlock resampling, as released).

    ``attention``: down-sampling factors with attention (ADM's ``image_size // attention_resolutions``).
    ``seed=None`` gives zeros (fast, for memory tests).
    """
    t = _Filler(seed)
    temb, s = 4 * ch, {}

    def res(p, cin, cout):
        s.update({f"{p}.in_layers.0.weight": t(cin, norm=True), f"{p}.in_layers.0.bias": t(cin) * 0,
                  f"{p}.in_layers.2.weight": t(cout, cin, 3, 3), f"{p}.in_layers.2.bias": t(cout) * 0,
                  f"{p}.emb_layers.1.weight": t(2 * cout, temb), f"{p}.emb_layers.1.bias": t(2 * cout) * 0,
                  f"{p}.out_layers.0.weight": t(cout, norm=True), f"{p}.out_layers.0.bias": t(cout) * 0,
                  f"{p}.out_layers.3.weight": t(cout, cout, 3, 3), f"{p}.out_layers.3.bias": t(cout) * 0})
        if cin != cout:
            s.update({f"{p}.skip_connection.weight": t(cout, cin, 1, 1), f"{p}.skip_connection.bias": t(cout) * 0})

    def attn(p, c):
        s.update({f"{p}.norm.weight": t(c, norm=True), f"{p}.norm.bias": t(c) * 0,
                  f"{p}.qkv.weight": t(3 * c, c, 1), f"{p}.qkv.bias": t(3 * c) * 0,
                  f"{p}.proj_out.weight": t(c, c, 1), f"{p}.proj_out.bias": t(c) * 0})

    s.update({"time_embed.0.weight": t(temb, ch), "time_embed.0.bias": t(temb) * 0,
              "time_embed.2.weight": t(temb, temb), "time_embed.2.bias": t(temb) * 0})
    if classes:
        s["label_emb.weight"] = t(classes, temb) * temb ** 0.5
    s.update({"input_blocks.0.0.weight": t(ch, in_ch, 3, 3), "input_blocks.0.0.bias": t(ch) * 0})
    skips, cur, ds, idx = [ch], ch, 1, 1
    for lvl, m in enumerate(mult):
        for _ in range(n_res):
            res(f"input_blocks.{idx}.0", cur, m * ch)
            cur = m * ch
            if ds in attention:
                attn(f"input_blocks.{idx}.1", cur)
            skips.append(cur)
            idx += 1
        if lvl < len(mult) - 1:
            res(f"input_blocks.{idx}.0", cur, cur)
            skips.append(cur)
            idx, ds = idx + 1, ds * 2
    res("middle_block.0", cur, cur)
    attn("middle_block.1", cur)
    res("middle_block.2", cur, cur)
    idx = 0
    for lvl, m in reversed(list(enumerate(mult))):
        for j in range(n_res + 1):
            res(f"output_blocks.{idx}.0", cur + skips.pop(), m * ch)
            cur, sub = m * ch, 1
            if ds in attention:
                attn(f"output_blocks.{idx}.1", cur)
                sub = 2
            if lvl and j == n_res:
                res(f"output_blocks.{idx}.{sub}", cur, cur)
                ds //= 2
            idx += 1
    s.update({"out.0.weight": t(cur, norm=True), "out.0.bias": t(cur) * 0,
              "out.2.weight": t(out_ch, cur, 3, 3), "out.2.bias": t(out_ch) * 0})
    return s


def ddim_state(ch=32, mult=(1, 1, 2, 2, 4, 4), n_res=2, attention=(16,), in_ch=3, out_ch=3,
               seed: int | None = 0) -> dict[str, torch.Tensor]:
    """An ermongroup DDIM ``Model`` state_dict (conv resampling, as released)."""
    t = _Filler(seed)
    temb, s = 4 * ch, {}

    def res(p, cin, cout):
        s.update({f"{p}.norm1.weight": t(cin, norm=True), f"{p}.norm1.bias": t(cin) * 0,
                  f"{p}.conv1.weight": t(cout, cin, 3, 3), f"{p}.conv1.bias": t(cout) * 0,
                  f"{p}.temb_proj.weight": t(cout, temb), f"{p}.temb_proj.bias": t(cout) * 0,
                  f"{p}.norm2.weight": t(cout, norm=True), f"{p}.norm2.bias": t(cout) * 0,
                  f"{p}.conv2.weight": t(cout, cout, 3, 3), f"{p}.conv2.bias": t(cout) * 0})
        if cin != cout:
            s.update({f"{p}.nin_shortcut.weight": t(cout, cin, 1, 1), f"{p}.nin_shortcut.bias": t(cout) * 0})

    def attn(p, c):
        s.update({f"{p}.norm.weight": t(c, norm=True), f"{p}.norm.bias": t(c) * 0})
        for name in ("q", "k", "v", "proj_out"):
            s.update({f"{p}.{name}.weight": t(c, c, 1, 1), f"{p}.{name}.bias": t(c) * 0})

    s.update({"temb.dense.0.weight": t(temb, ch), "temb.dense.0.bias": t(temb) * 0,
              "temb.dense.1.weight": t(temb, temb), "temb.dense.1.bias": t(temb) * 0,
              "conv_in.weight": t(ch, in_ch, 3, 3), "conv_in.bias": t(ch) * 0})
    in_mult, cur, L = (1, *mult), ch, len(mult)
    for i in range(L):
        for j in range(n_res):
            res(f"down.{i}.block.{j}", cur, ch * mult[i])
            cur = ch * mult[i]
            if 2 ** i in attention:
                attn(f"down.{i}.attn.{j}", cur)
        if i < L - 1:
            s.update({f"down.{i}.downsample.conv.weight": t(cur, cur, 3, 3),
                      f"down.{i}.downsample.conv.bias": t(cur) * 0})
    res("mid.block_1", cur, cur)
    attn("mid.attn_1", cur)
    res("mid.block_2", cur, cur)
    for i in reversed(range(L)):
        for j in range(n_res + 1):
            skip = ch * (in_mult[i] if j == n_res else mult[i])
            res(f"up.{i}.block.{j}", cur + skip, ch * mult[i])
            cur = ch * mult[i]
            if 2 ** i in attention:
                attn(f"up.{i}.attn.{j}", cur)
        if i > 0:
            s.update({f"up.{i}.upsample.conv.weight": t(cur, cur, 3, 3), f"up.{i}.upsample.conv.bias": t(cur) * 0})
    s.update({"norm_out.weight": t(cur, norm=True), "norm_out.bias": t(cur) * 0,
              "conv_out.weight": t(out_ch, cur, 3, 3), "conv_out.bias": t(out_ch) * 0})
    return s
