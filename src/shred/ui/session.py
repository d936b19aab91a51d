"""What the browser page does, as calls to shred's Python API, without gradio.

The page (:mod:`shred.ui.app`) only turns its widgets into a :class:`PageRequest` and shows the
:class:`Outcome`; everything in between is here, so it can be tested without a browser or a server,
and it holds no restoration logic of its own: the operator comes from the task registry
(:func:`shred.build_task` / :func:`shred.degrade`), the restoration from :func:`shred.restore`, the
report from :mod:`shred.report`, the spec from :func:`shred.make_spec`.

Images are float32 tensors [1, C, H, W] in [0, 1], as everywhere in shred. Masks are float64
[H, W] of 0/1 with 1 = kept (:mod:`shred.operators.masks`). Every problem the user can cause raises
:class:`shred.errors.ShredError` with a one-line message.
"""
from __future__ import annotations

import contextlib
import dataclasses
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import ShredError
from ..operators import TASKS, TaskOptions

MODES = ("degrade", "restore")
MODE_LABELS = {"degrade": "Degrade a clean image first, then restore it (try a task)",
               "restore": "Restore a measurement (an image already degraded)"}
# File names of the downloads; the spec names the measurement file so that
# `shred-ir restore measurement.npy --spec spec.json` restores the very same problem.
RESTORED_PNG, GRID_PNG, SPEC_JSON, MEASUREMENT_NPY, MASK_PNG = (
    "restored.png", "grid.png", "spec.json", "measurement.npy", "mask.png")


@dataclass(frozen=True)
class PageRequest:
    """What the page holds when Run is pressed, in shred's terms.

    Attributes:
        mode: ``"degrade"`` (``image`` is clean: degrade it with the task, then restore) or
            ``"restore"`` (``image`` is the measurement).
        image: image file (PNG/JPEG, or .npy in [0, 1]).
        strokes: brush layers painted on the image (RGBA images of the image's size); a pixel
            with alpha > 0 in any of them is part of the hole.
        mask_file: a mask file (PNG white = kept, .npy non-zero = kept) for ``inpaint-mask``;
            with strokes too, the hole is the union of both.
        clean_file: ground truth in ``restore`` mode, for PSNR/SSIM (``degrade`` mode knows it).
        task: a registered task or a chain (``colorize+sr``).
        options: the task's options; ``options.mask`` is ignored (the mask comes from
            ``mask_file`` and ``strokes``).
        preset, iterations, lr: the SHRED settings (None: the preset's).
        seeds: one restoration per seed.
        degrade_seed: seed of random masks, kernels and measurement noise.
        resize: centre-crop and resample (bicubic) an image of the wrong size, as the CLI's
            ``--resize``; without it a wrong size is an error, never a silent crop.
    """

    mode: str
    image: str | None
    strokes: tuple[str, ...] = ()
    mask_file: str | None = None
    clean_file: str | None = None
    task: str = "sr"
    options: TaskOptions = field(default_factory=TaskOptions)
    preset: str = "auto"
    iterations: int | None = None
    lr: float | None = None
    seeds: tuple[int, ...] = (0,)
    degrade_seed: int = 0
    resize: bool = False


@dataclass
class Problem:
    """A restoration problem ready to run: y = A(x) (+ noise) with A from the task registry.

    Attributes:
        y: measurement [1, C', H', W'] in [0, 1].
        operator: the operator (``operator.in_shape`` is the model's (C, H, W)).
        options: the task options as run (``mask`` points at the mask file written, if any).
        clean: ground truth [1, C, H, W] in [0, 1], or None.
        mask: the inpainting mask [H, W] (1 = kept) of ``inpaint-mask``, or None.
        levels: the levels the measurement file stored its values at (256 for 8 bits: its rounding
            is in the operator's noise, :func:`shred.io.stored_levels`), or None.
    """

    y: torch.Tensor
    operator: object
    options: TaskOptions
    clean: torch.Tensor | None
    mask: torch.Tensor | None
    levels: int | None = None


