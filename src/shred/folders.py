"""Degrading and restoring folders of images: what ``shred-ir degrade DIR`` and ``shred-ir
restore DIR`` run, usable from Python.

The inputs are the image files (PNG, JPEG, .npy) of a folder and its sub-folders, or those a glob
names; files whose names start with a dot are left out (unfinished temporary files). Each input
``REL`` (its path relative to the folder, or to the glob's fixed part) gives, under the output
folder:

* ``REL``: the degraded or restored image (same name, same format);
* ``REL`` with ``.json``: the spec of its operator (``shred-ir degrade``'s format, so a degraded
  folder is restored as it is);
* for restorations, ``REL`` with ``.report.json``: settings, the key, losses, measurement errors.

The three files of an image are written together, all or nothing (:func:`shred.io.write_all`),
the report last. An image is skipped when its files exist and its report (or spec) carries the
same *key*: a hash of everything that decides the result (the input file's bytes, the operator,
the model, the resolved settings, the seed, the precision, tiling). Changed settings, inputs or
models are therefore recomputed, and an interrupted run resumes where it stopped; ``overwrite``
redoes everything.

Restorations are batched: images whose operators are identical and whose measurements have one
shape are restored ``batch`` at a time (one network call evaluates them all). Image i gets the
seed ``seed`` whatever its batch, so it is restored as ``shred-ir restore`` restores it alone.

Under ``torchrun`` the batches are shared among the processes (:mod:`shred.distributed`): the
batches are made in the same order from every image, whether done or not, and each process restores
its own share and skips what is done; rank 0 writes the summary after the final barrier.

A file that cannot be used (not an image, NaN values, no spec, a size its task cannot take, a model
of other channels) is reported in one line and left out; the others go on.
"""
from __future__ import annotations

import glob as _glob
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import ShredError
from .io import ARRAY_SUFFIXES, IMAGE_SUFFIXES, image_bytes, json_bytes, read_image, write_all

FOLDER_FORMAT = 1
INPUT_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Item:
    """One input file: ``path`` on disk, ``rel`` its name under the output folder."""

    path: Path
    rel: Path


def is_many(source: str | Path) -> bool:
    """Whether ``source`` names several inputs: a folder, or a glob pattern."""
    return Path(source).is_dir() or any(ch in str(source) for ch in GLOB_CHARS)


def find_images(source: str | Path, out: str | Path | None = None) -> tuple[Path, list[Item]]:
    """(base folder, inputs sorted by relative name) of a folder (searched recursively) or a glob
    (``**`` spans folders). Files under ``out`` and hidden files are left out. Raises
    :class:`ShredError` when nothing is found or ``out`` is the input folder itself."""
    text = str(source)
    if Path(text).is_dir():
        base = Path(text)
        paths = [p for p in base.rglob("*") if p.is_file()]
    else:
        parts = Path(text).parts
        fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if any(c in p for c in GLOB_CHARS))]]
        base = Path(*fixed) if fixed else Path(".")
        paths = [Path(p) for p in _glob.glob(text, recursive=True) if Path(p).is_file()]
    out_dir = Path(out).resolve() if out is not None else None
    if out_dir is not None and out_dir == base.resolve():
        raise ShredError(f"--out {out} is the input folder: the outputs would replace the inputs; choose another folder")
    items = []
    for p in paths:
        rel = p.relative_to(base)
        if p.suffix.lower() not in INPUT_SUFFIXES or any(part.startswith(".") for part in rel.parts):
            continue
        if out_dir is not None and out_dir in p.resolve().parents:
            continue
        items.append(Item(p, rel))
    items.sort(key=lambda it: it.rel.as_posix())
    if not items:
        raise ShredError(f"no images (PNG, JPEG or .npy) in {source}")
    return base, items


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def settings_key(record: dict[str, Any]) -> str:
    """The key of a result: a hash of the JSON record of everything that decides it."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:24]


def output_paths(out: Path, rel: Path) -> tuple[Path, Path, Path]:
    """(image, spec, report) of input ``rel`` under ``out``."""
    image = out / rel
    return image, image.with_suffix(".json"), image.with_name(image.stem + ".report.json")


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def clashes(items: list[Item]) -> dict[Path, str]:
    """Inputs whose outputs would share a spec or report name with an earlier input's (``a.png``
    and ``a.npy`` both make ``a.json``): rel -> the reason."""
    seen: dict[Path, Path] = {}
    bad = {}
    for it in items:
        stem = it.rel.with_suffix("")
        if stem in seen:
            bad[it.rel] = f"its spec and report would share names with {seen[stem]}'s; rename one of them"
        else:
            seen[stem] = it.rel
    return bad


@dataclass
class Summary:
    """What a folder run did: ``done`` (written by this process), ``skipped`` (already done),
    ``bad`` / ``failed`` ((relative name, reason): unusable inputs / restorations that failed),
    and under torchrun ``complete``: the usable images whose outputs are all on disk after every
    process finished (rank 0 only; None otherwise)."""

    total: int = 0
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    complete: int | None = None
    usable: int | None = None

    @property
    def ok(self) -> bool:
        """Every input was usable and is done."""
        return not self.bad and not self.failed and (self.complete is None or self.complete == self.usable)

    def line(self, verb: str, out: Path) -> str:
        """The closing line: ``N images: D <verb>, S already done[, U unusable][, F failed] in T s
        (R images/s)[; C of K usable images complete across all processes]; outputs in OUT``
        (``; nothing written`` instead when no image has its outputs in OUT)."""
        parts = [f"{len(self.done)} {verb}", f"{len(self.skipped)} already done"]
        if self.bad:
            parts.append(f"{len(self.bad)} unusable")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        rate = f" ({len(self.done) / self.seconds:.3g} images/s)" if self.done and self.seconds > 0 else ""
        text = f"{self.total} image{'' if self.total == 1 else 's'}: " + ", ".join(parts) + f" in {self.seconds:.1f} s{rate}"
        if self.complete is not None:
            text += f"; {self.complete} of {self.usable} usable images complete across all processes"
        return text + (f"; outputs in {out}" if self.done or self.skipped or self.complete else "; nothing written")


def _reason(exc: Exception, path: Path) -> str:
    """An error's message without the file name it starts with (the line names the file)."""
    text = str(exc)
    return text[len(str(path)) + 2:] if text.startswith(f"{path}: ") else text


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


