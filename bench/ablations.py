"""SHRED ablations: the paper's Tables 4-6, the choices the paper leaves open, and SHRED+.

    python bench/ablations.py --n 8 --out bench/results/ablations-cifar10.json
    python bench/ablations.py --studies plus --data cifar10-train --n 50 --run runs/ablations-plus \
        --out bench/results/ablations-plus.json

The ``plus`` study runs on the comparison's protocol: it is a ``shred-ir bench`` run whose methods
are SHRED+ (``shred@plus``) and one labelled variant per option with that option changed
(:data:`PLUS_VARIANTS`), so every row has PSNR, SSIM, KID-C10 / FID-C10, the measurement error,
network calls and seconds per image, and the run resumes where it stopped. Tune on
``cifar10-train``; the comparison reports on ``cifar10-test``.

On N images of the CIFAR-10 test split (seeded choice) with the bundled model, each study varies one
setting of the preset and reports PSNR, SSIM, the relative measurement error and seconds per image:

* ``delta_t``: 50 / 100 / 200 on inpainting (Table 4);
* ``lr``: 5e-4, 1e-3, 2.5e-3, 5e-3 (Table 5) and the project's 0.03 on x4 super-resolution;
* ``iterations``: 50 ... 150 on x4 super-resolution (Table 6), snapshots of one 150-iteration run;
* open choices on inpainting: exact vs surrogate gradient, noise vs DDIM-inversion initialisation,
  sphere projection on/off, x0 clipping on/off.

Everything else is the preset's (``--preset``, default ``bundled``). A table is printed and the
numbers go to JSON.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.io import strict_json  # noqa: E402
from shred.data import load_images  # noqa: E402
from shred.metrics import psnr, ssim  # noqa: E402
from shred.models import load_model  # noqa: E402
from shred.operators import TaskOptions, build_task  # noqa: E402
from shred.solvers import Shred, preset_config  # noqa: E402


class Snapshots:
    """A SHRED callback keeping x0 at chosen iteration counts of one run (for Table 6)."""

    def __init__(self, at=()):
        self.at, self.taken = set(at), {}

    def __call__(self, p) -> None:
        if p.k + 1 in self.at:
            self.taken[p.k + 1] = p.x0.detach().cpu()


def evaluate(x0, x, op, y) -> dict:
    x0 = x0.float().clamp(0, 1)
    rel = ((y - op.A(x0)).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
    return {"psnr": float(psnr(x0, x).mean()), "ssim": float(ssim(x0, x).mean()), "measurement_error": float(rel)}


# SHRED+ options, one at a time: the label and the settings that differ from shred@plus (155 calls:
# its first 8 iterations run through 5 DDIM steps). bench/results/ablations-plus.json holds every
# row against that preset; a change of the preset recomputes the rows when the study runs again.
PLUS_VARIANTS = {
    "noise-start": dict(init="noise"),                  # Algorithm 1's start instead of the warm start
    "pinv-start": dict(warm_from="pinv"),               # warm start from A^+ y instead of 20-step DDRM
    "consistency-finish": dict(finish="consistency"),   # x + A^+(y - A x) instead of DDNM's finish
    "no-finish": dict(finish="none"),                   # without a final step
    "constant-lr": dict(lr_decay="none"),               # without the cosine decay
    "plateau-stop": dict(stop="plateau"),               # per-image early stopping
    "exact": dict(grad="exact"),                        # backpropagation through the network
    "exact-lr0.02": dict(grad="exact", lr=0.02),        # the same at a smaller learning rate
    "all-fine": dict(coarse_iterations=0),              # every iteration through 10 DDIM steps (195 calls)
    # The warm start's inversion solved by 3 fixed-point iterations per step, with x0 clipping off
    # (clipping breaks the round trip: bench/inversion_roundtrip.py): 175 calls.
    "fixed-point-start": dict(invert_fixed_point=3, clip_x0=False),
}
PLUS_REFERENCES = ("pinv", "ddrm", "ddnm")
PLUS_LAST = ("shred@bundled",)  # 1,000 calls per image: run after the cheap rows


def run_plus(args) -> int:
    """The SHRED+ study through the comparison harness (module docstring)."""
    from shred.benchmark import BenchConfig, Benchmark

    methods = [*PLUS_REFERENCES, "shred@plus", *[f"shred@plus#{v}" for v in PLUS_VARIANTS], *PLUS_LAST]
    settings = {f"shred@plus#{v}": dict(s) for v, s in PLUS_VARIANTS.items()}
    cfg = BenchConfig(data=args.data, n=args.n, tasks=args.tasks.split(","), methods=methods, model=args.model,
                      seed=args.seed, settings=settings, batch=args.batch, device="cpu",
                      min_realism_images=min(20, args.n))
    results = Benchmark(cfg, args.run).run(progress=False)
    rows = [{"task": t, "method": m, **{k: v for k, v in e.items() if k not in ("config", "hardware")}}
            for t, block in results["tasks"].items() for m, e in block["rows"].items()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(strict_json({"study": "plus", "data": args.data, "n": args.n, "seed": args.seed,
                               "variants": PLUS_VARIANTS, "hardware": results["hardware"],
                               "kid_label": results["kid_label"], "fid_label": results["fid_label"],
                               "reference_rows": {t: b["reference_rows"] for t, b in results["tasks"].items()},
                               "rows": rows}, indent=2) + "\n")
    print((Path(args.run) / "results.md").read_text())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--model", default="cifar10-32")
    p.add_argument("--data", default="cifar10-test")
    p.add_argument("--preset", default="bundled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--studies", default="delta_t,lr,iterations,open",
                   help="delta_t, lr, iterations, open (the paper's), or plus (SHRED+, through the bench)")
    p.add_argument("--tasks", default="inpaint,sr4,cs5,sr8,deblur,colorize", help="plus study: bench tasks")
    p.add_argument("--batch", type=int, default=25, help="plus study: images per solver call")
    p.add_argument("--run", default="runs/ablations-plus", help="plus study: the bench run folder (resumable)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.studies == "plus":
        return run_plus(args)

    den = load_model(args.model)
    imgs = load_images(args.data).float01()
    x = imgs[torch.randperm(imgs.shape[0], generator=torch.Generator().manual_seed(args.seed))[: args.n]]
    size = den.image_size[0]
    g = torch.Generator().manual_seed(args.seed)
    problems = {"inpaint": build_task("inpaint", tuple(x.shape[1:]), TaskOptions(box_size=size // 2), g),
                "sr": build_task("sr", tuple(x.shape[1:]), TaskOptions(scale=4), g)}
    seeds = list(range(args.n))
    rows = []
    out = Path(args.out)

    def run(study, value, task, **overrides):
        op = problems[task]
        y = op.A(x)
        cfg = preset_config(args.preset, task, **overrides)
        t0 = time.perf_counter()
        res = Shred(den, cfg)(y, op, seeds=seeds)
        row = {"study": study, "value": value, "task": task, **evaluate(res.x0, x, op, y),
               "seconds_per_image": (time.perf_counter() - t0) / args.n, "config": cfg.to_dict()}
        rows.append(row)
        print(f"{study:10s} {str(value):22s} {task:8s} PSNR {row['psnr']:6.2f}  SSIM {row['ssim']:.3f}  "
              f"rel.err {row['measurement_error']:.4f}  {row['seconds_per_image']:6.1f} s/img", flush=True)
        save()

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(strict_json({"model": args.model, "data": args.data, "n": args.n, "seed": args.seed,
                                   "preset": args.preset, "rows": rows}, indent=2) + "\n")

    studies = args.studies.split(",")
    if "delta_t" in studies:
        for d in (50, 100, 200):
            run("delta_t", d, "inpaint", delta_t=d)
    if "lr" in studies:
        for lr in (5e-4, 1e-3, 2.5e-3, 5e-3, 0.03):
            run("lr", lr, "sr", lr=lr)
    if "iterations" in studies:
        op = problems["sr"]
        y = op.A(x)
        cfg = preset_config(args.preset, "sr", iterations=150)
        snap = Snapshots(at=(50, 75, 100, 125, 150))
        t0 = time.perf_counter()
        Shred(den, cfg).solve(y, op, seeds, False, callback=snap)
        solver = snap
        per_it = (time.perf_counter() - t0) / args.n / 150
        for k, x0 in sorted(solver.taken.items()):
            rows.append({"study": "iterations", "value": k, "task": "sr", **evaluate(x0, x, op, y),
                         "seconds_per_image": per_it * k, "config": cfg.to_dict()})
            r = rows[-1]
            print(f"{'iterations':10s} {k:<22d} {'sr':8s} PSNR {r['psnr']:6.2f}  SSIM {r['ssim']:.3f}  "
                  f"rel.err {r['measurement_error']:.4f}  {r['seconds_per_image']:6.1f} s/img", flush=True)
        save()
    if "open" in studies:
        run("gradient", "surrogate", "inpaint", grad="surrogate")
        run("gradient", "exact", "inpaint", grad="exact")
        run("init", "ddim-inversion", "inpaint", init="ddim-inversion")
        run("sphere", "off", "inpaint", sphere=False)
        run("clip_x0", "off", "inpaint", clip_x0=False)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
