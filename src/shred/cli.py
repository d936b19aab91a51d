"""The ``shred`` command: a thin layer over the Python API.

Every user error ends as one line on stderr (``shred: error: ...``) and exit status 2; outputs are
written atomically, and only after all the work has succeeded.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ShredError

EPILOG_DEGRADE = """examples:
  shred degrade cat.png --task sr --scale 4 --out y.png          # writes y.png and y.json
  shred degrade face.png --task inpaint --box-size 16 --out y.png
  shred degrade face.png --task cs --fraction 0.05 --seed 3 --out y.npy
  shred degrade photo.jpg --task colorize+sr --scale 2 --size 32 --out y.png
"""

EPILOG_RESTORE = """examples:
  shred restore y.png                                  # uses y.json written by `shred degrade`
  shred restore y.png --spec y.json --out restored.png --grid grid.png
  shred restore small.png --task sr --scale 4          # a low-resolution photo, no spec
  shred restore y.png --seeds 0-7 --grid grid.png      # eight solutions from eight noises
  shred restore y.png --preset paper --grad exact --iterations 50 --lr 0.003
  shred restore y.png --seeds 0-7 --report r.json      # per-seed table, diversity, JSON report
  shred restore noisy.png --task sr --sigma-y 0.05 --stop discrepancy
  shred restore blurred.png --task blind-deblur --kernel-size 41 --kernel-out k.png
  shred restore y.png --seeds 0-15 --compile default   # compile the network (pays off on big runs)
  shred restore y.png --precision fp32 --compile none  # the float32 reference path on a GPU