@dataclass
class Outcome:
    """What a run shows and offers for download.

    Attributes:
        gallery: (image [1, C, H, W] in [0, 1], caption) pairs: the clean image when known, the
            measurement, one restoration per seed, and for several seeds the mean and the
            uncertainty map (per-pixel std over the seeds, scaled so that its maximum is white).
        restored: the first seed's restoration [1, C, H, W] in [0, 1].
        rows: :func:`shred.report.seed_rows` (PSNR/SSIM when a clean image is known).
        summary: :func:`shred.report.run_summary`, plus ``mean_image_psnr`` / ``mean_image_ssim``
            for several seeds with a clean image, and ``max_std``.
        files: download name -> path (restored.png, grid.png, spec.json, measurement.npy).
        command: the ``shred-ir restore`` command that restores the same problem from the files.
    """

    gallery: list[tuple[torch.Tensor, str]]
    restored: torch.Tensor
    rows: list[dict]
    summary: dict
    files: dict[str, Path]
    command: str


class Stopped(ShredError):
    """The user pressed Stop; the run ended without a result."""


@contextlib.contextmanager
def stop_when(denoiser: torch.nn.Module, event: threading.Event) -> Iterator[None]:
    """Within the block, the next network evaluation after ``event`` is set raises :class:`Stopped`.

    SHRED calls the network K times per iteration (K = T / delta_t DDIM steps), so a run stops
    within one network evaluation; the hook is removed on leaving the block."""
    def check(module, args):
        if event.is_set():
            raise Stopped("stopped by the user; nothing was restored")

    handle = denoiser.register_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()


# --- masks ---------------------------------------------------------------------------------------
def stroke_mask(strokes: Sequence[str], size: tuple[int, int]) -> torch.Tensor | None:
    """The mask [H, W] (1 = kept, 0 = painted) of brush layers, or None when nothing is painted.

    Raises ShredError when a layer is not of the image's size ``(H, W)``."""
    from ..io import read_image_and_alpha

    hole = np.zeros(size, dtype=bool)
    for path in strokes:
        try:
            layer, alpha = read_image_and_alpha(path)
        except ShredError as exc:
            raise ShredError(f"cannot read the brush layer ({exc})") from None
        # A layer without alpha is opaque: all of it painted.
        alpha = np.ones(layer.shape[-2:]) if alpha is None else alpha.numpy()
        if alpha.shape != tuple(size):
            raise ShredError(f"the brush layer is {alpha.shape[0]}x{alpha.shape[1]} but the image is "
                             f"{size[0]}x{size[1]}; paint on the image itself")
        hole |= alpha > 0
    return torch.as_tensor(~hole, dtype=torch.float64) if hole.any() else None


def page_mask(request: PageRequest, size: tuple[int, int]) -> tuple[torch.Tensor | None, str]:
    """The inpainting mask [H, W] (1 = kept) of ``request`` for an image of ``size``, and where it
    came from (``"brush"``, ``"file"``, ``"file + brush"``, or ``""`` for none)."""
    from ..operators import load_mask

    painted = stroke_mask(request.strokes, size)
    from_file = load_mask(request.mask_file) if request.mask_file else None
    if from_file is not None and painted is not None:
        if tuple(from_file.shape) != tuple(size):
            raise ShredError(f"the mask file is {from_file.shape[0]}x{from_file.shape[1]} but the image is "
                             f"{size[0]}x{size[1]}; use a mask of the image's size")
        return from_file * painted, "file + brush"
    if from_file is not None:
        return from_file, "file"
    return painted, "brush" if painted is not None else ""


def _uses_mask(task: str) -> bool:
    return any(part.strip() == "inpaint-mask" for part in task.split("+"))


# --- the problem -----------------------------------------------------------------------------------
def _fit(x: torch.Tensor, size: tuple[int, int], resize: bool, what: str, why: str) -> torch.Tensor:
    """``x`` at ``size``: unchanged, resampled (``resize``), or a ShredError naming the sizes."""
    from ..io import resize as resample

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if not resize:
        raise ShredError(f"{what} is {x.shape[-2]}x{x.shape[-1]} but {why} needs {size[0]}x{size[1]}; "
                         "tick 'Resize' to centre-crop and resample it (bicubic), or use an image of that size")
    return resample(x, size)


