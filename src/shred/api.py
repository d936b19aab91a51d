"""The Python API under the CLI: degrade an image, restore it, and the spec file in between.

>>> import shred
>>> den = shred.load_model("cifar10-32")
>>> x = shred.read_image("cat.png")                         # [1, 3, 32, 32] in [0, 1]
>>> y, op = shred.degrade(x, "sr", shred.TaskOptions(scale=4), seed=0)
>>> res = shred.restore(y, op, den, task="sr", seeds=[0])  # res.x0: [1, 3, 32, 32] in [0, 1]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ._version import __version__
from .errors import ShredError
from .seeding import generator
from .models import Denoiser
from .operators import Operator, TaskOptions, build_task, operator_from_spec
from .solvers import DEFAULT_PRESET, Result

SPEC_VERSION = 1


def degrade(x: torch.Tensor, task: str, options: TaskOptions | None = None, *,
            seed: int | None = 0) -> tuple[torch.Tensor, Operator]:
    """Degrade clean images x ([B, C, H, W] in [0, 1]) with a task; returns (y, operator).

    ``seed`` drives everything random (compressed-sensing masks, random kernels, noise).
    """
    g = generator(seed)
    op = build_task(task, tuple(x.shape[1:]), options, generator=g)
    with torch.no_grad():
        y = op.degrade(x.to(torch.float64), generator=g).to(x.dtype)
    return y, op


@dataclass(frozen=True)
class Restorer:
    """A SHRED solver ready to run, and the choices that made it.

    ``solver(y, operator, seeds=..., progress=...)`` returns a :class:`shred.solvers.Result`;
    ``config`` is its :class:`shred.solvers.ShredConfig`, ``preset`` the preset name ``"auto"``
    resolved to, ``run`` the :class:`shred.models.RunOptions` the network executes with.
    """

    solver: Any
    config: Any
    preset: str
    run: Any

    @property
    def blind(self) -> bool:
        """Whether the solver estimates the blur kernel too (the blind tasks)."""
        from .solvers import BlindShred

        return isinstance(self.solver, BlindShred)


def make_restorer(denoiser: Denoiser, task: str | None = None, *, preset: str = DEFAULT_PRESET,
                  device: str | torch.device | None = None, run: Any = "auto", images: int = 1,
                  **settings) -> Restorer:
    """Build the SHRED solver for a task (``shred-blind`` for the blind tasks) through
    :func:`shred.solvers.build_solver`.

    The settings are the preset's for the task's group (``"auto"``: ``bundled`` for the bundled
    models, ``authors-code`` otherwise) with ``settings`` (:class:`shred.solvers.ShredConfig`
    fields, and for blind tasks :class:`shred.solvers.BlindConfig` fields such as ``kernel_lr``;
    None keeps the preset's) on top. The denoiser moves to ``device`` when one is given; ``run``
    (see :func:`restore`) is resolved for a batch of ``images`` restorations. Unknown presets or
    settings and out-of-range values raise :class:`ShredError`.
    """
    from .models.fast import accelerate, run_options
    from .solvers import build_solver, shred_method

    method = shred_method(task)
    settings = {k: v for k, v in settings.items() if v is not None}
    if method != "shred-blind" and "kernel_lr" in settings:
        raise ShredError("a kernel learning rate needs a blind task (blind-deblur or blind-deblur-sv): "
                         "other tasks know their kernel")
    if device is not None:
        from .models.fast import resolve_device

        device = resolve_device(str(device))  # cuda without a GPU, or a typo: one line, before any work
        denoiser = denoiser.to(device)
    solver = build_solver(method, denoiser, preset=preset, task=task, device=device, **settings)
    options = run_options(run, solver.device, grad=solver.config.grad, images=images,
                          iterations=solver.config.iterations)
    # The same eps_theta, executed with these options (reduced precision, compiled, ...).
    solver.denoiser = accelerate(denoiser, options)
    return Restorer(solver, solver.config, solver.preset, options)


def restore(y: torch.Tensor, operator: Operator, denoiser: Denoiser, *, task: str | None = None,
            preset: str = DEFAULT_PRESET, seeds: Sequence[int | None] = (0,), progress: bool = False,
            device: str | torch.device | None = None, run: Any = "auto", **overrides) -> Result:
    """Restore measurements y ([B, C', H', W'] in [0, 1]) with SHRED.

    The settings are the preset's for the task's group (``"auto"``: ``bundled`` for the bundled
    models, ``authors-code`` otherwise), with ``overrides`` (any
    :class:`shred.solvers.ShredConfig` field) on top. Returns a :class:`shred.solvers.Result`
    whose ``x0`` is [len(seeds) or B, C, H, W] in [0, 1]. Blind tasks (``blind-deblur``,
    ``blind-deblur-sv``) estimate the blur too: ``result.extras["kernel"]``.

    ``run`` says how the network executes (:func:`shred.models.fast.run_options`): ``"auto"``
    (bf16 + channels-last on a GPU, compiled for runs of 800+ image-iterations; float32 NCHW
    eager on a CPU), ``"plain"`` (float32, eager: the reference path), a
    :class:`shred.models.RunOptions`, or a dict of its fields overriding the automatic choice.
    """
    images = max(len(seeds) if seeds is not None else 0, y.shape[0])  # the batch SHRED will run
    restorer = make_restorer(denoiser, task, preset=preset, device=device, run=run, images=images, **overrides)
    return restorer.solver(y, operator, seeds=seeds, progress=progress)


def make_spec(operator: Operator, *, task: str | None = None, options: TaskOptions | None = None,
              seed: int | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record that lets a degraded image be restored with the very same operator."""
    return {"shred_spec": SPEC_VERSION, "created_by": f"shred {__version__}", "task": task,
            "task_options": options.to_dict() if options else None, "seed": seed,
            "image_shape": list(operator.in_shape), "measurement_shape": list(operator.out_shape),
            "operator": operator.spec(), **(extra or {})}


def read_spec(path: str | Path) -> tuple[Operator, dict[str, Any]]:
    """Rebuild the operator of a spec file; returns (operator, the whole spec)."""
    path = Path(path)
    if not path.is_file():
        raise ShredError(f"{path}: no such spec file")
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShredError(f"{path}: not a JSON spec ({exc})") from None
    if not isinstance(spec, dict) or "shred_spec" not in spec or "operator" not in spec:
        raise ShredError(f"{path}: not a shred spec (written by `shred-ir degrade`)")
    if spec["shred_spec"] > SPEC_VERSION:
        raise ShredError(f"{path}: spec version {spec['shred_spec']} is newer than this shred reads; upgrade shred")
    return operator_from_spec(spec["operator"]), spec
