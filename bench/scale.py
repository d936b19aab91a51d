"""Restoring many images: folder throughput with 1 and 2 torchrun processes, and memory per pixel.

    python bench/scale.py throughput --out bench/results/scale-throughput-cpu.json
    python bench/scale.py memory --out bench/results/scale-memory-cpu.json
    python bench/scale.py sizes --out bench/results/scale-sizes.json

**throughput**: the first N CIFAR-10 test images, degraded (x4 super-resolution, `shred-ir
degrade DIR`), are restored with `shred-ir restore DIR --out OUT` by 1 process, then by
`torchrun --nproc_per_node=2` (the pair repeated ``--repeats`` times, interleaved), each into a
fresh folder, with the bundled model, ``--preset`` (default ``bundled``: SHRED's 10-step DDIM,
named so that the measurement does not change with what ``auto`` means) and ``--iterations`` Adam
iterations (fewer than the bundled preset's 100 for x4 super-resolution, to keep the run short; the restoring part of the time scales linearly with iterations, the start-up does not, so
``s_per_image_100_iterations`` is an upper bound). Wall-clock seconds of the whole command
(process start, model load and writing included), images per second, the load averages before and
after each run, the median over the repeats, and whether every run wrote the same images. Every
process runs with OMP_NUM_THREADS=1.

**memory**: the peak resident memory of one SHRED iteration (``ru_maxrss`` of a fresh process,
less that after loading the model and running one iteration at the training size) for square
images of several sides, surrogate and exact gradient, with the network run on the whole image
and on tiles of its training size; the slope between the smallest and the largest side is the
memory per pixel. Beside it, :func:`shred.models.tiles.activation_bytes_per_pixel` (what automatic
tiling budgets with).

**sizes**: no measurement, the arithmetic of automatic tiling
(:func:`shred.models.tiles.whole_image_pixels`) written out: for the bundled models and the
architectures of the released CelebA-HQ DDPM and ImageNet ADM checkpoints (bench/speed.py's, built
on the meta device), the bytes per pixel it budgets (``PEAK_PER_ACTIVATION`` of the device times the
activation bytes per pixel) and the largest square image restored without tiles, batch 1, at a
given free memory (70 % of it used); with tiles, on the CPU, the largest square image at the
measured bytes per pixel of ``scale-memory-cpu.json``'s tiled rows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shred.io import strict_json  # noqa: E402


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _load() -> list[float]:
    return list(os.getloadavg())


def _cpu() -> str:
    """The CPU's model name (from /proc/cpuinfo) and the number of cores this process may use."""
    name = "unknown CPU"
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


def _torch_version() -> str:
    import torch

    return torch.__version__


def throughput(args) -> dict:
    from shred.cli import main
    from shred.data import load_images
    from shred.io import write_image

    work = Path(tempfile.mkdtemp(prefix="shred-scale-"))
    try:
        clean = work / "clean"
        clean.mkdir()
        images = load_images(args.data, limit=args.n)
        x = images.float01(list(range(args.n)))
        for i in range(args.n):
            write_image(clean / f"{i:04d}.png", x[i:i + 1])
        assert main(["degrade", str(clean), "--task", "sr", "--scale", "4", "--out", str(work / "y"), "--quiet"]) == 0
        common = ["restore", str(work / "y"), "--preset", args.preset, "--iterations", str(args.iterations),
                  "--batch", str(args.batch),
                  "--device", "cpu", "--quiet"]
        rows = []
        for repeat in range(args.repeats):  # 1, 2, 1, 2, ...: a change of the machine's load hits both
            for procs in args.procs:
                out = work / f"out-{procs}-{repeat}"
                if procs == 1:
                    cmd = [sys.executable, "-m", "shred", *common, "--out", str(out)]
                else:
                    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
                           "-m", "shred", *common, "--out", str(out)]
                before = _load()
                started = time.perf_counter()
                res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False)
                seconds = time.perf_counter() - started
                if res.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
                done = len(list(out.glob("*.report.json")))
                rows.append({"processes": procs, "repeat": repeat, "images": done, "seconds": round(seconds, 1),
                             "images_per_s": round(done / seconds, 4),
                             "s_per_image_100_iterations": round(seconds / done * 100 / args.iterations, 1),
                             "load_before": before, "load_after": _load(),
                             "command": " ".join(cmd[1:]).replace(str(work), "WORK")})
                print(strict_json(rows[-1]))
        # Every run restores the same bytes (the images' seeds do not depend on the process).
        outputs = {r["processes"]: work / f"out-{r['processes']}-{r['repeat']}" for r in rows}
        first = next(iter(outputs.values()))
        same = all((d / p.name).read_bytes() == p.read_bytes() for d in outputs.values() for p in first.glob("*.png"))
        median = {n: statistics.median(r["seconds"] for r in rows if r["processes"] == n) for n in args.procs}
        return {"what": "shred-ir restore DIR: CIFAR-10 test images, x4 super-resolution, bundled cifar10-32 model",
                "n": args.n, "batch": args.batch, "preset": args.preset, "iterations": args.iterations,
                "repeats": args.repeats,
                "cpu": _cpu(), "torch": _torch_version(), "omp_num_threads": 1,
                "note": "load averages (1, 5, 15 min) before and after each run: the machine was shared with "
                        "other jobs",
                "rows": rows, "median_seconds": {str(n): v for n, v in median.items()},
                "speedup": {str(n): round(median[args.procs[0]] / v, 2) for n, v in median.items()},
                "same_outputs": same}
    finally:
        shutil.rmtree(work, ignore_errors=True)