size policy: the measurement must have exactly the size that the model and the task imply
(e.g. 8x8 for x4 super-resolution with a 32x32 model); shred never resizes silently. Pass
--resize to centre-crop and resample it (bicubic) to that size.
"""


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds look like 0-7 or 0,3,5, got {text!r}") from None
    if not out or len(out) > 256:
        raise argparse.ArgumentTypeError("give between 1 and 256 seeds")
    return out


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return v


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes look like 32 or 32x32, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"sizes look like 32 or 32x32, got {text!r}")
    return parts[0], parts[1]


def add_task_options(p: argparse.ArgumentParser) -> None:
    from .operators import TASKS

    g = p.add_argument_group("task")
    g.add_argument("--task", help="degradation: " + ", ".join(TASKS) + " (chain with +, e.g. colorize+sr)")
    g.add_argument("--scale", type=_positive_int, help="super-resolution factor (default 4)")
    g.add_argument("--fraction", type=_positive_float, help="kept pixel fraction for cs (default 0.05)")
    g.add_argument("--box-size", type=_positive_int, help="side of the inpainting square (default: half the side)")
    g.add_argument("--mask", help="mask file for inpaint-mask (PNG white = kept, or .npy non-zero = kept)")
    g.add_argument("--kernel", help="blur kernel: gaussian (default), random, or FILE[:INDEX] (.npy/.mat/image)")
    g.add_argument("--kernel-size", type=_positive_int, help="odd kernel side")
    g.add_argument("--kernel-sigma", type=_positive_float, help="Gaussian kernel std in pixels (default 3)")
    g.add_argument("--sigma-y", type=_nonneg_float, help="measurement noise std in [0, 1] units (default 0)")


def task_options(args):
    from .operators import TaskOptions

    given = {k: getattr(args, k) for k in ("scale", "fraction", "box_size", "mask", "kernel", "kernel_size",
                                          "kernel_sigma", "sigma_y") if getattr(args, k, None) is not None}
    return TaskOptions(**given)


def _check_out_free(paths) -> None:
    seen = set()
    for p in paths:
        if p is None:
            continue
        rp = Path(p).resolve()
        if rp in seen:
            raise ShredError(f"{p} is named twice as an output")
        seen.add(rp)


# --- degrade -------------------------------------------------------------------------------------
def cmd_degrade(args) -> int:
    from .api import degrade, make_spec
    from .io import check_writable, image_bytes, read_image, resize, write_bytes, write_json
    from .models import MODELS, load_model

    if not args.task:
        raise ShredError("give --task (see `shred degrade --help`)")
    out = check_writable(args.out)
    spec_path = Path(args.spec) if args.spec else out.with_suffix(".json")
    if spec_path.suffix.lower() != ".json":
        raise ShredError(f"{spec_path}: the spec is a .json file")
    _check_out_free([out, spec_path])
    x = read_image(args.clean)
    size = args.size
    if args.model:
        den = load_model(args.model)
        size = den.image_size
        x = read_image(args.clean, channels=den.channels)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = resize(x, size)
    opts = task_options(args)
    y, op = degrade(x, args.task, opts, seed=args.seed)
    spec = make_spec(op, task=args.task, options=opts, seed=args.seed,
                     extra={"clean": str(args.clean), "measurement": out.name,
                            "model": args.model if args.model in MODELS else None})
    data = image_bytes(y, out.suffix)
    write_bytes(out, data)
    write_json(spec_path, spec)
    c, h, w = op.out_shape
    print(f"wrote {out} ({c}x{h}x{w}, {args.task}) and {spec_path}", file=sys.stderr if args.quiet else sys.stdout)
    return 0


# --- restore -------------------------------------------------------------------------------------
def cmd_restore(args) -> int:
    import torch

    from .api import read_spec
    from .models import default_model, load_model
    from .io import check_writable, image_bytes, make_grid, read_image, resize, write_bytes
    from .operators import build_task, preset_key
    from .solvers import BlindShred, preset_config, resolve_preset
    from .solvers.base import prepare_batch
    from .solvers.blind import shred_for_task

    y_path = Path(args.measurement)
    spec_path = Path(args.spec) if args.spec else None
    if spec_path is None and not args.task:
        guess = y_path.with_suffix(".json")
        if guess.is_file():
            spec_path = guess
            if not args.quiet:
                print(f"using the spec {guess}", file=sys.stderr)
        else:
            raise ShredError(f"say how {y_path.name} was degraded: --spec FILE.json (from `shred degrade`) or --task")
    if spec_path is not None and args.task:
        raise ShredError("give either --spec or --task, not both")
    seeds = args.seeds if args.seeds is not None else [args.seed]
    out = check_writable(args.out or y_path.with_name(y_path.stem + "_restored.png"))
    outs = [out] if len(seeds) == 1 else [out.with_name(f"{out.stem}_seed{s}{out.suffix}") for s in seeds]
    grid = check_writable(args.grid, (".png", ".jpg", ".jpeg")) if args.grid else None
    kernel_out = check_writable(args.kernel_out, (".png", ".npy")) if args.kernel_out else None
    kernel_outs = ([] if kernel_out is None else [kernel_out] if len(seeds) == 1 else
                   [kernel_out.with_name(f"{kernel_out.stem}_seed{s}{kernel_out.suffix}") for s in seeds])
    report = check_writable(args.report, (".json",)) if args.report else None
    _check_out_free([*outs, grid, y_path, *kernel_outs, report])

    if spec_path is not None:
        op, spec = read_spec(spec_path)
        task = spec.get("task") or "default"
        den = load_model(args.model or spec.get("model") or default_model(op.in_shape[0]),
                         class_label=args.class_label)
        model_shape = (den.channels, *den.image_size)
        if tuple(op.in_shape) != model_shape:
            c, h, w = op.in_shape
            raise ShredError(f"{spec_path} describes {c}x{h}x{w} images but model {den.name} makes "
                             f"{model_shape[0]}x{model_shape[1]}x{model_shape[2]}; degrade again with "
                             f"--size {model_shape[1]} (or --model), or pick a model of that size")
        y = read_image(y_path, channels=op.out_shape[0])
    else:
        task = args.task
        y = read_image(y_path)
        # Colorization takes a grey measurement but needs a colour model.
        den = load_model(args.model or default_model(3 if "colorize" in task else y.shape[1]),
                         class_label=args.class_label)
        model_shape = (den.channels, *den.image_size)
        g = torch.Generator().manual_seed(int(args.seed))
        op = build_task(task, model_shape, task_options(args), generator=g)
        y = read_image(y_path, channels=op.out_shape[0])
    want = tuple(op.out_shape[1:])
    if tuple(y.shape[-2:]) != want:
        if not args.resize:
            raise ShredError(f"{y_path.name} is {y.shape[-2]}x{y.shape[-1]} but {task} on {den.name} "
                             f"({model_shape[1]}x{model_shape[2]}) expects a {want[0]}x{want[1]} measurement; "
                             "pass --resize to resample it, or match the task/model to the image")
        y = resize(y, want)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = resolve_preset(args.preset, den)
    config = preset_config(preset, preset_key(task), iterations=args.iterations, lr=args.lr,
                           delta_t=args.delta_t, grad=args.grad, loss=args.loss, init=args.init,
                           clip_x0=args.clip_x0, sphere=args.sphere, epsilon=args.epsilon, spacing=args.spacing,
                           stop=args.stop, tau=args.tau)
    y, seeds = prepare_batch(y, op, seeds)
    from .models.fast import accelerate, run_options
    run = run_options({"precision": args.precision, "compile": args.compile}, device, grad=config.grad,
                      images=len(seeds), iterations=config.iterations)
    solver = shred_for_task(accelerate(den.to(device), run), config, task, preset, kernel_lr=args.kernel_lr,
                            device=device)
    if kernel_out is not None and not isinstance(solver, BlindShred):
        raise ShredError("--kernel-out needs a blind task (blind-deblur or blind-deblur-sv): other tasks know their kernel")
    if not args.quiet:
        print(f"restoring {y_path.name}: {task} with {den.describe()}, preset {preset}, "
              f"{config.iterations} iterations x {len(solver.pairs)} steps, {config.grad} gradient, "
              f"{len(seeds)} seed(s) on {device} ({run.describe()})", file=sys.stderr)
    res = solver(y, op, seeds=seeds, progress=not args.quiet)
    x0 = res.x0.float().cpu()
    blobs = [(p, image_bytes(x0[i:i + 1], p.suffix)) for i, p in enumerate(outs)]
    grid_blob = None
    if grid is not None:
        import io as _io
        columns = [("input", y[:1].float().cpu())]
        clean = None
        if args.clean:
            clean = read_image(args.clean, channels=den.channels)
            if tuple(clean.shape[-2:]) != tuple(den.image_size):
                clean = resize(clean, den.image_size)
            columns.insert(0, ("clean", clean))
        columns += [(f"seed {s}" if s is not None else "restored", x0[i:i + 1]) for i, s in enumerate(seeds)]
        if "kernel" in res.extras:
            from .report import kernel_image
            columns += [(f"kernel {s}" if s is not None else "kernel", kernel_image(k))
                        for s, k in zip(seeds, res.extras["kernel"])]
        buf = _io.BytesIO()
        make_grid(columns).save(buf, format="PNG" if grid.suffix.lower() == ".png" else "JPEG")
        grid_blob = buf.getvalue()
    from .report import format_table, kernel_image, run_summary, seed_rows
    clean = None
    if args.clean:
        clean = read_image(args.clean, channels=den.channels)
        if tuple(clean.shape[-2:]) != tuple(den.image_size):
            clean = resize(clean, den.image_size)
    rows = seed_rows(res, op, y.to(x0.dtype), clean=clean, true_operator=op if spec_path is not None else None)
    summary = run_summary(res, rows)
    if "kernel" in res.extras:
        for p, k in zip(kernel_outs, res.extras["kernel"]):
            blobs.append((p, image_bytes(kernel_image(k), p.suffix) if p.suffix == ".png" else _npy_bytes(k)))
    if report is not None:
        import json
        blobs.append((report, (json.dumps({"measurement": str(y_path), "task": task, "model": den.name,
                                           "config": res.extras.get("config"), "summary": summary, "seeds": rows},
                                          indent=2) + "\n").encode()))
    for p, data in blobs:
        write_bytes(p, data)
    if grid_blob is not None:
        write_bytes(grid, grid_blob)
    msg = (f"done in {res.wall_time:.1f} s: {int(res.iterations.max())} iterations, relative measurement "
           f"error {summary['mean_rel_error']:.3g}")
    if clean is not None:
        msg += f", PSNR {summary['mean_psnr']:.2f} dB against {Path(args.clean).name}"
    if "diversity_rmse" in summary:
        msg += f", diversity {summary['diversity_rmse']:.4f} (mean pairwise RMS)"
    if "mean_kernel_ncc" in summary:
        msg += f", kernel NCC {summary['mean_kernel_ncc']:.4f}"
    if len(rows) > 1 or "stop" in summary:
        print(format_table(rows), file=sys.stderr if args.quiet else sys.stdout)
    written = ", ".join(str(p) for p, _ in blobs) + (f", {grid}" if grid else "")
    print(f"{msg}; wrote {written}", file=sys.stderr if args.quiet else sys.stdout)
    return 0


def _npy_bytes(t) -> bytes:
    import io as _io

    import numpy as np
    buf = _io.BytesIO()
    np.save(buf, t.detach().double().cpu().numpy())
    return buf.getvalue()


def _bool_flag(parser, name: str, help: str) -> None:
    dest = name.replace("-", "_")
    parser.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help)
    parser.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .diffusion import SPACINGS
    from .solvers import DEFAULT_PRESET, PRESETS

    parser = _Parser(prog="shred", description="Zero-shot image restoration by diffusion inversion (SHRED).")
    parser.add_argument("--version", action="version", version=f"shred {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("degrade", help="degrade a clean image and write the measurement and its spec",
                       description="Degrade a clean image; writes the measurement and a JSON spec of the operator.",
                       epilog=EPILOG_DEGRADE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clean", help="clean image (PNG, JPEG or .npy in [0, 1])")
    p.add_argument("--out", required=True, help="measurement file (.png, .jpg, or .npy to keep it exact)")
    p.add_argument("--spec", help="spec file (default: --out with .json)")
    p.add_argument("--seed", type=int, default=0, help="seed of random masks, kernels and noise (default 0)")
    p.add_argument("--size", type=_size, help="resize the clean image first (centre crop + bicubic), e.g. 32")
    p.add_argument("--model", help="resize and convert the clean image for this model")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    add_task_options(p)
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("restore", help="restore a degraded image with SHRED",
                       description="Restore a degraded image by optimising the input noise of a few-step DDIM (SHRED).",
                       epilog=EPILOG_RESTORE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("measurement", help="degraded image (PNG, JPEG or .npy)")
    p.add_argument("--spec", help="spec written by `shred degrade` (default: the measurement's .json, if any)")
    p.add_argument("--model", help="model name (see `shred models`) or folder/checkpoint; default: the "
                   "bundled model for the image's channels")
    p.add_argument("--class-label", type=int, help="class for a class-conditional model")
    p.add_argument("--out", help="restored image (default: <measurement>_restored.png)")
    p.add_argument("--grid", help="also write a side-by-side grid (input, restorations)")
    p.add_argument("--clean", help="ground truth, for a PSNR and a grid column")
    p.add_argument("--report", help="write a JSON report: per-seed iterations, losses, measurement errors, "
                   "PSNR/SSIM with --clean, diversity, kernel NCC")
    p.add_argument("--kernel-out", help="blind tasks: write the estimated kernel (.png scaled to its maximum, or "
                   ".npy); several seeds add _seedN")
    p.add_argument("--resize", action="store_true", help="resample a measurement of the wrong size (see below)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="precision of the network (autocast; x_T, the loss and Adam stay float32); "
                   "auto: bf16 on a GPU, fp32 on a CPU")
    p.add_argument("--compile", default="auto", choices=["auto", "none", "default", "reduce-overhead", "max-autotune"],
                   help="torch.compile mode for the network; auto: default on a GPU for surrogate-gradient runs "
                   "of 800+ image-iterations (e.g. 8 seeds x 100), none otherwise (on a CPU it saves 20-23 %% per "
                   "iteration but compiling takes 12-120 s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    s = p.add_argument_group("SHRED settings (defaults come from --preset and the task)")
    s.add_argument("--preset", default=DEFAULT_PRESET, choices=["auto", *PRESETS],
                   help="settings of the paper, of the authors' code, or tuned for the bundled models "
                   "(default auto: bundled for the bundled models, authors-code for others)")
    s.add_argument("--iterations", type=_positive_int, help="Adam iterations N")
    s.add_argument("--lr", type=_positive_float, help="Adam learning rate alpha")
    s.add_argument("--delta-t", type=_positive_int, help="DDIM skip (default 100: 10 steps of T = 1000)")
    s.add_argument("--spacing", choices=SPACINGS, help="timesteps: leading (t=900..0) or trailing (t=999..99)")
    s.add_argument("--grad", choices=["surrogate", "exact"], help="gradient through the DDIM update only, or through the network too")
    s.add_argument("--loss", choices=["mse", "norm"], help="mean squared error or the norm of eq. 15")
    s.add_argument("--init", choices=["noise", "ddim-inversion"], help="start from noise or from DDIM inversion of A^+ y")
    _bool_flag(s, "clip-x0", "clamp x0 estimates to [-1, 1] (--no-clip-x0 to disable)")
    _bool_flag(s, "sphere", "project x_T onto the sphere of radius sqrt(D) (--no-sphere to disable)")
    s.add_argument("--epsilon", type=_positive_float, help="stop an image once its loss < epsilon")
    s.add_argument("--stop", choices=["none", "discrepancy", "auto", "plateau"],
                   help="noise-aware stopping: discrepancy (||y - Hx|| <= tau sigma_y sqrt(m), needs --sigma-y), "
                   "auto (sigma_y estimated from y when unknown), plateau (loss stopped improving)")
    s.add_argument("--tau", type=_positive_float, help="discrepancy principle factor (default 1)")
    s.add_argument("--kernel-lr", type=_positive_float, help="blind tasks: learning rate of the kernel network "
                   "(default: the preset's, 2e-4 in authors-code)")
    s.add_argument("--seed", type=int, default=0, help="seed of the starting noise (default 0)")
    s.add_argument("--seeds", type=_seeds, help="several seeds, e.g. 0-7: one restoration each, in one batch")
    add_task_options(p)
    p.set_defaults(func=cmd_restore)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


# Other modules add sub-commands (models, train, bench) here: functions taking the subparsers.
_EXTRA_COMMANDS: list = []


EPILOG_TRAIN = """examples:
  shred train cifar10-train --arch cifar10-32 --minutes 8 --out models/cifar10-32
  shred train ~/images.zip --arch cifar10-32 --steps 20000 --batch 128 --out run1
  shred train fashion-mnist-train --arch fashion-mnist-28 --steps 3000 --batch 64 --out fm
  (run the same command again to resume from <out>/checkpoint.pt)
