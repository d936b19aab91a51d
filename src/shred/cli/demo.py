"""``shred-ir demo``: degrade the shipped sample image and restore it with the bundled model."""
from __future__ import annotations

import sys
from pathlib import Path

from .options import integer, seed

SAMPLE_IMAGE = Path(__file__).resolve().parent.parent / "samples" / "chelsea-32.png"

# Tasks that need a file from the user (a mask) cannot run on the sample alone.
NEEDS_A_FILE = ("inpaint-mask",)


def add_parser(sub) -> None:
    from ..operators import TASKS

    p = sub.add_parser("demo", help="restore the shipped sample image with the bundled model",
                       description="Degrade the shipped 32x32 sample image (Chelsea the cat, CC0) and restore it with SHRED+ "
                       "and the bundled CIFAR-10 model (4 seeds in one batch); writes clean, degraded, restored (the "
                       "seed-mean image) and a side-by-side grid.")
    p.add_argument("--task", default="sr", choices=[t for t in TASKS if t not in NEEDS_A_FILE],
                   help="degradation (default sr: x4 average pooling)")
    p.add_argument("--out-dir", default="shred-demo", help="folder for the images (default shred-demo)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first sample (default 0)")
    p.add_argument("--samples", type=integer, choices=range(1, 17), metavar="K", default=4,
                   help="restorations from seeds SEED .. SEED+K-1, run as one batch; restored.png is their "
                   "mean (default 4)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import degrade, restore
    from ..io import check_output_folder, check_outputs, grid_bytes, image_bytes, make_folder, read_image, write_all
    from ..metrics import psnr
    from ..models import default_model, load_model
    from ..operators import TaskOptions
    from .options import default_device

    # Before any work: a folder (or one that can be created) where the four files can be written.
    out = check_output_folder(args.out_dir, "--out-dir")
    names = ("clean.png", "degraded.png", "restored.png", "grid.png")
    check_outputs([("--out-dir", out / n) for n in names], [("the sample image", SAMPLE_IMAGE)], create_folders=True)
    den = load_model(default_model(3))
    x = read_image(SAMPLE_IMAGE)
    opts = TaskOptions(scale=4, fraction=0.05, box_size=12)
    y, op = degrade(x, args.task, opts, seed=args.seed)
    device = default_device()
    print(f"restoring the sample {SAMPLE_IMAGE.name} (32x32, CC0) degraded by {args.task} with {den.describe()} "
          f"on {device}", file=sys.stderr)
    seeds = [(args.seed + i) % 2 ** 63 for i in range(args.samples)]
    res = restore(y, op, den, task=args.task, seeds=seeds, progress=not args.quiet, device=device)
    samples = res.x0.float().cpu()
    x0 = samples.mean(0, keepdim=True)  # the seed-mean image (Result.spread)
    shown = op.pinv(y.double()).float().clamp(0, 1) if op.out_shape != op.in_shape else y
    grid = grid_bytes([("clean", x), (f"{args.task} input", shown), (f"SHRED+ seed {seeds[0]}", samples[:1]),
                       (f"mean of {len(seeds)}", x0)], ".png")
    make_folder(out)
    write_all(list(zip((out / n for n in names), (image_bytes(x, ".png"), image_bytes(y, ".png"),
                                                   image_bytes(x0, ".png"), grid))))  # all four or none
    each = [float(psnr(s[None], x)) for s in samples]
    print(f"done in {res.wall_time:.1f} s: PSNR {float(psnr(x0, x)):.2f} dB "
          f"for the mean of {len(seeds)} samples ({min(each):.2f}-{max(each):.2f} dB each); input shown as A^+ y: "
          f"{float(psnr(shown, x)):.2f} dB; wrote {out}/clean.png, degraded.png, restored.png, grid.png")
    return 0
