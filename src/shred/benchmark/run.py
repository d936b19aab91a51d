"""Running the comparison: every method on the very same degraded inputs, in resumable chunks.

A run is a folder:

* ``config.json``: what the run depends on (written only once everything has been validated);
* ``inputs/<task>.safetensors`` + ``inputs/<task>.json``: the clean images x and measurements y,
  and the operator spec with the data set's indices of the images, made once per task;
* ``raw/<task>/<method>/<key>/<start>-<stop>.safetensors`` + ``.json``: one chunk of restorations
  (images start..stop-1 of the task) and their per-image metrics, network calls and seconds;
  ``key`` is a hash of everything that decides the result (the method's resolved settings, the
  model, the task's inputs), so changed settings never reuse old results and a resumed run only
  computes chunks that are missing;
* ``results.json``, ``results.md``, ``grids/<task>.png``: the report (:mod:`.report`).

Every file is written to a temporary name and renamed; nothing in the folder is ever unpickled
(tensors are safetensors, the rest JSON), so a run folder from someone else cannot run code.

Work items are (task, method, chunk of images): each job's images cut into a fixed grid of
``batch`` images, enumerated in a fixed order that does not depend on what is done. Under
``torchrun`` each process takes the items whose position modulo WORLD_SIZE is its RANK
(:mod:`shred.distributed`), on its own GPU (LOCAL_RANK) or the CPU, and computes the images of its
items that no complete chunk holds; a process that dies leaves only its unfinished chunks to a
rerun. Rank 0 writes the report after a barrier (or ``shred-ir bench --report-only`` later).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ShredError
from .files import FORMAT, chunk_problem, hardware, read_json, read_tensors, write_tensors
from .tasks import BENCH_TASK_NAMES, BenchTask, bench_tasks



@dataclass
class BenchConfig:
    """Everything a run depends on (``config.json``; a resumed run must agree on the data, the
    images and the model).

    Attributes:
        data: the test images (a split name such as ``cifar10-test``, a folder, zip or IDX file).
        n: images per task (the first n of a seeded permutation of ``data``).
        n_for: images for particular tasks, e.g. ``{"sr8": 50}`` (a prefix of the n-image choice).
        tasks / methods: what to run (:data:`BENCH_TASK_NAMES`, :data:`shred.solvers.SOLVERS`;
            ``NAME@PRESET`` for SHRED presets).
        model: the diffusion model (name or path).
        seed: the image choice, masks, kernels and noise.
        preset: the SHRED preset of ``shred``/``shred-blind`` written without ``@PRESET``.
        settings: per method, settings replacing its defaults (``{"dps": {"steps": 100}}``).
        max_images: per method, restore only the first k images of each task (slow methods).
        batch: images per solver call (one network call evaluates this many images).
        device: where the methods run.
        features / reference / reference_n: the realism metrics' feature network, reference data
            set and its size.
        min_realism_images: KID/FID are computed for (task, method) pairs with at least this many
            restorations.
    """

    data: str = "cifar10-test"
    n: int = 10
    n_for: dict[str, int] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=lambda: list(BENCH_TASK_NAMES))
    methods: list[str] = field(default_factory=list)
    model: str = "cifar10-32"
    seed: int = 0
    preset: str = "auto"
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_images: dict[str, int] = field(default_factory=dict)
    batch: int = 8
    device: str = "cpu"
    features: str | None = "cifar10"
    reference: str = "cifar10-train"
    reference_n: int = 5000
    min_realism_images: int = 20

    def images_for(self, task: str, method: str | None = None) -> int:
        n = self.n_for.get(task, self.n)
        return min(n, self.max_images[method]) if method in self.max_images else n

    # What a resumed run must agree on (the rest may change between runs).
    IDENTITY = ("data", "model", "seed")

    @classmethod
    def from_json(cls, d: dict) -> "BenchConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Job:
    """One (task, method) of a run, with its built solver and result key."""

    task: BenchTask
    method: str
    solver: Any
    key: str
    settings: dict[str, Any]
    n: int
    skipped: str | None = None


# Method settings added after runs were stored, with the default that reproduces what ran before
# they existed: left out of a result's key at that default, so adding one recomputes nothing.
LATER_SETTINGS = {"invert_fixed_point": 1, "finish_travel_length": 1, "finish_travel_repeat": 1, "kernel_steps": 0,
                  "restore_sigma": None}
# Settings that a mode never reads, left out of the key in that mode: blind SHRED with the kernel
# network ignores the kernel search's, so its runs from before the search keep their keys.
UNREAD = {("kernel_estimate", "network"): ("kernel_estimate", "search_widths", "search_steps", "search_sigma",
                                           "restore_sigma")}
# The kernel network's settings, which a run that searches its blur never reads.
NETWORK_ONLY = ("kernel_lr", "kernel_steps", "hidden", "input_size", "input_scale")


def key_config(config: dict | None) -> dict | None:
    """A method's settings as they enter a result's key (:data:`LATER_SETTINGS` at their default
    and :data:`UNREAD` settings left out)."""
    if config is None:
        return None
    unread = {k for (name, value), keys in UNREAD.items() if config.get(name) == value for k in keys}
    return {k: v for k, v in config.items()
            if k not in unread and (k not in LATER_SETTINGS or LATER_SETTINGS[k] != v)}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _PeakRSS:
    """Samples this process's resident memory while a solver runs (CPU peak-memory proxy)."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self.peak = self.rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def select_indices(cfg: BenchConfig, available: int, n: int) -> torch.Tensor:
    """The data set's indices of the first n images of the seeded permutation."""
    g = torch.Generator().manual_seed(cfg.seed)
    return torch.randperm(available, generator=g)[:n]


