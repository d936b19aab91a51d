"""How well SHRED+'s warm start reproduces the image it inverts (issue #13): x_T = DDIM inversion of
an image, then x0 = f(x_T) with the 10-step sampler SHRED optimises through, on N ``cifar10-train``
images, clean and box-blurred (5x5). Rows: fixed-point iterations per inversion step (1 is the
usual one-pass inversion), x0 clipping inside the sampler on and off; PSNR of the round trip,
the std of x_T (noise has 1) and network calls per image.

    python bench/inversion_roundtrip.py --n 8 --out bench/results/inversion-roundtrip-train.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.data import load_images  # noqa: E402
from shred.diffusion import ddim_invert, ddim_sample, time_pairs  # noqa: E402
from shred.io import write_json  # noqa: E402
from shred.metrics import psnr  # noqa: E402
from shred.models import load_model  # noqa: E402
from shred.solvers import to_image_space, to_model_space  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=8, help="the first N images of the split")
    p.add_argument("--data", default="cifar10-train")
    p.add_argument("--model", default="cifar10-32")
    p.add_argument("--fixed-point", default="1,2,3,4", help="comma-separated iteration counts")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    den = load_model(args.model)
    x = load_images(args.data, limit=args.n).float01()
    pairs = time_pairs(den.schedule.T, delta_t=100, spacing="leading")
    images = {"clean": x, "blur5": F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, 1)}
    rows = []
    print(f"{'image':6s} {'k':>2s} {'clip':>5s} {'PSNR':>6s} {'std x_T':>7s} {'calls':>5s}")
    for name, img in images.items():
        for k in (int(v) for v in args.fixed_point.split(",")):
            started = time.perf_counter()
            with torch.no_grad():
                x_T = ddim_invert(den, to_model_space(img), pairs, fixed_point=k)
                invert_s = time.perf_counter() - started
                for clip in (True, False):
                    rec = to_image_space(ddim_sample(den, x_T, pairs, grad="none", clip_x0=clip)).clamp(0, 1)
                    row = {"image": name, "fixed_point": k, "clip_x0": clip, "psnr": float(psnr(rec, img).mean()),
                           "x_T_std": float(x_T.std()), "calls_per_image": len(pairs) * (k + 1),
                           "invert_seconds_per_image": invert_s / len(img)}
                    rows.append(row)
                    print(f"{name:6s} {k:2d} {str(clip):>5s} {row['psnr']:6.2f} {row['x_T_std']:7.3f} "
                          f"{row['calls_per_image']:5d}")
    write_json(args.out, {"data": args.data, "n": args.n, "model": args.model, "delta_t": 100,
                          "spacing": "leading", "threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
