"""``shred-ir demo``: degrade the shipped sample image and restore it with the bundled model."""
from __future__ import annotations

import sys
from pathlib import Path

from .options import seed

SAMPLE_IMAGE = Path(__file__).resolve().parent.parent / "samples" / "chelsea-32.png"

# Tasks that need a file from the user (a mask) cannot run on the sample alone.
NEEDS_A_FILE = ("inpaint-mask",)


def add_parser(sub) -> None:
    from ..operators import TASKS

    p = sub.add_parser("demo", help="restore the shipped sample image with the bundled model",
                       description="Degrade the shipped 32x32 sample image (Chelsea the cat, CC0) and restore it "
                       "with the bundled CIFAR-10 model; writes clean, degraded, restored and a side-by-side grid.")
    p.add_argument("--task", default="sr", choices=[t for t in TASKS if t not in NEEDS_A_FILE],
                   help="degradation (default sr: x4 average pooling)")
    p.add_argument("--out-dir", default="shred-demo", help="folder for the images (default shred-demo)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import degrade, restore
    from ..io import grid_bytes, image_bytes, read_image, write_all
    from ..metrics import psnr
    from ..models import default_model, load_model
    from ..operators import TaskOptions
    from .options import default_device

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    den = load_model(default_model(3))
    x = read_image(SAMPLE_IMAGE)
    opts = TaskOptions(scale=4, fraction=0.05, box_size=12)
    y, op = degrade(x, args.task, opts, seed=args.seed)
    device = default_device()
    print(f"restoring the sample {SAMPLE_IMAGE.name} (32x32, CC0) degraded by {args.task} with {den.describe()} "
          f"on {device}", file=sys.stderr)
    res = restore(y, op, den, task=args.task, seeds=[args.seed], progress=not args.quiet, device=device)
    x0 = res.x0.float().cpu()
    shown = op.pinv(y.double()).float().clamp(0, 1) if op.out_shape != op.in_shape else y
    grid = grid_bytes([("clean", x), (f"{args.task} input", shown), ("SHRED", x0)], ".png")
    write_all([(out / "clean.png", image_bytes(x, ".png")), (out / "degraded.png", image_bytes(y, ".png")),
               (out / "restored.png", image_bytes(x0, ".png")), (out / "grid.png", grid)])
    print(f"done in {res.wall_time:.1f} s: PSNR {float(psnr(x0, x)):.2f} dB (input shown as A^+ y: "
          f"{float(psnr(shown, x)):.2f} dB); wrote {out}/clean.png, degraded.png, restored.png, grid.png")
    return 0
