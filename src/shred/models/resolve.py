"""A model name or path to a local file or folder, fetching a registered model into the cache
when it is not there yet (the registry: :mod:`shred.models.registry`; the fetching:
:mod:`shred.models.download`)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ShredError
from .download import cached_or_fetch
from .registry import MODELS


def resolve_model_path(spec: str | Path) -> Path:
    """A model name or path to a local path (a folder or a checkpoint file).

    A registered name that is not in the cache is downloaded first. Raises :class:`ShredError` for a
    name that is neither registered nor an existing path, or a bundled model missing from the
    installation, and :class:`shred.errors.DownloadError` when a download fails.
    """
    entry = MODELS.get(str(spec))
    if entry is not None:
        if entry.kind == "bundled":
            if not (entry.path / "config.json").is_file():
                raise ShredError(f"bundled model {entry.name} is missing from this installation; reinstall shred")
            return entry.path
        return cached_or_fetch(entry)
    path = Path(spec).expanduser()
    if path.exists():
        return path
    known = ", ".join(sorted(MODELS)) or "none"
    raise ShredError(f"unknown model {spec!r}: not a known name ({known}) and no such file or folder")


def local_model_path(spec: str | Path) -> Path | None:
    """Where a model name or path is on this machine, without fetching anything: a bundled model's
    folder, a downloaded model's file or folder when it is in the cache, an existing path; else None."""
    from .download import local_path

    entry = MODELS.get(str(spec))
    if entry is not None:
        path = entry.path if entry.kind == "bundled" else local_path(entry)
    else:
        path = Path(spec).expanduser()
    return path if path is not None and path.exists() else None
