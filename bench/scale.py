"""Restoring many images: folder throughput with 1 and 2 torchrun processes, and memory per pixel.

    python bench/scale.py throughput --out bench/results/scale-throughput-cpu.json
    python bench/scale.py memory --out bench/results/scale-memory-cpu.json

**throughput**: the first N CIFAR-10 test images, degraded (x4 super-resolution, `shred-ir
degrade DIR`), are restored with `shred-ir restore DIR --out OUT` by 1 process, then by
`torchrun --nproc_per_node=2`, each into a fresh folder, with the bundled model, the bundled preset
(SHRED's 10-step DDIM) and ``--iterations`` Adam iterations (fewer than the preset's 100 to keep the
run short; time scales linearly with iterations). Wall-clock seconds of the whole command
(process start, model load and writing included), images per second, and the load average of the
machine during the run. Every process runs with OMP_NUM_THREADS=1.

**memory**: the peak resident memory of one SHRED iteration (``ru_maxrss`` of a fresh process,
less that after loading the model and running one iteration at the training size) for square
images of several sides, surrogate and exact gradient, with the network run on the whole image
and on tiles of its training size; the slope between the smallest and the largest side is the
memory per pixel. Beside it, :func:`shred.models.tiles.activation_bytes_per_pixel` (what automatic
tiling budgets with).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _load() -> list[float]:
    return list(os.getloadavg())


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
        common = ["restore", str(work / "y"), "--iterations", str(args.iterations), "--batch", str(args.batch),
                  "--device", "cpu", "--quiet"]
        rows = []
        for procs in args.procs:
            out = work / f"out-{procs}"
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
            rows.append({"processes": procs, "images": done, "seconds": round(seconds, 1),
                         "images_per_s": round(done / seconds, 4),
                         "s_per_image_100_iterations": round(seconds / done * 100 / args.iterations, 1),
                         "load_before": before, "load_after": _load(), "command": " ".join(cmd[1:])})
            print(json.dumps(rows[-1]))
        return {"what": "shred-ir restore DIR: CIFAR-10 test images, x4 super-resolution, bundled cifar10-32 model",
                "n": args.n, "batch": args.batch, "iterations": args.iterations, "cpu_count": os.cpu_count(),
                "omp_num_threads": 1, "note": "the machine was shared with other jobs (see the load averages)",
                "rows": rows, "speedup": round(rows[0]["seconds"] / rows[-1]["seconds"], 2) if len(rows) > 1 else None}
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
            "on the whole image or on tiles of its training size", "device": "cpu", "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--data", default="cifar10-test")
    t.add_argument("--n", type=int, default=16)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--iterations", type=int, default=10)
    t.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    t.add_argument("--out", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--models", nargs="+", default=["cifar10-32"])
    m.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256])
    m.add_argument("--out", required=True)
    args = p.parse_args()
    result = throughput(args) if args.what == "throughput" else memory(args)
    result["command"] = "python bench/scale.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
