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
from typing import Any, ClassVar

import torch

from ..errors import ShredError

OPERATORS: dict[str, type["Operator"]] = {}


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


def operator_from_spec(spec: dict[str, Any]) -> Operator:
    """Rebuild an operator from :meth:`Operator.spec`."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ShredError("an operator spec is a JSON object with a 'name'")
    spec = dict(spec)
    name = spec.pop("name")
    if name not in OPERATORS:
        raise ShredError(f"unknown operator {name!r} in spec; known: {', '.join(sorted(OPERATORS))}")
    in_shape = tuple(int(s) for s in spec.pop("in_shape"))
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
