"""``shred-ir restore``: restore a degraded image with SHRED (the library: :mod:`shred.restoration`)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import ShredError
from .options import (add_task_options, bool_flag, checked_by, default_device, device, given_task_options, integer,
                      model_input, positive_int, seed, seed_paths, seeds, task_inputs, task_options, tile_option)

EPILOG = """examples:
  shred-ir restore y.png                                  # uses y.json written by `shred-ir degrade`
  shred-ir restore y.png --spec y.json --out restored.png --grid grid.png
  shred-ir restore small.png --task sr --scale 4          # a low-resolution photo, no spec
  shred-ir restore y.png --task cs --fraction 0.05 --degrade-seed 3   # no spec: degrade's --seed 3 mask
  shred-ir restore y.png --seeds 0-7 --grid grid.png      # eight solutions, their mean and uncertainty map
  shred-ir restore y.png --preset paper --grad exact --iterations 50 --lr 0.003
  shred-ir restore y.png --seeds 0-7 --report r.json      # per-seed table, diversity, JSON report
  shred-ir restore noisy.png --task sr --sigma-y 0.05 --stop discrepancy
  shred-ir restore blurred.png --task blind-deblur --kernel-size 41 --kernel-out k.png
  shred-ir restore y.png --seeds 0-15 --compile default   # compile the network (pays off on big runs)
  shred-ir restore y.png --precision fp32 --compile none  # the float32 reference path on a GPU

folders (one output, spec and report per image under the same relative name; resumable):
  shred-ir restore degraded/ --out restored/               # each image's .json spec beside it
  shred-ir restore 'photos/**/*.jpg' --task sr --scale 4 --out restored/ --batch 16
  torchrun --nproc_per_node=4 -m shred restore degraded/ --out restored/   # one GPU per process

sizes: an image is restored at its own size, whatever size the model was trained at: the network
runs on the canvas of the next multiples of its stride (the image at the centre, the border left
to the prior) and the result is cropped back; images too large for the device's memory are
restored in overlapping tiles (--tile). --resize instead centre-crops and resamples (bicubic)
the measurement to what the model's training size implies, and says what it cut.