def _fit_mask(mask: torch.Tensor, size: tuple[int, int], resize: bool) -> torch.Tensor:
    from ..io import resize as resample

    if tuple(mask.shape) == tuple(size) or not resize:
        return mask
    return (resample(mask[None, None].float(), size)[0, 0] > 0.5).double()


def measurement_shape(task: str, options: TaskOptions, denoiser, degrade_seed: int = 0) -> tuple[int, int, int]:
    """(C', H', W') of ``task``'s measurement of the denoiser's (C, H, W) images, from the task
    registry. ``inpaint-mask`` alone keeps the image's shape even before its mask exists."""
    from ..operators import build_task
    from ..seeding import generator

    shape = (denoiser.channels, *denoiser.image_size)
    if task.strip() == "inpaint-mask" and not options.mask:
        return shape
    op = build_task(task, shape, options, generator=generator(degrade_seed))
    return tuple(op.out_shape)


def prepare(request: PageRequest, denoiser, workdir: Path) -> Problem:
    """Read the request's files and build its problem; writes the mask of ``inpaint-mask`` to
    ``workdir/mask.png`` (the task reads masks from files)."""
    from ..api import degrade
    from ..io import read_image, stored_levels
    from ..operators import build_task, counted_rounding, with_rounding
    from ..seeding import generator

    if request.mode not in MODES:
        raise ShredError(f"unknown mode {request.mode!r}; choose {' or '.join(MODES)}")
    if not request.image:
        raise ShredError("give an image: upload one, drop one on the editor, or pick the sample")
    task = (request.task or "").strip()
    if not task:
        raise ShredError("choose a task")
    model_shape = (denoiser.channels, *denoiser.image_size)
    opts = dataclasses.replace(request.options, mask=None)
    raw = read_image(request.image)
    mask = None
    if _uses_mask(task):
        mask, _ = page_mask(request, tuple(raw.shape[-2:]))
        if mask is None:
            raise ShredError("inpaint-mask needs a hole: paint it with the brush on the image, or upload a mask file")
        if bool((mask == 1).all()):
            raise ShredError("the mask hides no pixel: paint the hole with the brush (or use a mask with black pixels)")
    if request.mode == "degrade":
        x = read_image(request.image, channels=denoiser.channels)
        x = _fit(x, denoiser.image_size, request.resize, "the clean image", f"model {denoiser.name}")
        if mask is not None:
            mask = _fit_mask(mask, denoiser.image_size, request.resize)
            opts = _with_mask_file(opts, mask, workdir)
        y, op = degrade(x, task, opts, seed=request.degrade_seed)
        return Problem(y=y, operator=op, options=opts, clean=x, mask=mask)
    # Restore a measurement: the operator is built for the model's image shape, and the measurement
    # must have the shape that operator produces (the size policy of `shred-ir restore`).
    if mask is not None:
        mask = _fit_mask(mask, denoiser.image_size, request.resize)
        opts = _with_mask_file(opts, mask, workdir)
    op = build_task(task, model_shape, opts, generator=generator(request.degrade_seed))
    levels = stored_levels(request.image)  # an 8-bit file's rounding is noise too, for a blur (load_measurement)
    op = with_rounding(op, counted_rounding(op, levels))
    y = read_image(request.image, channels=op.out_shape[0])
    y = _fit(y, tuple(op.out_shape[1:]), request.resize, "the measurement",
             f"{task} on {denoiser.name} ({model_shape[1]}x{model_shape[2]})")
    clean = None
    if request.clean_file:
        clean = read_image(request.clean_file, channels=denoiser.channels)
        clean = _fit(clean, denoiser.image_size, request.resize, "the clean image", f"model {denoiser.name}")
    return Problem(y=y, operator=op, options=opts, clean=clean, mask=mask, levels=levels if op.rounding else None)


