"""The registered degradation operators.

All act on images in [0, 1] with shape [B, C, H, W]; buffers are kept in float64 and cast to the
input's dtype and device on use, so one operator serves float32 restoration and float64 tests.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..config import _Invalid, optional, positive_int
from ..errors import ShredError
from .base import (OPERATOR, OPERATORS_LIST, Operator, SpecField, image_shape, noise_level, number_array,
                   operator_from_spec, register_operator, text)
from .masks import pack_mask, unpack_mask


def _shape(in_shape) -> tuple[int, int, int]:
    try:
        return image_shape(tuple(int(s) for s in in_shape))
    except (_Invalid, TypeError, ValueError) as exc:
        raise ShredError(f"image shape must be (C, H, W) with positive sides, got {in_shape}"
                         + (f" ({exc})" if isinstance(exc, _Invalid) else "")) from None


def _unit_number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise _Invalid("a number in [0, 1]")
    return v


@register_operator("identity")
class Identity(Operator):
    """H = I: denoising, or the inversion test of the paper's Fig. 2."""

    coisometry = 1.0
    spec_fields = {}

    def __init__(self, in_shape):
        self.in_shape = self.out_shape = _shape(in_shape)
        self._freeze()

    def A(self, x):
        return x

    def AT(self, y):
        return y


@register_operator("mask")
class Mask(Operator):
    """Pixel mask: y = m * x, kept pixels (m = 1) in place and zeros elsewhere.

    Used for inpainting (box or file masks) and compressed sensing (random pixels). The measurement
    stays image-sized so it can be saved and viewed; A is an orthogonal projection, so A^T = A^+ = A.

    Args:
        in_shape: (C, H, W).
        mask: [H, W] tensor of 0/1 (1 = kept), shared by all channels and batch elements.
        kind: what made the mask (``"box"``, ``"random"``, ``"file"``), for the record.
    """

    uneven = False  # an orthogonal projection: its nonzero singular values are all 1
    spec_fields = {"mask_bits": SpecField(text), "kind": SpecField(text, required=False),
                   "kept_fraction": SpecField(optional(_unit_number), required=False)}

    def __init__(self, in_shape, mask: torch.Tensor, kind: str = "custom"):
        self.in_shape = self.out_shape = _shape(in_shape)
        mask = torch.as_tensor(mask, dtype=torch.float64)
        c, h, w = self.in_shape
        if tuple(mask.shape) != (h, w):
            raise ShredError(f"the mask is {mask.shape[-2]}x{mask.shape[-1]} but the image is {h}x{w}; "
                             "use a mask of the image's size")
        if not ((mask == 0) | (mask == 1)).all():
            raise ShredError("a mask holds only 0 (missing) and 1 (kept)")
        if mask.sum() == 0:
            raise ShredError("the mask keeps no pixel")
        self.mask = mask
        self.kind = kind
        self._freeze()

    def _m(self, x):
        return self.mask.to(device=x.device, dtype=x.dtype)

    def A(self, x):
        return x * self._m(x)

    def AT(self, y):
        return y * self._m(y)

    def pinv(self, y):
        return y * self._m(y)

    def num_measurements(self) -> int:
        return int(self.mask.sum()) * self.in_shape[0]

    def measurement_weight(self):
        return self.mask

    def params(self):
        c, h, w = self.in_shape
        return {"kind": self.kind, "kept_fraction": round(float(self.mask.mean()), 6),
                "mask_bits": pack_mask(self.mask)}

    @classmethod
    def from_params(cls, in_shape, mask_bits: str, kind: str = "custom", kept_fraction=None):
        c, h, w = _shape(in_shape)
        return cls(in_shape, unpack_mask(mask_bits, h, w), kind=kind)