random operators: cs draws its mask, deblur --kernel random its kernel, deblur-sv its kernels
from degrade's --seed; restoring needs that very operator: the spec (y.json), or
--degrade-seed N with the --seed degrade was given. Without a spec, defaults that shape the
operator (deblur's Gaussian kernel, inpaint's centred hole) are named in a warning.
"""


def add_parser(sub) -> None:
    from ..diffusion import GRAD_MODES, SPACINGS
    from ..models.fast import COMPILE_MODES, PRECISIONS
    from ..solvers import DEFAULT_PRESET, PRESETS, ShredConfig
    from ..solvers.blind import KERNEL_ESTIMATES, BlindConfig
    from ..solvers.shred import FINISH_NOISE, FINISHES, INITS, LOSSES, WARM_FROM
    from ..solvers.stopping import STOPS

    p = sub.add_parser("restore", help="restore a degraded image with SHRED",
                       description="Restore a degraded image by optimising the input noise of a few-step DDIM (SHRED).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("measurement", help="degraded image (PNG, JPEG or .npy), or a folder or glob of them (then --out "
                   "is a folder)")
    p.add_argument("--spec", help="spec written by `shred-ir degrade` (default: the measurement's .json, if any)")
    p.add_argument("--model", help="model name (see `shred-ir models`) or folder/checkpoint; default: the "
                   "bundled model for the image's channels")
    p.add_argument("--class-label", type=integer, help="class for a class-conditional model")
    p.add_argument("--out", help="restored image (default: <measurement>_restored.png)")
    p.add_argument("--grid", help="also write a side-by-side grid (input, restorations)")
    p.add_argument("--clean", help="ground truth, for a PSNR and a grid column")
    p.add_argument("--report", help="write a JSON report: per-seed iterations, losses, measurement errors, "
                   "PSNR/SSIM with --clean, diversity, kernel NCC")
    p.add_argument("--kernel-out", help="blind tasks: write the estimated kernel (.png scaled to its maximum, or "
                   ".npy); several seeds add _seedN")
    p.add_argument("--resize", action="store_true", help="restore at the model's training size: centre-crop and "
                   "resample the measurement to the size it implies (see below)")
    p.add_argument("--tile", type=tile_option, default="auto",
                   help="auto: overlapping tiles of the training size for images larger than the device's free "
                   "memory allows (default); N: tiles of N x N for every image larger; none: never")
    p.add_argument("--tile-overlap", type=positive_int, help="pixels shared by neighbouring tiles (default a "
                   "quarter of the tile)")
    p.add_argument("--batch", type=positive_int, default=8, help="folders: images per solver call, among images "
                   "of one shape and operator (default 8)")
    p.add_argument("--overwrite", action="store_true", help="folders: restore again images whose outputs exist")
    p.add_argument("--device", type=device, help="cpu, cuda or cuda:N (default: cuda when available; under torchrun "
                   "cuda is the process's own GPU, cuda:LOCAL_RANK)")
    p.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS],
                   help="precision of the network (autocast; x_T, the loss and Adam stay float32); "
                   "auto: bf16 on a GPU, fp32 on a CPU")
    p.add_argument("--compile", default="auto", choices=["auto", "none", *filter(None, COMPILE_MODES)],
                   help="torch.compile mode for the network; auto: default on a GPU for surrogate-gradient runs "
                   "of 800+ image-iterations (e.g. 8 seeds x 100), none otherwise (on a CPU it saves 20-23 %% per "
                   "iteration but compiling takes 12-120 s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    s = p.add_argument_group("SHRED settings (defaults come from --preset and the task)")
    s.add_argument("--preset", default=DEFAULT_PRESET, choices=["auto", *PRESETS],
                   help="settings of the paper, of the authors' code, the authors' method tuned for the bundled "
                   "models (bundled), or SHRED+ (plus: 135 network calls per image); default auto: plus for "
                   "the bundled models, authors-code for others")
    s.add_argument("--iterations", type=checked_by(ShredConfig, "iterations", int), help="Adam iterations N (at most 100000)")
    s.add_argument("--lr", type=checked_by(ShredConfig, "lr"), help="Adam learning rate alpha (at most 10)")
    s.add_argument("--delta-t", type=checked_by(ShredConfig, "delta_t", int),
                   help="DDIM skip (default 100: 10 steps of T = 1000)")
    s.add_argument("--spacing", choices=SPACINGS, help="timesteps: leading (t=900..0) or trailing (t=999..99)")
    s.add_argument("--grad", choices=[g for g in GRAD_MODES if g != "none"],  # "none": no gradient at all
                   help="gradient through the DDIM update only, or through the network too")
    s.add_argument("--loss", choices=LOSSES, help="mean squared error or the norm of eq. 15")
    s.add_argument("--init", choices=INITS, help="start from noise, from DDIM inversion of A^+ y, or warm "
                   "(SHRED+: the inversion of a cheap estimate blended with noise)")
    s.add_argument("--warm-from", choices=WARM_FROM, help="--init warm: the estimate inverted, A^+ y (pinv), "
                   "DDNM's 20-step restoration (ddnm) or DDRM's (ddrm: preset plus; where DDRM needs an SVD the "
                   "operator lacks, DDNM's if a mask, down-sampling, colorization or a canvas leaves pixels "
                   "unseen, else A^+ y, or under noise its Tikhonov estimate); each 20-step restoration "
                   "costs 20 network calls")
    s.add_argument("--warm-strength", type=checked_by(ShredConfig, "warm_strength"),
                   help="--init warm: a in sqrt(a) x_inv + sqrt(1 - a) noise, 0 to 1 (preset plus: 0.5 on most tasks)")
    s.add_argument("--finish", choices=FINISHES, help="SHRED+'s last step: none, consistency (x + A^+(y - A x), no "
                   "network call) or ddnm (DDNM's steps from --finish-t; preset plus on most tasks)")
    s.add_argument("--finish-t", type=checked_by(ShredConfig, "finish_t", int),
                   help="--finish ddnm: the timestep it starts from (preset plus: 300; CS 200)")
    s.add_argument("--finish-steps", type=checked_by(ShredConfig, "finish_steps", int),
                   help="--finish ddnm: its steps, one network call each (preset plus: 15; CS 45); as many as "
                   "--finish-t allows, said in a warning when fewer")
    s.add_argument("--finish-noise", choices=FINISH_NOISE,
                   help="with measurement noise (--sigma-y, a spec's, or an 8-bit file's rounding on a blur): "
                   "none (the finish's own rule) or tikhonov (a last Tikhonov correction leaving ||y - A x|| at "
                   "the noise level; no network call)")
    bool_flag(s, "clip-x0", "clamp x0 estimates to [-1, 1] (--no-clip-x0 to disable)")
    bool_flag(s, "sphere", "project x_T onto the sphere of radius sqrt(D) (--no-sphere to disable)")
    s.add_argument("--coarse-iterations", type=checked_by(ShredConfig, "coarse_iterations", int),
                   help="coarse-to-fine: run the first N iterations through every --coarse-stride-th DDIM step "
                   "(fewer network calls; 0: off; preset plus: 12 of its 15 on most tasks)")
    s.add_argument("--coarse-stride", type=checked_by(ShredConfig, "coarse_stride", int),
                   help="coarse-to-fine: the coarse iterations keep every k-th DDIM step (default 2: half the network "
                   "calls; needs coarse iterations: --coarse-iterations, or preset plus)")
    s.add_argument("--epsilon", type=checked_by(ShredConfig, "epsilon"),
                   help="stop an image once its loss < epsilon (with coarse-to-fine, from the first fine iteration "
                   "on, so that the answer comes from the full trajectory)")
    s.add_argument("--stop", choices=STOPS,
                   help="noise-aware stopping: discrepancy (||y - Hx|| <= tau sigma_y sqrt(m), needs --sigma-y), "
                   "auto (sigma_y estimated from y when unknown), plateau (loss stopped improving); like "
                   "--epsilon, from the first fine iteration on")
    s.add_argument("--tau", type=checked_by(ShredConfig, "tau"), help="discrepancy principle factor (default 1)")
    s.add_argument("--kernel-lr", type=checked_by(BlindConfig, "kernel_lr"), help="blind tasks: learning rate of the "
                   "kernel network (default: the preset's, 2e-4 in authors-code)")
    s.add_argument("--kernel-steps", type=checked_by(BlindConfig, "kernel_steps", int), help="blind tasks: Adam steps "
                   "on the kernel network alone at every iteration, fitting it to that x0 (no network call; "
                   "default 0; docs/BLIND.md)")
    s.add_argument("--kernel-estimate", choices=KERNEL_ESTIMATES, help="blind tasks: how the blur is estimated: "
                   "network (the paper's kernel network, optimised with x_T), search (one Gaussian blur chosen by "
                   "how much of y DDRM leaves unexplained under each candidate, then the preset's deblurring "
                   "settings under it) or auto "
                   "(search for one uniform blur, network for a grid); default: the preset's (auto in plus, "
                   "network elsewhere; docs/BLIND.md)")
    s.add_argument("--seed", type=seed, help="seed of the starting noise, 0 .. 2^63-1 (default 0)")
    s.add_argument("--seeds", type=seeds, help="several seeds instead of --seed, e.g. 0-7: one restoration each, "
                   "in one batch; also writes their mean image (<out>_mean) and per-pixel uncertainty map "
                   "(<out>_uncertainty.png)")
    add_task_options(p, restoring=True)
    p.set_defaults(func=run, warning_words=flag_words)


def _spec_path(args, y_path: Path) -> Path | None:
    """--spec, or the measurement's .json when neither --spec nor --task is given."""
    spec_path = Path(args.spec) if args.spec else None
    if spec_path is None and not args.task:
        guess = y_path.with_suffix(".json")
        if not guess.is_file():
            raise ShredError(f"say how {y_path.name} was degraded: --spec FILE.json (from `shred-ir degrade`) or --task")
        spec_path = guess
        if not args.quiet:
            print(f"using the spec {guess}", file=sys.stderr)
    if spec_path is not None and args.task:
        raise ShredError("give either --spec or --task, not both")
    if spec_path is not None and (given_task_options(args) or args.degrade_seed is not None):
        name = sorted(given_task_options(args) | ({"degrade_seed"} if args.degrade_seed is not None else set()))[0]
        raise ShredError(f"--{name.replace('_', '-')} is not used with a spec ({spec_path.name} fixes the operator); "
                         "drop it, or give --task instead of the spec")
    return spec_path


