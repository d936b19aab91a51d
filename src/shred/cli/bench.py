"""``shred-ir bench``: every method on the very same degraded images (the library: :mod:`shred.benchmark`)."""
from __future__ import annotations

import argparse

from .options import default_device, positive_int

# The comparison of the paper (Tables 1-6): every method but the prior-free baselines (pinv,
# naive-inversion) and DDNM+; each must be a key of benchmark.METHODS (tested).
DEFAULT_METHODS = ("shred", "ddnm", "ddrm", "dps", "repaint", "dip", "shred-blind", "selfdeblur")

EPILOG = """examples:
  shred-ir bench --data cifar10-test --n 10 --out runs/cifar                    # all tasks and methods
  shred-ir bench --data cifar10-test --n 100 --tasks sr4,inpaint --methods shred,ddnm,ddrm --out runs/a
  shred-ir bench --data photos/ --n 12 --model cifar10-32 --set dps.steps=100 --set dip.iterations=500 --out runs/b
  (run the same command again to resume: finished (task, method) pairs are kept)
"""


def setting(text: str) -> tuple[str, str, object]:
    """``METHOD.NAME=VALUE`` as (method, name, value); the value is a Python literal when it parses
    as one (``100``, ``0.03``, ``True``), else the string."""
    import ast

    try:
        key, value = text.split("=", 1)
        method, name = key.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"settings look like METHOD.NAME=VALUE, got {text!r}") from None
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return method, name, parsed


def add_parser(sub) -> None:
    from ..benchmark import BENCH_TASK_NAMES, METHODS
    from ..solvers import DEFAULT_PRESET, PRESETS

    p = sub.add_parser("bench", help="compare SHRED and the peer methods on the same degraded images",
                       description="Run every method on the very same degraded inputs; writes results.json, "
                       "a markdown table (methods x tasks) with a runtime table, and side-by-side grids.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="cifar10-test", help="images: a split name (cifar10-test), folder, zip or IDX file")
    p.add_argument("--n", type=positive_int, default=10, help="number of images (default 10)")
    p.add_argument("--tasks", default=",".join(BENCH_TASK_NAMES), help=f"comma-separated: {', '.join(BENCH_TASK_NAMES)}")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated: {', '.join(METHODS)}")
    p.add_argument("--model", default="cifar10-32", help="model name or path (default cifar10-32)")
    p.add_argument("--seed", type=int, default=0, help="image choice, masks, kernels and noises (default 0)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=["auto", *PRESETS],
                   help="SHRED settings (default auto: bundled for the bundled models, authors-code for others)")
    p.add_argument("--set", type=setting, action="append", metavar="METHOD.NAME=VALUE",
                   help="a method setting, e.g. dps.steps=100 or shred.lr=0.03 (repeatable)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", required=True, help="run folder (resumable)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..benchmark import BenchConfig, Benchmark

    settings: dict = {}
    for method, name, value in args.set or []:
        settings.setdefault(method, {})[name] = value
    cfg = BenchConfig(data=args.data, n=args.n, tasks=args.tasks.split(","), methods=args.methods.split(","),
                      model=args.model, seed=args.seed, preset=args.preset, settings=settings,
                      device=args.device or default_device())
    bench = Benchmark(cfg, args.out)
    bench.run(progress=not args.quiet, log=(lambda *_: None) if args.quiet else print)
    print(f"wrote {args.out}/results.json, results.md and grids/")
    return 0