@register_operator("sr-avg")
class AvgPoolSR(Operator):
    """Super-resolution by average pooling: each k x k block becomes its mean (the paper's uniform
    down-sampling; ``AdaptiveAvgPool2d`` in the authors' code). A A^T = I / k^2."""

    spec_fields = {"scale": SpecField(positive_int)}

    def __init__(self, in_shape, scale: int):
        self.in_shape = _shape(in_shape)
        c, h, w = self.in_shape
        scale = int(scale)
        if scale < 1 or h % scale or w % scale:
            raise ShredError(f"scale {scale} does not divide the image size {h}x{w}; "
                             f"use a scale that divides it")
        self.scale = scale
        self.coisometry = 1.0 / scale ** 2
        self.out_shape = (c, h // scale, w // scale)
        self._freeze()

    def A(self, x):
        return F.avg_pool2d(x, self.scale)

    def AT(self, y):
        return F.interpolate(y, scale_factor=self.scale, mode="nearest") / self.scale ** 2

    def params(self):
        return {"scale": self.scale}


def bicubic_matrix(n_in: int, scale: int) -> torch.Tensor:
    """[n_in // scale, n_in] down-sampling matrix of MATLAB's ``imresize(x, 1/scale, 'bicubic')``:
    Keys cubic (a = -0.5) stretched by ``scale`` for anti-aliasing, symmetric borders."""
    def cubic(u: torch.Tensor) -> torch.Tensor:
        a = u.abs()
        return torch.where(a <= 1, 1.5 * a ** 3 - 2.5 * a ** 2 + 1,
                           torch.where(a < 2, -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2, torch.zeros_like(a)))
    n_out = n_in // scale
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    support = 2 * scale
    for i in range(n_out):
        centre = (i + 0.5) * scale - 0.5
        js = torch.arange(math.floor(centre - support), math.ceil(centre + support) + 1)
        wts = cubic((centre - js.double()) / scale)
        wts = wts / wts.sum()
        # MATLAB's imresize mirrors the borders through aux = [1:n, n:-1:1] indexed mod 2n, which
        # also holds when the filter is wider than the image (one output pixel: scale = n).
        js = js % (2 * n_in)
        js = torch.where(js >= n_in, 2 * n_in - 1 - js, js)
        mat[i].index_add_(0, js, wts)
    return mat


@register_operator("sr-bicubic")
class BicubicSR(Operator):
    """Super-resolution by bicubic down-sampling (MATLAB ``imresize`` with anti-aliasing), written
    as y = D_h x D_w^T with exact adjoint and pseudo-inverse from the separable matrices."""

    spec_fields = {"scale": SpecField(positive_int)}

    def __init__(self, in_shape, scale: int):
        self.in_shape = _shape(in_shape)
        c, h, w = self.in_shape
        scale = int(scale)
        if scale < 2 or h % scale or w % scale:
            raise ShredError(f"scale {scale} does not divide the image size {h}x{w}; "
                             f"use a scale >= 2 that divides it")
        self.scale = scale
        self.out_shape = (c, h // scale, w // scale)
        self.Dh, self.Dw = bicubic_matrix(h, scale), bicubic_matrix(w, scale)
        self.Dh_pinv, self.Dw_pinv = torch.linalg.pinv(self.Dh), torch.linalg.pinv(self.Dw)
        self._freeze()

    @staticmethod
    def _apply(x, left, right):
        left = left.to(device=x.device, dtype=x.dtype)
        right = right.to(device=x.device, dtype=x.dtype)
        return left @ x @ right.T

    def A(self, x):
        return self._apply(x, self.Dh, self.Dw)

    def AT(self, y):
        return self._apply(y, self.Dh.T, self.Dw.T)

    def pinv(self, y):
        # (D_h (x) D_w)^+ = D_h^+ (x) D_w^+ for a Kronecker product.
        return self._apply(y, self.Dh_pinv, self.Dw_pinv)

    def params(self):
        return {"scale": self.scale}


def conv_matrix(taps: torch.Tensor, n: int) -> torch.Tensor:
    """[n, n] matrix of the 1-D 'same' convolution with zero padding by an odd-length filter."""
    half = taps.numel() // 2
    mat = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j, w in enumerate(taps.tolist()):
            col = i - (j - half)
            if 0 <= col < n:
                mat[i, col] += w
    return mat


def convolve_same(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """'same'-size convolution with zero padding, through the FFT.

    Args:
        x: [..., H, W] images.
        k: [..., kh, kw] kernels (odd sides) whose leading dimensions broadcast against x's.

    Returns:
        [..., H, W]: sum_{u, v} k[u, v] x[i - u + kh // 2, j - v + kw // 2], exactly the
        :class:`Blur` operator's map (to rounding) for any kernel size, at O(HW log HW) cost.
    """
    h, w = x.shape[-2:]
    kh, kw = k.shape[-2:]
    size = (h + kh - 1, w + kw - 1)
    full = torch.fft.irfft2(torch.fft.rfft2(x, s=size) * torch.fft.rfft2(k.to(x.dtype), s=size), s=size)
    return full[..., kh // 2:kh // 2 + h, kw // 2:kw // 2 + w]


def correlate_same(y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`convolve_same` for odd kernels: convolution with the flipped kernel."""
    return convolve_same(y, k.flip(-2, -1))


# Kernels with more taps than this blur through the FFT (:func:`convolve_same`,
# equal to the direct convolution to rounding). On 3 x 256 x 256 images on 2 CPU threads, float32:
# 13 x 13, direct 5.5 ms and FFT 2.5; 21 x 21, 27.8 and 1.9; the paper's 41 x 41, 846 and 3.2
# (bench/krylov_cost.py). Kernels up to 15 x 15 (the comparison's 13 x 13 Gaussian) keep the
# direct convolution, and their results.
FFT_TAPS = 15 * 15


def _in_fft_dtype(conv, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """conv(x, kernel) in x's dtype, through float32 for half and bfloat16 (the FFT of a CPU
    tensor takes neither, and a GPU's half FFT only power-of-two sizes)."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return conv(work, kernel.to(device=x.device, dtype=work.dtype)).to(x.dtype)


@register_operator("blur")
class Blur(Operator):
    """Convolution of every channel with a known kernel, 'same' size with zero padding (as in the
    authors' code). A^T is the correlation with the same kernel (a transposed convolution).

    Kernels over 15 x 15 taps convolve through the FFT (:data:`FFT_TAPS`).

    A^+ is exact for separable kernels (isotropic or axis-aligned Gaussians: the kernel matrix has
    rank one, k = u v^T, and A = T_u (x) T_v with 1-D convolution matrices). Other kernels use CGLS,
    which converges slowly on ill-conditioned blurs: ||A A^+ A x - A x|| / ||A x|| reaches about
    1e-3 to 1e-5 (see the tests).
    """

    spec_fields = {"kernel": SpecField(number_array(2, "a kernel")), "kind": SpecField(text, required=False)}

    def __init__(self, in_shape, kernel: torch.Tensor, kind: str = "custom"):
        from .kernels import _normalise, check_kernel_size
        self.in_shape = self.out_shape = _shape(in_shape)
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        if kernel.dim() == 2:
            check_kernel_size(max(kernel.shape), self.in_shape,
                              f"a {kernel.shape[0]}x{kernel.shape[1]} blur kernel", "a smaller kernel")
        self.kernel = _normalise(kernel, "blur kernel")
        self.kind = kind
        u, sv, vh = torch.linalg.svd(self.kernel)
        self.separable = bool(sv.numel() == 1 or sv[1] <= 1e-12 * sv[0])
        if self.separable:
            c, h, w = self.in_shape
            col, row = u[:, 0] * sv[0].sqrt(), vh[0] * sv[0].sqrt()
            self._pinv_h = torch.linalg.pinv(conv_matrix(col, h))
            self._pinv_w = torch.linalg.pinv(conv_matrix(row, w))
        self._freeze()

    def pinv(self, y):
        if not self.separable:
            return super().pinv(y)
        left = self._pinv_h.to(device=y.device, dtype=y.dtype)
        right = self._pinv_w.to(device=y.device, dtype=y.dtype)
        return left @ y @ right.T

    def _weight(self, x):
        c = x.shape[1]
        # conv2d computes a correlation; flip the kernel so that A is a true convolution.
        k = self.kernel.flip(0, 1).to(device=x.device, dtype=x.dtype)
        return k.expand(c, 1, *k.shape)

    def A(self, x):
        kh, kw = self.kernel.shape
        if kh * kw > FFT_TAPS:
            return _in_fft_dtype(convolve_same, x, self.kernel)
        return F.conv2d(x, self._weight(x), padding=(kh // 2, kw // 2), groups=x.shape[1])

    def AT(self, y):
        kh, kw = self.kernel.shape
        if kh * kw > FFT_TAPS:
            return _in_fft_dtype(correlate_same, y, self.kernel)
        return F.conv_transpose2d(y, self._weight(y), padding=(kh // 2, kw // 2), groups=y.shape[1])

    def params(self):
        return {"kind": self.kind, "kernel": self.kernel.tolist()}

    @classmethod
    def from_params(cls, in_shape, kernel, kind: str = "custom"):
        return cls(in_shape, torch.tensor(kernel, dtype=torch.float64), kind=kind)


@register_operator("colorize")
class Colorize(Operator):
    """Colorization: y is the grey image, the mean of the colour channels. A A^T = I / C."""

    spec_fields = {}

    def __init__(self, in_shape):
        self.in_shape = _shape(in_shape)
        c, h, w = self.in_shape
        if c < 2:
            raise ShredError("colorization needs a colour model; this image has one channel")
        self.out_shape = (1, h, w)
        self.coisometry = 1.0 / c
        self._freeze()

    def A(self, x):
        return x.mean(dim=1, keepdim=True)

    def AT(self, y):
        return y.expand(-1, self.in_shape[0], -1, -1) / self.in_shape[0]


@register_operator("compose")
class Compose(Operator):
    """A = A_n o ... o A_1 (the first listed is applied first), e.g. colorization then x4."""

    spec_fields = {"ops": SpecField(OPERATORS_LIST)}

    def __init__(self, in_shape, ops: list[Operator]):
        self.in_shape = _shape(in_shape)
        if not ops:
            raise ShredError("a composition needs at least one operator")
        shape = self.in_shape
        for op in ops:
            if tuple(op.in_shape) != tuple(shape):
                raise ShredError(f"cannot compose: {op.name} expects {tuple(op.in_shape)} but receives {tuple(shape)}")
            shape = op.out_shape
        self.ops = tuple(ops)
        self.out_shape = tuple(shape)
        self.linear = all(op.linear for op in ops)
        scales = [op.coisometry for op in ops]
        # If every factor satisfies A_i A_i^T = c_i I, so does the product, with c = prod c_i.
        self.coisometry = math.prod(scales) if all(s is not None for s in scales) else None
        self._freeze()

    def A(self, x):
        for op in self.ops:
            x = op.A(x)
        return x

    def AT(self, y):
        for op in reversed(self.ops):
            y = op.AT(y)
        return y

    @property
    def uneven(self) -> bool:
        # A composition of one operator is that operator (a mask stays even: it has no coisometry).
        return self.ops[0].uneven if len(self.ops) == 1 else self.coisometry is None

    def num_measurements(self) -> int:
        return self.ops[-1].num_measurements()

    def measurement_weight(self):
        return self.ops[-1].measurement_weight()

    def params(self):
        return {"ops": [op.spec() for op in self.ops]}

    @classmethod
    def from_params(cls, in_shape, ops: list[dict[str, Any]]):
        return cls(in_shape, [operator_from_spec(s) for s in ops])


@register_operator("noisy")
class Noisy(Operator):
    """Additive white Gaussian measurement noise: y = A(x) + sigma_y n, n ~ N(0, I) (eq. 10).

    ``A``, ``AT`` and ``pinv`` are those of the wrapped operator (the noise-free model used by the
    solvers); only :meth:`degrade` draws the noise. ``sigma_y`` is in [0, 1] image units.
    ``rounding`` is the standard deviation of the rounding of the image file the measurement was
    read from (:func:`with_rounding`); :attr:`sigma_y` is then sqrt(sigma_y^2 + rounding^2), while
    :meth:`degrade` draws, and the spec records, the declared ``sigma_y`` only (a measurement file
    carries its own rounding: the spec must not count it a second time).
    """

    spec_fields = {"op": SpecField(OPERATOR), "sigma_y": SpecField(noise_level)}

    def __init__(self, in_shape, op: Operator, sigma_y: float, rounding: float = 0.0):
        self.in_shape = _shape(in_shape)
        if tuple(op.in_shape) != self.in_shape:
            raise ShredError("noisy: inner operator has a different input shape")
        try:
            noise_level(sigma_y)
        except _Invalid as exc:
            raise ShredError(f"sigma_y must be {exc}, got {sigma_y}") from None
        _check_rounding(rounding)
        self.op = op
        self.noise = float(sigma_y)
        self.rounded = float(rounding)
        self.out_shape = op.out_shape
        self.linear = op.linear
        self.coisometry = op.coisometry
        self._freeze()

    @property
    def sigma_y(self) -> float:
        return math.hypot(self.noise, self.rounded)

    @property
    def declared_sigma_y(self) -> float:
        return self.noise

    @property
    def rounding(self) -> float:
        return self.rounded

    @property
    def uneven(self) -> bool:
        return self.op.uneven

    def spec(self) -> dict[str, Any]:
        # Rounding only: the operator's own spec, as the measurement was degraded.
        return self.op.spec() if self.rounded and not self.noise else super().spec()

    def A(self, x):
        return self.op.A(x)

    def AT(self, y):
        return self.op.AT(y)

    def pinv(self, y):
        return self.op.pinv(y)

    def degrade(self, x, generator=None):
        y = self.op.degrade(x, generator)
        n = torch.randn(y.shape, generator=generator, dtype=y.dtype, device="cpu" if generator is None else generator.device)
        w = self.op.measurement_weight()
        if w is not None:
            n = n * w.to(dtype=n.dtype, device=n.device)
        return y + self.noise * n.to(y.device)

    def num_measurements(self):
        return self.op.num_measurements()

    def measurement_weight(self):
        return self.op.measurement_weight()

    def params(self):
        return {"sigma_y": self.noise, "op": self.op.spec()}

    @classmethod
    def from_params(cls, in_shape, op: dict[str, Any], sigma_y: float):
        return cls(in_shape, operator_from_spec(op), sigma_y)


def rounding_std(levels: int) -> float:
    """Standard deviation of the error of rounding a value in [0, 1] to the nearest of ``levels``
    equally spaced ones (uniform over one step of 1 / (levels - 1)): 1 / ((levels - 1) sqrt 12);
    0.00113 for an 8-bit file (256 levels). Raises :class:`ShredError` unless ``levels`` is an
    integer >= 2."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ShredError(f"levels must be an integer >= 2, got {levels!r}")
    return 1.0 / ((levels - 1) * math.sqrt(12))


# Files of more levels than this are taken as exact: a 16-bit file's rounding (4.4e-6) is negligible,
# and counted as noise it would only make DDNM's last finish step skip its range correction (which
# it does for any noise > 0), at a cost in PSNR.
COUNTED_LEVELS = 256


def counted_rounding(op: Operator, levels: int | None) -> float:
    """The rounding noise shred counts for ``op``'s measurement read from a file that stores
    ``levels`` levels per channel (:func:`shred.io.stored_levels`; None: floating-point data):
    :func:`rounding_std` (0.00113 for 256 levels, 0.289 for a 1-bit image) where ``op`` is
    :attr:`Operator.uneven` and the file has at most 256 levels, else 0. Only an uneven A^+
    amplifies the rounding (deblurring, 16 training images of bench/quantized_y.py: 23.42 dB
    not counted, 26.53 counted, 26.57 with float32 y); on masks, pooling and colorization counting
    it changes SHRED+ by -0.07 to +0.03 dB (docs/RESULTS.md), and the identity must not count it (a
    clean 8-bit image "denoised" comes back as itself); a 16-bit rounding is negligible."""
    if levels is None or levels > COUNTED_LEVELS or not op.uneven:
        return 0.0
    return rounding_std(levels)


def _check_rounding(rounding) -> None:
    if isinstance(rounding, bool) or not isinstance(rounding, (int, float)) or not 0 <= rounding <= 1:
        raise ShredError(f"the rounding noise must be a number in [0, 1] ([0, 1] image units), got {rounding!r}")


def with_rounding(op: Operator, rounding: float) -> Operator:
    """``op`` for a measurement read from an image file that rounded it: its declared noise
    sigma_y and the rounding's standard deviation ``rounding`` (:func:`rounding_std`) add in
    quadrature, :attr:`Operator.sigma_y` = sqrt(sigma_y^2 + rounding^2), since the file rounds
    y = A x + n after the noise. The result is a :class:`Noisy` that keeps the two parts apart
    (:attr:`Operator.declared_sigma_y`, :attr:`Operator.rounding`): the spec records the declared
    noise only, and the stopping rules treat a noise level that is all rounding as unknown
    (:mod:`shred.solvers.stopping`). A file has one rounding: an operator that already carries one
    gets ``rounding`` instead, not both. ``rounding`` = 0 returns ``op`` without a rounding.
    Raises :class:`ShredError` for a rounding that is not a number in [0, 1]."""
    _check_rounding(rounding)
    if rounding == op.rounding:
        return op
    inner = op.op if isinstance(op, Noisy) else op
    declared = op.declared_sigma_y
    if rounding == 0:
        return Noisy(op.in_shape, inner, declared) if declared > 0 else inner
    return Noisy(op.in_shape, inner, declared, rounding=float(rounding))


def unwrap(op: Operator) -> Operator:
    """The operator that does the work inside ``op``: the noise-free operator of (nested)
    :class:`Noisy` wrappers and the only factor of a one-element :class:`Compose`, repeatedly;
    any other operator is returned as it is. ``unwrap(op).A == op.A`` always holds."""
    while True:
        if isinstance(op, Noisy):
            op = op.op
        elif isinstance(op, Compose) and len(op.ops) == 1:
            op = op.ops[0]
        else:
            return op
