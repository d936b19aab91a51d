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

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .api import load_spec, spec_operator
from .errors import ShredError, ShredWarning
from .io import image_bytes, read_image, resize, resize_note, to_channels
from .models import Denoiser, default_model, load_model
from .operators import Operator, TaskOptions, build_task
from .operators.tasks import assumed_defaults, random_parts
from .report import format_table, kernel_image, run_summary, seed_rows, spread_image
from .seeding import generator


@dataclass(frozen=True)
class Measurement:
    """A measurement ready to restore.

    ``y``: float32 [1, C', H', W'] in [0, 1], at the size the operator produces; ``operator``: maps
    the model's [C, H, W] images to it; ``task``: the task name (``"default"`` for a spec that names
    none); ``from_spec``: whether the operator was rebuilt from a spec (so it is the true one, and
    its kernel can be compared with an estimated one).
    """

    y: torch.Tensor
    operator: Operator
    denoiser: Denoiser
    task: str
    from_spec: bool


def _warn(message: str) -> None:
    warnings.warn(message, ShredWarning, stacklevel=3)


def load_measurement(path: str | Path, *, spec: str | Path | None = None, task: str | None = None,
                     options: TaskOptions | None = None, model: str | Path | None = None,
                     class_label: int | None = None, degrade_seed: int | None = None,
                     allow_resize: bool = False, given: Iterable[str] | None = None) -> Measurement:
    """Read a measurement and build what restores it: from a spec file (written by ``degrade``),
    or from a task applied to the model's image size.

    ``model`` defaults to the spec's model, else the bundled model for the image's channels (a
    colour one for colorization). A spec is checked as a whole, and its image shape against the
    model's, before its operator is built.

    Without a spec, a task that draws its operator at random (``cs``'s mask, ``deblur --kernel
    random``: :func:`shred.operators.tasks.random_parts`) needs ``degrade_seed``, the seed that
    ``degrade`` drew it with: it is never re-drawn from another seed. Defaults that shape the
    operator (``deblur``'s Gaussian kernel, ``inpaint``'s centred hole) are named in a
    :class:`ShredWarning` when they were not among ``given`` (the task options the user gave;
    default: those that differ from :class:`TaskOptions`' defaults).

    A measurement of another size than the operator produces is refused unless ``allow_resize``
    (centre crop + bicubic resampling, said in a :class:`ShredWarning`). Raises
    :class:`ShredError` for a missing/unreadable file or spec, a spec and model of different
    image sizes, a random operator without its seed, or a size mismatch.
    """
    y_path = Path(path)
    if spec is not None:
        spec_path = Path(spec)
        record = load_spec(spec_path)
        task = record.get("task") or "default"
        den = load_model(model or record.get("model") or default_model(record["operator"]["in_shape"][0]),
                         class_label=class_label)
        model_shape = (den.channels, *den.image_size)
        if tuple(record["operator"]["in_shape"]) != model_shape:  # before a giant operator is built
            c, h, w = record["operator"]["in_shape"]
            raise ShredError(f"{spec_path} describes {c}x{h}x{w} images but model {den.name} makes "
                             f"{model_shape[0]}x{model_shape[1]}x{model_shape[2]}; degrade again with "
                             f"--size {model_shape[1]} (or --model), or pick a model of that size")
        op = spec_operator(record, spec_path.name)
        y = read_image(y_path, channels=op.out_shape[0])
    else:
        if not task:
            raise ShredError(f"say how {y_path.name} was degraded: a spec file or a task")
        options = options or TaskOptions()
        drawn = random_parts(task, options)
        if drawn and degrade_seed is None:
            what = " and ".join(dict.fromkeys(drawn))
            raise ShredError(f"{task} draws a random {what} when it degrades, and restoring needs that very "
                             f"{what}, which cannot be re-drawn from another seed: pass the spec written by "
                             "`shred-ir degrade` (--spec), or --degrade-seed N with the --seed degrade was given"
                             + (", or the kernel itself (--kernel FILE)" if "kernel" in drawn else ""))
        y = read_image(y_path)
        # Colorization takes a grey measurement but needs a colour model.
        den = load_model(model or default_model(3 if "colorize" in task else y.shape[1]), class_label=class_label)
        model_shape = (den.channels, *den.image_size)
        op = build_task(task, model_shape, options, generator=generator(degrade_seed if drawn else 0))
        if given is None:
            defaults = TaskOptions()
            given = {k for k in TaskOptions.names() if getattr(options, k) != getattr(defaults, k)}
        for note in assumed_defaults(task, options, set(given), model_shape):
            _warn(f"assuming {note}")
        y = to_channels(y, op.out_shape[0], str(y_path))
    want = tuple(op.out_shape[1:])
    if tuple(y.shape[-2:]) != want:
        if not allow_resize:
            raise ShredError(f"{y_path.name} is {y.shape[-2]}x{y.shape[-1]} but {task} on {den.name} "
                             f"({model_shape[1]}x{model_shape[2]}) expects a {want[0]}x{want[1]} measurement; "
                             "pass --resize to resample it, or match the task/model to the image")
        _warn(resize_note(y_path.name, tuple(y.shape[-2:]), want))
        y = resize(y, want)
    return Measurement(y, op, den, task, spec is not None)


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


def load_clean(path: str | Path, denoiser: Denoiser, *, allow_resize: bool = False) -> torch.Tensor:
    """A ground-truth image for ``denoiser``: its channels, at its image size. Another size is
    refused (a PSNR against a resampled image is not the PSNR against the truth) unless
    ``allow_resize``, which centre-crops and resamples it and says so."""
    x = read_image(path, channels=denoiser.channels)
    h, w = denoiser.image_size
    if tuple(x.shape[-2:]) != (h, w) and not allow_resize:
        raise ShredError(f"{Path(path).name} is {x.shape[-2]}x{x.shape[-1]} but the restoration is {h}x{w}: "
                         "give the ground truth at that size, or pass --resize to centre-crop and resample it "
                         "(the PSNR is then against the resampled image)")
    return fit_image(x, size=denoiser.image_size, source=str(path))


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
        return (json.dumps(self.record, indent=2) + "\n").encode()

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
    record = {"measurement": str(measurement_path), "task": m.task, "model": m.denoiser.name,
              "config": result.extras.get("config"), "summary": summary, "seeds": rows}
    return RunReport(rows, summary, record)


def done_message(result, summary: dict[str, Any], clean_name: str | None = None) -> str:
    """One line: time, iterations, relative measurement error, and PSNR, diversity and kernel NCC
    when known."""
    msg = (f"done in {result.wall_time:.1f} s: {int(result.iterations.max())} iterations, relative measurement "
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
