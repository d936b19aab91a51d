"""The Python API under the CLI: degrade an image, restore it, and the spec file in between.

>>> import shred
>>> den = shred.load_model("cifar10-32")
>>> x = shred.read_image("cat.png")                         # [1, 3, 32, 32] in [0, 1]
>>> y, op = shred.degrade(x, "sr", shred.TaskOptions(scale=4), seed=0)
>>> res = shred.restore(y, op, den, task="sr", seeds=[0])  # res.x0: [1, 3, 32, 32] in [0, 1]
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ._version import __version__
from .errors import ShredError
from .config import _Invalid
from .seeding import check_seed, generator
from .models import Denoiser
from .operators import TASKS, Operator, TaskOptions, build_task, operator_from_spec
from .operators.base import check_operator_spec, image_shape
from .sizes import solve
from .solvers import DEFAULT_PRESET, Result

SPEC_VERSION = 1

# How far beyond [0, 1] a measurement may reach before it is taken for another value range:
# bicubic down-sampling overshoots by up to about 0.1, and noise of unknown level (an operator
# without sigma_y) by a few of its standard deviations. A measurement in the model's [-1, 1]
# reaches -1 wherever the image is dark, one in 8-bit units reaches 255.
RANGE_SLACK = 0.5


# Clean images may overshoot [0, 1] a little (a sampler's output, a resampled image) but not reach
# the models' -1 or 8-bit values.
CLEAN_SLACK = 0.05


def _range_hint(lo: float, hi: float) -> str:
    if hi > 2:
        return "it looks like 8-bit values: divide by 255"
    if lo < -0.5:
        return "it looks like the models' [-1, 1]: pass (y + 1) / 2"
    return "rescale it to [0, 1]"


def check_image_range(x: torch.Tensor, what: str = "the image", slack: float = 1e-3) -> None:
    """Raise :class:`ShredError` when ``x`` holds NaN or infinite values, or values beyond
    [-slack, 1 + slack]: shred's images are in [0, 1] (as :func:`shred.read_image` gives them)."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ShredError(f"{what} must be a floating-point tensor in [0, 1], got "
                         f"{x.dtype if torch.is_tensor(x) else type(x).__name__}")
    if x.numel() == 0:
        raise ShredError(f"{what} is empty (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        raise ShredError(f"{what} contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -slack or hi > 1 + slack:
        raise ShredError(f"{what} spans [{lo:.3g}, {hi:.3g}] but shred's images are in [0, 1]"
                         + (f" (give or take {slack:.2g} for noise)" if slack >= 0.01 else "")
                         + f"; {_range_hint(lo, hi)}")


def check_measurement_range(y: torch.Tensor, operator: Operator) -> None:
    """Raise :class:`ShredError` when a measurement is not in [0, 1] up to what noise and
    bicubic overshoot explain: :data:`RANGE_SLACK` plus 5 sigma_y of the operator's noise."""
    check_image_range(y, "the measurement", RANGE_SLACK + 5 * operator.sigma_y)


def degrade(x: torch.Tensor, task: str, options: TaskOptions | None = None, *,
            seed: int | None = 0) -> tuple[torch.Tensor, Operator]:
    """Degrade clean images x ([B, C, H, W] in [0, 1]) with a task; returns (y, operator).

    ``seed`` drives everything random (compressed-sensing masks, random kernels, noise): an
    integer in [0, 2^63 - 1], or None for fresh entropy. Images beyond [0, 1] by more than
    :data:`CLEAN_SLACK` (the models' [-1, 1], 8-bit values) and seeds out of range raise
    :class:`ShredError`.
    """
    check_image_range(x, "the clean image", CLEAN_SLACK)
    if x.dim() != 4:
        raise ShredError(f"images are [B, C, H, W], got shape {tuple(x.shape)}")
    g = generator(seed)
    op = build_task(task, tuple(x.shape[1:]), options, generator=g)
    with torch.no_grad():
        y = op.degrade(x.to(torch.float64), generator=g).to(x.dtype)
    return y, op


@dataclass(frozen=True)
class Restorer:
    """A SHRED solver ready to run, and the choices that made it.

    ``solver(y, operator, seeds=..., progress=...)`` returns a :class:`shred.solvers.Result`
    for an operator of a size the network takes (:meth:`restore` does the same for any size, with
    running out of memory as a one-line error);
    ``config`` is the :class:`shred.solvers.ShredConfig` it runs (for blind SHRED+'s kernel
    search, the deblurring settings under the chosen blur), ``preset`` the preset name ``"auto"``
    resolved to, ``run`` the :class:`shred.models.RunOptions` the network executes with,
    ``denoiser`` the network as loaded.
    """

    solver: Any
    config: Any
    preset: str
    run: Any
    denoiser: Any = None

    def restore(self, y: torch.Tensor, operator: Operator, *, seeds: Sequence[int | None] | None = (0,),
                progress: bool = False) -> Result:
        """``solver(y, operator, seeds=seeds, progress=progress)`` at the operator's image size
        (:func:`shred.sizes.solve`: on the canvas the network takes, cropped back); an allocation
        failure becomes a :class:`ShredError` saying how much the batch needs and what to change."""
        from .models.memory import out_of_memory_as_error

        images = max(len(seeds) if seeds is not None else 0, y.shape[0])
        with out_of_memory_as_error(self.denoiser or self.solver.denoiser, images, self.solver.device,
                                    precision=self.run.precision, grad=self.config.grad,
                                    calls=len(self.solver.pairs), size=tuple(operator.in_shape[-2:])):
            return solve(self.solver, y, operator, seeds=seeds, progress=progress)

    @property
    def blind(self) -> bool:
        """Whether the solver estimates the blur kernel too (the blind tasks)."""
        from .solvers import BlindShred

        return isinstance(self.solver, BlindShred)


def unused_settings(solver, given: dict, task: str | None = None) -> list[str]:
    """One-line notes on the warm-start and finish settings in ``given`` (those the caller passed)
    that ``solver`` does not use: a warm start's settings without ``init="warm"``, the ``"ddnm"``
    finish's without that finish, and on a blind task ``warm_from`` (its warm start inverts y) and
    the ``"consistency"`` finish (it needs the blur, which is estimated), unless the blur is
    searched (``kernel_estimate``), which restores under the chosen blur as under a known one."""
    from .solvers import BlindShred

    def nothing_without(keys, needed, instead):
        return f"{' and '.join(keys)} do{'es' if len(keys) == 1 else ''} nothing without {needed} ({instead})"

    c, blind, notes = solver.config, isinstance(solver, BlindShred), []
    if blind:
        network_only = [k for k in ("kernel_lr", "kernel_steps") if k in given]
        search_only = [k for k in ("search_widths", "search_steps", "search_sigma", "restore_sigma") if k in given]
        if solver.searches(task):
            # The kernel search restores under the chosen blur with these settings, used as on a
            # known blur; the kernel network's own settings are not.
            c, blind = solver.search_config, False
            if network_only:
                notes.append(f"{' and '.join(network_only)} do{'es' if len(network_only) == 1 else ''} nothing with "
                             "the kernel search (kernel_estimate='network' uses the kernel network)")
        elif search_only:
            notes.append(f"{' and '.join(search_only)} do{'es' if len(search_only) == 1 else ''} nothing with the "
                         "kernel network (the kernel search, kernel_estimate='search', uses them)")
    warm = [k for k in ("warm_from", "warm_strength") if k in given and not (blind and k == "warm_from")]
    if warm and c.init != "warm":
        notes.append(nothing_without(warm, "init='warm'", f"this run starts from {c.init}"))
    finish = [k for k in ("finish_t", "finish_steps") if k in given]
    if finish and c.finish != "ddnm":
        notes.append(nothing_without(finish, "finish='ddnm'", f"this run's finish: {c.finish}"))
    if blind and "warm_from" in given:
        notes.append("warm_from does nothing on a blind task: its warm start inverts the blurred image itself "
                     "(the blur is unknown)")
    if blind and given.get("finish_noise") == "tikhonov":
        notes.append("finish_noise='tikhonov' does nothing on a blind task: the Tikhonov step needs the blur, "
                     "which is estimated")
    if blind and given.get("finish") == "consistency":
        notes.append("finish='consistency' does nothing on a blind task: it needs the blur, which is estimated "
                     "(finish='ddnm' uses the estimate)")
    return notes


def make_restorer(denoiser: Denoiser, task: str | None = None, *, preset: str = DEFAULT_PRESET,
                  device: str | torch.device | None = None, run: Any = "auto", images: int = 1,
                  tile: int | str | None = "auto", tile_overlap: int | None = None, **settings) -> Restorer:
    """Build the SHRED solver for a task (``shred-blind`` for the blind tasks) through
    :func:`shred.solvers.build_solver`.

    The settings are the preset's for the task's group (``"auto"``: ``plus`` for the bundled
    models, ``authors-code`` otherwise) with ``settings`` (:class:`shred.solvers.ShredConfig`
    fields, and for blind tasks :class:`shred.solvers.BlindConfig` fields such as ``kernel_lr``,
    ``kernel_steps`` and ``kernel_estimate``; None keeps the preset's) on top. The denoiser moves
    to ``device`` when one is given; ``run`` (see :func:`restore`) is resolved for a batch of ``images`` restorations.
    Unknown presets or settings and out-of-range values raise :class:`ShredError`, and so does a
    batch of ``images`` that clearly does not fit in the device's free memory at the network's
    training size (:func:`shred.models.memory.check_memory`). Warm-start and finish settings the
    run does not use are said in one warning line each (:func:`unused_settings`).

    ``tile`` says when the network runs on overlapping tiles (:class:`shred.models.tiles.TiledDenoiser`):
    ``"auto"`` for images larger than the free memory of the device allows for ``images`` images
    (:func:`shred.models.tiles.whole_image_pixels`), tiles of the training size; an integer N for
    every image larger than N x N, tiles of N; ``"none"`` or None never. ``tile_overlap``: the
    pixels neighbouring tiles share (default a quarter of the tile).
    """
    from .models.fast import accelerate, run_options
    from .models.memory import check_memory
    from .solvers import build_solver, shred_method

    method = shred_method(task)
    settings = {k: v for k, v in settings.items() if v is not None}
    for name, what in (("kernel_lr", "a kernel learning rate needs"), ("kernel_steps", "kernel steps need"),
                       ("kernel_estimate", "a kernel estimate needs")):
        if method != "shred-blind" and name in settings:
            raise ShredError(f"{what} a blind task (blind-deblur or blind-deblur-sv): other tasks know their kernel")
    if device is not None:
        from .models.fast import resolve_device

        device = resolve_device(str(device))  # cuda without a GPU, or a typo: one line, before any work
        denoiser = denoiser.to(device)
    solver = build_solver(method, denoiser, preset=preset, task=task, device=device, **settings)
    from .errors import SettingsWarning

    for note in unused_settings(solver, settings, task):
        warnings.warn(note, SettingsWarning, stacklevel=2)
    used = solver.run_config(task) if hasattr(solver, "run_config") else solver.config
    options = run_options(run, solver.device, grad=used.grad, images=images, iterations=used.iterations)
    check_memory(denoiser, images, solver.device, precision=options.precision, grad=used.grad,
                 calls=len(solver.pairs))
    # The same eps_theta, executed with these options (reduced precision, compiled, ...).
    solver.denoiser = accelerate(denoiser, options)
    if tile not in (None, "none") and denoiser.size_multiple is not None:
        from .models.tiles import TiledDenoiser, whole_image_pixels

        if tile == "auto":
            grad = solver.config.grad
            # Evaluated when the first image larger than a tile arrives; unknown free memory: no tiles.
            budget = lambda: whole_image_pixels(denoiser, solver.device, grad, images) or float("inf")  # noqa: E731
            solver.denoiser = TiledDenoiser(solver.denoiser, overlap=tile_overlap, max_pixels=budget)
        else:
            solver.denoiser = TiledDenoiser(solver.denoiser, int(tile), tile_overlap)
    return Restorer(solver, used, solver.preset, options, denoiser)


def restore(y: torch.Tensor, operator: Operator, denoiser: Denoiser, *, task: str | None = None,
            preset: str = DEFAULT_PRESET, seeds: Sequence[int | None] = (0,), progress: bool = False,
            device: str | torch.device | None = None, run: Any = "auto", **overrides) -> Result:
    """Restore measurements y ([B, C', H', W'] in [0, 1]) with SHRED.

    The settings are the preset's for the task's group (``"auto"``: ``plus`` for the bundled
    models, ``authors-code`` otherwise), with ``overrides`` (any
    :class:`shred.solvers.ShredConfig` field) on top. Returns a :class:`shred.solvers.Result`
    whose ``x0`` is [len(seeds) or B, C, H, W] in [0, 1]. Blind tasks (``blind-deblur``,
    ``blind-deblur-sv``) estimate the blur too: ``result.extras["kernel"]`` ([B, kh, kw], or
    [B, gh, gw, kh, kw] for a grid of kernels; each non-negative and summing to 1), and, where
    SHRED+ searched it, ``result.extras["kernel_sigma"]`` (the chosen Gaussian's standard deviation
    in pixels, [B]; chosen per restoration, so several seeds of one image may choose differently).

    ``run`` says how the network executes (:func:`shred.models.fast.run_options`): ``"auto"``
    (bf16 + channels-last on a GPU, compiled for runs of 800+ image-iterations; float32 NCHW
    eager on a CPU), ``"plain"`` (float32, eager: the reference path), a
    :class:`shred.models.RunOptions`, or a dict of its fields overriding the automatic choice.

    A measurement beyond [0, 1] by more than noise explains (:func:`check_measurement_range`:
    the models' [-1, 1], 8-bit values) raises :class:`ShredError` naming its range.

    ``y`` is taken as exact up to ``operator.sigma_y``. A y read from an 8-bit file was rounded:
    pass ``shred.operators.with_rounding(operator, shred.operators.counted_rounding(operator, 256))``
    (what :func:`shred.restoration.load_measurement` and ``shred-ir restore`` do), or SHRED+'s
    deblurring loses about 3 dB to the amplified rounding (16 training images of
    bench/quantized_y.py: 23.42 dB undeclared, 26.53 declared, 26.57 with float32 y).
    """
    check_measurement_range(y, operator)
    images = max(len(seeds) if seeds is not None else 0, y.shape[0])  # the batch SHRED will run
    restorer = make_restorer(denoiser, task, preset=preset, device=device, run=run, images=images, **overrides)
    return restorer.restore(y, operator, seeds=seeds, progress=progress)


def make_spec(operator: Operator, *, task: str | None = None, options: TaskOptions | None = None,
              seed: int | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record that lets a degraded image be restored with the very same operator."""
    return {"shred_spec": SPEC_VERSION, "created_by": f"shred {__version__}", "task": task,
            "task_options": options.to_dict() if options else None, "seed": seed,
            "image_shape": list(operator.in_shape), "measurement_shape": list(operator.out_shape),
            "operator": operator.spec(), **(extra or {})}


def _spec_error(source: str, message: str) -> ShredError:
    return ShredError(f"{source}: {message}; degrade again, or fix the field")


def check_spec(spec: Any, source: str = "spec") -> dict[str, Any]:
    """Check a spec (:func:`make_spec`) as a schema before anything is built: its version, its
    operator (:func:`shred.operators.base.check_operator_spec`, nested operators included), and
    the types of the fields a restoration reads (task, task options, seed, model, shapes).

    Returns the spec; raises :class:`ShredError` naming ``source`` and the field
    (``y.json: operator.in_shape is missing; degrade again, or fix the field``)."""
    if not isinstance(spec, dict) or "shred_spec" not in spec or "operator" not in spec:
        raise ShredError(f"{source}: not a shred spec (written by `shred-ir degrade`)")
    version = spec["shred_spec"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _spec_error(source, f"shred_spec must be a positive integer (the spec version), got {version!r}")
    if version > SPEC_VERSION:
        raise ShredError(f"{source}: spec version {version} is newer than this shred reads; upgrade shred")
    try:
        check_operator_spec(spec["operator"], "operator")
    except ShredError as exc:
        raise _spec_error(source, str(exc)) from None
    except RecursionError:
        raise _spec_error(source, "operator is nested too deeply") from None
    task = spec.get("task")
    if task is not None and (not isinstance(task, str) or not all(p.strip() in TASKS for p in task.split("+"))):
        raise _spec_error(source, f"task must be null or a task ({', '.join(TASKS)}, chained with +), "
                                  f"got {repr(task)[:40]}")
    if spec.get("task_options") is not None:
        try:
            TaskOptions.from_dict(spec["task_options"])
        except ShredError as exc:
            raise _spec_error(source, f"task_options: {exc}") from None
    for key in ("model", "created_by", "measurement", "clean"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise _spec_error(source, f"{key} must be null or a string, got {repr(spec[key])[:40]}")
    if spec.get("seed") is not None:
        try:
            check_seed(spec["seed"])
        except ShredError as exc:
            raise _spec_error(source, f"seed: {exc}") from None
    levels = spec.get("measurement_levels")
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 2 ** 32):
        raise _spec_error(source, f"measurement_levels must be null or an integer in 2 .. 2^32 (the levels of the "
                                  f"file the measurement was read from), got {repr(levels)[:40]}")
    for key in ("image_shape", "measurement_shape"):
        if spec.get(key) is not None:
            try:
                image_shape(spec[key])
            except _Invalid as exc:
                raise _spec_error(source, f"{key} must be {exc}, got {repr(spec[key])[:40]}") from None
    if spec.get("image_shape") is not None and list(spec["image_shape"]) != list(spec["operator"]["in_shape"]):
        raise _spec_error(source, f"image_shape {spec['image_shape']} differs from operator.in_shape "
                                  f"{spec['operator']['in_shape']}")
    return spec


def load_spec(path: str | Path) -> dict[str, Any]:
    """A spec file read and checked (:func:`check_spec`), its operator not built yet."""
    path = Path(path)
    if not path.is_file():
        raise ShredError(f"{path}: no such spec file")
    try:
        spec = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ShredError(f"{path}: not a JSON spec ({str(exc)[:160]})") from None
    except RecursionError:
        raise ShredError(f"{path}: not a JSON spec (nested too deeply)") from None
    return check_spec(spec, path.name)


def spec_operator(spec: dict[str, Any], source: str = "spec") -> Operator:
    """Build the operator of a checked spec (:func:`check_spec`); a ShredError names ``source``
    when it describes an impossible operator or its measurement_shape is not what it makes."""
    try:
        op = operator_from_spec(spec["operator"])
    except ShredError as exc:
        raise _spec_error(source, str(exc)) from None
    if spec.get("measurement_shape") is not None and list(spec["measurement_shape"]) != list(op.out_shape):
        raise _spec_error(source, f"measurement_shape {spec['measurement_shape']} differs from what its "
                                  f"operator makes, {list(op.out_shape)}")
    return op


def read_spec(path: str | Path) -> tuple[Operator, dict[str, Any]]:
    """Rebuild the operator of a spec file; returns (operator, the whole spec). The whole spec is
    checked first (:func:`check_spec`); every problem is a :class:`ShredError` naming the field."""
    spec = load_spec(path)
    return spec_operator(spec, Path(path).name), spec