SETTINGS = ("kernel_lr", "kernel_steps", "kernel_estimate", "iterations", "lr", "delta_t", "grad", "loss", "init",
            "warm_from", "warm_strength", "finish", "finish_t", "finish_steps", "finish_noise", "clip_x0", "sphere", "epsilon", "spacing", "stop",
            "tau", "coarse_iterations", "coarse_stride")


BOOLEAN_SETTINGS = ("clip_x0", "sphere")


def flag_words(message: str) -> str:
    """A library warning in this command's words: the settings it names become the flags that set
    them (``coarse_iterations=12`` -> ``--coarse-iterations 12``, ``init='warm'`` -> ``--init
    warm``, ``clip_x0=False`` -> ``--no-clip-x0``, a bare ``warm_from`` -> ``--warm-from``). Only
    ``name=value`` forms and names with an underscore are rewritten: a bare "iterations" or
    "finish" is also an ordinary word."""
    for name in SETTINGS:
        flag = "--" + name.replace("_", "-")
        if name in BOOLEAN_SETTINGS:
            message = re.sub(rf"(?<![\w-]){name}=(True|False)\b",
                             lambda m, f=flag: f if m.group(1) == "True" else "--no-" + f[2:], message)
        message = re.sub(rf"(?<![\w.-]){name}=(['\"]?)([^\s,;:)'\"]+)\1",
                         lambda m, f=flag: f"{f} {m.group(2)}", message)
        if "_" in name:
            message = re.sub(rf"(?<![\w.-]){name}\b", flag, message)
    return message