def distributed() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) otherwise."""
    from ..distributed import launch

    rank, world, _ = launch()
    return rank, world


class Benchmark:
    """One comparison run in ``out`` (module docstring). Construction validates everything (data,
    n, tasks, methods, settings, the folder) and creates nothing; :meth:`run` computes what is
    missing and writes the report."""

    def __init__(self, cfg: BenchConfig, out: str | os.PathLike, *, denoiser=None, log: Callable = print):
        from ..models import load_model

        self.cfg, self.out, self.log = cfg, Path(out), log
        self._check_folder()
        self._check_config()
        device = torch.device(cfg.device)
        self.den = denoiser if denoiser is not None else load_model(cfg.model, device=device)
        size = self.den.image_size
        if size[0] != size[1]:
            raise ShredError(f"the comparison's tasks need a square model; {cfg.model} makes {size[0]}x{size[1]}")
        self.tasks = bench_tasks(size[0])
        unknown = [t for t in cfg.tasks if t not in self.tasks]
        if unknown:
            raise ShredError(f"unknown tasks {', '.join(unknown)}; choose from {', '.join(self.tasks)}")
        self.data = self._load_data()
        # Method by method, in the order given: each method's row fills across every task before the
        # next method starts, so that cheap methods can be listed first and reported early.
        self.jobs = [self._job(self.tasks[t], m) for m in cfg.methods for t in cfg.tasks]

    # -- validation (nothing is created before all of it passes) -------------------------------------
    def _check_folder(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise ShredError(f"--out {out} is a file; give a folder for the run")
        parent = out if out.exists() else out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ShredError(f"cannot create {out}: {parent} is not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ShredError(f"cannot write in {parent}; choose another --out")
        old = out / "config.json"
        if old.is_file():
            prev = read_json(old)
            if not isinstance(prev, dict) or prev.get("format") != FORMAT:
                raise ShredError(f"{out} holds a run of another format; use another --out")
            clash = [k for k in BenchConfig.IDENTITY if prev.get("config", {}).get(k) != getattr(self.cfg, k)]
            if clash:
                raise ShredError(f"{out} holds a run with other {', '.join(clash)}; use another --out or delete it")

    def _check_config(self) -> None:
        from ..solvers import check_settings, split_method

        cfg = self.cfg
        for name, value in [("n", cfg.n), ("batch", cfg.batch), ("reference_n", cfg.reference_n),
                            *[(f"n for {t}", v) for t, v in cfg.n_for.items()],
                            *[(f"max images of {m}", v) for m, v in cfg.max_images.items()]]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ShredError(f"{name} must be a positive integer, got {value!r}")
        if not cfg.methods:
            raise ShredError("give at least one method")
        if len(set(cfg.methods)) != len(cfg.methods):
            raise ShredError("a method is named twice in --methods")
        for m in cfg.methods:
            split_method(m)
        stray = [m for m in [*cfg.settings, *cfg.max_images] if m not in cfg.methods]
        if stray:
            raise ShredError(f"settings given for {', '.join(sorted(set(stray)))}, which is not among the methods "
                             f"({', '.join(cfg.methods)})")
        for m, s in cfg.settings.items():
            check_settings(m, s)
        stray = [t for t in cfg.n_for if t not in BENCH_TASK_NAMES]
        if stray:
            raise ShredError(f"--n given for unknown tasks {', '.join(stray)}")

    def _load_data(self) -> dict[str, Any]:
        from ..data import load_images

        cfg = self.cfg
        images = load_images(cfg.data)
        need = max(cfg.images_for(t) for t in cfg.tasks)
        if need > len(images):
            raise ShredError(f"{cfg.data} holds {len(images)} images, fewer than the {need} asked for; lower --n")
        idx = select_indices(cfg, len(images), need)
        x = images.float01(idx)
        den = self.den
        if tuple(x.shape[1:]) != (den.channels, *den.image_size):
            if x.shape[1] != den.channels or x.shape[2] != x.shape[3]:
                raise ShredError(f"{cfg.data} has {x.shape[1]}x{x.shape[2]}x{x.shape[3]} images; {cfg.model} needs "
                                 f"{den.channels}x{den.image_size[0]}x{den.image_size[1]}")
            from ..io import resize
            x = resize(x, den.image_size)
        return {"x": x, "indices": idx.tolist(), "available": len(images)}

    def _job(self, task: BenchTask, method: str) -> Job:
        from ..solvers import build_solver, is_blind, split_method, why_not

        cfg = self.cfg
        settings = dict(cfg.settings.get(method, {}))
        base, implied = split_method(method)
        extra = _extra_settings(base)
        if "preset" in extra and "preset" not in implied and "preset" not in settings:
            settings["preset"] = cfg.preset
        if "task" in extra:
            settings.setdefault("task", task.task)
        solver = build_solver(method, self.den, device=cfg.device, **settings)
        op = self.operator(task)
        skipped = None
        if task.blind != is_blind(method):
            skipped = "a non-blind method needs the kernel" if task.blind else "blind methods run on the blind task only"
        else:
            skipped = why_not(method, op)
        config = getattr(solver, "config", None)
        # Blind SHRED+'s kernel search restores with its deblurring settings: they enter the key too.
        searched = solver.search_config if hasattr(solver, "searches") and solver.searches(task.task) else None
        if skipped is None and "coarse_stride" in settings and config is not None:
            self._check_coarse(method, task, solver, settings["coarse_stride"], searched or config)
        blind = key_config(solver.blind.to_dict()) if hasattr(solver, "blind") and hasattr(solver.blind, "to_dict") else None
        if searched is not None:
            blind = {k: v for k, v in blind.items() if k not in NETWORK_ONLY}
        resolved = {"method": base, "config": key_config(config.to_dict()) if config else None, "blind": blind,
                    "preset": getattr(solver, "preset", None),
                    **({"search_config": key_config(searched.to_dict())} if searched is not None else {})}
        key = _hash({"format": FORMAT, "resolved": resolved, "model": cfg.model, "data": cfg.data, "seed": cfg.seed,
                     "task": asdict(task), "operator": op.spec()})
        return Job(task, method, solver, key, settings, cfg.images_for(task.name, method), skipped)

    @staticmethod
    def _check_coarse(method: str, task: BenchTask, solver, stride: int, config) -> None:
        """Warn when a ``--set METHOD.coarse_stride`` can change nothing on ``task``: no coarse
        iterations in ``config`` (the settings the run uses), or a coarse trajectory that keeps
        every DDIM step."""
        import warnings

        if config.coarse_iterations == 0:
            warnings.warn(f"{method}.coarse_stride={stride} does nothing on {task.name}: no coarse iterations there "
                          f"(add --set {method}.coarse_iterations=N, N > 0)")
        elif len(solver.coarse_pairs) == len(solver.pairs):
            warnings.warn(f"{method}.coarse_stride={stride} keeps every DDIM step of {task.name}'s "
                          f"{len(solver.pairs)}-step trajectory: its coarse iterations are ordinary ones")

    # -- inputs ----------------------------------------------------------------------------------------
    def operator(self, task: BenchTask, generator: torch.Generator | None = None):
        """The task's operator, made from the run's seed (the same for every method and process)."""
        from ..operators import build_task

        g = generator if generator is not None else torch.Generator().manual_seed(self.cfg.seed)
        return build_task(task.task, tuple(self.data["x"].shape[1:]), task.options, generator=g)

    def inputs(self, task: BenchTask) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(x, y, operator) of a task; written to ``inputs/`` once, checked when read back."""
        from ..io import write_json
        from ..operators import operator_from_spec

        n = self.cfg.images_for(task.name)
        base = self.out / "inputs" / task.name
        g = torch.Generator().manual_seed(self.cfg.seed)
        op = self.operator(task, g)
        x = self.data["x"][:n]
        meta = {"task": asdict(task), "operator": op.spec(), "indices": self.data["indices"][:n],
                "data": self.cfg.data, "seed": self.cfg.seed}
        if base.with_suffix(".json").is_file():
            old = read_json(base.with_suffix(".json"))
            if old.get("indices") != meta["indices"] or old.get("operator") != meta["operator"]:
                raise ShredError(f"{base}.json holds other images or another operator for {task.name} "
                                 f"(was --n changed?); use another --out")
            t = read_tensors(base.with_suffix(".safetensors"))
            return t["x"], t["y"], operator_from_spec(old["operator"])
        with torch.no_grad():
            y = op.degrade(x.double(), generator=g).float()  # the noise continues the operator's stream
        base.parent.mkdir(parents=True, exist_ok=True)
        write_tensors(base.with_suffix(".safetensors"), {"x": x, "y": y})
        write_json(base.with_suffix(".json"), meta)
        return x, y, op

    # -- chunks ------------------------------------------------------------------------------------------
    def job_dir(self, job: Job) -> Path:
        return self.out / "raw" / job.task.name / job.method.replace("@", "_at_").replace("#", "_v_") / job.key

    def chunks(self, job: Job) -> list[tuple[int, int, Path]]:
        """The job's complete, readable chunks (start, stop, json path), in order. A chunk is
        complete once its .json exists (written last); a damaged one is reported and left out,
        so that it is computed again."""
        out = []
        d = self.job_dir(job)
        for meta in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                a, b = (int(v) for v in meta.stem.split("-"))
            except ValueError:
                continue
            if b > job.n or a >= b:
                continue
            problem = chunk_problem(meta, b - a)
            if problem:
                self.log(f"{meta.with_suffix('')}: {problem}; computing it again")
                continue
            out.append((a, b, meta))
        return out

    def done_images(self, job: Job) -> set[int]:
        """Images of a job that a complete chunk holds."""
        return {i for a, b, _ in self.chunks(job) for i in range(a, b)}

    def cells(self) -> list[tuple[Job, int, int]]:
        """Every work item (job, start, stop): each job's images in a fixed grid of ``batch`` (one
        at a time for unbatched methods), done or not. The same list on every process, whatever
        the others have finished, so that the shares of :func:`shred.distributed.share` never
        overlap or leave a gap."""
        items = []
        for job in self.jobs:
            if job.skipped:
                continue
            size = self.cfg.batch if getattr(job.solver, "batched", True) else 1
            items += [(job, a, min(a + size, job.n)) for a in range(0, job.n, size)]
        return items

    @staticmethod
    def missing(start: int, stop: int, done: set[int]) -> list[tuple[int, int]]:
        """The runs of images start..stop-1 that are not in ``done`` (a resumed run may hold
        chunks of another batch size)."""
        runs, a = [], start
        while a < stop:
            if a in done:
                a += 1
                continue
            b = a + 1
            while b < stop and b not in done:
                b += 1
            runs.append((a, b))
            a = b
        return runs

    def plan(self, items: list[tuple[Job, int, int]] | None = None) -> list[tuple[Job, int, int]]:
        """Every chunk still to compute (job, start, stop) among ``items`` (default: all of
        :meth:`cells`), in order."""
        items = self.cells() if items is None else items
        done: dict[int, set[int]] = {}
        chunks = []
        for job, a, b in items:
            if id(job) not in done:
                done[id(job)] = self.done_images(job)
            chunks += [(job, s, e) for s, e in self.missing(a, b, done[id(job)])]
        return chunks

    def run_chunk(self, job: Job, start: int, stop: int, x, y, op, counter, progress: bool, lpips_fn) -> dict:
        from ..io import write_json
        from ..metrics import psnr, ssim

        device = torch.device(self.cfg.device)
        counter.reset()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with _PeakRSS() as mem:
            res = job.solver(y[start:stop].to(device), op.to(device), seeds=list(range(start, stop)), progress=progress)
        x0 = res.x0.float().cpu().clamp(0, 1)
        ref = x[start:stop]
        record = {
            "task": job.task.name, "method": job.method, "start": start, "stop": stop,
            "psnr": psnr(x0, ref).tolist(), "ssim": ssim(x0, ref).tolist(),
            "lpips": lpips_fn(x0, ref).tolist() if lpips_fn else None,
            "measurement_error": res.measurement_error(op, y[start:stop]).tolist(),
            "iterations": res.iterations.tolist(),
            "seconds": res.wall_time, "images": stop - start, **counter.counts(),
            "peak_memory_gb": (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                               else mem.peak - mem.base) / 2 ** 30,
            "settings": job.settings,
            "config": res.extras.get("config"), "blind": res.extras.get("blind"), "hardware": hardware(),
            "batch": self.cfg.batch,
        }
        d = self.job_dir(job)
        d.mkdir(parents=True, exist_ok=True)
        write_tensors(d / f"{start}-{stop}.safetensors", {"x0": x0.half()})
        # Not strict: an exactly restored image keeps its infinite PSNR, which the report counts.
        write_json(d / f"{start}-{stop}.json", record, strict=False)  # written last: marks the chunk complete
        return record

    # -- the whole run -------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> dict | None:
        """Compute every missing chunk (this process's share under torchrun), then (rank 0) the report."""
        from tqdm.auto import tqdm

        from ..io import write_json
        from ..metrics.perceptual import lpips_metric
        from ..models.counting import CountingDenoiser
        from ..distributed import barrier, share
        from ..models.fast import accelerate, run_options

        cfg = self.cfg
        rank, world = distributed()
        if rank == 0 and cfg.features:
            from .report import realism_of

            # The reference set's features first: a reference too small for --reference-n stops
            # the run before any method has run, not after all of them.
            realism_of(self).reference()
        self.out.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            write_json(self.out / "config.json", {"format": FORMAT, "config": asdict(cfg)})
        inputs = {t: self.inputs(self.tasks[t]) for t in cfg.tasks}
        lpips_fn, _ = lpips_metric()
        mine = self.plan(share(self.cells(), rank, world))
        counters: dict[int, Any] = {}
        # The solvers' own bars sit under this one by cursor movements, which a log file keeps as
        # escape codes: off a terminal only theirs are drawn (one at a time, so never moved), and
        # the line logged after each chunk says how far the run is.
        bar = tqdm(total=sum(b - a for _, a, b in mine), desc="bench", unit="img",
                   disable=not (progress and sys.stderr.isatty()))
        for job, start, stop in mine:
            bar.set_postfix_str(f"{job.task.name} / {job.method}")
            if id(job) not in counters:
                grad = getattr(job.solver.config, "grad", "exact") if getattr(job.solver, "config", None) else "exact"
                run = run_options("auto", cfg.device, grad=grad, images=cfg.batch,
                                  iterations=getattr(getattr(job.solver, "config", None), "iterations", 1) or 1)
                counters[id(job)] = CountingDenoiser(accelerate(self.den, run))
                if hasattr(job.solver, "denoiser"):
                    job.solver.denoiser = counters[id(job)]
            x, y, op = inputs[job.task.name]
            rec = self.run_chunk(job, start, stop, x, y, op, counters[id(job)], progress, lpips_fn)
            bar.update(stop - start)
            self.log(f"{job.task.name:9s} {job.method:20s} images {start}-{stop - 1}: "
                     f"PSNR {sum(rec['psnr']) / len(rec['psnr']):6.2f}  "
                     f"{rec['seconds'] / rec['images']:8.2f} s/img  {rec['image_calls'] / rec['images']:7.0f} calls/img")
        bar.close()
        barrier()  # nothing when alone
        if rank != 0:
            return None
        from .report import report
        return report(self)


def _extra_settings(base: str) -> tuple[str, ...]:
    from ..solvers import SOLVERS

    return SOLVERS[base].extra_settings
