"""The degradation operator interface and its registry.

An operator maps a clean image x, [B, C, H, W] in [0, 1], to a measurement y = A(x) (eq. 10 without
the noise; :class:`Noisy` adds it). Operators are immutable once built, batched (one operator for
the whole batch), differentiable, and serialise to a JSON spec that rebuilds the very same operator.

Linear operators also give the adjoint A^T and the Moore-Penrose pseudo-inverse A^+. Where A^+ has
no closed form it is computed by CGLS (conjugate gradients on the normal equations, started at 0,
which converges to the minimum-norm least-squares solution A^+ y).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ..config import _Invalid
from ..errors import ShredError

OPERATORS: dict[str, type["Operator"]] = {}

# The largest image side and channel count an operator is built for (the models work at 32 to 256
# pixels); a spec asking for more is refused before anything is allocated.
MAX_SIDE = 4096
MAX_CHANNELS = 4


def image_shape(v) -> tuple[int, int, int]:
    """Check of a (C, H, W) shape: three positive integers, C <= MAX_CHANNELS, H, W <= MAX_SIDE."""
    if not isinstance(v, (list, tuple)) or len(v) != 3 or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                  for s in v):
        raise _Invalid("a list of 3 integers [C, H, W]")
    c, h, w = v
    if min(v) < 1 or c > MAX_CHANNELS or max(h, w) > MAX_SIDE:
        raise _Invalid(f"[C, H, W] with C in 1..{MAX_CHANNELS} and sides in 1..{MAX_SIDE}")
    return (c, h, w)


def text(v) -> str:
    if not isinstance(v, str):
        raise _Invalid("a string")
    return v


def noise_level(v) -> float:
    """Check of a measurement noise std sigma_y: a number in [0, 1] ([0, 1] image units)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise _Invalid("a finite number >= 0")
    if v > 1:
        # 5 here most likely means 5 of 255 (8-bit units): refuse rather than bury the image.
        raise _Invalid("at most 1: it is in [0, 1] image units (0.05 = 5 % of the range; for 8-bit units "
                       "divide by 255)")
    return float(v)


def number_array(ndim: int, what: str):
    """Check of a nested JSON list of ``ndim`` dimensions holding finite numbers (a kernel)."""
    def check(v):
        try:
            arr = np.asarray(v)
        except (ValueError, TypeError):  # ragged lists
            raise _Invalid(f"{what}: {ndim} levels of nested lists of numbers of equal lengths") from None
        if arr.ndim != ndim or arr.dtype.kind not in "iuf" or arr.size == 0:
            raise _Invalid(f"{what}: {ndim} levels of nested lists of numbers of equal lengths")
        if not np.isfinite(arr).all():
            raise _Invalid(f"{what} without NaN or infinite values")
        return v
    return check


OPERATOR, OPERATORS_LIST = "operator", "operators"  # spec fields holding nested operator specs


@dataclass(frozen=True)
class SpecField:
    """One parameter of an operator's JSON spec: ``check`` (a :mod:`shred.config` style check, or
    :data:`OPERATOR` / :data:`OPERATORS_LIST` for nested specs) and whether it may be left out."""

    check: Callable[[Any], Any] | str
    required: bool = True


def register_operator(name: str):
    """Class decorator: make an operator class buildable from specs under ``name``."""
    def deco(cls):
        if name in OPERATORS:
            raise RuntimeError(f"operator {name!r} registered twice")
        cls.name = name
        OPERATORS[name] = cls
        return cls
    return deco


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))