def coarse_note(restorer) -> str:
    """" (the first N at k steps)" for a coarse-to-fine run, "" when every iteration is fine."""
    from ..restoration import plural

    n = min(restorer.config.coarse_iterations, restorer.config.iterations)
    k = len(restorer.solver.coarse_pairs)
    if not n or k == len(restorer.solver.pairs):
        return ""
    steps = plural(k, "step")
    return f" (all at {steps}: no fine iteration)" if n == restorer.config.iterations else f" (the first {n} at {steps})"


def check_coarse(args, restorer=None) -> None:
    """Warn when --coarse-stride can change nothing: the run (``restorer``; for a folder, None: then
    the preset's settings) runs no coarse iterations, or its coarse trajectory keeps every DDIM step
    (a stride of 1, or a trajectory of one step)."""
    import warnings

    from ..solvers.presets import uses_coarse_to_fine

    if args.coarse_stride is None:
        return
    coarse = restorer.config.coarse_iterations > 0 if restorer is not None else (
        bool(args.coarse_iterations) if args.coarse_iterations is not None else uses_coarse_to_fine(args.preset))
    if not coarse:
        warnings.warn("--coarse-stride does nothing without --coarse-iterations N (N > 0)")
    elif args.coarse_stride == 1:
        warnings.warn("--coarse-stride 1 keeps every DDIM step: the coarse iterations are ordinary ones")
    elif restorer is not None and len(restorer.solver.coarse_pairs) == len(restorer.solver.pairs):
        warnings.warn(f"--coarse-stride {args.coarse_stride} keeps every DDIM step of a "
                      f"{len(restorer.solver.pairs)}-step trajectory: the coarse iterations are ordinary ones")


def run(args) -> int:
    from ..folders import is_many

    if args.seed is not None and args.seeds is not None:
        raise ShredError("--seed and --seeds both given: give one (--seeds 0-3 runs seeds 0, 1, 2 and 3)")
    if args.seed is None:
        args.seed = 0
    if is_many(args.measurement):
        check_coarse(args)
        return run_folder(args)
    return run_one(args)


def run_folder(args) -> int:
    """A folder or glob of measurements (:class:`shred.folders.FolderRestore`)."""
    from ..distributed import launch
    from ..folders import FolderRestore

    if not args.out:
        raise ShredError("restoring a folder needs --out FOLDER for the restored images")
    single = [name for name, given in [("--grid", args.grid), ("--clean", args.clean), ("--report", args.report),
                                       ("--kernel-out", args.kernel_out), ("--seeds", args.seeds)] if given]
    if single:
        raise ShredError(f"{', '.join(single)} work{'s' if len(single) == 1 else ''} with one image; a folder gets "
                         "a report per image (and one seed each: --seed)")
    if not args.task and (given_task_options(args) or args.degrade_seed is not None):
        name = sorted(given_task_options(args) | ({"degrade_seed"} if args.degrade_seed is not None else set()))[0]
        raise ShredError(f"--{name.replace('_', '-')} is used with --task only (the specs fix the operators)")
    rank = launch()[0]
    quiet = args.quiet or rank != 0

    def log(line: str) -> None:
        print(f"shred-ir: {line}", file=sys.stderr)

    settings = {k: getattr(args, k) for k in SETTINGS}
    job = FolderRestore(args.measurement, args.out, spec=args.spec, task=args.task, options=task_options(args),
                        seed=args.seed, degrade_seed=args.degrade_seed, model=args.model, class_label=args.class_label, allow_resize=args.resize,
                        batch=args.batch, overwrite=args.overwrite, device=args.device, log=log, progress=not quiet,
                        restorer={"preset": args.preset, "run": {"precision": args.precision, "compile": args.compile},
                                  "tile": args.tile, "tile_overlap": args.tile_overlap, **settings})
    summary = job.run()
    if rank == 0 or summary.failed:
        print(summary.line("restored", job.out), file=sys.stderr if args.quiet else sys.stdout)
    return 0 if summary.ok else 2