def _with_mask_file(opts: TaskOptions, mask: torch.Tensor, workdir: Path) -> TaskOptions:
    from ..io import write_image

    path = Path(workdir) / MASK_PNG
    write_image(path, mask[None, None].float())
    return dataclasses.replace(opts, mask=str(path))


# --- the run -------------------------------------------------------------------------------------
def restore_page(request: PageRequest, denoiser, workdir: str | Path, *, model_name: str,
                 device: str | torch.device | None = None, stop: threading.Event | None = None,
                 progress: bool = True) -> Outcome:
    """Run the request: prepare the problem, restore it with :func:`shred.restore`, write the
    downloads to ``workdir`` and return what the page shows.

    ``model_name`` is what the CLI's ``--model`` takes for this denoiser (written in the command).
    ``stop``: setting the event ends the run with :class:`Stopped` within one network evaluation.
    ``progress`` shows SHRED's tqdm bar (the page follows it with ``gr.Progress(track_tqdm=True)``).
    """
    from ..api import make_spec, restore
    from ..io import grid_bytes, image_bytes, json_bytes, write_all
    from ..models import MODELS
    from ..report import run_summary, seed_rows, spread_image
    from ..solvers.base import seed_spread
    from ..solvers import resolve_preset

    workdir = Path(workdir)
    problem = prepare(request, denoiser, workdir)
    seeds = list(request.seeds)
    preset = resolve_preset(request.preset, denoiser)
    with stop_when(denoiser, stop or threading.Event()):
        res = restore(problem.y, problem.operator, denoiser, task=request.task, preset=preset, seeds=seeds,
                      progress=progress, device=device, iterations=request.iterations, lr=request.lr)
    x0 = res.x0.float().cpu()
    y = problem.y.float().cpu()
    rows = seed_rows(res, problem.operator, y, clean=problem.clean)
    summary = run_summary(res, rows)

    gallery: list[tuple[torch.Tensor, str]] = []
    columns: list[tuple[str, torch.Tensor]] = []
    if problem.clean is not None:
        gallery.append((problem.clean, "clean"))
        columns.append(("clean", problem.clean))
    gallery.append((y, f"measurement ({request.task})"))
    columns.append(("input", y))
    for i, row in enumerate(rows):
        caption = f"seed {row['seed']}"
        if row.get("psnr") is not None:
            caption += f": {row['psnr']:.2f} dB"
        gallery.append((x0[i:i + 1], caption))
        columns.append((f"seed {row['seed']}", x0[i:i + 1]))
    if len(seeds) >= 2:
        mean, std = seed_spread(x0)
        shown, top = spread_image(std)
        summary["max_std"] = top
        caption = "mean"
        if problem.clean is not None:
            from ..metrics import psnr, ssim
            summary["mean_image_psnr"] = float(psnr(mean, problem.clean)[0])
            summary["mean_image_ssim"] = float(ssim(mean, problem.clean.float())[0])
            caption += f": {summary['mean_image_psnr']:.2f} dB"
        gallery += [(mean, caption), (shown, f"uncertainty (std over seeds, white = {top:.3f})")]
        columns += [("mean", mean), ("std", shown)]

    files = {RESTORED_PNG: workdir / RESTORED_PNG, GRID_PNG: workdir / GRID_PNG,
             SPEC_JSON: workdir / SPEC_JSON, MEASUREMENT_NPY: workdir / MEASUREMENT_NPY}
    recorded = problem.options
    if recorded.mask:
        recorded = dataclasses.replace(recorded, mask=MASK_PNG)  # the spec carries the mask itself
    registry_name = model_name if model_name in MODELS else None
    spec = make_spec(problem.operator, task=request.task, options=recorded, seed=request.degrade_seed,
                     extra={"measurement": MEASUREMENT_NPY, "model": registry_name,
                            # measurement.npy holds the values of a rounded file: its rounding stays noise.
                            **({"measurement_levels": problem.levels} if problem.levels else {}),
                            "restore_settings": {"preset": preset, "iterations": request.iterations,
                                                 "lr": request.lr, "seeds": seeds},
                            "created_with": "shred-ir ui"})
    write_all([(files[RESTORED_PNG], image_bytes(x0[:1], ".png")), (files[GRID_PNG], grid_bytes(columns, ".png")),
               (files[MEASUREMENT_NPY], image_bytes(y, ".npy")), (files[SPEC_JSON], json_bytes(spec))])  # all or none
    return Outcome(gallery=gallery, restored=x0[:1], rows=rows, summary=summary, files=files,
                   command=cli_command(request, model_name, preset))


