"""``shred-ir degrade``: degrade a clean image; write the measurement and the JSON spec of its operator."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ShredError
from .options import add_task_options, model_input, seed, size, task_inputs, task_options

EPILOG = """examples:
  shred-ir degrade cat.png --task sr --scale 4 --out y.png          # writes y.png and y.json
  shred-ir degrade face.png --task inpaint --box-size 16 --out y.png
  shred-ir degrade face.png --task cs --fraction 0.05 --seed 3 --out y.npy
  shred-ir degrade photo.jpg --task colorize+sr --scale 2 --size 32 --out y.png
  shred-ir degrade clean/ --task sr --scale 4 --out degraded/     # a folder: y and spec per image
  shred-ir degrade 'photos/*.png' --task cs --out degraded/        # a glob; resumable, --overwrite redoes
"""


def add_parser(sub) -> None:
    p = sub.add_parser("degrade", help="degrade a clean image and write the measurement and its spec",
                       description="Degrade a clean image; writes the measurement and a JSON spec of the operator.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clean", help="clean image (PNG, JPEG or .npy in [0, 1]), or a folder or glob of them")
    p.add_argument("--out", required=True, help="measurement file (.png, .jpg, or .npy to keep it exact); for a "
                   "folder, the output folder (each measurement and its .json spec under the input's name)")
    p.add_argument("--spec", help="spec file (default: --out with .json)")
    p.add_argument("--seed", type=seed, default=0, help="seed of random masks, kernels and noise (default 0)")
    p.add_argument("--size", type=size, help="resize the clean image first (centre crop + bicubic), e.g. 32")
    p.add_argument("--model", help="resize and convert the clean image for this model")
    p.add_argument("--quiet", action="store_true", help="no progress bar, and the line naming the written files "
                   "goes to stderr instead of stdout (stdout stays empty)")
    p.add_argument("--overwrite", action="store_true", help="folders: degrade again images whose outputs exist")
    add_task_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import degrade, make_spec
    from ..io import check_outputs, check_writable, image_bytes, json_bytes, read_image, write_all
    from ..models import MODELS, load_model
    from ..operators.tasks import describe_operator
    from ..restoration import fit_image

    if not args.task:
        raise ShredError("give --task (see `shred-ir degrade --help`)")
    from ..folders import is_many

    if is_many(args.clean):
        return run_folder(args)
    out = check_writable(args.out)
    spec_path = Path(args.spec) if args.spec else out.with_suffix(".json")
    if spec_path.suffix.lower() != ".json":
        raise ShredError(f"{spec_path}: the spec is a .json file")
    # Before any work: both outputs writable, distinct, and neither one of the inputs.
    check_outputs([("--out", out), ("--spec" if args.spec else "the spec", spec_path)],
                  [("the clean image", args.clean), *task_inputs(args), model_input(args.model)])
    x = read_image(args.clean)
    den = load_model(args.model) if args.model else None
    size = den.image_size if den is not None else args.size
    x = fit_image(x, size=size, channels=den.channels if den is not None else None, source=str(args.clean))
    opts = task_options(args)
    y, op = degrade(x, args.task, opts, seed=args.seed)
    spec = make_spec(op, task=args.task, options=opts, seed=args.seed,
                     extra={"clean": str(args.clean), "measurement": out.name,
                            "model": args.model if args.model in MODELS else None})
    write_all([(out, image_bytes(y, out.suffix)), (spec_path, json_bytes(spec))])  # both or neither
    c, h, w = op.out_shape
    held = describe_operator(op)
    print(f"wrote {out} ({c}x{h}x{w}, {args.task}{f'; {held}' if held else ''}) and {spec_path}",
          file=sys.stderr if args.quiet else sys.stdout)
    return 0


def run_folder(args) -> int:
    """A folder or glob of clean images (:func:`shred.folders.degrade_folder`)."""
    from ..distributed import launch
    from ..folders import degrade_folder

    if args.spec:
        raise ShredError("--spec names one file; a folder gets a spec beside each measurement")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ShredError(f"--out {out} is a file; give a folder for the measurements")
    rank = launch()[0]

    def log(line: str) -> None:
        print(f"shred-ir: {line}", file=sys.stderr)

    summary = degrade_folder(args.clean, out, args.task, task_options(args), seed=args.seed, size=args.size,
                             model=args.model, overwrite=args.overwrite, log=log,
                             progress=not args.quiet and rank == 0)
    print(summary.line("degraded", out), file=sys.stderr if args.quiet else sys.stdout)
    return 0 if summary.ok else 2