# -- degrading ---------------------------------------------------------------------------------------
def degrade_folder(source: str | Path, out: str | Path, task: str, options=None, *, seed: int = 0,
                   size: tuple[int, int] | None = None, model: str | None = None, overwrite: bool = False,
                   log: Callable[[str], None] = print, progress: bool = True) -> Summary:
    """Degrade every image of ``source`` with ``task`` into ``out`` (module docstring): each image
    exactly as ``shred-ir degrade IMAGE --seed SEED`` degrades it alone (the operator and the
    noise drawn from ``seed`` for the image's size, after resizing to ``size`` or the model's)."""
    from .api import degrade, make_spec
    from .distributed import launch, share
    from .models import MODELS, load_model
    from .restoration import fit_image

    started = time.perf_counter()
    out = Path(out)
    _, items = find_images(source, out)
    rank, world, _ = launch()
    den = load_model(model) if model else None
    summary = Summary(total=len(items))
    bad = clashes(items)
    summary.bad += [(rel, why) for rel, why in bad.items()]
    mine = share([it for it in items if it.rel not in bad], rank, world)
    bar = _progress(len(mine), "degrade", progress)
    for it in mine:
        y_path, spec_path, _ = output_paths(out, it.rel)
        try:
            digest = file_digest(it.path)
            x = read_image(it.path)
            x = fit_image(x, size=den.image_size if den is not None else size,
                          channels=den.channels if den is not None else None, source=str(it.path))
            y, op = degrade(x, task, options, seed=seed)
            spec = make_spec(op, task=task, options=options, seed=seed,
                             extra={"clean": str(it.path), "clean_sha256": digest, "measurement": y_path.name,
                                    "model": model if model in MODELS else None})
            old = _read_json(spec_path) if not overwrite else None
            if old == spec and y_path.is_file():
                summary.skipped.append(it.rel)
            else:
                y_path.parent.mkdir(parents=True, exist_ok=True)
                write_all([(y_path, image_bytes(y, y_path.suffix)), (spec_path, json_bytes(spec))])
                summary.done.append(it.rel)
        except ShredError as exc:
            summary.bad.append((it.rel, _reason(exc, it.path)))
            log(f"skipped {it.rel}: {_reason(exc, it.path)}")
        bar.update(1)
    bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


# -- restoring ---------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    item: Item
    group: str          # images of one group share an operator and a measurement shape
    task: str
    key: str            # settings_key of its result


