"""One base for shred's frozen settings classes: checked fields, JSON round trip, checked replace.

A settings class is a frozen dataclass that derives from :class:`FrozenConfig` and declares each
field's check next to it::

    @dataclass(frozen=True)
    class DpsConfig(FrozenConfig):
        label = "DPS"
        steps: int = setting(1000, positive_int)
        scale: float | None = setting(None, optional(non_negative))

Construction runs every check and raises :class:`shred.errors.ShredError` with one line naming the
setting, the value and what is allowed (``DPS steps must be a positive integer, got 0``).
``to_dict`` / ``from_dict`` round-trip through JSON (tuples become lists and back), ``replace``
changes the named fields only and validates the result again (None is a value like any other: to
keep a field, leave it out) and refuses unknown names, listing the known ones. Classes with checks
of their own (:class:`shred.operators.TaskOptions`, :class:`shred.train.TrainConfig`,
:class:`shred.models.RunOptions`) define ``__post_init__`` instead of per-field checks.
"""
from __future__ import annotations

import math
import re
from dataclasses import MISSING, asdict, field, fields, replace
from typing import Any, Callable, ClassVar, Iterable

from .errors import ShredError

Check = Callable[[Any], Any]


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def decimal_int(text: str) -> int:
    """``text`` (surrounding spaces allowed) as an integer written in decimal digits 0-9 with an
    optional sign. Raises ValueError for anything else, including what ``int`` alone would take:
    ``"1_0"`` and digits of other scripts."""
    if not _DECIMAL.fullmatch(str(text).strip()):
        raise ValueError(f"not a decimal integer: {text!r}")
    return int(text)


class _Invalid(ValueError):
    """Raised by a check: the text says what the value should be."""


def setting(default: Any, check: Check | None = None):
    """A dataclass field with a check (a function returning the normalised value or raising)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in a frozen config")
    return field(default=default, metadata={"check": check} if check else {})


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive_int(v):
    if not (_is_int(v) and v >= 1):
        raise _Invalid("a positive integer")
    return v


def non_negative_int(v):
    if not (_is_int(v) and v >= 0):
        raise _Invalid("an integer >= 0")
    return v


def positive(v):
    if not (_is_number(v) and v > 0):
        raise _Invalid("a positive finite number")
    return float(v)


def non_negative(v):
    if not (_is_number(v) and v >= 0):
        raise _Invalid("a finite number >= 0")
    return float(v)


def unit_interval(v):
    if not (_is_number(v) and 0 <= v <= 1):
        raise _Invalid("a number in [0, 1]")
    return float(v)


def boolean(v):
    if not isinstance(v, bool):
        raise _Invalid("true or false")
    return v


def one_of(*choices) -> Check:
    def check(v):
        if v not in choices:
            raise _Invalid("one of " + ", ".join(str(c) for c in choices))
        return v
    return check


def optional(check: Check) -> Check:
    def wrapped(v):
        return None if v is None else check(v)
    return wrapped


def odd_positive_int(v):
    if not (_is_int(v) and v >= 1 and v % 2 == 1):
        raise _Invalid("a positive odd integer")
    return v


def at_most(limit: float, check: Check) -> Check:
    """``check``, then ``v <= limit`` (a ceiling that keeps memory and time sane)."""
    def wrapped(v):
        v = check(v)
        if v > limit:
            raise _Invalid(f"at most {limit:g}")
        return v
    return wrapped


def tuple_of(check: Check, length: int | None = None) -> Check:
    def wrapped(v):
        if not isinstance(v, (list, tuple)) or (length is not None and len(v) != length):
            raise _Invalid(f"a list of {length} values" if length else "a list")
        return tuple(check(x) for x in v)
    return wrapped


class FrozenConfig:
    """Mixin for frozen dataclasses of settings (module docstring). ``label`` names the owner in
    value errors (``"SHRED"``: "SHRED lr must be ..."), ``what`` the settings in name errors
    (default ``"<label> settings"``: "unknown SHRED settings: lrr; known: ...")."""

    label: ClassVar[str] = "settings"
    what: ClassVar[str | None] = None

    def __post_init__(self):
        for f in fields(self):
            check = f.metadata.get("check")
            if check is None:
                continue
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, check(value))
            except _Invalid as exc:
                raise ShredError(f"{self.label} {f.name} must be {exc}, got {value!r}") from None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    field_names = names

    @classmethod
    def check_names(cls, names: Iterable[str]) -> None:
        """Refuse names that are not settings, listing the known ones."""
        unknown = sorted(set(names) - set(cls.names()))
        if unknown:
            raise ShredError(f"unknown {cls.what or cls.label + ' settings'}: {', '.join(unknown)}; "
                             f"known: {', '.join(cls.names())}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: tuples become lists."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
        return {k: plain(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise ShredError(f"{cls.label} settings must be a JSON object, got {type(d).__name__}")
        cls.check_names(d)
        return cls(**d)

    def replace(self, **changes):
        """A copy with the named fields changed (checked like the constructor's)."""
        self.check_names(changes)
        return replace(self, **changes)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}
