"""The ``shred-ir`` command (also ``python -m shred``): a thin layer over the Python API.

The command is not called ``shred``: GNU coreutils' ``shred`` (on every Linux PATH) overwrites the
files it is given with random data, so ``shred restore y.png`` typed outside the virtual environment
would destroy y.png. The package and import name stay ``shred``.

Every user error ends as one line on stderr (``shred-ir: error: ...``) and exit status 2; a bug is one
line too (status 1; ``SHRED_DEBUG=1`` shows the traceback), an interrupt exits with 130. Outputs are
written atomically, and only after all the work has succeeded.

Each sub-command is a module with ``add_parser(sub)`` (which sets ``func=run`` on its parser) and
``run(args) -> int``; :data:`COMMANDS` lists them, in the order ``--help`` shows them. A new
command is one module and one entry there.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import SettingsWarning, ShredError
from . import bench, degrade, demo, models, restore, train, ui

PROG = "shred-ir"  # the console script of pyproject.toml; see the module docstring

COMMANDS = [degrade, restore, train, demo, bench, models, ui]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = Parser(prog=PROG, description="Zero-shot image restoration by diffusion inversion (SHRED).")
    parser.add_argument("--version", action="version", version=f"{PROG} (shred {__version__})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status: 0 done,
    2 a user error (one line), 1 a bug (one line), 130 interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import warnings

    words = getattr(args, "warning_words", None)  # a command's own names for the library's settings

    def one_line(message, category, *_, **__):  # shred's own warnings, as one line each
        if words and isinstance(category, type) and issubclass(category, SettingsWarning):
            message = words(str(message))  # only notes on settings: not file names, not other packages' text
        print(f"{PROG}: warning: {message}", file=sys.stderr)

    previous, warnings.showwarning = warnings.showwarning, one_line
    try:
        return int(args.func(args) or 0)
    except ShredError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("SHRED_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set SHRED_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous
