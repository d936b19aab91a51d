"""Restoring from files: a measurement with its spec or task, the model it needs, and the bytes of
every output (restorations, kernels, side-by-side grid, JSON report).

This is the library behind ``shred-ir restore``; the command parses its options, calls these
functions, writes the bytes they return and prints. Images in memory are float32 [1, C, H, W] in
[0, 1]; every problem a user can cause raises :class:`shred.errors.ShredError` in one line.

>>> from shred.api import make_restorer
>>> m = load_measurement("y.png", spec="y.json")              # y, operator, denoiser, task
>>> r = make_restorer(m.denoiser, m.task, images=1)
>>> res = r.solver(m.y, m.operator, seeds=[0])
"""
from __future__ import annotations

import math

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .api import load_spec, spec_operator
from .errors import ShredError, ShredWarning
from .io import image_bytes, read_image, resize, resize_note, stored_levels, to_channels
from .models import Denoiser, default_model, load_model
from .models.base import canvas_size
from .operators import Operator, TaskOptions, build_task, counted_rounding, with_rounding
from .operators.tasks import assumed_defaults, random_parts
from .report import format_table, kernel_image, run_summary, seed_rows, spread_image
from .seeding import generator


@dataclass(frozen=True)
class Measurement:
    """A measurement ready to restore.

    ``y``: float32 [1, C', H', W'] in [0, 1], at the size the operator produces; ``operator``: maps
    [C, H, W] images (the model's channels, the image's own size) to it; ``task``: the task name
    (``"default"`` for a spec that names none); ``from_spec``: whether the operator was rebuilt from
    a spec (so it is the true one, and its kernel can be compared with an estimated one);
    ``resized``: what ``allow_resize`` did to the file's image, in words (None: nothing).
    """

    y: torch.Tensor
    operator: Operator
    denoiser: Denoiser
    task: str
    from_spec: bool
    resized: str | None = None


# Tasks whose measurement is smaller than the image by TaskOptions.scale (old-photo only when scale > 1).
_SCALING_TASKS = ("sr", "sr-bicubic", "old-photo")


def image_size_for(task: str, options: TaskOptions | None, measurement_size: tuple[int, int]) -> tuple[int, int]:
    """The (H, W) of the image whose degradation by ``task`` has ``measurement_size``: the
    measurement's size times the scale of each super-resolution stage of the chain."""
    opts = options or TaskOptions()
    factor = 1
    for part in (p.strip() for p in task.split("+")):
        if part in _SCALING_TASKS and not (part == "old-photo" and opts.scale <= 1):
            factor *= opts.scale
    return measurement_size[0] * factor, measurement_size[1] * factor


def _warn(message: str) -> None:
    warnings.warn(message, ShredWarning, stacklevel=3)


def check_random_parts(task: str, options: TaskOptions, degrade_seed: int | None) -> list[str]:
    """What ``task`` draws at random with ``options`` (:func:`shred.operators.tasks.random_parts`);
    raises :class:`ShredError` when it draws something and ``degrade_seed``, the seed ``degrade``
    drew it with, is None: a random mask or kernel is never re-drawn from another seed."""
    drawn = random_parts(task, options)
    if drawn and degrade_seed is None:
        what = " and ".join(dict.fromkeys(drawn))
        raise ShredError(f"{task} draws a random {what} when it degrades, and restoring needs that very "
                         f"{what}, which cannot be re-drawn from another seed: pass the spec written by "
                         "`shred-ir degrade` (--spec), or --degrade-seed N with the --seed degrade was given"
                         + (", or the kernel itself (--kernel FILE)" if "kernel" in drawn else ""))
    return drawn


def load_measurement(path: str | Path, *, spec: str | Path | None = None, task: str | None = None,
                     options: TaskOptions | None = None, model: str | Path | None = None,
                     class_label: int | None = None, degrade_seed: int | None = None,
                     allow_resize: bool = False, given: Iterable[str] | None = None,
                     denoiser: Denoiser | None = None) -> Measurement:
    """Read a measurement and build what restores it: from a spec file (written by ``degrade``),
    or from a task applied to an image of the size the measurement implies (x4 super-resolution
    of a 80x120 measurement: a 320x480 image), whatever the model's training size: the networks
    are fully convolutional (:func:`shred.sizes.solve` runs them on a canvas of the sides
    they take).

    ``model`` defaults to the spec's model, else the bundled model for the image's channels (a
    colour one for colorization); ``denoiser`` gives an already loaded one instead. A spec is
    checked as a whole, and its image shape against the model (its channels, a size it runs at),
    before its operator is built.

    Without a spec, a task that draws its operator at random (``cs``'s mask, ``deblur --kernel
    random``: :func:`shred.operators.tasks.random_parts`) needs ``degrade_seed``, the seed that
    ``degrade`` drew it with: it is never re-drawn from another seed. Defaults that shape the
    operator (``deblur``'s Gaussian kernel, ``inpaint``'s centred hole) are named in a
    :class:`ShredWarning` when they were not among ``given`` (the task options the user gave;
    default: those that differ from :class:`TaskOptions`' defaults).

    A measurement read from an 8-bit (or coarser) file was rounded after any noise. Where the
    operator's pseudo-inverse would amplify that rounding unevenly (blurs: :attr:`Operator.uneven`),
    its noise is the declared sigma_y (the spec's, or ``options``') and the rounding's standard
    deviation added in quadrature (:func:`shred.operators.with_rounding`,
    :func:`shred.operators.counted_rounding`: 0.00113 for 8 bits; 16-bit files count as exact):
    SHRED+'s noise-aware finish then leaves it in y instead of amplifying it. A .npy or float TIFF measurement is taken as it is, unless its spec
    says it holds the values of a rounded file (``measurement_levels``, written by the page).

    With ``allow_resize`` a task's operator is built for the model's training size instead, and
    a measurement of another size than the operator produces (task or spec) is centre-cropped and
    resampled (bicubic) to it, said in a :class:`ShredWarning` and in ``Measurement.resized``;
    without it, such a measurement is refused. Raises :class:`ShredError` for a missing/unreadable
    file or spec, a model of other channels or that runs at one size only, a random operator
    without its seed, or a size mismatch.
    """
    y_path = Path(path)

    def model_for(default_channels: int, named: str | None) -> Denoiser:
        if denoiser is not None:
            return denoiser
        return load_model(model or named or default_model(default_channels), class_label=class_label)

    if spec is not None:
        spec_path = Path(spec)
        record = load_spec(spec_path)
        task = record.get("task") or "default"
        c, h, w = record["operator"]["in_shape"]
        den = model_for(c, record.get("model"))
        # Checked before the operator is built.
        if c != den.channels:
            raise ShredError(f"{spec_path} describes {c}-channel images but model {den.name} makes "
                             f"{den.channels}-channel ones; pick a model with {c} channels")
        if den.size_multiple is None and (h, w) != tuple(den.image_size):
            H, W = den.image_size
            raise ShredError(f"{spec_path} describes {c}x{h}x{w} images but model {den.name} runs at {H}x{W} only; "
                             f"degrade again with --size {H} (or --model), or pick a fully convolutional model")
        op = spec_operator(record, spec_path.name)
        y = read_image(y_path, channels=op.out_shape[0])
    else:
        if not task:
            raise ShredError(f"say how {y_path.name} was degraded: a spec file or a task")
        options = options or TaskOptions()
        drawn = check_random_parts(task, options, degrade_seed)
        y = read_image(y_path)
        # Colorization takes a grey measurement but needs a colour model.
        den = model_for(3 if "colorize" in task else y.shape[1], None)
        size = tuple(den.image_size) if allow_resize else image_size_for(task, options, tuple(y.shape[-2:]))
        if not allow_resize:
            canvas_size(den, *size)  # a model that runs at one size only refuses here
        shape = (den.channels, *size)
        op = build_task(task, shape, options, generator=generator(degrade_seed if drawn else 0))
        if given is None:
            defaults = TaskOptions()
            given = {k for k in TaskOptions.names() if getattr(options, k) != getattr(defaults, k)}
        for note in assumed_defaults(task, options, set(given), shape):
            _warn(f"assuming {note}")
        y = to_channels(y, op.out_shape[0], str(y_path))
    levels = stored_levels(y_path)
    if levels is None and spec is not None:  # an exact copy of a rounded file's values (the page's .npy)
        levels = record.get("measurement_levels")
    op = with_rounding(op, counted_rounding(op, levels))
    want = tuple(op.out_shape[1:])
    resized = None
    if tuple(y.shape[-2:]) != want:
        if not allow_resize:
            c, h, w = op.in_shape
            whose = "its spec's " if spec is not None else ""
            raise ShredError(f"{y_path.name} is {y.shape[-2]}x{y.shape[-1]} but {whose}{task} of {h}x{w} images "
                             f"expects a {want[0]}x{want[1]} measurement; pass --resize to resample it, or match "
                             "the task/spec to the image")
        resized = resize_note(y_path.name, tuple(y.shape[-2:]), want)
        _warn(resized)
        y = resize(y, want)
    return Measurement(y, op, den, task, spec is not None, resized)


def fit_image(x: torch.Tensor, *, size: tuple[int, int] | None = None, channels: int | None = None,
              source: str = "the image") -> torch.Tensor:
    """An image [1, C, H, W] in [0, 1] with ``channels`` channels (grey = channel mean, or grey
    repeated) and centre-cropped and resampled (bicubic) to ``size``, which a
    :class:`ShredWarning` describes; unchanged where None."""
    x = to_channels(x, channels, source)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        _warn(resize_note(Path(source).name, tuple(x.shape[-2:]), tuple(size)))
        x = resize(x, size)
    return x


def load_clean(path: str | Path, denoiser: Denoiser, size: tuple[int, int] | None = None, *,
               allow_resize: bool = False) -> torch.Tensor:
    """A ground-truth image [1, C, H, W] in [0, 1] for ``denoiser``: its channels, at ``size``
    (the restored image's (H, W); default the model's training size). Another size is refused (a
    PSNR against a resampled image is not the PSNR against the truth) unless ``allow_resize``,
    which centre-crops and resamples it and says so."""
    x = read_image(path, channels=denoiser.channels)
    h, w = tuple(size or denoiser.image_size)
    if tuple(x.shape[-2:]) != (h, w) and not allow_resize:
        raise ShredError(f"{Path(path).name} is {x.shape[-2]}x{x.shape[-1]} but the restoration is {h}x{w}: "
                         "give the ground truth at that size, or pass --resize to centre-crop and resample it "
                         "(the PSNR is then against the resampled image)")
    return fit_image(x, size=(h, w), source=str(path))


def grid_columns(y: torch.Tensor, result, clean: torch.Tensor | None = None) -> list[tuple[str, torch.Tensor]]:
    """The columns of a restoration's side-by-side grid: clean (when given), the input, one per
    seed, and the estimated kernels of a blind run (for :func:`shred.io.make_grid`)."""
    x0 = result.x0.float().cpu()
    columns = [("input", y[:1].float().cpu())]
    if clean is not None:
        columns.insert(0, ("clean", clean))
    columns += [(f"seed {s}" if s is not None else "restored", x0[i:i + 1]) for i, s in enumerate(result.seeds)]
    if x0.shape[0] > 1:
        mean, std = result.spread()
        columns += [("mean", mean), ("uncertainty", spread_image(std)[0].expand(-1, x0.shape[1], -1, -1))]
    if "kernel" in result.extras:
        columns += [(f"kernel {s}" if s is not None else "kernel", kernel_image(k))
                    for s, k in zip(result.seeds, result.extras["kernel"])]
    return columns


def kernel_bytes(k: torch.Tensor, suffix: str) -> bytes:
    """An estimated kernel as a file: ``.png`` scaled to its maximum (:func:`shred.report.kernel_image`),
    or ``.npy`` (float64, exact)."""
    if suffix.lower() == ".png":
        return image_bytes(kernel_image(k), suffix)
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, k.detach().double().cpu().numpy())
    return buf.getvalue()


def spread_paths(out: Path) -> tuple[Path, Path]:
    """Where several seeds' mean image and uncertainty map go: ``<stem>_mean<suffix>`` and
    ``<stem>_uncertainty.png`` next to ``out``."""
    return out.with_name(f"{out.stem}_mean{out.suffix}"), out.with_name(f"{out.stem}_uncertainty.png")


