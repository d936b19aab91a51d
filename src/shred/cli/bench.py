"""``shred-ir bench``: every method on the very same degraded images (the library: :mod:`shred.benchmark`)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import decimal_int
from ..errors import ShredError
from .options import int_at_least, positive_int, seed

EPILOG = """examples:
  shred-ir bench --data cifar10-test --n 10 --out runs/cifar                    # all tasks, default methods
  shred-ir bench --n 100 --tasks sr4,inpaint --methods pinv,shred@bundled,ddnm,ddrm --batch 25 --out runs/a
  shred-ir bench --n 100 --n-for sr8=50 --methods shred@plus,dip --max-images dip=20 --out runs/b
  shred-ir bench --data photos/ --n 12 --set dps.steps=100 --set dip.iterations=500 --out runs/c
  shred-ir bench --out runs/a --report-only                                     # tables from what is done
  shred-ir bench --tasks sr4,inpaint --methods pinv,ddnm --out runs/a --report-only   # of these, however run
  (run the same command again to resume: finished chunks are kept; changed settings are recomputed)
"""



# KID and FID compare sets of images, and one image has no spread.
at_least_two = int_at_least(2, "an integer", "KID and FID need at least 2 images, got {v}")

def _boolean_settings() -> set[str]:
    """Names of the settings that are booleans in some method's config (``clip_x0``, ``sphere``)."""
    from dataclasses import fields

    from ..solvers import SOLVERS

    return {f.name for cls in SOLVERS.values() if cls.config_class is not None
            for f in fields(cls.config_class) if isinstance(f.default, bool)}


def setting(text: str) -> tuple[str, str, object]:
    """``METHOD.NAME=VALUE`` as (method, name, value); for a boolean setting the value is a
    boolean for true/false, yes/no, on/off (any case); otherwise a Python literal when it parses as
    one (``100``, ``0.03``), else the string (so ``lr=on`` is refused as ``'on'``, as typed)."""
    import ast

    key, eq, value = text.partition("=")
    method, dot, name = key.rpartition(".")  # a setting name has no dot; a method label may
    if not (eq and dot and method and name):
        raise argparse.ArgumentTypeError(f"settings look like METHOD.NAME=VALUE, got {text!r}")
    words = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
    if value.strip().lower() in words and name in _boolean_settings():
        return method, name, words[value.strip().lower()]
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return method, name, parsed


def name_count(text: str) -> tuple[str, int]:
    """``NAME=COUNT`` as (name, count), count a positive integer."""
    try:
        name, value = text.split("=", 1)
        count = decimal_int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=COUNT, got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count, got {text!r}")
    return name, count


def add_parser(sub) -> None:
    from ..benchmark import BENCH_TASK_NAMES, DEFAULT_METHODS
    from ..solvers import DEFAULT_PRESET, PRESETS, SOLVERS

    p = sub.add_parser("bench", help="compare SHRED and the peer methods on the same degraded images",
                       description="Run every method on the very same degraded inputs, B images per solver call; "
                       "writes results.json, a markdown table per task (PSNR, SSIM, KID-C10 / FID-C10, measurement "
                       "error, network calls and seconds per image) and side-by-side grids. Resumable; shardable "
                       "with torchrun.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="cifar10-test", help="images: a split name (cifar10-test), folder, zip or IDX file")
    p.add_argument("--n", type=positive_int, default=10, help="images per task: the first N of a seeded permutation "
                   "(default 10)")
    p.add_argument("--n-for", type=name_count, action="append", metavar="TASK=N",
                   help="images for one task, e.g. sr8=50 (repeatable)")
    p.add_argument("--tasks", help=f"comma-separated: {', '.join(BENCH_TASK_NAMES)} (default: all)")
    p.add_argument("--methods", help=f"comma-separated: {', '.join(sorted(SOLVERS))}; SHRED presets as shred@PRESET "
                   f"({', '.join(PRESETS)}) (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--model", default="cifar10-32", help="model name or path (default cifar10-32)")
    p.add_argument("--seed", type=seed, default=0, help="image choice, masks, kernels and noises (default 0)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=["auto", *PRESETS],
                   help="SHRED preset of `shred` and `shred-blind` written without @PRESET (default auto: plus "
                   "for the bundled models, authors-code for others)")
    p.add_argument("--set", type=setting, action="append", metavar="METHOD.NAME=VALUE",
                   help="a method setting, e.g. dps.steps=100 or shred@bundled.lr=0.03 (repeatable; unknown "
                   "settings are refused)")
    p.add_argument("--max-images", type=name_count, action="append", metavar="METHOD=N",
                   help="restore only the first N images of each task with this method, e.g. dip=20 (the report "
                   "then also scores every method on the images all of them restored)")
    p.add_argument("--batch", type=positive_int, default=8,
                   help="images per solver call, i.e. per network call (default 8; DIP and SelfDeblur run one "
                   "image at a time: each image optimises its own network)")
    p.add_argument("--features", default="cifar10",
                   help="realism metrics' feature network: cifar10 (KID-C10 / FID-C10, shred's classifier; default), "
                   "inception (KID / FID; needs torch-fidelity and its weights), a classifier folder, or none")
    p.add_argument("--reference", default="cifar10-train", help="real images the realism metrics compare with "
                   "(default cifar10-train)")
    p.add_argument("--reference-n", type=at_least_two, default=5000, help="reference images (default 5000)")
    p.add_argument("--min-realism-images", type=at_least_two, default=20,
                   help="compute KID / FID for (task, method) pairs with at least this many images, 2 or more "
                   "(default 20); the clean-image and input rows too")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available; under torchrun cuda:LOCAL_RANK)")
    p.add_argument("--out", required=True, help="run folder (resumable)")
    p.add_argument("--report-only", action="store_true", help="write the report from the finished chunks in --out, "
                   "computing nothing new: of the run's last configuration, or, when --tasks or --methods is given, "
                   "of the one this command line describes (e.g. a whole comparison whose parts ran separately)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..benchmark import BENCH_TASK_NAMES, DEFAULT_METHODS, BenchConfig, Benchmark, distributed, report
    from ..benchmark.run import read_json
    from ..models.fast import resolve_device

    out = Path(args.out)
    if args.report_only and not (out / "config.json").is_file():
        raise ShredError(f"{out} holds no run (no config.json)")
    rank, _ = distributed()
    if args.report_only and args.tasks is None and args.methods is None:  # the run's last configuration
        cfg = BenchConfig.from_json(read_json(out / "config.json").get("config", {}))
    else:
        settings: dict = {}
        for method, name, value in args.set or []:
            settings.setdefault(method, {})[name] = value
        cfg = BenchConfig(data=args.data, n=args.n, n_for=dict(args.n_for or []),
                          tasks=(args.tasks or ",".join(BENCH_TASK_NAMES)).split(","),
                          methods=(args.methods or ",".join(DEFAULT_METHODS)).split(","), model=args.model,
                          seed=args.seed, preset=args.preset, settings=settings,
                          max_images=dict(args.max_images or []), batch=args.batch,
                          device=resolve_device(args.device, local_rank=int(os.environ.get("LOCAL_RANK", 0))),
                          features=None if args.features == "none" else args.features, reference=args.reference,
                          reference_n=args.reference_n, min_realism_images=args.min_realism_images)
    bench = Benchmark(cfg, out, log=(lambda *_: None) if args.quiet or rank or args.report_only else print)
    if args.report_only:
        report(bench)
        print(f"wrote {out}/results.json, results.md and grids/")
    elif bench.run(progress=not args.quiet and rank == 0) is not None:
        print(f"wrote {out}/results.json, results.md and grids/")
    return 0
