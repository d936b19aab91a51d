"""What the commands share: typed, range-checked argument types, the task options, the files they
name (inputs for :func:`shred.io.check_outputs`) and the device.

An argument type raises :class:`argparse.ArgumentTypeError`, which argparse turns into the one-line
usage error of :class:`shred.cli.Parser` (exit status 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path

MAX_SEEDS = 256


def seeds(text: str) -> list[int]:
    """``0-7``, ``0,3,5`` or a mix (``0-3,9``): 1 to 256 integer seeds."""
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
    if not out or len(out) > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"give between 1 and {MAX_SEEDS} seeds")
    return out


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return v


def size(text: str) -> tuple[int, int]:
    """``32`` or ``32x48``: (height, width), both >= 1."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes look like 32 or 32x32, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"sizes look like 32 or 32x32, got {text!r}")
    return parts[0], parts[1]


def bool_flag(parser, name: str, help: str) -> None:
    """``--NAME`` sets True, ``--no-NAME`` (not shown in --help) False, neither leaves None (the preset's)."""
    dest = name.replace("-", "_")
    parser.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help)
    parser.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


TASK_OPTION_NAMES = ("scale", "fraction", "box_size", "mask", "kernel", "kernel_size", "kernel_sigma", "sigma_y")


def add_task_options(p: argparse.ArgumentParser) -> None:
    """The ``task`` argument group: --task and the options of :class:`shred.operators.TaskOptions`."""
    from ..operators import TASKS

    g = p.add_argument_group("task")
    g.add_argument("--task", help="degradation: " + ", ".join(TASKS) + " (chain with +, e.g. colorize+sr)")
    g.add_argument("--scale", type=positive_int, help="super-resolution factor (default 4)")
    g.add_argument("--fraction", type=positive_float, help="kept pixel fraction for cs (default 0.05)")
    g.add_argument("--box-size", type=positive_int, help="side of the inpainting square (default: half the side)")
    g.add_argument("--mask", help="mask file for inpaint-mask (PNG white = kept, or .npy non-zero = kept)")
    g.add_argument("--kernel", help="blur kernel: gaussian (default), random, or FILE[:INDEX] (.npy/.mat/image)")
    g.add_argument("--kernel-size", type=positive_int, help="odd kernel side")
    g.add_argument("--kernel-sigma", type=positive_float, help="Gaussian kernel std in pixels (default 3)")
    g.add_argument("--sigma-y", type=nonneg_float, help="measurement noise std in [0, 1] units (default 0)")


def task_options(args):
    """The :class:`shred.operators.TaskOptions` of the options given (the others keep their defaults)."""
    from ..operators import TaskOptions

    given = {k: getattr(args, k) for k in TASK_OPTION_NAMES if getattr(args, k, None) is not None}
    return TaskOptions(**given)


def task_inputs(args) -> list[tuple[str, str | None]]:
    """The files the task options name (``--mask``, ``--kernel FILE[:INDEX]``), as (label, path)
    inputs for :func:`shred.io.check_outputs`."""
    kernel = getattr(args, "kernel", None)
    if kernel in ("gaussian", "random"):
        kernel = None
    elif kernel is not None and not Path(kernel).exists():
        head, sep, tail = kernel.rpartition(":")
        kernel = head if sep and tail.isdigit() and head else kernel
    return [("--mask", getattr(args, "mask", None)), ("--kernel", kernel)]


def model_input(spec: str | None) -> tuple[str, Path | None]:
    """``--model`` as an input of :func:`shred.io.check_outputs`: its local file or folder (a
    bundled or already downloaded model, or a path), without fetching anything."""
    from ..models.resolve import local_model_path

    return "--model", local_model_path(spec) if spec else None


def device(text: str) -> str:
    """``--device``: cpu, cuda or cuda:N, checked against this machine when the command line is
    parsed (:func:`shred.models.fast.resolve_device`), so an absent GPU is a usage error."""
    from ..errors import ShredError
    from ..models.fast import resolve_device

    try:
        return resolve_device(text)
    except ShredError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--device {text}: ")) from None


def default_device() -> str:
    """``cuda:0`` when a GPU is available, else ``cpu``."""
    from ..models.fast import resolve_device

    return resolve_device(None)


def seed_paths(path: Path, seeds: list) -> list[Path]:
    """One file per seed: ``path`` itself for one seed, ``<stem>_seed<s><suffix>`` for several."""
    return [path] if len(seeds) == 1 else [path.with_name(f"{path.stem}_seed{s}{path.suffix}") for s in seeds]