def output_files(result, outs: Sequence[Path], kernel_outs: Sequence[Path] = (),
                 spread: tuple[Path, Path] | None = None) -> list[tuple[Path, bytes]]:
    """(path, bytes) of each restoration (``outs[i]`` for seed i), for a blind run each kernel,
    and with ``spread`` (several seeds of one measurement) the mean image and the uncertainty map
    (the per-pixel std over the seeds, scaled so that its largest value is white; the scale is
    in the report)."""
    x0 = result.x0.float().cpu()
    files = [(p, image_bytes(x0[i:i + 1], p.suffix)) for i, p in enumerate(outs)]
    if spread is not None and x0.shape[0] > 1:
        mean, std = result.spread()
        files += [(spread[0], image_bytes(mean, spread[0].suffix)), (spread[1], image_bytes(spread_image(std)[0], ".png"))]
    if "kernel" in result.extras:
        files += [(p, kernel_bytes(k, p.suffix)) for p, k in zip(kernel_outs, result.extras["kernel"])]
    return files


@dataclass(frozen=True)
class RunReport:
    """What a restoration run reports: ``rows`` (one per seed, :func:`shred.report.seed_rows`),
    ``summary`` (:func:`shred.report.run_summary`) and the JSON record of ``--report``."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    record: dict[str, Any]

    def json_bytes(self) -> bytes:
        """The record as strict JSON (an infinite PSNR, an exact restoration, is ``null``)."""
        from .io import json_bytes

        return json_bytes(self.record)

    def table(self) -> str:
        return format_table(self.rows)


def run_report(result, m: Measurement, measurement_path: str | Path, clean: torch.Tensor | None = None) -> RunReport:
    """Rows, summary and JSON record of a restoration of ``m`` (PSNR/SSIM with ``clean``; kernel
    NCC when the operator came from a spec and the run estimated a kernel)."""
    x0 = result.x0.float().cpu()
    rows = seed_rows(result, m.operator, m.y.to(x0.dtype), clean=clean,
                     true_operator=m.operator if m.from_spec else None)
    summary = run_summary(result, rows)
    if x0.shape[0] > 1:
        mean, std = result.spread()
        summary["uncertainty_max_std"] = float(std.max())
        summary["uncertainty_mean_std"] = float(std.mean())
        if clean is not None:
            from .metrics import psnr
            summary["mean_image_psnr"] = float(psnr(mean, clean.float()).item())
            if math.isinf(summary["mean_image_psnr"]):
                summary["mean_image_exact"] = True  # the seed mean equals the clean image (null in JSON)
    record = {"measurement": str(measurement_path), "task": m.task, "model": m.denoiser.name,
              "image_size": list(m.operator.in_shape[1:]), "canvas": result.extras.get("canvas"),
              "resized": m.resized, "config": result.extras.get("config"),
              **({"blind": result.extras["blind"]} if "blind" in result.extras else {}),
              "summary": summary, "seeds": rows}
    return RunReport(rows, summary, record)


def plural(n: int, noun: str) -> str:
    """``"1 iteration"``, ``"2 iterations"``: a count and its noun."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def done_message(result, summary: dict[str, Any], clean_name: str | None = None) -> str:
    """One line: time, iterations, relative measurement error, and PSNR, diversity and kernel NCC
    when known."""
    msg = (f"done in {result.wall_time:.1f} s: {plural(int(result.iterations.max()), 'iteration')}, relative measurement "
           f"error {summary['mean_rel_error']:.3g}")
    if clean_name is not None:
        msg += f", PSNR {summary['mean_psnr']:.2f} dB against {clean_name}"
        if "mean_image_psnr" in summary:
            msg += f" (the seeds' mean image: {summary['mean_image_psnr']:.2f} dB)"
    if "diversity_rmse" in summary:
        msg += f", diversity {summary['diversity_rmse']:.4f} (mean pairwise RMS)"
    if "mean_kernel_ncc" in summary:
        msg += f", kernel NCC {summary['mean_kernel_ncc']:.4f}"
    return msg
