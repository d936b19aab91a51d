"""``shred-ir models`` (list the registry) and ``shred-ir models download NAME`` (fill the cache).

The library: :mod:`shred.models.registry` and :mod:`shred.models.download`; shred.models never imports the CLI."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import ShredError

EPILOG = """examples:
  shred-ir models                                   # what is known, bundled or cached
  shred-ir models download celeba-hq-256            # fetch into the cache (resumable)
  SHRED_CACHE=/data/shred shred-ir models download imagenet-256-uncond
  shred-ir restore y.png --model celeba-hq-256      # first use downloads it too

A model that cannot be fetched by a program (ffhq-256-dps, on Google Drive) is listed with the page
to get it from and the path to put it at.
"""


def _size(entry) -> str:
    mb = entry.size_mb
    if mb is None and entry.kind == "bundled" and entry.path is not None and entry.path.is_dir():
        mb = sum(f.stat().st_size for f in entry.path.iterdir() if f.is_file()) / 1e6
    if mb is None:
        return "?"
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB" if mb >= 1 else f"{mb * 1000:.0f} kB"


def _status(entry) -> str:
    from ..models.download import ENV_BASE_URL, is_cached, local_path

    if entry.kind == "bundled":
        return "bundled" if (entry.path / "config.json").is_file() else "missing (reinstall shred)"
    if is_cached(entry):
        return f"cached ({local_path(entry)})"
    if any(f.url is None for f in entry.remote_files) and not os.environ.get(ENV_BASE_URL):
        return f"manual download: put {local_path(entry).name} at {local_path(entry)}"
    return "not downloaded"


def run(args) -> int:
    from ..models.download import cache_dir
    from ..models.registry import MODELS

    rows = [(e.name, f"{e.resolution}x{e.resolution} {'RGB' if e.channels == 3 else 'grey'}", _size(e), _status(e), e)
            for e in sorted(MODELS.values(), key=lambda e: e.kind != "bundled")]  # bundled first
    width = max([len(r[0]) for r in rows] + [4]) + 2
    print(f"{'NAME':<{width}}{'IMAGES':<13}{'SIZE':<9}STATUS")
    for name, images, size, status, e in rows:
        print(f"{name:<{width}}{images:<13}{size:<9}{status}")
        print(f"    {e.description}")
        print(f"    {e.architecture}; data in [{e.data_range[0]:g}, {e.data_range[1]:g}]; licence: {e.licence}")
    print(f"\ncache: {cache_dir()} (set SHRED_CACHE to move it); `shred-ir models download NAME` fetches a model")
    return 0


def run_download(args) -> int:
    from ..models import load_model
    from ..models.download import fetch
    from ..models.registry import MODELS

    entry = MODELS.get(args.name)
    if entry is None:
        raise ShredError(f"unknown model {args.name!r}; known: {', '.join(MODELS)}")
    if entry.kind == "bundled":
        print(f"{entry.name} is bundled with shred; nothing to download")
        return 0
    # Fetches what is missing, and again what is cached but does not pass every check (it loads as
    # tensors only, with the keys of a known layout): running the command again repairs the cache.
    path = fetch(entry, progress=not args.quiet, thorough=True)
    # Loading (memory-mapped, no forward pass) proves the file is complete and of a known format.
    den = load_model(entry.name)
    found = getattr(den, "info", {}).get("format", "diffusers UNet2DModel")
    print(f"{entry.name}: {path} ({found})", file=sys.stderr if args.quiet else sys.stdout)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list known models, or download one into the cache",
                       description="List the bundled and downloadable models, with size, licence, "
                                   "provenance and whether they are in the cache.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    d = actions.add_parser("download", help="fetch a model into the cache (resumable, checked)",
                           description="Fetch a model into the cache: resumable, checked, written atomically.")
    d.add_argument("name", help="model name, as listed by `shred-ir models`")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=run_download)
