"""What the commands share: typed, range-checked argument types, the task options, the files they
name (inputs for :func:`shred.io.check_outputs`) and the device.

An argument type raises :class:`argparse.ArgumentTypeError`, which argparse turns into the one-line
usage error of :class:`shred.cli.Parser` (exit status 2).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..config import decimal_int
from ..errors import ShredError
from ..seeding import MAX_SEEDS  # noqa: F401  (re-exported: the CLI's limit is the library's)


def seeds(text: str) -> list[int]:
    """``0-7``, ``0,3,5`` or a mix (``0-3,9``): 1 to 256 seeds, each in [0, 2^63 - 1]
    (:func:`shred.seeding.parse_seeds`)."""
    from ..seeding import parse_seeds

    try:
        return parse_seeds(text)
    except ShredError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seed(text: str) -> int:
    """One seed: an integer in [0, 2^63 - 1] (:func:`shred.seeding.check_seed`)."""
    from ..seeding import check_seed

    try:
        return check_seed(decimal_int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to 2^63 - 1, got {text!r}") from None
    except ShredError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_at_least(minimum: int, what: str, too_small: str | None = None):
    """An argument type for an integer >= ``minimum``: "expected WHAT, got TEXT" when the text is no
    integer; ``too_small`` (formatted with ``v``; default the same words) when it is below."""
    def convert(text: str) -> int:
        try:
            v = decimal_int(text)  # not int(): it would also take "1_0" and other scripts' digits
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError((too_small or f"expected {what}, got {{v}}").format(v=v))
        return v

    return convert


positive_int = int_at_least(1, "a positive integer")
positive_int.__name__ = "positive_int"


def integer(text: str) -> int:
    """Any integer, in decimal digits (:func:`shred.config.decimal_int`)."""
    try:
        return decimal_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


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


def tile_option(text: str) -> str | int:
    """``auto``, ``none`` or a tile side N >= 1."""
    if text in ("auto", "none"):
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--tile is auto, none or a side in pixels, got {text!r}") from None


def typed(text: str, limit: int = 40) -> str:
    """``text`` as the user typed it, for a message; a long one cut to its start and length
    (``10000000000000000000000000000000... (5000 characters)``)."""
    text = text.strip()
    return text if len(text) <= limit else f"{text[:limit - 8]}... ({len(text)} characters)"


def checked_by(config_class, name: str, parse=float):
    """An argument type for setting ``name`` of a :class:`shred.config.FrozenConfig` class: the
    text parsed with ``parse`` (int or float), then the library's own check of that field, so
    that ``--lr 1e300`` is refused by the parser with the library's words and limit, echoing the
    text as typed (``SHRED lr must be at most 10, got 1e300``); an integer too long for ``int``
    is out of range, not "not an integer"."""
    from dataclasses import fields

    from ..config import _Invalid

    check = next(f for f in fields(config_class) if f.name == name).metadata["check"]

    def convert(text: str):
        shown = typed(text)
        try:
            value = decimal_int(text) if parse is int else parse(text)  # not "1_0"
        except ValueError:
            if parse is not int or not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
                raise argparse.ArgumentTypeError(f"expected {'an integer' if parse is int else 'a number'}, "
                                                 f"got {shown if shown != text.strip() else repr(shown)}") from None
            value = (-1 if text.strip().startswith("-") else 1) * 10 ** 4000  # past int()'s digit limit
        try:
            return check(value)
        except _Invalid as exc:
            raise argparse.ArgumentTypeError(f"{config_class.label} {name} must be {exc}, got {shown}") from None

    convert.__name__ = name  # argparse names the type in its messages
    return convert


def size(text: str) -> tuple[int, int]:
    """``32`` or ``32x48``: (height, width), both in 1 .. 4096 (the largest image an operator is
    built for)."""
    try:
        parts = [decimal_int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes look like 32 or 32x32, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"sizes look like 32 or 32x32, got {text!r}")
    from ..operators.base import MAX_SIDE

    if max(parts) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"sizes are at most {MAX_SIDE} pixels a side, got {text!r}")
    return parts[0], parts[1]


def bool_flag(parser, name: str, help: str) -> None:
    """``--NAME`` sets True, ``--no-NAME`` (not shown in --help) False, neither leaves None (the preset's)."""
    dest = name.replace("-", "_")
    parser.add_argument(f"--{name}", dest=dest, action="store_true", default=None, help=help)
    parser.add_argument(f"--no-{name}", dest=dest, action="store_false", help=argparse.SUPPRESS)


TASK_OPTION_NAMES = ("scale", "fraction", "box_size", "mask", "kernel", "kernel_size", "kernel_sigma", "sigma_y")


def add_task_options(p: argparse.ArgumentParser, restoring: bool = False) -> None:
    """The ``task`` argument group: --task and the options of :class:`shred.operators.TaskOptions`
    (and, ``restoring``, --degrade-seed: the seed of a random operator)."""
    from ..operators import TASKS, TaskOptions

    g = p.add_argument_group("task")
    g.add_argument("--task", help="degradation: " + ", ".join(TASKS) + " (chain with +, e.g. colorize+sr)")
    g.add_argument("--scale", type=positive_int, help="super-resolution factor (default 4)")
    g.add_argument("--fraction", type=checked_by(TaskOptions, "fraction"), help="kept pixel fraction for cs, in (0, 1] "
                   "(default 0.05)")
    g.add_argument("--box-size", type=positive_int, help="side of the inpainting square (default: half the side)")
    g.add_argument("--mask", help="mask file for inpaint-mask (PNG white = kept, or .npy non-zero = kept)")
    g.add_argument("--kernel", help="blur kernel: gaussian (default), random, or FILE[:INDEX] (.npy/.mat/image)")
    g.add_argument("--kernel-size", type=checked_by(TaskOptions, "kernel_size", int),
                   help="odd kernel side, at most 2 x the image side - 1")
    g.add_argument("--kernel-sigma", type=positive_float, help="Gaussian kernel std in pixels (default 3)")
    g.add_argument("--sigma-y", type=checked_by(TaskOptions, "sigma_y"),
                   help="measurement noise std in [0, 1] units, at most 1 (default 0; 5/255 for 5 in 8-bit units)"
                   + ("; for a blur, restore adds an 8-bit file's rounding to it (0.00113)" if restoring else ""))
    if restoring:
        g.add_argument("--degrade-seed", type=seed, help="without a spec: the --seed `shred-ir degrade` drew a random "
                       "mask or kernel with (cs, deblur --kernel random, deblur-sv); they are never re-drawn")


def given_task_options(args) -> set[str]:
    """The names of the task options given on the command line."""
    return {k for k in TASK_OPTION_NAMES if getattr(args, k, None) is not None}


def task_options(args):
    """The :class:`shred.operators.TaskOptions` of the options given (the others keep their defaults)."""
    from ..operators import TaskOptions

    return TaskOptions(**{k: getattr(args, k) for k in given_task_options(args)})


def task_inputs(args) -> list[tuple[str, str | None]]:
    """The files the task options name (``--mask``, ``--kernel FILE[:INDEX]``), as (label, path)
    inputs for :func:`shred.io.check_outputs`."""
    kernel = getattr(args, "kernel", None)
    if kernel in ("gaussian", "random"):
        kernel = None
    elif kernel is not None and not Path(kernel).exists():
        head, sep, tail = kernel.rpartition(":")
        kernel = head if sep and tail.isascii() and tail.isdigit() and head else kernel
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