def cli_command(request: PageRequest, model_name: str, preset: str) -> str:
    """The ``shred-ir restore`` command that restores the page's problem from its downloads."""
    seeds = list(request.seeds)
    parts = ["shred-ir", "restore", MEASUREMENT_NPY, "--spec", SPEC_JSON, "--model", model_name,
             "--preset", preset]
    if request.iterations is not None:
        parts += ["--iterations", str(request.iterations)]
    if request.lr is not None:
        parts += ["--lr", f"{request.lr:g}"]
    parts += ["--seed", str(seeds[0])] if len(seeds) == 1 else ["--seeds", ",".join(map(str, seeds))]
    parts += ["--out", RESTORED_PNG, "--grid", GRID_PNG]
    return " ".join(shlex.quote(p) for p in parts)


# --- what the page says before running ---------------------------------------------------------------
def describe(request: PageRequest, denoiser) -> str:
    """Markdown lines for the page: the sizes the model and task need (the size policy), and the
    kept fraction of the mask. Never raises: a problem is reported as a line."""
    from ..io import read_image

    c, h, w = denoiser.channels, *denoiser.image_size
    lines = [f"**Model** {denoiser.describe()}."]
    try:
        task = (request.task or "").strip()
        opts = dataclasses.replace(request.options, mask=None)
        size = None
        if request.image:
            size = tuple(read_image(request.image).shape[-2:])
        if request.mode == "degrade":
            lines.append(f"**Size.** The clean image must be {h}x{w}" + _yours(size, (h, w), request.resize) + ".")
        else:
            out = measurement_shape(task, opts, denoiser, request.degrade_seed)
            lines.append(f"**Size.** A {task} measurement for this model is {out[1]}x{out[2]}"
                         + _yours(size, out[1:], request.resize) + ".")
        if _uses_mask(task):
            mask, source = page_mask(request, size) if size else (None, "")
            if mask is None:
                lines.append("**Mask.** Paint the hole with the brush on the image, or upload a mask file.")
            else:
                kept = int(mask.sum())
                lines.append(f"**Mask** ({source}): keeps {kept} of {mask.numel()} pixels "
                             f"({100 * kept / mask.numel():.1f} %).")
        elif task:
            from ..operators import build_task
            from ..seeding import generator
            op = build_task(task, (c, h, w), opts, generator=generator(request.degrade_seed))
            m = op.measurement_weight()
            if m is not None:
                kept = int(m.sum())
                lines.append(f"**Mask** ({task}): keeps {kept} of {m.numel()} pixels ({100 * kept / m.numel():.1f} %).")
    except ShredError as exc:
        lines.append(f"**Problem:** {exc}")
    return "  \n".join(lines)


def _yours(size, want, resize: bool) -> str:
    if size is None:
        return ""
    if tuple(size) == tuple(want):
        return f" (yours is {size[0]}x{size[1]}: fine)"
    if resize:
        return f" (yours is {size[0]}x{size[1]}: it will be centre-cropped and resampled, as you ticked Resize)"
    return f" (yours is {size[0]}x{size[1]}: tick Resize to centre-crop and resample it, or it is refused)"


def task_choices() -> list[str]:
    """The tasks the page offers, from the registry (chains can be typed, e.g. colorize+sr)."""
    return list(TASKS)


def options_of(task: str) -> set[str]:
    """The :class:`TaskOptions` fields a task (or chain) reads, from the registry."""
    names: set[str] = set()
    for part in (task or "").split("+"):
        entry = TASKS.get(part.strip())
        if entry is not None:
            names.update(entry.options)
    return names
