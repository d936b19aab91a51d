"""The comparison harness behind ``shred bench``: every method on the very same degraded inputs.

A run is a folder:

* ``inputs/<task>.pt``: the clean images, their measurements y and the operator spec, made once
  per task from ``--seed`` and shared by every method;
* ``raw/<task>__<method>.pt``: each method's restorations and per-image metrics, written
  atomically when the method finishes, so an interrupted run resumes where it stopped;
* ``results.json``, ``results.md`` (methods x tasks in the paper's layout, and a runtime table) and
  ``grids/<task>.png`` (ground truth, input, each method), rebuilt from ``raw/`` at the end.

Per image: PSNR, SSIM, the relative measurement error ||y - A x|| / ||y||, the solver's wall time
divided by the batch, and the peak memory of the solve (GPU: allocated; CPU: resident set growth).
LPIPS is reported only where its real AlexNet weights are available (never approximated).
Distribution metrics (FID-C10, the patch SWD) need many images: they are computed per (task,
method) only when N >= ``min_fid_images``; below that the table says so.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import ShredError
from .operators import TaskOptions, build_task, operator_from_spec, preset_key


@dataclass(frozen=True)
class BenchTask:
    """A named degradation of the comparison: a task recipe and its options."""

    name: str
    task: str
    options: TaskOptions
    label: str


def _tasks_for(size: int) -> dict[str, BenchTask]:
    box = size // 2
    return {t.name: t for t in [
        BenchTask("inpaint", "inpaint", TaskOptions(box_size=box), f"Inpainting ({box}x{box} box)"),
        BenchTask("sr4", "sr", TaskOptions(scale=4), "SR x4"),
        BenchTask("sr8", "sr", TaskOptions(scale=8), "SR x8"),
        BenchTask("cs5", "cs", TaskOptions(fraction=0.05), "CS 5%"),
        BenchTask("cs1", "cs", TaskOptions(fraction=0.01), "CS 1%"),
        BenchTask("deblur", "deblur", TaskOptions(kernel="gaussian", kernel_sigma=2.0), "Deblur (Gaussian, sigma 2)"),
        BenchTask("colorize", "colorize", TaskOptions(), "Colorization"),
        # The paper's blind deconvolution: a random anisotropic Gaussian, 41x41 at 256 pixels;
        # here scaled to the image (9x9 at 32 pixels, standard deviations 0.4-1.8 pixels).
        BenchTask("blind", "blind-deblur", TaskOptions(kernel="random", kernel_size=max(5, (size * 41 // 256) | 1)),
                  "Blind deconv"),
    ]}


BENCH_TASK_NAMES = tuple(_tasks_for(32))


def _shred_factory(den, group: str, settings: dict, preset: str):
    from .solvers import Shred, preset_config, resolve_preset

    return Shred(den, preset_config(resolve_preset(preset, den), group, **settings))


def _registered(name: str):
    def make(den, group: str, settings: dict, preset: str):
        from .solvers import build_solver
        return build_solver(name, den, **settings)
    return make


def _shred_blind_factory(den, group: str, settings: dict, preset: str):
    from .solvers import preset_config, resolve_preset
    from .solvers.blind import shred_for_task

    preset = resolve_preset(preset, den)
    kernel_lr = settings.pop("kernel_lr", None) if settings else None
    return shred_for_task(den, preset_config(preset, "blind-deblur", **settings), "blind-deblur", preset,
                          kernel_lr=kernel_lr)


METHODS: dict[str, Callable] = {
    "pinv": _registered("pinv"),  # the prior-free baseline A^+ y
    "shred": _shred_factory,
    "ddnm": _registered("ddnm"),
    "ddnm+": _registered("ddnm+"),
    "ddrm": _registered("ddrm"),
    "dps": _registered("dps"),
    "repaint": _registered("repaint"),
    "dip": _registered("dip"),
    "naive-inversion": _registered("naive-inversion"),
    "shred-blind": _shred_blind_factory,
    "selfdeblur": _registered("selfdeblur"),
}
BLIND_METHODS = {"shred-blind", "selfdeblur"}


@dataclass
class BenchConfig:
    """Everything a run depends on (saved in results.json; a resumed run must match it)."""

    data: str
    n: int
    tasks: list[str]
    methods: list[str]
    model: str
    seed: int = 0
    preset: str = "auto"
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    min_fid_images: int = 50
    feature_net: str | None = "cifar10"


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


def _save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def select_images(cfg: BenchConfig) -> torch.Tensor:
    """N images of the data set (a split name, folder, zip or IDX file), picked by a seeded
    permutation, as float [N, C, H, W] in [0, 1]."""
    from .data import load_images

    x = load_images(cfg.data).float01()
    g = torch.Generator().manual_seed(cfg.seed)
    return x[torch.randperm(x.shape[0], generator=g)[: cfg.n]]


class Benchmark:
    """One comparison run in ``out`` (see the module docstring)."""

    def __init__(self, cfg: BenchConfig, out: str | os.PathLike):
        self.cfg = cfg
        self.out = Path(out)
        for sub in ("inputs", "raw", "grids"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        cfg_path = self.out / "config.json"
        if cfg_path.is_file():
            old = json.loads(cfg_path.read_text())
            keep = ("data", "n", "model", "seed", "preset")
            if any(old.get(k) != getattr(cfg, k) for k in keep):
                raise ShredError(f"{self.out} holds a run with other settings ({', '.join(keep)}); "
                                 "use another --out or delete it")
        cfg_path.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        unknown = [t for t in cfg.tasks if t not in BENCH_TASK_NAMES]
        if unknown:
            raise ShredError(f"unknown tasks {unknown}; choose from {', '.join(BENCH_TASK_NAMES)}")
        bad = [m for m in cfg.methods if m not in METHODS]
        if bad:
            raise ShredError(f"unknown methods {bad}; choose from {', '.join(METHODS)}")

    # -- inputs --------------------------------------------------------------------------------------
    def inputs(self, task: BenchTask, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any]:
        path = self.out / "inputs" / f"{task.name}.pt"
        if path.is_file():
            d = torch.load(path, weights_only=False)
            return d["x"], d["y"], operator_from_spec(d["operator"])
        g = torch.Generator().manual_seed(self.cfg.seed)
        op = build_task(task.task, tuple(x.shape[1:]), task.options, generator=g)
        with torch.no_grad():
            y = op.degrade(x.double(), generator=g).float()
        _save({"x": x, "y": y, "operator": op.spec(), "task": asdict(task)}, path)
        return x, y, op

    # -- one (task, method) ---------------------------------------------------------------------------
    def run_one(self, den, task: BenchTask, method: str, x, y, op, progress: bool, lpips_fn) -> dict:
        from .metrics import psnr, ssim

        path = self.out / "raw" / f"{task.name}__{method}.pt"
        if path.is_file():
            return torch.load(path, weights_only=False)["summary"]
        settings = dict(self.cfg.settings.get(method, {}))
        device = torch.device(self.cfg.device)
        record: dict[str, Any] = {"task": task.name, "method": method, "settings": settings}
        blind_task = preset_key(task.task) == "blind-deblur"
        if blind_task != (method in BLIND_METHODS):
            record["skipped"] = ("a non-blind method needs the kernel" if blind_task
                                 else "blind methods run on the blind task only")
            _save({"x0": None, "summary": record}, path)
            return record
        try:
            solver = METHODS[method](den, preset_key(task.task), settings, self.cfg.preset)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with _PeakRSS() as mem:
                res = solver(y.to(device), op, seeds=list(range(y.shape[0])), progress=progress)
            x0 = res.x0.float().cpu().clamp(0, 1)
            record.update(
                psnr=psnr(x0, x).tolist(), ssim=ssim(x0, x).tolist(),
                lpips=lpips_fn(x0, x).tolist() if lpips_fn else None,
                measurement_error=res.measurement_error(op, y).tolist(),
                seconds_per_image=res.wall_time / y.shape[0],
                peak_memory_gb=(torch.cuda.max_memory_allocated() if device.type == "cuda"
                                else mem.peak - mem.base) / 2 ** 30,
                config=res.extras.get("config"))
            _save({"x0": x0.half(), "summary": record}, path)
        except ShredError as exc:  # the method does not apply to this operator (e.g. RePaint on SR)
            record["skipped"] = str(exc)
            _save({"x0": None, "summary": record}, path)
        return record

    # -- the whole run ---------------------------------------------------------------------------------
    def run(self, progress: bool = True, log=print) -> dict:
        from tqdm.auto import tqdm

        from .models import load_model

        cfg = self.cfg
        den = load_model(cfg.model, device=cfg.device)
        x_all = select_images(cfg)
        if tuple(x_all.shape[1:]) != (den.channels, *den.image_size):
            from .io import resize
            x_all = resize(x_all, den.image_size)
            if x_all.shape[1] != den.channels:
                raise ShredError(f"{cfg.data} has {x_all.shape[1]}-channel images; {cfg.model} needs {den.channels}")
        tasks = _tasks_for(den.image_size[0])
        from .metrics.perceptual import lpips_metric

        lpips_fn, _ = lpips_metric()
        pairs = [(t, m) for t in cfg.tasks for m in cfg.methods]
        bar = tqdm(pairs, desc="bench", unit="run", disable=not progress)
        for t, m in bar:
            bar.set_postfix_str(f"{t} / {m}")
            task = tasks[t]
            x, y, op = self.inputs(task, x_all)
            rec = self.run_one(den, task, m, x, y, op, progress, lpips_fn)
            if "skipped" in rec:
                log(f"{t:9s} {m:16s} skipped: {rec['skipped']}")
            else:
                log(f"{t:9s} {m:16s} PSNR {_mean(rec['psnr']):6.2f}  SSIM {_mean(rec['ssim']):.3f}  "
                    f"{rec['seconds_per_image']:8.2f} s/img")
        return self.report(tasks)

    def report(self, tasks: dict[str, BenchTask]) -> dict:
        from .io import write_grid

        cfg = self.cfg
        rows: dict[str, dict[str, dict]] = {}
        fid_label = None
        extractor = None
        if cfg.n >= cfg.min_fid_images and cfg.feature_net:
            from .metrics.features import load_feature_net
            extractor, fid_label = load_feature_net(cfg.feature_net)
        for t in cfg.tasks:
            d = torch.load(self.out / "inputs" / f"{t}.pt", weights_only=False)
            x, y, op = d["x"], d["y"], operator_from_spec(d["operator"])
            columns = [("ground truth", x[:4]), ("input", _viewable(op, y[:4]))]
            for m in cfg.methods:
                path = self.out / "raw" / f"{t}__{m}.pt"
                if not path.is_file():
                    continue
                raw = torch.load(path, weights_only=False)
                s = raw["summary"]
                entry = {"skipped": s["skipped"]} if "skipped" in s else {
                    "psnr": _mean(s["psnr"]), "ssim": _mean(s["ssim"]),
                    "lpips": _mean(s["lpips"]) if s.get("lpips") else None,
                    "measurement_error": _mean(s["measurement_error"]),
                    "seconds_per_image": s["seconds_per_image"], "peak_memory_gb": s["peak_memory_gb"],
                    "settings": s["settings"]}
                if raw["x0"] is not None:
                    x0 = raw["x0"].float()
                    columns.append((m, x0[:4]))
                    if extractor is not None:
                        from .metrics import features, frechet_distance
                        entry[fid_label] = frechet_distance(features(extractor, x0), features(extractor, x))
                rows.setdefault(m, {})[t] = entry
            write_grid(self.out / "grids" / f"{t}.png", columns)
        from .metrics.perceptual import lpips_metric

        results = {"config": asdict(cfg), "fid_metric": fid_label, "lpips": lpips_metric()[1], "rows": rows}
        (self.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (self.out / "results.md").write_text(markdown(results, tasks))
        return results


def _viewable(op, y):
    """Measurements shown at image size: A^+ y where y is smaller or has fewer channels."""
    if tuple(op.out_shape) == tuple(op.in_shape):
        return y
    return op.pinv(y.double()).float().clamp(0, 1)


def _mean(v):
    return float(sum(v) / len(v)) if v else float("nan")


def markdown(results: dict, tasks: dict[str, BenchTask]) -> str:
    cfg = results["config"]
    fid = results["fid_metric"]
    names = cfg["tasks"]
    lines = [f"Model `{cfg['model']}`, {cfg['n']} images of `{cfg['data']}` (seed {cfg['seed']}), "
             f"SHRED preset `{cfg['preset']}`, device {cfg['device']}.", "",
             "PSNR (dB) / SSIM, mean over the images" + ("" if fid else
             f"; FID-type metrics need >= {cfg['min_fid_images']} images and are not computed") +
             f"; LPIPS: {results['lpips']}.", "",
             "| method | " + " | ".join(tasks[t].label for t in names) + " |",
             "| --- |" + " --- |" * len(names)]
    for m, per in results["rows"].items():
        cells = []
        for t in names:
            e = per.get(t)
            if e is None:
                cells.append("")
            elif "skipped" in e:
                cells.append("n/a")
            else:
                cell = f"{e['psnr']:.2f} / {e['ssim']:.3f}"
                if fid and fid in e:
                    cell += f" / {fid} {e[fid]:.1f}"
                cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Measurement consistency: relative error ||y - A x|| / ||y||, mean over the images "
              "(0 = the restoration explains the measurement exactly).", "",
              "| method | " + " | ".join(tasks[t].label for t in names) + " |",
              "| --- |" + " --- |" * len(names)]
    for m, per in results["rows"].items():
        cells = ["" if per.get(t) is None else "n/a" if "skipped" in per[t] else f"{per[t]['measurement_error']:.4f}"
                 for t in names]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Runtime: seconds per image (solver wall time / batch) and peak memory (GB), mean over tasks.", "",
              "| method | s / image | peak memory GB | settings |", "| --- | --- | --- | --- |"]
    for m, per in results["rows"].items():
        done = [e for e in per.values() if "skipped" not in e]
        if done:
            settings = json.dumps(done[0]["settings"]) if done[0]["settings"] else "defaults"
            lines.append(f"| {m} | {_mean([e['seconds_per_image'] for e in done]):.2f} | "
                         f"{max(e['peak_memory_gb'] for e in done):.2f} | {settings} |")
    return "\n".join(lines) + "\n"
