"""One behaviour for the frozen configuration dataclasses (:class:`shred.operators.TaskOptions`,
:class:`shred.train.TrainConfig`, :class:`shred.models.RunOptions`).

``to_dict`` gives the fields as a JSON-safe dict; ``from_dict`` rebuilds the object and refuses
unknown names; ``replace(**changes)`` returns a copy with those fields set, refusing unknown names
and validating the result again (the class's ``__post_init__``). ``None`` is a value like any
other: to keep a field, leave it out of ``changes``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Iterable

from .errors import ShredError


class FrozenConfig:
    """Mixin for ``@dataclass(frozen=True)`` classes; ``what`` names them in error messages
    (``"task options"``: "unknown task options: foo; known: ...")."""

    what: ClassVar[str] = "settings"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def check_names(cls, names: Iterable[str]) -> None:
        """Raise :class:`ShredError` naming every unknown name and the known ones."""
        known = cls.field_names()
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ShredError(f"unknown {cls.what}: {', '.join(unknown)}; known: {', '.join(known)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        cls.check_names(d)
        return cls(**d)

    def replace(self, **changes):
        self.check_names(changes)
        return dataclasses.replace(self, **changes)
