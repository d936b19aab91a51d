"""The ``ui`` sub-command: serve the browser page (``shred-ir ui``).

``add_parser(sub)`` adds it to the CLI's sub-parsers and ``run(args)`` runs it; gradio is imported
only inside ``run``, so the other commands do not pay for it.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import ShredError

LOCAL = ("127.0.0.1", "localhost", "::1")

EPILOG = """examples:
  shred-ir ui                                  # http://127.0.0.1:7860, the bundled models
  shred-ir ui --port 8000 --device cpu
  shred-ir ui --model celeba-hq-256            # offer a downloaded checkpoint first
  shred-ir ui --host 0.0.0.0                   # reachable from other machines: no login, see the warning

The page restores one image at a time (a queue); it offers the model given here and the bundled
models. Its controls map to `shred-ir degrade` / `shred-ir restore` flags (README, "In the browser"),
and its spec.json + measurement.npy downloads restore the same problem with `shred-ir restore`.
"""


def _port(text: str) -> int:
    from ..config import decimal_int

    try:
        v = decimal_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {v}")
    return v


def _device(text: str) -> str:
    """``--device``, checked when the command line is parsed (:func:`shred.cli.options.device`)."""
    from ..cli.options import device  # here, not at the top: shred.cli imports this module

    return device(text)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("ui", help="restore images in the browser (a local web page; needs shred[ui])",
                       description="Serve a web page that degrades and restores images with SHRED: upload an image "
                       "or use the sample, paint an inpainting hole, choose the task, preset and seeds, watch the "
                       "progress, download the result and its spec. Needs gradio: pip install 'shred[ui]'.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model offered first: a name (see `shred-ir models`), folder or checkpoint "
                   "(default: the bundled RGB model); the bundled models are always offered")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only); "
                   "another address serves the page to the network, without any login")
    p.add_argument("--port", type=_port, help="port (default: 7860, or the next free one)")
    p.add_argument("--device", type=_device, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.set_defaults(func=run)
    return p


def host_warning(host: str) -> str | None:
    """The warning printed when the page is served beyond this machine (None for a local address)."""
    if host in LOCAL:
        return None
    return (f"serving on {host}: anyone who can reach this address can use the page and the machine's "
            "compute (no login); use --host 127.0.0.1 to keep it local")


def run(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ShredError("the browser page needs gradio: pip install 'shred[ui]'") from None
    warning = host_warning(args.host)
    if warning:
        print(f"shred-ir: warning: {warning}", file=sys.stderr)
    from .app import build_app, launch

    demo = build_app(args.model, args.device)
    print(f"shred-ir ui: {demo.shred_page.default} on {demo.shred_page.device}; press Ctrl+C to stop", file=sys.stderr)
    launch(demo, args.host, args.port)
    return 0