PROBE = r"""
import json, resource, sys, torch
from shred.models import load_model
from shred.solvers import Shred, ShredConfig
from shred.operators import build_task
from shred.models.tiles import TiledDenoiser
model, side, grad, warm, tile = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
den = load_model(model)
net = TiledDenoiser(den, tile) if tile else den
def once(s):
    op = build_task("denoise", (den.channels, s, s))
    Shred(net, ShredConfig(iterations=1, grad=grad))(torch.rand(1, den.channels, s, s), op, seeds=[0])
once(warm)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
once(side)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak}))
"""


def memory(args) -> dict:
    from shred.models import load_model
    from shred.models.tiles import activation_bytes_per_pixel

    rows = []
    for model in args.models:
        den = load_model(model)
        warm = max(den.image_size)
        estimate = activation_bytes_per_pixel(den)
        for grad, tile in [("surrogate", 0), ("exact", 0), ("surrogate", warm), ("exact", warm)]:
            points = []
            for side in args.sides:
                res = subprocess.run([sys.executable, "-c", PROBE, model, str(side), grad, str(warm), str(tile)],
                                     env=_env(), capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    raise SystemExit(res.stderr[-3000:])
                rec = json.loads(res.stdout.strip().splitlines()[-1])
                points.append({"side": side, "pixels": side * side, "extra_bytes": rec["peak"] - rec["base"]})
                print(model, grad, tile, points[-1])
            (p0, p1) = points[0], points[-1]
            slope = (p1["extra_bytes"] - p0["extra_bytes"]) / (p1["pixels"] - p0["pixels"])
            rows.append({"model": model, "grad": grad, "tiles": f"{tile}x{tile}, overlap {tile // 4}" if tile else None,
                         "points": points, "bytes_per_pixel": round(slope),
                         "activation_bytes_per_pixel": round(estimate),
                         "ratio_to_activation_estimate": round(slope / estimate, 3)})
    return {"what": "peak RSS of one SHRED iteration (batch 1, float32, CPU) against the image side, the network "
            "on the whole image or on tiles of its training size", "device": "cpu", "cpu": _cpu(),
            "torch": _torch_version(), "rows": rows}


def sizes(args) -> dict:
    import importlib.util
    import math

    from shred.models import load_model
    from shred.models.tiles import FREE_FRACTION as fraction
    from shred.models.tiles import PEAK_PER_ACTIVATION, activation_bytes_per_pixel
    spec = importlib.util.spec_from_file_location("speed", ROOT / "bench" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    nets = {name: load_model(name) for name in ("cifar10-32", "fashion-mnist-28")}
    nets.update({f"{name} (architecture)": speed.make_denoiser(cfg, "meta") for name, cfg in speed.ARCHS.items()})
    measured = json.loads((ROOT / "bench" / "results" / "scale-memory-cpu.json").read_text())
    tiled = {r["grad"]: r["bytes_per_pixel"] for r in measured["rows"] if r["tiles"] and r["model"] == "cifar10-32"}
    rows = []
    for name, den in nets.items():
        act = activation_bytes_per_pixel(den)
        m = den.size_multiple or 1
        for device, factors in PEAK_PER_ACTIVATION.items():
            for grad, factor in factors.items():
                per_pixel = factor * act
                side = {f"{gib} GiB": math.isqrt(int(gib * 2 ** 30 * fraction / per_pixel)) // m * m
                        for gib in args.free_gib}
                rows.append({"model": name, "device": device, "grad": grad, "activation_bytes_per_pixel": round(act),
                             "factor": factor, "budget_bytes_per_pixel": round(per_pixel),
                             "largest_side_without_tiles": side})
    tiles = [{"model": "cifar10-32", "device": "cpu", "grad": g, "measured_bytes_per_pixel": b,
              "largest_side": {f"{gib} GiB": math.isqrt(int(gib * 2 ** 30 * fraction / b)) for gib in args.free_gib}}
             for g, b in tiled.items()]
    return {"what": "largest square image restored at batch 1 with the given free memory: without tiles by the "
            "budget of shred.models.tiles.whole_image_pixels, with tiles (CPU) by the measured bytes per pixel",
            "fraction_of_free_memory": fraction, "free_gib": args.free_gib, "rows": rows, "tiled": tiles}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput", help="shred-ir restore DIR with 1 and 2 processes")
    t.add_argument("--data", default="cifar10-test", help="data set of the clean images (default cifar10-test)")
    t.add_argument("--n", type=int, default=16, help="images (default 16)")
    t.add_argument("--batch", type=int, default=4, help="restore's --batch (default 4)")
    t.add_argument("--preset", default="bundled", help="restore's --preset (default bundled)")
    t.add_argument("--iterations", type=int, default=10, help="SHRED's Adam iterations (default 10)")
    t.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to run (default 1 2)")
    t.add_argument("--repeats", type=int, default=2, help="runs of each process count, interleaved (default 2)")
    t.add_argument("--out", required=True, help="the JSON file to write")
    m = sub.add_parser("memory", help="peak memory of one SHRED iteration against the image side")
    m.add_argument("--models", nargs="+", default=["cifar10-32"], help="models (default cifar10-32)")
    m.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256], help="square image sides (default 64 128 "
                   "256); the slope is taken between the first and the last")
    m.add_argument("--out", required=True, help="the JSON file to write")
    z = sub.add_parser("sizes", help="largest image sizes by the automatic-tiling budget")
    z.add_argument("--free-gib", type=float, nargs="+", default=[8, 24, 80], help="free memory in GiB (default 8 24 80)")
    z.add_argument("--out", required=True, help="the JSON file to write")
    args = p.parse_args()
    result = {"throughput": throughput, "memory": memory, "sizes": sizes}[args.what](args)
    result["command"] = "python bench/scale.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(strict_json(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
