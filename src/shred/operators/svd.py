"""Singular value decompositions A = U diag(s) V^T of the operators that have a cheap one.

DDRM (Kawar et al. 2022) and the SVD-based DDNM+ (Wang et al. 2023) work coordinate-wise in the
spectral basis of A. Their code gives every degradation an object with ``V``, ``Vt``, ``U``, ``Ut``
and ``singulars`` (``H_functions`` in bahjat-kawar/ddrm ``functions/svd_replacement.py``,
``A_functions`` in wyhuai/DDNM ``functions/svd_operators.py``); :class:`OperatorSVD` is that object
for shred's operators, built by :func:`operator_svd` and applied matrix-free.

Conventions (a thin SVD with k singular values; D = C*H*W):

* ``Vt(x)``: [B, C, H, W] -> [B, D], the coordinates of x in the orthonormal basis V. The first k
  belong to ``singulars`` in order; the other D - k span the rest of the space (A maps them to 0).
* ``V(c)``: [B, D] -> [B, C, H, W], the inverse of ``Vt``.
* ``Ut(y)``: [B, *out_shape] -> [B, k];  ``U(c)``: [B, k] -> [B, *out_shape].
* ``singulars``: float64 [k], >= 0. Zeros are allowed (directions A does not see, or values cut
  off by :meth:`OperatorSVD.truncated`).

Then ``A x = U(s * Vt(x)[:, :k])``, ``A^T y = V([s * Ut(y), 0])`` and ``A^+ y = V([Ut(y) / s, 0])``
over the non-zero s. U has orthonormal columns; entries of y that are not measurements (the zeros
a :class:`Mask` keeps in its image-sized y) have no column in U.

Three structures cover the operators:

* :class:`SeparableSVD`: A acts on each axis separately, ``A x = x x_c M_c x_h M_h x_w M_w``
  (mode products; identity, average pooling, bicubic down-sampling, colorization, blur by a
  separable kernel, and compositions of these). Its SVD is the Kronecker product of the three small
  SVDs (DDRM's ``SuperResolution``, ``Colorization``, ``Deblurring`` and ``SRConv`` do the same).
* :class:`MaskSVD`: a pixel mask; V is a permutation putting the kept entries first, s = 1.

* :class:`DenseSVD`: a blur by a kernel that is not separable, on an image of at most
  :data:`DENSE_MAX_PIXELS` pixels: the SVD of its dense H*W x H*W convolution matrix, shared by
  the channels (DDRM and the SVD-based DDNM+ on a random kernel; blind SHRED's ``"ddnm"`` finish
  under an estimated kernel).

Other operators (a larger non-separable blur, a mask composed with anything) raise
:class:`ShredError`.
"""
from __future__ import annotations

import math
import weakref
from functools import singledispatch

import torch

from ..errors import ShredError
from .base import Operator
from .canvas import Crop
from .linear import AvgPoolSR, BicubicSR, Blur, Colorize, Compose, Identity, Mask, Noisy, conv_matrix, unwrap

SUPPORTED = ("identity", "mask", "sr-avg", "sr-bicubic", "colorize", "blur with a separable kernel",
             "blur with any kernel on images of at most 1024 pixels",
             "compositions of the separable ones, also on a larger canvas (crop)")
# The largest image (H * W) whose non-separable blur gets a dense SVD: one float64 SVD of a
# 1024 x 1024 matrix took about 2 s on one CPU core here; its cost grows as (H * W)^3.
DENSE_MAX_PIXELS = 1024


