"""Every restoration method by name: the one way to build a solver.

    solver = build_solver("ddrm", denoiser, steps=20)
    solver = build_solver("shred@paper", denoiser, task="sr", lr=0.003)   # SHRED with a preset
    result = solver(y, operator, seeds=[0, 1])

The CLI, ``shred-ir bench``, ``bench/ablations.py`` and the tests all build methods here. A method
is a :class:`shred.solvers.Solver` subclass registered with :func:`register_solver`; its settings
are the fields of its config class (plus the extra keywords it declares, such as SHRED's ``preset``
and ``task``). An unknown method or setting is one :class:`ShredError` line listing the valid ones.

``NAME@PRESET`` is ``NAME`` with ``preset=PRESET`` for the methods that take a preset (``shred``,
``shred-blind``): ``shred@bundled``, ``shred@authors-code``, ``shred@plus``. A ``#LABEL`` suffix
names a variant and changes nothing else (``shred@plus#no-warm`` with its own settings in a
comparison or an ablation).
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ShredError

SOLVERS: dict[str, type] = {}


def register_solver(name: str):
    """Class decorator: register a :class:`Solver` subclass under ``name``."""
    def deco(cls):
        if name in SOLVERS:
            raise RuntimeError(f"solver {name!r} registered twice")
        SOLVERS[name] = cls
        return cls
    return deco


def split_method(name: str) -> tuple[str, dict[str, Any]]:
    """``"shred@paper#v2"`` -> ``("shred", {"preset": "paper"})``; unknown names raise, listing the known."""
    if not isinstance(name, str):
        raise ShredError(f"a method is named by a string, got {name!r}")
    base, _, preset = name.partition("#")[0].partition("@")
    if base not in SOLVERS:
        raise ShredError(f"unknown method {base!r}; choose from {', '.join(sorted(SOLVERS))}")
    if not preset:
        return base, {}
    if "preset" not in SOLVERS[base].extra_settings:
        raise ShredError(f"method {base!r} takes no preset ({name!r}); presets go with "
                         f"{', '.join(n for n, c in SOLVERS.items() if 'preset' in c.extra_settings)}")
    return base, {"preset": preset}


def method_settings(name: str) -> tuple[str, ...]:
    """The setting names ``build_solver(name, ...)`` accepts."""
    cls = SOLVERS[split_method(name)[0]]
    return cls.setting_names()


def check_settings(name: str, settings: dict[str, Any]) -> None:
    """Refuse settings the method does not have, in one line that lists the valid ones."""
    valid = method_settings(name)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ShredError(f"{name}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"valid: {', '.join(valid) or '(none)'}")


def build_solver(name: str, denoiser=None, *, config=None, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float32, **settings):
    """Build method ``name`` (``NAME`` or ``NAME@PRESET``) around ``denoiser``.

    Args:
        name: a registered method (``sorted(SOLVERS)``), optionally with ``@PRESET``.
        denoiser: the frozen eps_theta (ignored by methods without a diffusion prior: pinv, dip,
            selfdeblur).
        config: a whole settings object of the method's config class (``settings`` then replace
            single fields of it).
        device / dtype: where and in what precision the solver works (default: the denoiser's
            device, float32).
        **settings: the method's settings (:func:`method_settings`).

    Raises:
        ShredError: unknown method or setting, or an invalid value.
    """
    base, implied = split_method(name)
    if "preset" in implied and "preset" in settings and settings["preset"] != implied["preset"]:
        raise ShredError(f"{name}: the name says preset {implied['preset']!r} but preset={settings['preset']!r} was given")
    settings = {**settings, **implied}
    check_settings(base, settings)
    cls = SOLVERS[base]
    if config is not None:
        if cls.config_class is None or not isinstance(config, cls.config_class):
            want = cls.config_class.__name__ if cls.config_class else "no config"
            raise ShredError(f"{name} takes {want}, got {type(config).__name__}")
        settings["config"] = config
    return cls(denoiser, device=device, dtype=dtype, **settings)


def why_not(name: str, operator) -> str | None:
    """None when method ``name`` can restore measurements of ``operator``, else the reason."""
    return SOLVERS[split_method(name)[0]].unsupported(operator)


def is_blind(name: str) -> bool:
    """Whether the method estimates the blur itself (it runs on the blind tasks, and only there)."""
    return SOLVERS[split_method(name)[0]].blind
