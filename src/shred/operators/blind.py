"""Blur models for blind restoration: the SelfDeblur kernel network, a spatially varying blur,
and H_theta, the blur whose parameters theta are optimised jointly with x_T (eqs. 17-19).

Conventions: images [B, C, H, W]; kernels [kh, kw] with odd sides, non-negative, summing to 1;
every blur is a true convolution with 'same' output size and zero padding, like :class:`Blur`,
so an estimated kernel is directly comparable to the kernel that made the measurement. (The
authors' code calls ``conv2d``, a correlation, which estimates the kernel rotated by 180 degrees.)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShredError
from ..seeding import generator
from .base import Operator, SpecField, number_array, register_operator, text
from .kernels import _normalise
from .linear import convolve_same, correlate_same


# --- convolution -----------------------------------------------------------------------------------
# --- the kernel network ------------------------------------------------------------------------------
def kernel_seed(seed: int | None) -> int | None:
    """The seed of a restoration's kernel network, derived from its x_T seed so that the two
    random streams differ (seeding both with the same integer would correlate them)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed) & (2 ** 63 - 1), 0x6B65726E]).generate_state(1, np.uint64)[0] >> 1)


class KernelNet(nn.Module):
    """SelfDeblur's kernel generator (Ren et al. 2020, ``networks/fcn.py``), one per kernel.

        k = Softmax(W2 ReLU6(W1 z + b1) + b2),  reshaped to [kh, kw]

    with a fixed input z = 0.1 * U(0, 1)^200 (DIP's ``get_noise(200, 'noise', (1, 1))``). The
    softmax makes every kernel non-negative and sum to one by construction. ``n`` independent
    networks are held as batched weights so that each restoration (and each cell of a
    spatially varying blur) has its own; network i is initialised from ``seeds[i]`` alone, like
    ``nn.Linear`` (uniform in +-1/sqrt(fan_in) for weights and biases).

    Args:
        kernel_size: (kh, kw), odd sides.
        seeds: one seed (or None) per network.
        hidden: width of the hidden layer (1000 in SelfDeblur and the authors' code).
        input_size: length of z (200).
        input_scale: z is uniform in [0, input_scale) (0.1).
    """

    def __init__(self, kernel_size: tuple[int, int], seeds: list[int | None], hidden: int = 1000,
                 input_size: int = 200, input_scale: float = 0.1):
        super().__init__()
        kh, kw = (int(s) for s in kernel_size)
        if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
            raise ShredError(f"the kernel size must have odd sides, got {kh}x{kw}")
        self.kernel_size = (kh, kw)
        out = kh * kw
        z, w1, b1, w2, b2 = [], [], [], [], []
        for s in seeds:
            g = generator(s)

            def uniform(*shape, bound):
                return (2 * torch.rand(shape, generator=g) - 1) * bound
            z.append(input_scale * torch.rand(input_size, generator=g))
            w1.append(uniform(hidden, input_size, bound=1 / math.sqrt(input_size)))
            b1.append(uniform(hidden, bound=1 / math.sqrt(input_size)))
            w2.append(uniform(out, hidden, bound=1 / math.sqrt(hidden)))
            b2.append(uniform(out, bound=1 / math.sqrt(hidden)))
        self.register_buffer("z", torch.stack(z))
        self.w1, self.b1 = nn.Parameter(torch.stack(w1)), nn.Parameter(torch.stack(b1))
        self.w2, self.b2 = nn.Parameter(torch.stack(w2)), nn.Parameter(torch.stack(b2))

    def __len__(self) -> int:
        return self.z.shape[0]

    def forward(self) -> torch.Tensor:
        """[n, kh, kw] kernels, each non-negative and summing to 1."""
        h = F.relu6(torch.baddbmm(self.b1[:, :, None], self.w1, self.z[:, :, None]))
        logits = torch.baddbmm(self.b2[:, :, None], self.w2, h)[..., 0]
        return torch.softmax(logits, dim=-1).view(-1, *self.kernel_size)


