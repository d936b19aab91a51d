"""Solvers by name, so that the CLI, the benchmark and the tests can treat them alike.

``build_solver("shred", denoiser, config=...)`` returns a :class:`shred.solvers.Solver`; every
solver is then called the same way: ``solver(y, operator, seeds=..., progress=...)``.
"""
from __future__ import annotations

from typing import Callable

from ..errors import ShredError

SOLVERS: dict[str, Callable] = {}


def register_solver(name: str):
    """Decorator for a solver class (or factory) taking ``(denoiser, **settings)``."""
    def deco(factory):
        if name in SOLVERS:
            raise RuntimeError(f"solver {name!r} registered twice")
        SOLVERS[name] = factory
        return factory
    return deco


def build_solver(name: str, denoiser, **settings):
    if name not in SOLVERS:
        raise ShredError(f"unknown method {name!r}; choose from {', '.join(sorted(SOLVERS))}")
    return SOLVERS[name](denoiser, **settings)
