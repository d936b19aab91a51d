"""``shred-ir train``: train an unconditional eps-prediction diffusion model (the library: :mod:`shred.train`)."""
from __future__ import annotations

import argparse

from .options import checked_by, positive_float, positive_int, seed

EPILOG = """examples:
  shred-ir train cifar10-train --arch cifar10-32 --minutes 8 --out models/cifar10-32
  shred-ir train ~/images.zip --arch cifar10-32 --steps 20000 --batch 128 --out run1
  shred-ir train fashion-mnist-train --arch fashion-mnist-28 --steps 3000 --batch 64 --out fm
  (run the same command again to resume from <out>/checkpoint.pt)
"""


def add_parser(sub) -> None:
    from ..train import ARCHITECTURES, TrainConfig

    p = sub.add_parser("train", help="train an unconditional diffusion model on a folder, zip or IDX file",
                       description="Train an eps-prediction diffusion model (UNet2DModel, linear betas, T = 1000); "
                       "writes model.safetensors (EMA, fp16) and config.json.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="folder of images, zip of images, IDX file, or a split name (cifar10-train, ...)")
    p.add_argument("--out", required=True, help="output folder (also holds checkpoint.pt for resuming)")
    p.add_argument("--arch", default="cifar10-32", choices=list(ARCHITECTURES), help="network (default cifar10-32)")
    p.add_argument("--name", help="model name recorded in config.json")
    p.add_argument("--steps", type=checked_by(TrainConfig, "steps", int), help="optimiser steps budget")
    p.add_argument("--minutes", type=positive_float, help="wall-clock budget")
    p.add_argument("--batch", type=checked_by(TrainConfig, "batch", int), default=128)
    p.add_argument("--lr", type=checked_by(TrainConfig, "lr"), default=2e-4, help="peak learning rate, at most 1 "
                   "(default 2e-4); a run whose loss or weights turn NaN stops without writing")
    p.add_argument("--ema", type=checked_by(TrainConfig, "ema"), default=0.9995, help="EMA decay in [0, 1)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--limit", type=positive_int, help="use only the first N images")
    p.add_argument("--workers", type=checked_by(TrainConfig, "workers", int), default=0,
                   help="processes decoding the images")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--no-bf16", action="store_true", help="fp32 on a GPU too")
    p.add_argument("--no-compile", action="store_true", help="no torch.compile on a GPU")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint.pt (e.g. a damaged one)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import TrainConfig, train

    cfg = TrainConfig(data=args.data, out=args.out, arch=args.arch, name=args.name, steps=args.steps,
                      minutes=args.minutes, batch=args.batch, lr=args.lr, ema=args.ema, flip=not args.no_flip,
                      seed=args.seed, bf16=not args.no_bf16, compile=not args.no_compile, limit=args.limit,
                      workers=args.workers)
    out = train(cfg, resume=not args.restart, progress=not args.quiet)
    print(f"wrote {out}/model.safetensors and {out}/config.json" if (out / "config.json").is_file()
          else f"stopped; resume with the same command ({out}/checkpoint.pt)")
    return 0