"""


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(data=args.data, out=args.out, arch=args.arch, name=args.name, steps=args.steps,
                      minutes=args.minutes, batch=args.batch, lr=args.lr, ema=args.ema, flip=not args.no_flip,
                      seed=args.seed, bf16=not args.no_bf16, compile=not args.no_compile, limit=args.limit,
                      workers=args.workers)
    out = train(cfg, resume=not args.restart, progress=not args.quiet)
    print(f"wrote {out}/model.safetensors and {out}/config.json" if (out / "config.json").is_file()
          else f"stopped; resume with the same command ({out}/checkpoint.pt)")
    return 0


def _add_train(sub) -> None:
    from .train import ARCHITECTURES

    p = sub.add_parser("train", help="train an unconditional diffusion model on a folder, zip or IDX file",
                       description="Train an eps-prediction diffusion model (UNet2DModel, linear betas, T = 1000); "
                       "writes model.safetensors (EMA, fp16) and config.json.",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="folder of images, zip of images, IDX file, or a split name (cifar10-train, ...)")
    p.add_argument("--out", required=True, help="output folder (also holds checkpoint.pt for resuming)")
    p.add_argument("--arch", default="cifar10-32", choices=list(ARCHITECTURES), help="network (default cifar10-32)")
    p.add_argument("--name", help="model name recorded in config.json")
    p.add_argument("--steps", type=_positive_int, help="optimiser steps budget")
    p.add_argument("--minutes", type=_positive_float, help="wall-clock budget")
    p.add_argument("--batch", type=_positive_int, default=128)
    p.add_argument("--lr", type=_positive_float, default=2e-4)
    p.add_argument("--ema", type=float, default=0.9995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=_positive_int, help="use only the first N images")
    p.add_argument("--workers", type=int, default=0, help="processes decoding the images")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--no-bf16", action="store_true", help="fp32 on a GPU too")
    p.add_argument("--no-compile", action="store_true", help="no torch.compile on a GPU")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint.pt")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


_EXTRA_COMMANDS.append(_add_train)


SAMPLE_IMAGE = Path(__file__).resolve().parent / "samples" / "chelsea-32.png"


def cmd_demo(args) -> int:
    import torch

    from .api import degrade, restore
    from .io import make_grid, read_image, write_bytes, write_image
    from .metrics import psnr
    from .models import default_model, load_model
    from .operators import TaskOptions

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    den = load_model(default_model(3))
    x = read_image(SAMPLE_IMAGE)
    opts = TaskOptions(scale=4, fraction=0.05, box_size=12)
    y, op = degrade(x, args.task, opts, seed=args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"restoring the sample {SAMPLE_IMAGE.name} (32x32, CC0) degraded by {args.task} with {den.describe()} "
          f"on {device}", file=sys.stderr)
    res = restore(y, op, den, task=args.task, seeds=[args.seed], progress=not args.quiet, device=device)
    x0 = res.x0.float().cpu()
    shown = op.pinv(y.double()).float().clamp(0, 1) if op.out_shape != op.in_shape else y
    import io as _io
    buf = _io.BytesIO()
    make_grid([("clean", x), (f"{args.task} input", shown), ("SHRED", x0)]).save(buf, format="PNG")
    write_image(out / "clean.png", x)
    write_image(out / "degraded.png", y)
    write_image(out / "restored.png", x0)
    write_bytes(out / "grid.png", buf.getvalue())
    print(f"done in {res.wall_time:.1f} s: PSNR {float(psnr(x0, x)):.2f} dB (input shown as A^+ y: "
          f"{float(psnr(shown, x)):.2f} dB); wrote {out}/clean.png, degraded.png, restored.png, grid.png")
    return 0


def _add_demo(sub) -> None:
    from .operators import TASKS

    p = sub.add_parser("demo", help="restore the shipped sample image with the bundled model",
                       description="Degrade the shipped 32x32 sample image (Chelsea the cat, CC0) and restore it "
                       "with the bundled CIFAR-10 model; writes clean, degraded, restored and a side-by-side grid.")
    p.add_argument("--task", default="sr", choices=[t for t in TASKS if t not in ("inpaint-mask",)],
                   help="degradation (default sr: x4 average pooling)")
    p.add_argument("--out-dir", default="shred-demo", help="folder for the images (default shred-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)


_EXTRA_COMMANDS.append(_add_demo)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import warnings

    def one_line(message, category, *_, **__):  # shred's own warnings, as one line each
        print(f"shred: warning: {message}", file=sys.stderr)

    previous, warnings.showwarning = warnings.showwarning, one_line
    try:
        return int(args.func(args) or 0)
    except ShredError as exc:
        print(f"shred: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shred: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("SHRED_DEBUG"):
            raise
        print(f"shred: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set SHRED_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous


EPILOG_BENCH = """examples:
  shred bench --data cifar10-test --n 10 --out runs/cifar                    # all tasks and methods
  shred bench --data cifar10-test --n 100 --tasks sr4,inpaint --methods shred,ddnm,ddrm --out runs/a
  shred bench --data photos/ --n 12 --model cifar10-32 --set dps.steps=100 --set dip.iterations=500 --out runs/b
  (run the same command again to resume: finished (task, method) pairs are kept)