# --- spatially varying blur --------------------------------------------------------------------------
def grid_weights(size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """[gh, gw, H, W] bilinear interpolation weights of a gh x gw grid of cells over an H x W image.

    Cell (i, j) has its node at the centre of the i-th of gh equal bands of rows (and the j-th of gw
    bands of columns); a pixel's weights are the bilinear (tent) coefficients of its four nearest
    nodes, held constant beyond the outermost nodes. They are non-negative and sum to one at
    every pixel (a partition of unity), so a spatially uniform blur is the special case of equal
    kernels.
    """
    def axis(n: int, g: int) -> torch.Tensor:
        # Position of each pixel centre in node units, clamped to the span of the nodes.
        u = ((torch.arange(n, dtype=torch.float64) + 0.5) * g / n - 0.5).clamp(0, g - 1)
        nodes = torch.arange(g, dtype=torch.float64)
        return (1 - (u[None, :] - nodes[:, None]).abs()).clamp_min(0)  # [g, n]
    (h, w), (gh, gw) = size, grid
    return axis(h, gh)[:, None, :, None] * axis(w, gw)[None, :, None, :]


def sv_blur(x: torch.Tensor, kernels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """y = sum_g w_g . (k_g * x): every cell's kernel blurs the whole image and the results are
    blended by the cells' weights (the interpolated-PSF model of Nagy and O'Leary, 1998).

    Args:
        x: [B, C, H, W].
        kernels: [gh, gw, kh, kw] (one set for the batch) or [B, gh, gw, kh, kw] (one per image).
        weights: [gh, gw, H, W] from :func:`grid_weights`.
    """
    k = kernels if kernels.dim() == 5 else kernels[None]
    b, gh, gw, kh, kw = k.shape
    blurred = convolve_same(x[:, None, None], k.reshape(b, gh, gw, 1, kh, kw))  # [B, gh, gw, C, H, W]
    return (blurred * weights.to(x)[None, :, :, None]).sum(dim=(1, 2))


def sv_blur_adjoint(y: torch.Tensor, kernels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A^T y = sum_g k_g (correlated with) (w_g . y), the adjoint of :func:`sv_blur`."""
    k = kernels if kernels.dim() == 5 else kernels[None]
    b, gh, gw, kh, kw = k.shape
    weighted = y[:, None, None] * weights.to(y)[None, :, :, None]
    return correlate_same(weighted, k.reshape(b, gh, gw, 1, kh, kw)).sum(dim=(1, 2))


@register_operator("sv-blur")
class SpatiallyVaryingBlur(Operator):
    """A spatially varying (non-uniform) blur: a coarse grid of local kernels blended smoothly.

    ``A x = sum_g w_g . (k_g * x)`` with bilinear partition-of-unity weights w_g
    (:func:`grid_weights`); every kernel is a 'same', zero-padded convolution as in :class:`Blur`.
    Linear, with the exact adjoint; A^+ by CGLS (``separable = False``: no closed form).

    Args:
        in_shape: (C, H, W).
        kernels: [gh, gw, kh, kw], each non-negative with odd sides (normalised to sum to 1).
        kind: what made the kernels, for the record.
    """

    separable = False
    spec_fields = {"kernels": SpecField(number_array(4, "a grid of kernels [grid_h][grid_w][kh][kw]")),
                   "kind": SpecField(text, required=False)}

    def __init__(self, in_shape, kernels: torch.Tensor, kind: str = "custom"):
        from .linear import _shape
        self.in_shape = self.out_shape = _shape(in_shape)
        kernels = torch.as_tensor(kernels, dtype=torch.float64)
        if kernels.dim() != 4:
            raise ShredError(f"sv-blur kernels must be [grid_h, grid_w, kh, kw], got shape {tuple(kernels.shape)}")
        from .kernels import check_kernel_size
        check_kernel_size(max(kernels.shape[2:]), self.in_shape,
                          f"{kernels.shape[2]}x{kernels.shape[3]} sv-blur kernels", "smaller kernels")
        gh, gw = kernels.shape[:2]
        self.kernels = torch.stack([torch.stack([_normalise(kernels[i, j], f"sv-blur kernel ({i}, {j})")
                                                 for j in range(gw)]) for i in range(gh)])
        self.grid = (gh, gw)
        self.kind = kind
        self.weights = grid_weights(self.in_shape[1:], self.grid)
        self._freeze()

    def A(self, x):
        return sv_blur(x, self.kernels.to(x), self.weights)

    def AT(self, y):
        return sv_blur_adjoint(y, self.kernels.to(y), self.weights)

    def params(self):
        return {"kind": self.kind, "kernels": self.kernels.tolist()}

    @classmethod
    def from_params(cls, in_shape, kernels, kind: str = "custom"):
        return cls(in_shape, torch.tensor(kernels, dtype=torch.float64), kind=kind)


# --- H_theta -------------------------------------------------------------------------------------------
class ParametricBlur(Operator):
    """H_theta of eq. (17): a blur whose kernels come from :class:`KernelNet`, optimised jointly
    with x_T. A gh x gw grid (1 x 1: a uniform blur) of kernels per image, one network each.

    It quacks like an operator for the solver (``A``, ``num_measurements``, ``sigma_y``, ...), but
    it is neither registered nor serialisable, and its *parameters* change during restoration:
    it is the unknown being estimated. :func:`estimated_operator` turns one image's kernels into
    a frozen operator.
    A^+ is unknown while the kernel is; ``pinv`` returns y itself (the blurred image is the best
    guess of the sharp one before any kernel is known), which only the ``ddim-inversion`` start uses.

    Args:
        in_shape: (C, H, W).
        kernel_size: odd (kh, kw).
        grid: (gh, gw) cells of the spatially varying model; (1, 1) for a uniform blur.
        seeds: one per restoration; cell networks are seeded from it (:func:`kernel_seed`).
        sigma_y: the measurement noise level when known (for noise-aware stopping).
        rounding: the part of ``sigma_y`` that is an image file's rounding (:attr:`Operator.rounding`).
        hidden / input_size / input_scale: the kernel networks (:class:`KernelNet`).
    """

    linear = True

    def __init__(self, in_shape, kernel_size: tuple[int, int], grid: tuple[int, int], seeds: list[int | None],
                 *, sigma_y: float = 0.0, rounding: float = 0.0, hidden: int = 1000, input_size: int = 200, input_scale: float = 0.1):
        from .linear import _shape
        self.in_shape = self.out_shape = _shape(in_shape)
        self.grid = (int(grid[0]), int(grid[1]))
        self.kernel_size = tuple(int(s) for s in kernel_size)
        gh, gw = self.grid
        cell_seeds = []
        for s in seeds:
            base = kernel_seed(s)
            cell_seeds += [None if base is None else (base + c) % 2 ** 63 for c in range(gh * gw)]
        self.net = KernelNet(self.kernel_size, cell_seeds, hidden=hidden, input_size=input_size,
                             input_scale=input_scale)
        self.batch = len(seeds)
        self.weights = grid_weights(self.in_shape[1:], self.grid)
        self.noise = float(sigma_y)
        self.rounded = float(rounding)
        self._freeze()

    @property
    def sigma_y(self) -> float:
        return self.noise

    @property
    def rounding(self) -> float:
        return self.rounded

    def to(self, device=None, dtype=None) -> "ParametricBlur":
        self.net.to(device=device, dtype=dtype)
        return self

    def parameters(self):
        return self.net.parameters()

    def kernels(self) -> torch.Tensor:
        """The current kernels, [B, gh, gw, kh, kw]."""
        return self.net().view(self.batch, *self.grid, *self.kernel_size)

    def A(self, x):
        if x.shape[0] != self.batch:
            raise ShredError(f"this H_theta holds {self.batch} kernels but received {x.shape[0]} images")
        k = self.kernels()
        if self.grid == (1, 1):
            return convolve_same(x, k[:, 0, 0, None])
        return sv_blur(x, k, self.weights)

    def AT(self, y):
        k = self.kernels()
        if self.grid == (1, 1):
            return correlate_same(y, k[:, 0, 0, None])
        return sv_blur_adjoint(y, k, self.weights)

    def pinv(self, y):
        return y

    def spec(self) -> dict[str, Any]:
        raise ShredError("H_theta is being estimated and has no spec; estimated_operator(in_shape, kernels) gives the result's")


def estimated_operator(in_shape, kernels: torch.Tensor, kind: str = "estimated") -> Operator:
    """The frozen operator of one image's estimated kernels: [kh, kw] or [1, 1, kh, kw] gives a
    :class:`Blur`, [gh, gw, kh, kw] a :class:`SpatiallyVaryingBlur`."""
    from .linear import Blur
    k = kernels.detach().double().cpu()
    if k.dim() == 4 and k.shape[:2] == (1, 1):
        k = k[0, 0]
    return Blur(in_shape, k, kind=kind) if k.dim() == 2 else SpatiallyVaryingBlur(in_shape, k, kind=kind)