class FolderRestore:
    """Restore every measurement of ``source`` into ``out`` (module docstring).

    Args:
        source / out: the input folder or glob, the output folder (created).
        spec: one spec file for every image; default: each image's ``.json`` beside it, or ``task``.
        task / options / degrade_seed: how the images were degraded, when there are no specs
            (``degrade_seed``: the seed ``degrade`` drew random masks and kernels with; a task that
            draws one refuses each image without it, :func:`shred.restoration.load_measurement`).
        seed: the seed of every restoration's starting noise.
        model / class_label: the model (default: the spec's, else the bundled one for the
            channels of the first image).
        allow_resize: restore at the model's training size (centre crop + bicubic), not the
            image's own.
        batch: images per solver call.
        overwrite: redo images whose outputs exist.
        device: where to run (default: ``cuda:LOCAL_RANK`` when there is a GPU, else the CPU).
        restorer: keyword arguments of :func:`shred.api.make_restorer` (preset, settings, run, tile).
    """

    def __init__(self, source, out, *, spec=None, task=None, options=None, seed: int = 0,
                 degrade_seed: int | None = None, model=None,
                 class_label=None, allow_resize: bool = False, batch: int = 8, overwrite: bool = False,
                 device=None, restorer: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                 progress: bool = True):
        from .distributed import launch
        from .models.fast import resolve_device

        if spec is not None and task:
            raise ShredError("give either --spec or --task, not both")
        if task:  # what refuses every image refuses the folder, once
            from .operators import TaskOptions
            from .restoration import check_random_parts

            check_random_parts(task, options or TaskOptions(), degrade_seed)
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise ShredError(f"--out {out} is a file; give a folder for the restored images")
        self.base, self.items = find_images(source, self.out)
        self.spec, self.task, self.options, self.seed = spec, task, options, int(seed)
        self.degrade_seed = None if degrade_seed is None else int(degrade_seed)
        self.model, self.class_label, self.allow_resize = model, class_label, allow_resize
        self.batch, self.overwrite = int(batch), overwrite
        self.rank, self.world, local_rank = launch()
        self.device = resolve_device(device, local_rank=local_rank)
        self.restorer_args = dict(restorer or {})
        self.log, self.progress = log, progress
        self.denoiser = None
        self._restorers: dict[str, Any] = {}

    # -- one image ---------------------------------------------------------------------------------
    def spec_of(self, item: Item) -> Path | None:
        """The spec an image is restored with: ``spec``, its own ``.json``, or None (``task``)."""
        if self.spec is not None:
            return Path(self.spec)
        if self.task:
            return None
        own = item.path.with_suffix(".json")
        if not own.is_file():
            raise ShredError(f"no spec {own.name} beside it; give --task (or --spec) for images without one")
        return own

    def load(self, item: Item):
        """The image's :class:`shred.restoration.Measurement` (loading the model on first use)."""
        from .restoration import load_measurement

        m = load_measurement(item.path, spec=self.spec_of(item), task=self.task, options=self.options,
                             model=self.model, class_label=self.class_label, degrade_seed=self.degrade_seed,
                             allow_resize=self.allow_resize, denoiser=self.denoiser)
        if self.denoiser is None:
            self.denoiser = m.denoiser
        return m

    def restorer(self, task: str):
        """The restorer of a task (one per task: presets and the blind solver differ)."""
        from .api import make_restorer

        if task not in self._restorers:
            self._restorers[task] = make_restorer(self.denoiser, task, device=self.device, images=self.batch,
                                                  **self.restorer_args)
        return self._restorers[task]

    def key(self, m, digest: str) -> str:
        """The key of measurement ``m``'s restoration (module docstring)."""
        r = self.restorer(m.task)
        tile = {k: self.restorer_args.get(k) for k in ("tile", "tile_overlap")}
        return settings_key({"format": FOLDER_FORMAT, "input_sha256": digest, "task": m.task,
                             "operator": m.operator.spec(), "model": self.denoiser.name, "config": r.config.to_dict(),
                             "preset": r.preset, "seed": self.seed, "run": r.run.to_dict(), "tile": tile,
                             "resized": m.resized,
                             # The file's rounding is noise too (it is not in the spec); only when counted,
                             # so that the keys of exact (.npy) measurements did not change with it.
                             **({"rounding": m.operator.rounding} if m.operator.rounding else {})})

    def done(self, item: Item, key: str) -> bool:
        """Whether the image's files exist and its report carries ``key`` (and not ``overwrite``)."""
        image, spec, report = output_paths(self.out, item.rel)
        if self.overwrite or not (image.is_file() and spec.is_file()):
            return False
        rec = _read_json(report)
        return rec is not None and rec.get("key") == key

    # -- the plan ----------------------------------------------------------------------------------
    def prepare(self) -> tuple[list[_Prepared], list[tuple[Path, str]]]:
        """Every usable image with its group, in order, and the unusable ones with the reason.
        The same on every process: it depends on the inputs only, not on what is done."""
        ready, bad = [], []
        clash = clashes(self.items)
        for it in self.items:
            if it.rel in clash:
                bad.append((it.rel, clash[it.rel]))
                continue
            try:
                m = self.load(it)
                group = json.dumps([m.task, m.operator.spec(), m.operator.rounding, list(m.y.shape)], sort_keys=True)
                ready.append(_Prepared(it, group, m.task, self.key(m, file_digest(it.path))))
            except ShredError as exc:
                bad.append((it.rel, _reason(exc, it.path)))
        return ready, bad

    def batches(self, ready: list[_Prepared]) -> list[list[_Prepared]]:
        """Consecutive images of each group, ``batch`` at a time; groups in order of first image."""
        groups: dict[str, list[_Prepared]] = {}
        for p in ready:
            groups.setdefault(p.group, []).append(p)
        return [g[i:i + self.batch] for g in groups.values() for i in range(0, len(g), self.batch)]

    # -- running -----------------------------------------------------------------------------------
    def run(self) -> Summary:
        """Restore this process's share, skipping what is done. Under torchrun every process
        waits for the others at the end, and rank 0's summary counts the complete images."""
        from .distributed import barrier, share

        started = time.perf_counter()
        ready, bad = self.prepare()
        summary = Summary(total=len(self.items), bad=bad)
        if self.rank == 0:
            for rel, why in bad:
                self.log(f"skipped {rel}: {why}")
        mine = share(self.batches(ready), self.rank, self.world)
        bar = _progress(sum(len(b) for b in mine), "restore", self.progress)
        for batch in mine:
            self.run_batch(batch, summary)
            bar.update(len(batch))
        bar.close()
        summary.seconds = time.perf_counter() - started
        if self.world > 1:
            barrier()
            if self.rank == 0:
                summary.usable = len(ready)
                summary.complete = sum(self.done(p.item, p.key) for p in ready) if not self.overwrite else None
        return summary

    def run_batch(self, batch: list[_Prepared], summary: Summary) -> None:
        """Restore the images of one batch that are not done, and write their files."""
        todo = []
        for p in batch:
            if self.done(p.item, p.key):
                summary.skipped.append(p.item.rel)
                continue
            try:
                todo.append((p, self.load(p.item)))
            except ShredError as exc:  # changed on disk since the plan
                summary.failed.append((p.item.rel, str(exc)))
                self.log(f"failed {p.item.rel}: {exc}")
        if not todo:
            return
        r = self.restorer(todo[0][0].task)
        y = torch.cat([m.y for _, m in todo])
        try:
            res = r.restore(y, todo[0][1].operator, seeds=[self.seed] * len(todo), progress=False)
        except ShredError as exc:
            for p, _ in todo:
                summary.failed.append((p.item.rel, str(exc)))
                self.log(f"failed {p.item.rel}: {exc}")
            return
        for i, (p, m) in enumerate(todo):
            self.write(p, m, pick(res, i), batch=len(todo))
            summary.done.append(p.item.rel)

    def write(self, prep: _Prepared, m, res, batch: int) -> None:
        """The image's restoration, spec and report, all or nothing (the report last)."""
        from .api import make_spec
        from .restoration import run_report

        image, spec_path, report_path = output_paths(self.out, prep.item.rel)
        spec_in = self.spec_of(prep.item)
        spec = _read_json(spec_in) if spec_in is not None else None
        if spec is None or self.allow_resize:
            spec = make_spec(m.operator, task=m.task, options=self.options, seed=self.degrade_seed)
        rep = run_report(res, m, prep.item.path)
        record = {**rep.record, "key": prep.key, "preset": self.restorer(prep.task).preset,
                  "batch": batch, "seed": self.seed, "device": str(self.device), "rank": self.rank}
        image.parent.mkdir(parents=True, exist_ok=True)
        write_all([(image, image_bytes(res.x0[:1].float().cpu(), image.suffix)), (spec_path, json_bytes(spec)),
                   (report_path, json_bytes(record))])


def pick(res, i: int):
    """Restoration i of a batched :class:`shred.solvers.Result`, as a one-image Result (its share
    of the batch's wall time)."""
    from .solvers import Result

    extras = dict(res.extras)
    if "kernel" in extras:
        extras["kernel"] = extras["kernel"][i:i + 1]
    if "operators" in extras:
        extras["operators"] = extras["operators"][i:i + 1]
    if isinstance(extras.get("stop"), dict):
        extras["stop"] = {k: (v[i:i + 1] if isinstance(v, list) else v) for k, v in extras["stop"].items()}
    n = res.x0.shape[0]
    return Result(x0=res.x0[i:i + 1], x_T=None if res.x_T is None else res.x_T[i:i + 1],
                  loss_history=res.loss_history[:, i:i + 1], iterations=res.iterations[i:i + 1],
                  wall_time=res.wall_time / n, seeds=[res.seeds[i]], extras=extras)


def print_summary(summary: Summary, verb: str, out: Path, stream=None) -> None:
    """The closing line, on ``stream`` (stdout)."""
    print(summary.line(verb, out), file=stream or sys.stdout)
