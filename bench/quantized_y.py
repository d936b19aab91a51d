"""What 8-bit measurements cost (issue #13): the comparison's tasks are noiseless, so y is kept in
float32. An image a person restores comes from an 8-bit file, whose rounding is noise of standard
deviation 1 / (255 sqrt 12) = 0.00113. This measures the difference on N ``cifar10-train`` images:
y in float32, y rounded to 8 bits, and y rounded with that noise level declared (``sigma_y``, which
makes DDNM's finish noise-aware; what ``shred-ir restore`` does for a file:
:func:`shred.operators.with_rounding`). Rows: the input, the pseudo-inverse A^+ y (``pinv``), DDNM,
SHRED+ (``shred@plus``; blind deblurring: ``shred-blind@plus`` alone, the kernel drawn once) and,
on deblurring, SHRED+ started from the whole inverted A^+ y with the consistency finish
(``#pinv-a1-cons``, the sixth tuning round of docs/RESULTS.md); PSNR (dB). ``--tikhonov`` adds
SHRED+ without its Tikhonov last correction (``#no-tikhonov``: ``finish_noise="none"``; the
preset's is ``"tikhonov"``) on the rows whose y carries declared noise; ``--noise S`` adds a row
with Gaussian noise of std S (seeded, declared); ``--simplified`` adds SHRED+ with the finish as it
was before per-singular-value DDNM+ and the Tikhonov step (``#simplified``; on an operator without
an SVD, such as ``deblur-sv``'s spatially varying blur, with the start from A^+ y it fell back to
then); ``--svd`` adds SHRED+ with DDNM+ per singular value in the finish on every operator
(``#svd``); ``--no-svd`` adds SHRED+ on the same operator with its SVD hidden (``#no-svd``,
:class:`shred.operators.krylov.WithoutSVD`: the path of a blur without a closed-form SVD, whose
finish, last step and start use Golub-Kahan subspaces); ``--pinv-start`` adds SHRED+ started from
A^+ y (``#pinv-start``: ``warm_from="pinv"``), the start an operator on which DDRM cannot run had
before 20-step DDNM replaced it where A has a null space (noiseless; under noise it was the Tikhonov
estimate); ``--ddnm-start`` adds SHRED+ started from 20-step DDNM (``#ddnm-start``:
``warm_from="ddnm"``); ``--simplified-form`` adds SHRED+ with DDNM+'s simplified form in its start
and finish and nothing else changed (``#simplified-form``: ``finish_ddnm_plus="simplified"``);
``--rows`` picks the rows.

    python bench/quantized_y.py --n 16 --out bench/results/quantized-y-train.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.cli.options import int_at_least  # noqa: E402
from shred.data import load_images  # noqa: E402
from shred.errors import ShredError  # noqa: E402
from shred.io import write_json  # noqa: E402
from shred.metrics import psnr  # noqa: E402
from shred.models import load_model  # noqa: E402
from shred.operators import TaskOptions, build_task, rounding_std  # noqa: E402
from shred.operators.krylov import WithoutSVD  # noqa: E402
from shred.solvers import build_solver  # noqa: E402
from shred.solvers.shred import Shred  # noqa: E402

QUANTISATION_STD = rounding_std(256)  # uniform rounding error of an 8-bit value, in [0, 1] units
# The comparison's settings (shred.benchmark.tasks); the blind kernel is drawn once, from seed 0.
TASKS = {"deblur": ("deblur", {"kernel": "gaussian", "kernel_sigma": 2.0}),
         "sr4": ("sr", {"scale": 4}), "inpaint": ("inpaint", {"box_size": 16}), "sr2": ("sr", {"scale": 2}),
         "sr4-bicubic": ("sr-bicubic", {"scale": 4}),
         "sr8": ("sr", {"scale": 8}), "cs5": ("cs", {"fraction": 0.05}), "colorize": ("colorize", {}),
         "blind": ("blind-deblur", {"kernel": "random", "kernel_size": 9}),
         "deblur-sv": ("deblur-sv", {"kernel_size": 9}), "inpaint+sr": ("inpaint+sr", {"box_size": 16, "scale": 2}),
         "colorize+inpaint": ("colorize+inpaint", {"box_size": 16}),
         "inpaint+deblur": ("inpaint+deblur", {"box_size": 16, "kernel": "gaussian", "kernel_sigma": 2.0}),
         "cs30+sr2": ("cs+sr", {"fraction": 0.3, "scale": 2})}
DEFAULT_TASKS = ("deblur", "sr4", "inpaint", "sr8", "cs5", "colorize", "blind")
PINV_START = {"warm_from": "pinv", "warm_strength": 1.0, "finish": "consistency"}


def quantise(y: torch.Tensor) -> torch.Tensor:
    """y rounded to the nearest of 256 levels in [0, 1], as an 8-bit file stores it."""
    return (y.clamp(0, 1) * 255).round() / 255


positive_int = int_at_least(1, "a number of images >= 1")


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a noise level in [0, 1], got {text}")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=positive_int, default=16, help="images (a seeded choice, seed 5)")
    p.add_argument("--tasks", default=",".join(t for t in TASKS if t in DEFAULT_TASKS),
                   help=f"comma-separated, of {', '.join(TASKS)} (default: {', '.join(DEFAULT_TASKS)})")
    p.add_argument("--data", default="cifar10-train")
    p.add_argument("--model", default="cifar10-32")
    p.add_argument("--tikhonov", action="store_true",
                   help="also SHRED+ with finish_noise='none' (#no-tikhonov) where y carries noise")
    p.add_argument("--simplified", action="store_true",
                   help="also SHRED+ with the finish's DDNM+ in its simplified form (#simplified: "
                   "finish_ddnm_plus='simplified', finish_noise='none': the finish before it changed; on an operator without "
                   "an SVD also warm_from='pinv', the start it fell back to) where y carries noise")
    p.add_argument("--svd", action="store_true",
                   help="also SHRED+ with the finish's DDNM+ per singular value on every operator (#svd: "
                   "finish_ddnm_plus='svd'; the preset's 'auto' takes it where A^+ amplifies the noise more than twice) "
                   "where y carries noise")
    p.add_argument("--no-svd", action="store_true",
                   help="also SHRED+ on the operator with its SVD hidden (#no-svd: the path of a blur "
                   "without a closed-form SVD) where y carries noise")
    p.add_argument("--pinv-start", action="store_true",
                   help="also SHRED+ started from A^+ y (#pinv-start: warm_from='pinv')")
    p.add_argument("--simplified-form", action="store_true",
                   help="also SHRED+ with finish_ddnm_plus='simplified' alone (#simplified-form)")
    p.add_argument("--ddnm-start", action="store_true",
                   help="also SHRED+ started from 20-step DDNM (#ddnm-start: warm_from='ddnm')")
    p.add_argument("--noise", type=non_negative, default=0.0,
                   help="also y with Gaussian noise of this std (seeded, declared), without rounding")
    p.add_argument("--rows", default="float32,8-bit,declared,noise",
                   help="which measurements: float32, 8-bit, declared (8-bit with its sigma_y), noise (--noise)")
    p.add_argument("--out", required=True, help="a .json file")
    args = p.parse_args(argv)
    rows_wanted = set(args.rows.split(","))
    if not rows_wanted <= {"float32", "8-bit", "declared", "noise"}:
        p.error(f"--rows: choose from float32, 8-bit, declared, noise; got {args.rows}")
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        p.error(f"unknown task {', '.join(unknown) or '(none)'}; choose from {', '.join(TASKS)}")
    if not args.out.endswith(".json"):
        p.error(f"--out: a .json file, got {args.out}")

    try:
        imgs = load_images(args.data).float01()
        if args.n > imgs.shape[0]:
            p.error(f"--n {args.n}: {args.data} has {imgs.shape[0]} images")
        den = load_model(args.model)
    except ShredError as exc:
        p.error(str(exc))
    x = imgs[torch.randperm(imgs.shape[0], generator=torch.Generator().manual_seed(5))[:args.n]]
    seeds = list(range(args.n))
    rows = []
    for name in tasks:
        task, opts = TASKS[name]
        clean = build_task(task, tuple(x.shape[1:]), TaskOptions(**opts), torch.Generator().manual_seed(0))
        y32 = clean.A(x.double()).float()
        cases = [(key, label, y, sigma) for key, label, y, sigma in [
            ("float32", "float32", y32, 0.0), ("8-bit", "8-bit", quantise(y32), 0.0),
            ("declared", "8-bit, sigma_y declared", quantise(y32), QUANTISATION_STD)] if key in rows_wanted]
        if args.noise > 0 and "noise" in rows_wanted:
            noise = torch.randn(y32.shape, generator=torch.Generator().manual_seed(1))
            cases.append(("noise", f"float32, noise {args.noise:g} declared", y32 + args.noise * noise, args.noise))
        cases = [(label, y, sigma) for _, label, y, sigma in cases]
        for label, y, sigma in cases:
            op = build_task(task, tuple(x.shape[1:]), TaskOptions(**opts, sigma_y=sigma),
                            torch.Generator().manual_seed(0))
            a_pinv_y = op.pinv(y.double()).float().clamp(0, 1)
            # The input as a method starts from it: A^+ y; for deblurring the blurred image itself.
            blurs = name in ("deblur", "blind", "deblur-sv")
            row = {"task": name, "y": label, "sigma_y": sigma,
                   "input": float(psnr(y if blurs else a_pinv_y, x).mean())}
            if name in ("deblur", "deblur-sv"):
                row["pinv"] = float(psnr(a_pinv_y, x).mean())
            methods = {"ddnm": ("ddnm", {}), "shred@plus": ("shred", {"preset": "plus", "task": task})}
            if name == "blind":  # the kernel is unknown: no DDNM
                methods = {"shred@plus": ("shred-blind", {"preset": "plus", "task": task})}
            if name == "deblur":
                methods["shred@plus#pinv-a1-cons"] = ("shred", {"preset": "plus", "task": task, **PINV_START})
            plus_solver, plus_settings = methods["shred@plus"]
            if args.simplified and sigma > 0 and name != "blind":
                # Without an SVD the ddrm start fell back to A^+ y then (now: the Tikhonov estimate).
                start = {} if Shred.svd_of(op) is not None else {"warm_from": "pinv"}
                methods["shred@plus#simplified"] = (plus_solver, {**plus_settings, "finish_noise": "none",
                                                                  "finish_ddnm_plus": "simplified", **start})
            # (asked, suffix, only with noise, settings); the estimated blur of the blind task has no
            # SVD and no null space, so none of these changes it.
            variants = [(args.tikhonov, "no-tikhonov", True, {"finish_noise": "none"}),
                        (args.svd, "svd", True, {"finish_ddnm_plus": "svd"}),
                        (args.pinv_start, "pinv-start", False, {"warm_from": "pinv"}),
                        (args.simplified_form, "simplified-form", True, {"finish_ddnm_plus": "simplified"}),
                        (args.ddnm_start, "ddnm-start", False, {"warm_from": "ddnm"})]
            for asked, suffix, noisy_only, overrides in variants:
                if asked and name != "blind" and (sigma > 0 or not noisy_only):
                    methods[f"shred@plus#{suffix}"] = (plus_solver, {**plus_settings, **overrides})
            if args.no_svd and sigma > 0 and name != "blind":
                methods["shred@plus#no-svd"] = methods["shred@plus"]
            for method, (solver, settings) in methods.items():
                started = time.perf_counter()
                r = build_solver(solver, den, **settings)(y, WithoutSVD(op) if method.endswith("#no-svd") else op,
                                                          seeds=seeds)
                row[method] = float(psnr(r.x0.clamp(0, 1), x).mean())
                row[method + " s/img"] = (time.perf_counter() - started) / args.n
            rows.append(row)
            print(" | ".join(f"{k} {v:.4f}" if k == "sigma_y" else f"{k} {v:.2f}" if isinstance(v, float)
                             else f"{k} {v}" for k, v in row.items() if not k.endswith("s/img")), flush=True)
    write_json(args.out, {"data": args.data, "n": args.n, "model": args.model, "choice_seed": 5,
                          "quantisation_std": QUANTISATION_STD, "threads": torch.get_num_threads(),
                          "noise": args.noise, "rows_asked": args.rows, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
