"""Why blind SHRED+ does not beat its blurred input on the bundled model (issue #13): one run per
setting on N ``cifar10-train`` images, blurred by the bench's blind kernel (random anisotropic
Gaussian, 9x9 at 32 px), reporting the restoration's PSNR, the blurred input's PSNR, the relative
residual under the *true* blur, and the estimated kernels' peak against the true kernel's.

    python bench/blind_probe.py --n 4 --out bench/results/blind-probe-train.json

The rows separate the two unknowns: ``iterations=1`` is the warm start itself (x0 = f(x_T^0) from
the DDIM inversion of y, before any step), so it shows how far the start already is from y; the
``kernel_lr`` rows show whether a faster kernel network closes the gap.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.data import load_images  # noqa: E402
from shred.io import write_json  # noqa: E402
from shred.metrics import psnr  # noqa: E402
from shred.models import load_model  # noqa: E402
from shred.operators import TaskOptions, build_task  # noqa: E402
from shred.solvers import build_solver  # noqa: E402

SETTINGS = [
    {"iterations": 1, "warm_strength": 1.0},   # the DDIM inversion of y, taken straight back (no noise)
    {"iterations": 1},                         # the preset's warm start (a = 0.9), before any step
    {},                                        # the preset (19 iterations, kernel lr 2e-3)
    {"kernel_lr": 0.005},
    {"kernel_lr": 0.02},
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--seed", type=int, default=7, help="choice of the training images")
    p.add_argument("--preset", default="plus")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    imgs = load_images("cifar10-train").float01()
    x = imgs[torch.randperm(imgs.shape[0], generator=torch.Generator().manual_seed(args.seed))[: args.n]]
    op = build_task("blind-deblur", tuple(x.shape[1:]), TaskOptions(kernel="random", kernel_size=9),
                    torch.Generator().manual_seed(1))
    y = op.A(x)
    den = load_model("cifar10-32")
    true_peak = float(op.kernel.max())
    rows = []
    for s in SETTINGS:
        t0 = time.perf_counter()
        r = build_solver("shred-blind", den, preset=args.preset, **s)(y, op, seeds=list(range(args.n)))
        x0 = r.x0.clamp(0, 1)
        rel = ((y - op.A(x0)).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
        row = {"settings": s, "psnr": float(psnr(x0, x).mean()), "input_psnr": float(psnr(y, x).mean()),
               "residual_true_blur": float(rel), "kernel_peak": float(r.extras["kernel"].amax(dim=(-1, -2)).mean()),
               "true_kernel_peak": true_peak, "seconds_per_image": (time.perf_counter() - t0) / args.n}
        rows.append(row)
        print(f"{str(s):45s} PSNR {row['psnr']:6.2f} (input {row['input_psnr']:.2f})  residual {row['residual_true_blur']:.3f}"
              f"  kernel peak {row['kernel_peak']:.3f} (true {true_peak:.3f})", flush=True)
    write_json(args.out, {"data": "cifar10-train", "n": args.n, "seed": args.seed, "preset": args.preset,
                          "threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