def run_one(args) -> int:
    from ..api import make_restorer
    from ..io import check_outputs, check_writable, grid_bytes, write_all
    from ..operators.tasks import describe_operator
    from ..restoration import (done_message, grid_columns, load_clean, load_measurement, output_files, plural,
                               run_report, spread_paths)

    y_path = Path(args.measurement)
    spec_path = _spec_path(args, y_path)
    run_seeds = args.seeds if args.seeds is not None else [args.seed]
    base_out = check_writable(args.out or y_path.with_name(y_path.stem + "_restored.png"))
    outs = seed_paths(base_out, run_seeds)
    spread = spread_paths(base_out) if len(run_seeds) > 1 else None
    grid = check_writable(args.grid, (".png", ".jpg", ".jpeg")) if args.grid else None
    kernel_out = check_writable(args.kernel_out, (".png", ".npy")) if args.kernel_out else None
    kernel_outs = [] if kernel_out is None else seed_paths(kernel_out, run_seeds)
    report = check_writable(args.report, (".json",)) if args.report else None
    # Before any work (and any download): every output writable, named once, and none an input.
    check_outputs([*(("--out", p) for p in outs), *(("the seeds' mean and uncertainty", p) for p in (spread or ())),
                   ("--grid", grid), *(("--kernel-out", p) for p in kernel_outs), ("--report", report)],
                  [("the measurement", y_path), ("--spec" if args.spec else "the spec", spec_path),
                   ("--clean", args.clean), *task_inputs(args), model_input(args.model)])
    device = args.device or default_device()

    m = load_measurement(y_path, spec=spec_path, task=args.task, options=task_options(args), model=args.model,
                         class_label=args.class_label, degrade_seed=args.degrade_seed, allow_resize=args.resize,
                         given=given_task_options(args))
    restorer = make_restorer(m.denoiser, m.task, preset=args.preset, device=device,
                             run={"precision": args.precision, "compile": args.compile}, images=len(run_seeds),
                             tile=args.tile, tile_overlap=args.tile_overlap, **{k: getattr(args, k) for k in SETTINGS})
    check_coarse(args, restorer)
    if kernel_out is not None and not restorer.blind:
        raise ShredError("--kernel-out needs a blind task (blind-deblur or blind-deblur-sv): other tasks know their kernel")
    clean = load_clean(args.clean, m.denoiser, size=m.operator.in_shape[1:], allow_resize=args.resize) \
        if args.clean else None
    if not args.quiet:
        from ..models.base import canvas_size

        _, h, w = m.operator.in_shape
        size = f"{h}x{w}" if canvas_size(m.denoiser, h, w) == (h, w) else \
            "{}x{} (on a {}x{} canvas)".format(h, w, *canvas_size(m.denoiser, h, w))
        mask = describe_operator(m.operator, blind=restorer.blind)
        search = ""
        if restorer.blind and restorer.solver.searches(m.task):
            solver = restorer.solver
            n = len(solver.search_grid(solver.search_size(m.operator)))
            search = f"a kernel search ({plural(n, 'Gaussian')} x {solver.blind.search_steps} DDRM steps), then "
        print(f"restoring {y_path.name} at {size}: {m.task}{f' ({mask})' if mask else ''} with "
              f"{m.denoiser.describe()}, preset {restorer.preset}, {search}"
              f"{plural(restorer.config.iterations, 'iteration')} x "
              f"{plural(len(restorer.solver.pairs), 'step')}{coarse_note(restorer)}, {restorer.config.grad} gradient, {plural(len(run_seeds), 'seed')} on "
              f"{device} ({restorer.run.describe()})", file=sys.stderr)
    res = restorer.restore(m.y, m.operator, seeds=run_seeds, progress=not args.quiet)

    files = output_files(res, outs, kernel_outs, spread)
    rep = run_report(res, m, y_path, clean=clean)
    if report is not None:
        files.append((report, rep.json_bytes()))
    if grid is not None:
        files.append((grid, grid_bytes(grid_columns(m.y, res, clean), grid.suffix)))
    write_all(files)  # all of them or none
    stream = sys.stderr if args.quiet else sys.stdout
    if len(rep.rows) > 1 or "stop" in rep.summary:
        print(rep.table(), file=stream)
    msg = done_message(res, rep.summary, Path(args.clean).name if clean is not None else None)
    print(f"{msg}; wrote {', '.join(str(p) for p, _ in files)}", file=stream)
    return 0