class Operator:
    """Base class. Subclasses set ``in_shape`` / ``out_shape`` (C, H, W) and implement ``A``.

    Attributes:
        in_shape: (C, H, W) of the clean image.
        out_shape: (C', H', W') of the measurement.
        linear: whether A is linear (then ``AT`` and ``pinv`` exist).
        coisometry: c when A A^T = c I (then A^+ = A^T / c exactly), else None.
    """

    name: ClassVar[str] = "operator"
    # The parameters of the JSON spec besides name and in_shape (checked before anything is built);
    # None for an operator that declares none (its parameters go to from_params unchecked).
    spec_fields: ClassVar[dict[str, SpecField] | None] = None
    linear: ClassVar[bool] = True
    coisometry: float | None = None
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]

    _frozen = False

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, key, value):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable; build a new operator instead")
        object.__setattr__(self, key, value)

    # -- the maps ---------------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def AT(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no adjoint")

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """A^+ y: closed form for co-isometries, CGLS otherwise."""
        if not self.linear:
            raise NotImplementedError(f"{self.name} is not linear and has no pseudo-inverse")
        if self.coisometry is not None:
            return self.AT(y) / self.coisometry
        return cgls(self, y)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def to(self, device: str | torch.device) -> "Operator":
        """A copy whose tensors (masks, kernels, matrices) live on ``device``, so that applying it
        there copies nothing from the host (each such copy would stall a GPU queue)."""
        def move(v):
            if isinstance(v, torch.Tensor):
                return v.to(device)
            if isinstance(v, Operator):
                return v.to(device)
            if isinstance(v, tuple) and v and all(isinstance(e, Operator) for e in v):
                return tuple(e.to(device) for e in v)
            return v
        return copy_operator(self, **{k: move(v) for k, v in vars(self).items() if k != "_frozen"})

    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The measurement a camera would record: A(x), plus noise for :class:`Noisy`."""
        return self.A(x)

    @property
    def sigma_y(self) -> float:
        """Standard deviation of the additive measurement noise in [0, 1] units (0: none)."""
        return 0.0

    @property
    def rounding(self) -> float:
        """The standard deviation of the rounding of the file the measurement was read from,
        counted in :attr:`sigma_y` (:func:`shred.operators.with_rounding`), in [0, 1] units; 0
        when none is counted."""
        return 0.0

    @property
    def uneven(self) -> bool:
        """Whether A's nonzero singular values differ, so that A^+ amplifies some components of
        the measurement's noise more than others (blurs, bicubic down-sampling). False for a
        coisometry (A A^T = c I: average pooling, colorization, the identity) and for masks, where
        they are all equal. Decides whether an image file's rounding is counted as noise
        (:func:`shred.operators.counted_rounding`), and, with :attr:`coisometry`, which DDNM+
        SHRED+'s finish runs under noise (:func:`shred.solvers.shred.noise_gain`)."""
        return self.coisometry is None

    @property
    def declared_sigma_y(self) -> float:
        """The part of :attr:`sigma_y` that is not :attr:`rounding`: the noise a spec or
        ``--sigma-y`` declares (sigma_y^2 = declared^2 + rounding^2)."""
        return math.sqrt(max(self.sigma_y ** 2 - self.rounding ** 2, 0.0))

    def num_measurements(self) -> int:
        """m, the number of scalar measurements per image (for the discrepancy principle)."""
        c, h, w = self.out_shape
        return c * h * w

    def measurement_weight(self) -> torch.Tensor | None:
        """A 0/1 tensor broadcastable to y marking the entries that are measurements, or None
        when every entry of y is one (masks keep y at full size with zeros elsewhere)."""
        return None

    # -- serialisation ----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The JSON-safe constructor arguments besides ``in_shape``."""
        return {}

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "in_shape": list(self.in_shape), **self.params()}

    @classmethod
    def from_params(cls, in_shape: tuple[int, int, int], **params) -> "Operator":
        return cls(in_shape, **params)

    def check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != tuple(self.in_shape):
            raise ShredError(f"{self.name} expects images of shape {tuple(self.in_shape)}, got {tuple(x.shape[1:])}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if not isinstance(v, (list, dict, str)) or len(str(v)) < 40)
        return f"{type(self).__name__}({tuple(self.in_shape)}{', ' if args else ''}{args})"


def _shown(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def check_operator_spec(spec: Any, where: str = "operator") -> None:
    """Check an operator spec (:meth:`Operator.spec`) against its registered class's schema
    (:attr:`Operator.spec_fields`), nested operators included, without building anything.

    Raises :class:`ShredError` naming the field by its path (``operator.ops[1].scale is
    missing``, ``operator.in_shape must be a list of 3 integers [C, H, W], got 'abc'``)."""
    if not isinstance(spec, dict):
        raise ShredError(f"{where} must be a JSON object, got {_shown(spec)}")
    name = spec.get("name")
    if name is None:
        raise ShredError(f"{where}.name is missing")
    if not isinstance(name, str) or name not in OPERATORS:
        raise ShredError(f"{where}.name must be one of {', '.join(sorted(OPERATORS))}, got {_shown(name)}")
    fields = OPERATORS[name].spec_fields
    checks = {"in_shape": SpecField(image_shape), **(fields or {})}
    for key, field in checks.items():
        if key not in spec:
            if field.required:
                raise ShredError(f"{where}.{key} is missing")
            continue
        value = spec[key]
        if field.check == OPERATOR:
            check_operator_spec(value, f"{where}.{key}")
        elif field.check == OPERATORS_LIST:
            if not isinstance(value, list) or not value:
                raise ShredError(f"{where}.{key} must be a non-empty list of operators, got {_shown(value)}")
            for i, item in enumerate(value):
                check_operator_spec(item, f"{where}.{key}[{i}]")
        else:
            try:
                field.check(value)
            except _Invalid as exc:
                raise ShredError(f"{where}.{key} must be {exc}, got {_shown(value)}") from None
    if fields is not None:
        unknown = sorted(set(spec) - set(checks) - {"name"})
        if unknown:
            raise ShredError(f"{where} has an unknown field {unknown[0]!r} (operator {name} takes "
                             f"{', '.join(['name', 'in_shape', *fields])})")


def operator_from_spec(spec: dict[str, Any], where: str = "operator") -> Operator:
    """Rebuild an operator from :meth:`Operator.spec`, after :func:`check_operator_spec`.

    Raises :class:`ShredError` for a spec that does not match the schema (naming the field by its
    path from ``where``) or describes an impossible operator (a scale that does not divide the
    image, a mask of the wrong size)."""
    check_operator_spec(spec, where)
    spec = dict(spec)
    name = spec.pop("name")
    in_shape = tuple(spec.pop("in_shape"))
    try:
        return OPERATORS[name].from_params(in_shape, **spec)
    except TypeError as exc:
        raise ShredError(f"bad parameters for operator {name!r}: {exc}") from None


def cgls(op: Operator, y: torch.Tensor, iters: int = 500, rtol: float = 1e-12) -> torch.Tensor:
    """Minimum-norm least-squares solution of A x = y by CGLS, started at x = 0 (so = A^+ y).

    Stops when ||A^T r|| falls below ``rtol`` times its starting value, per batch element.
    """
    r = y.clone()
    s = op.AT(r)
    x = torch.zeros_like(s)
    p = s.clone()
    gamma = _dot(s, s)
    stop = gamma * rtol ** 2
    for _ in range(iters):
        if bool((gamma <= stop).all()):
            break
        q = op.A(p)
        qq = _dot(q, q)
        alpha = torch.where(qq > 0, gamma / qq.clamp_min(torch.finfo(qq.dtype).tiny), torch.zeros_like(qq))
        x = x + alpha * p
        r = r - alpha * q
        s = op.AT(r)
        gamma_new = _dot(s, s)
        beta = torch.where(gamma > 0, gamma_new / gamma.clamp_min(torch.finfo(gamma.dtype).tiny), torch.zeros_like(gamma))
        p = s + beta * p
        gamma = gamma_new
    return x


def copy_operator(op: Operator, /, **changes) -> Operator:
    """A shallow copy with some attributes replaced (operators are otherwise immutable)."""
    new = copy.copy(op)
    object.__setattr__(new, "_frozen", False)
    for k, v in changes.items():
        setattr(new, k, v)
    new._freeze()
    return new