class OperatorSVD:
    """A = U diag(s) V^T applied matrix-free (module docstring for the conventions).

    Subclasses implement ``Vt``, ``V``, ``Ut``, ``U`` and set ``singulars``, ``in_shape`` and
    ``out_shape``. Float64 buffers are cast to the input's dtype and device on use.
    """

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    singulars: torch.Tensor

    @property
    def k(self) -> int:
        """The number of singular values (the length of ``Ut(y)``)."""
        return self.singulars.numel()

    @property
    def D(self) -> int:
        return math.prod(self.in_shape)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def V(self, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def U(self, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def truncated(self, floor: float) -> "OperatorSVD":
        """The same decomposition with small singular values set to zero (DDRM's ``ZERO``)."""
        return self

    def s(self, like: torch.Tensor) -> torch.Tensor:
        """``singulars`` in the dtype and on the device of ``like``."""
        return self.singulars.to(device=like.device, dtype=like.dtype)

    def pad(self, c: torch.Tensor) -> torch.Tensor:
        """[B, k] -> [B, D] with zeros after the first k coordinates (DDRM's ``add_zeros``)."""
        return torch.cat([c, c.new_zeros(c.shape[0], self.D - self.k)], dim=1)

    # -- the maps, from the factors ---------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.U(self.s(x) * self.Vt(x)[:, : self.k])

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        return self.V(self.pad(self.s(y) * self.Ut(y)))

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        s = self.s(y)
        inv = torch.where(s > 0, 1 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        return self.V(self.pad(inv * self.Ut(y)))


def _along(x: torch.Tensor, M: torch.Tensor | None, axis: int) -> torch.Tensor:
    """Multiply every fibre of x along ``axis`` by M (a mode product); None is the identity."""
    if M is None:
        return x
    M = M.to(device=x.device, dtype=x.dtype)
    return (x.movedim(axis, -1) @ M.T).movedim(-1, axis)


class _AxisSVD:
    """SVD of one axis' matrix M (m x n): U [m, m], s [r = min(m, n)], V [n, n]; None = I_n."""

    def __init__(self, M: torch.Tensor | None, n: int):
        if M is None:
            self.U = self.V = None
            self.s = torch.ones(n, dtype=torch.float64)
            self.m = n
        else:
            U, s, Vh = torch.linalg.svd(M.to(torch.float64), full_matrices=True)
            self.U, self.s, self.V = U, s, Vh.T
            self.m = M.shape[0]
        self.n = n

    @property
    def r(self) -> int:
        return self.s.numel()

    def with_floor(self, floor: float) -> "_AxisSVD":
        new = object.__new__(_AxisSVD)
        new.__dict__.update(self.__dict__)
        new.s = torch.where(self.s < floor, torch.zeros_like(self.s), self.s)
        return new


class SeparableSVD(OperatorSVD):
    """SVD of ``A x = x x_c M_c x_h M_h x_w M_w`` as the Kronecker product of three small SVDs.

    Args:
        in_shape: (C, H, W).
        mats: (M_c [m_c, C], M_h [m_h, H], M_w [m_w, W]); None stands for an identity.

    The singular value of coordinate (i, j, l) of the spectral tensor is s_c[i] s_h[j] s_w[l] for
    i < r_c, j < r_h, l < r_w; those k = r_c r_h r_w coordinates come first in ``Vt``.
    """

    def __init__(self, in_shape, mats, axes: tuple[_AxisSVD, _AxisSVD, _AxisSVD] | None = None):
        self.in_shape = tuple(int(s) for s in in_shape)
        self.mats = tuple(mats)
        if axes is None:
            axes = tuple(_AxisSVD(M, n) for M, n in zip(self.mats, self.in_shape))
        self.axes = axes
        self.out_shape = tuple(a.m for a in axes)
        sc, sh, sw = (a.s for a in axes)
        self.singulars = (sc[:, None, None] * sh[None, :, None] * sw[None, None, :]).flatten()
        # Coordinates of the singular block first, the rest after (DDRM's permutation P_1).
        block = torch.zeros(self.in_shape, dtype=torch.bool)
        block[: axes[0].r, : axes[1].r, : axes[2].r] = True
        flat = block.flatten()
        self._perm = torch.cat([flat.nonzero().flatten(), (~flat).nonzero().flatten()])
        self._inv_perm = torch.argsort(self._perm)

    def Vt(self, x):
        for axis, a in zip((1, 2, 3), self.axes):
            x = _along(x, None if a.V is None else a.V.T, axis)
        return x.flatten(1)[:, self._perm.to(x.device)]

    def V(self, c):
        x = c[:, self._inv_perm.to(c.device)].reshape(c.shape[0], *self.in_shape)
        for axis, a in zip((1, 2, 3), self.axes):
            x = _along(x, a.V, axis)
        return x

    def Ut(self, y):
        for axis, a in zip((1, 2, 3), self.axes):
            y = _along(y, None if a.U is None else a.U.T, axis)
        return y[:, : self.axes[0].r, : self.axes[1].r, : self.axes[2].r].flatten(1)

    def U(self, c):
        r = tuple(a.r for a in self.axes)
        y = c.new_zeros(c.shape[0], *self.out_shape)
        y[:, : r[0], : r[1], : r[2]] = c.reshape(c.shape[0], *r)
        for axis, a in zip((1, 2, 3), self.axes):
            y = _along(y, a.U, axis)
        return y

    def truncated(self, floor: float) -> "SeparableSVD":
        """Zero the singular values of each axis' matrix below ``floor``: DDRM's ``Deblurring`` and
        ``SRConv`` do this to their 1-D matrices with ZERO = 3e-2 (``functions/svd_replacement.py``)."""
        return SeparableSVD(self.in_shape, self.mats, tuple(a.with_floor(floor) for a in self.axes))


class MaskSVD(OperatorSVD):
    """SVD of a pixel mask (y = m * x, image-sized): V puts the kept entries first, U scatters the
    k kept values back into an image-sized y, s = 1 (DDRM's ``Inpainting``)."""

    def __init__(self, in_shape, mask: torch.Tensor):
        self.in_shape = self.out_shape = tuple(int(s) for s in in_shape)
        kept = (mask.to(torch.float64) != 0).expand(self.in_shape).flatten()
        self._kept = kept.nonzero().flatten()
        self._perm = torch.cat([self._kept, (~kept).nonzero().flatten()])
        self._inv_perm = torch.argsort(self._perm)
        self.singulars = torch.ones(self._kept.numel(), dtype=torch.float64)

    def Vt(self, x):
        return x.flatten(1)[:, self._perm.to(x.device)]

    def V(self, c):
        return c[:, self._inv_perm.to(c.device)].reshape(c.shape[0], *self.in_shape)

    def Ut(self, y):
        return y.flatten(1)[:, self._kept.to(y.device)]

    def U(self, c):
        y = c.new_zeros(c.shape[0], self.D)
        y[:, self._kept.to(c.device)] = c
        return y.reshape(c.shape[0], *self.out_shape)


class DenseSVD(OperatorSVD):
    """SVD of an operator acting on every channel by the same dense matrix M [H*W, H*W]
    (``A x = M x_c`` per channel c): M = U diag(s) V^T by ``torch.linalg.svd`` in float64. The
    spectral coordinates are ordered channel by channel, each channel's in the order of ``s``.

    Args:
        in_shape: (C, H, W).
        M: [H*W, H*W] float64, the matrix of one channel (e.g. a 'same' blur's convolution matrix).
    """

    def __init__(self, in_shape, M: torch.Tensor, factors=None):
        self.in_shape = self.out_shape = tuple(int(s) for s in in_shape)
        if factors is None:
            Um, sm, Vh = torch.linalg.svd(M.to(torch.float64))
            factors = (Um, sm, Vh.T)
        self._U, self._s, self._V = factors
        self.singulars = self._s.repeat(self.in_shape[0])

    def _per_channel(self, x: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.in_shape[0], -1) @ M.to(device=x.device, dtype=x.dtype)

    def Vt(self, x):
        return self._per_channel(x, self._V).flatten(1)

    def V(self, c):
        return self._per_channel(c, self._V.T).reshape(c.shape[0], *self.in_shape)

    def Ut(self, y):
        return self._per_channel(y, self._U).flatten(1)

    def U(self, c):
        return self._per_channel(c, self._U.T).reshape(c.shape[0], *self.out_shape)

    def truncated(self, floor: float) -> "DenseSVD":
        """Zero the singular values below ``floor`` (DDRM's and DDNM's ZERO = 3e-2)."""
        s = torch.where(self._s < floor, torch.zeros_like(self._s), self._s)
        return DenseSVD(self.in_shape, None, (self._U, s, self._V))


_DENSE: "weakref.WeakKeyDictionary[Blur, DenseSVD]" = weakref.WeakKeyDictionary()


def dense_blur_matrix(op: Blur) -> torch.Tensor:
    """[H*W, H*W] float64 matrix of ``op``'s 'same' convolution on one channel: column j is the
    blur of the j-th unit image."""
    _, h, w = op.in_shape
    eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    return op.A(eye).reshape(h * w, h * w).T


# -- which operators have which structure ---------------------------------------------------------
def _no_svd(op: Operator) -> ShredError:
    return ShredError(f"operator {op.name!r} has no closed-form SVD, which DDRM and the SVD-based "
                      f"DDNM+ need; supported: {', '.join(SUPPORTED)}")


@singledispatch
def separable_factors(op: Operator) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(M_c, M_h, M_w) with ``A x = x x_c M_c x_h M_h x_w M_w`` (None = identity), float64."""
    raise _no_svd(op)


@separable_factors.register
def _(op: Identity):
    return None, None, None


def pool_matrix(n: int, scale: int) -> torch.Tensor:
    """[n // scale, n] matrix averaging consecutive blocks of ``scale`` entries."""
    return torch.kron(torch.eye(n // scale, dtype=torch.float64),
                      torch.full((1, scale), 1.0 / scale, dtype=torch.float64))


@separable_factors.register
def _(op: AvgPoolSR):
    c, h, w = op.in_shape
    return None, pool_matrix(h, op.scale), pool_matrix(w, op.scale)


@separable_factors.register
def _(op: BicubicSR):
    return None, op.Dh, op.Dw


@separable_factors.register
def _(op: Colorize):
    c = op.in_shape[0]
    return torch.full((1, c), 1.0 / c, dtype=torch.float64), None, None


@separable_factors.register
def _(op: Blur):
    if not op.separable:
        raise ShredError(f"the blur kernel ({op.kind}) is not separable, so the blur has no "
                         f"closed-form SVD; DDRM and the SVD-based DDNM+ need one (use ddnm, dps or shred)")
    # The kernel has rank one, k = u v^T; as in Blur, A = T_u (x) T_v with 1-D convolution matrices.
    u, sv, vh = torch.linalg.svd(op.kernel)
    c, h, w = op.in_shape
    return None, conv_matrix(u[:, 0] * sv[0].sqrt(), h), conv_matrix(vh[0] * sv[0].sqrt(), w)


def selection_matrix(n: int, start: int, length: int) -> torch.Tensor:
    """[length, n] rows of the identity: entries start .. start + length - 1."""
    return torch.eye(n, dtype=torch.float64)[start:start + length]


@separable_factors.register
def _(op: Crop):
    c, h, w = op.in_shape
    return None, selection_matrix(h, op.top, op.height), selection_matrix(w, op.left, op.width)


@separable_factors.register
def _(op: Noisy):
    return separable_factors(unwrap(op))


@separable_factors.register
def _(op: Compose):
    # Applying A_1 then A_2 multiplies the matrices of each axis: M = M_2 M_1.
    total = [None, None, None]
    for inner in op.ops:
        for i, M in enumerate(separable_factors(inner)):
            if M is not None:
                total[i] = M if total[i] is None else M @ total[i]
    return tuple(total)


@singledispatch
def operator_svd(op: Operator) -> OperatorSVD:
    """The matrix-free SVD of ``op`` (for a :class:`Noisy` operator, that of the noise-free A).

    Raises:
        ShredError: the operator has no closed-form SVD.
    """
    if not op.linear:
        raise ShredError(f"operator {op.name!r} is not linear and has no SVD")
    return SeparableSVD(op.in_shape, separable_factors(op))


@operator_svd.register
def _(op: Mask):
    return MaskSVD(op.in_shape, op.mask)


@operator_svd.register
def _(op: Blur):
    if op.separable:
        return SeparableSVD(op.in_shape, separable_factors(op))
    _, h, w = op.in_shape
    if h * w > DENSE_MAX_PIXELS:
        raise ShredError(f"the blur kernel ({op.kind}) is not separable and the image ({h}x{w}) is larger than "
                         f"{DENSE_MAX_PIXELS} pixels, so the blur has no SVD here; DDRM and the SVD-based DDNM+ "
                         "need one (use ddnm, dps or shred)")
    svd = _DENSE.get(op)
    if svd is None:  # computed once per operator: DDRM asks when it checks support and when it runs
        svd = _DENSE[op] = DenseSVD(op.in_shape, dense_blur_matrix(op))
    return svd


@operator_svd.register
def _(op: Noisy):
    return operator_svd(unwrap(op))


@operator_svd.register
def _(op: Compose):
    if unwrap(op) is not op:  # a one-element composition
        return operator_svd(unwrap(op))
    if any(isinstance(inner, Mask) for inner in op.ops):
        raise ShredError("a mask composed with other operators has no closed-form SVD, which DDRM "
                         "and the SVD-based DDNM+ need (use ddnm, dps or shred)")
    return SeparableSVD(op.in_shape, separable_factors(op))


def cut_maps(operator: Operator, zero_below: float):
    """(A, A^+) for a range-null space correction x - A^+ (A x - y): the operator's SVD with every
    per-axis singular value below ``zero_below`` cut (the official ``A_funcs``: class ``Deblurring``,
    ZERO = 3e-2) where that cuts any, else the operator's own maps (also where it has no SVD: a
    non-separable blur, a mask composed with other operators)."""
    if zero_below > 0:
        try:
            svd = operator_svd(operator)
        except ShredError:
            return operator.A, operator.pinv
        cut = svd.truncated(zero_below)
        if int((cut.singulars == 0).sum()) > int((svd.singulars == 0).sum()):
            return cut.A, cut.pinv
    return operator.A, operator.pinv


def discrepancy_tikhonov(svd: OperatorSVD, r: torch.Tensor, target: torch.Tensor, mu_min: float = 9e-4,
                         steps: int = 60) -> torch.Tensor:
    """The Tikhonov correction of a residual, its strength set by the discrepancy principle.

    For residuals ``r = y - A x`` ([B, *out_shape], measurement entries only) and per-image targets
    ``target`` ([B], e.g. tau sigma_y sqrt(m)), returns ``dx`` ([B, C, H, W]) with

        dx = V diag(s / (s^2 + mu)) U^T r,    ||y - A (x + dx)|| = target,

    the minimiser of ||y - A (x + dx)||^2 + mu ||dx||^2 (Tikhonov), with mu >= ``mu_min`` chosen
    per image by Morozov's discrepancy principle (Engl, Hanke and Neubauer, "Regularization of
    Inverse Problems", 1996, section 4.3). Coordinate i of the residual keeps the fraction
    mu / (s_i^2 + mu): directions A sees well are corrected fully, those it barely sees (where A^+
    would amplify the noise by 1 / s_i) hardly at all. Where ||r|| <= target already, dx = 0;
    where even mu = ``mu_min`` leaves more than the target, mu = ``mu_min``, which bounds the gain
    s / (s^2 + mu) by 1 / (2 sqrt(mu_min)) (about 16.7 for the default, DDNM's cut of 3e-2).
    mu is found by bisection on log mu (``steps`` halvings); no network call."""
    from .krylov import discrepancy_mu

    s = svd.s(r)
    c = svd.Ut(r)                                                     # [B, k]
    outside = (r - svd.U(c)).flatten(1).pow(2).sum(1)                 # residual A cannot reach
    goal = target.to(r).pow(2)
    mu = discrepancy_mu(s, c, outside, target, mu_min, steps)
    gain = s[None] / (s.pow(2)[None] + mu[:, None])
    dx = svd.V(svd.pad(gain * c))
    done = r.flatten(1).pow(2).sum(1) <= goal                         # already at the noise level
    return torch.where(done.view(-1, 1, 1, 1), torch.zeros_like(dx), dx)
