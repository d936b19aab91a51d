"""Images larger than memory allows: eps_theta evaluated on overlapping tiles and blended.

SHRED's latent x_T, the DDIM states, the loss and Adam live on the whole image; the network's
activations, by far the largest part, grow with the size it is run at. A :class:`TiledDenoiser`
therefore keeps everything on the whole image and evaluates the network tile by tile:

    eps(x_t, t)[p] = sum_k w_k(p) eps_theta(x_t[T_k], t)[p - T_k] / sum_k w_k(p)

over the tiles T_k that contain pixel p (the averaging of MultiDiffusion, Bar-Tal et al. 2023,
eq. 5, with feathered instead of uniform weights). w_k is a product of two 1-D ramps that rise
linearly over the overlap on each side where another tile follows, and stay 1 at the image's
borders, so neighbouring tiles cross-fade and no seam is cut. The DDIM update, the operator and
the loss see the whole image, so the restoration is fitted to the whole measurement (a blur that
crosses tile borders is handled exactly); tiles change only how eps is computed.

With the exact gradient each tile is checkpointed, meant to let a backward pass hold one tile's
activations at a time. Measured on a CPU (bench/results/scale-memory-cpu.json), the peak with tiles
is still 1.4 times the whole network's activation bytes per pixel (2.2 without tiles), so the
saving is partial; the surrogate gradient's falls from 0.57 to 0.10 times them.
"""
from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from ..errors import ShredError
from .base import Denoiser
from .memory import available_bytes


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering 0 .. n - 1 with at least ``overlap``
    pixels shared by neighbours; the last tile ends at n. [0] when one tile covers n."""
    if n <= tile:
        return [0]
    stride = tile - overlap
    if stride < 1:
        raise ShredError(f"a tile overlap of {overlap} leaves no stride in tiles of {tile}")
    count = math.ceil((n - tile) / stride) + 1
    return [min(i * stride, n - tile) for i in range(count)]


def ramp(length: int, overlap: int, rise: bool, fall: bool, dtype=torch.float32) -> torch.Tensor:
    """[length] blend weights: 1, rising linearly from 1 / (overlap + 1) over the first ``overlap``
    entries when ``rise``, and falling likewise over the last ones when ``fall``."""
    w = torch.ones(length, dtype=dtype)
    if overlap > 0:
        edge = torch.arange(1, overlap + 1, dtype=dtype) / (overlap + 1)
        k = min(overlap, length)
        if rise:
            w[:k] = torch.minimum(w[:k], edge[:k])
        if fall:
            w[length - k:] = torch.minimum(w[length - k:], edge[:k].flip(0))
    return w


class TiledDenoiser(Denoiser):
    """``inner`` evaluated on overlapping tiles of inputs with more than ``max_pixels`` pixels
    (module docstring); inputs up to ``max_pixels`` go through ``inner`` whole.

    Args:
        inner: the denoiser (its ``size_multiple`` must divide the tile side and the overlap).
        tile: tile side in pixels (default: the network's training size).
        overlap: pixels shared by neighbouring tiles (default: a quarter of the tile, rounded to
            the network's multiple).
        max_pixels: largest input (H * W) evaluated whole, or a function returning it (called once,
            when the first input larger than a tile arrives); None tiles every input larger than
            one tile.
    """

    def __init__(self, inner: Denoiser, tile: int | None = None, overlap: int | None = None,
                 max_pixels: int | None = None):
        super().__init__()
        m = inner.size_multiple
        if m is None:
            raise ShredError(f"{inner.name} runs at one size only and cannot be tiled")
        tile = int(tile or max(inner.image_size))
        if tile < m or tile % m:
            raise ShredError(f"tiles of {inner.name} need a side that is a multiple of {m}, got {tile}")
        overlap = (tile // 4) // m * m if overlap is None else int(overlap)
        if overlap < 0 or overlap % m or overlap >= tile:
            raise ShredError(f"the tile overlap must be a multiple of {m} below the tile side {tile}, got {overlap}")
        self.inner, self.tile, self.overlap, self.max_pixels = inner, tile, overlap, max_pixels
        self.schedule, self.channels, self.name = inner.schedule, inner.channels, inner.name
        self.image_size, self.size_multiple = inner.image_size, m
        for attr in ("info", "num_classes", "class_label", "learned_sigma", "options"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))

    def tiles(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The (top, left, tile height, tile width) of every tile of a height x width input."""
        th, tw = min(self.tile, height), min(self.tile, width)
        return [(r, c, th, tw) for r in tile_starts(height, self.tile, self.overlap)
                for c in tile_starts(width, self.tile, self.overlap)]

    def weights(self, height: int, width: int, top: int, left: int, th: int, tw: int, like: torch.Tensor):
        """[th, tw] blend weights of one tile (module docstring)."""
        rows = ramp(th, self.overlap, top > 0, top + th < height)
        cols = ramp(tw, self.overlap, left > 0, left + tw < width)
        return (rows[:, None] * cols[None, :]).to(device=like.device, dtype=like.dtype)

    def whole(self, height: int, width: int) -> bool:
        """Whether a height x width input goes through the network whole."""
        if height <= self.tile and width <= self.tile:
            return True
        if callable(self.max_pixels):
            self.max_pixels = self.max_pixels()
        return self.max_pixels is not None and height * width <= self.max_pixels

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps [B, C, H, W] for x_t [B, C, H, W] (model space, [-1, 1] at t = 0) and timesteps t [B]:
        ``inner``'s on the whole input, or its tiles' blended (module docstring)."""
        H, W = x_t.shape[-2:]
        if self.whole(H, W):
            return self.inner(x_t, t)
        grad = torch.is_grad_enabled() and x_t.requires_grad
        total = torch.zeros_like(x_t)
        norm = torch.zeros(H, W, dtype=x_t.dtype, device=x_t.device)
        for top, left, th, tw in self.tiles(H, W):
            part = x_t[..., top:top + th, left:left + tw]
            # Exact gradient: recompute the tile's activations in the backward pass instead of
            # keeping every tile's at once.
            eps = checkpoint(self.inner, part, t, use_reentrant=False) if grad else self.inner(part, t)
            w = self.weights(H, W, top, left, th, tw, eps)
            total[..., top:top + th, left:left + tw] += eps * w  # in place; autograd records it
            norm[top:top + th, left:left + tw] += w
        return total / norm

    def describe(self) -> str:
        return f"{self.inner.describe()}, tiles of {self.tile} overlapping by {self.overlap}"


# -- how large an image fits -----------------------------------------------------------------------
# Peak memory of a SHRED iteration per pixel and image, as a multiple of the bytes of every layer's
# output in one forward pass (:func:`activation_bytes_per_pixel`), rounded up from measurements
# (tests/test_scale.py checks that they stay above them):
# - CPU, bundled cifar10-32, peak RSS of one iteration (bench/results/scale-memory-cpu.json,
#   ``ratio_to_activation_estimate``): 0.57 surrogate, 2.22 exact;
# - H200, fp32, batch 1, peak allocated less the weights, over the activation bytes of the
#   architectures of bench/speed.py (bench/results/speed-h200.json): CelebA-HQ DDPM 0.20 / 0.99,
#   ImageNet ADM 0.16 / 0.91.
# The surrogate gradient runs the network without autograd, so only a few layers' outputs are alive
# at once; the exact gradient keeps one DDIM step's activations for its backward pass (each step is
# checkpointed). The CPU's larger factors come from its allocator and the attention's scores; the
# margin above them covers the state on the whole image (x_T, DDIM states, Adam) and other sizes.
PEAK_PER_ACTIVATION = {"cpu": {"surrogate": 1.0, "exact": 3.0}, "cuda": {"surrogate": 0.25, "exact": 1.0}}
# The share of the free memory automatic tiling lets a whole image take (the rest: other processes'
# growth, the allocator's fragmentation).
FREE_FRACTION = 0.7


def activation_bytes_per_pixel(denoiser: Denoiser) -> float:
    """Bytes of all the leaf layers' outputs (as float32) in one forward pass of one image, per
    pixel, at the network's training size. A UNet is rebuilt from its configuration on the meta
    device (nothing allocated or computed); another network runs once, without autograd."""
    cached = getattr(denoiser, "_activation_bpp", None)
    if cached is not None:
        return cached
    inner = denoiser
    while hasattr(inner, "inner"):
        inner = inner.inner
    net, device = inner, None
    unet = getattr(inner, "unet", None)
    if unet is not None:
        try:
            with torch.device("meta"):
                net = type(unet)(**{k: v for k, v in dict(unet.config).items() if not k.startswith("_")})
            device = "meta"
        except Exception:  # a network that cannot be rebuilt from its config: run the real one
            net = inner
    if device is None:
        device = next(iter(net.parameters())).device if any(True for _ in net.parameters()) else "cpu"
    total = [0]

    def count(module, args, out):
        if isinstance(out, torch.Tensor) and not list(module.children()):
            total[0] += out.numel() * 4
    hooks = [m.register_forward_hook(count) for m in net.modules()]
    h, w = denoiser.image_size
    try:
        with torch.no_grad():
            net(torch.zeros(1, denoiser.channels, h, w, device=device), torch.zeros(1, dtype=torch.long, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    bpp = total[0] / (h * w)
    object.__setattr__(denoiser, "_activation_bpp", bpp)
    return bpp


def whole_image_pixels(denoiser: Denoiser, device, grad: str, images: int,
                       fraction: float = FREE_FRACTION) -> int | None:
    """The largest H * W that ``images`` images can be restored at without tiles, using
    ``fraction`` of the free memory (:func:`shred.models.memory.available_bytes`: the GPU's free
    memory, or the CPU's MemAvailable within ``ulimit -v``) at :data:`PEAK_PER_ACTIVATION` times
    :func:`activation_bytes_per_pixel` bytes per pixel and image; None when the free memory is
    unknown."""
    free = available_bytes(device)
    if free is None:
        return None
    factors = PEAK_PER_ACTIVATION["cuda" if torch.device(device).type == "cuda" else "cpu"]
    per_pixel = factors.get(grad, factors["exact"]) * activation_bytes_per_pixel(denoiser)
    return max(1, int(free * fraction / (per_pixel * max(1, images))))