"""


def _setting(text: str) -> tuple[str, str, object]:
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


def cmd_bench(args) -> int:
    import torch

    from .benchmark import BenchConfig, Benchmark

    settings: dict = {}
    for method, name, value in args.set or []:
        settings.setdefault(method, {})[name] = value
    cfg = BenchConfig(data=args.data, n=args.n, tasks=args.tasks.split(","), methods=args.methods.split(","),
                      model=args.model, seed=args.seed, preset=args.preset, settings=settings,
                      device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bench = Benchmark(cfg, args.out)
    bench.run(progress=not args.quiet, log=(lambda *_: None) if args.quiet else print)
    print(f"wrote {args.out}/results.json, results.md and grids/")
    return 0


def _add_bench(sub) -> None:
    from .benchmark import BENCH_TASK_NAMES, METHODS
    from .solvers import DEFAULT_PRESET, PRESETS

    p = sub.add_parser("bench", help="compare SHRED and the peer methods on the same degraded images",
                       description="Run every method on the very same degraded inputs; writes results.json, "
                       "a markdown table (methods x tasks) with a runtime table, and side-by-side grids.",
                       epilog=EPILOG_BENCH, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="cifar10-test", help="images: a split name (cifar10-test), folder, zip or IDX file")
    p.add_argument("--n", type=_positive_int, default=10, help="number of images (default 10)")
    p.add_argument("--tasks", default=",".join(BENCH_TASK_NAMES), help=f"comma-separated: {', '.join(BENCH_TASK_NAMES)}")
    p.add_argument("--methods", default="shred,ddnm,ddrm,dps,repaint,dip,shred-blind,selfdeblur",
                   help=f"comma-separated: {', '.join(METHODS)}")
    p.add_argument("--model", default="cifar10-32", help="model name or path (default cifar10-32)")
    p.add_argument("--seed", type=int, default=0, help="image choice, masks, kernels and noises (default 0)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=["auto", *PRESETS],
                   help="SHRED settings (default auto: bundled for the bundled models, authors-code for others)")
    p.add_argument("--set", type=_setting, action="append", metavar="METHOD.NAME=VALUE",
                   help="a method setting, e.g. dps.steps=100 or shred.lr=0.03 (repeatable)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", required=True, help="run folder (resumable)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)


_EXTRA_COMMANDS.append(_add_bench)


def _add_models(sub) -> None:
    from .models.commands import add_models_parser  # `shred models`, `shred models download`

    add_models_parser(sub)


_EXTRA_COMMANDS.append(_add_models)


# --- ui (branch `ui`): the browser page lives in shred/ui/; gradio is imported only when it runs ---
def _add_ui(sub) -> None:
    from .ui.command import add_parser

    add_parser(sub)


_EXTRA_COMMANDS.append(_add_ui)


if __name__ == "__main__":
    sys.exit(main())
