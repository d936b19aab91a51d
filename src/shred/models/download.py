"""Fetching released checkpoints into a local cache: resumable, verified, atomic.

Where files go: ``$SHRED_CACHE``, else ``$XDG_CACHE_HOME/shred``, else ``~/.cache/shred``; a model's
files sit in ``<cache>/<name>/`` (``/`` in a name becomes ``--``). A file is downloaded into
``<file>.part`` (resumed with an HTTP ``Range`` request after an interruption, by a retry or by
running the command again), checked against its known size and sha256, and only then renamed
into place, so a file under its final name is always complete. Without a published checksum, the
one computed is written to ``<file>.sha256`` (``sha256sum`` format) so it can be pinned.

``SHRED_MODEL_BASE_URL`` redirects every download to ``<base>/<name>/<file>`` (a lab mirror, or a
test server); it also makes files that have no public direct address (DPS's Google Drive)
fetchable from such a mirror.

Models on the Hugging Face Hub (``ModelEntry.hub_repo``) are fetched with ``huggingface_hub``'s
``hf_hub_download`` into the same folder (it resumes, locks and honours ``HF_ENDPOINT``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE``); a known size or sha256 is checked afterwards all the same.
Everything else uses the standard library (``urllib``).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DownloadError
from .registry import ModelEntry, RemoteFile

ENV_CACHE = "SHRED_CACHE"
ENV_BASE_URL = "SHRED_MODEL_BASE_URL"
CHUNK = 1 << 20
TIMEOUT_S = 60


def cache_dir() -> Path:
    """The cache folder (not created): ``$SHRED_CACHE``, ``$XDG_CACHE_HOME/shred`` or ``~/.cache/shred``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "shred"


def model_dir(entry: ModelEntry) -> Path:
    return cache_dir() / entry.name.replace("/", "--")


def local_path(entry: ModelEntry) -> Path:
    """Where a model lives once fetched: its file (one-file models) or its folder."""
    files = entry.remote_files
    if len(files) == 1:
        return model_dir(entry) / files[0].path
    return model_dir(entry)


def is_cached(entry: ModelEntry) -> bool:
    files = entry.remote_files
    return bool(files) and all((model_dir(entry) / f.path).is_file() for f in files)


def _source_url(entry: ModelEntry, f: RemoteFile) -> str | None:
    base = os.environ.get(ENV_BASE_URL)
    if base:
        return f"{base.rstrip('/')}/{entry.name.replace('/', '--')}/{f.path}"
    return f.url


def cached_or_fetch(entry: ModelEntry, *, progress: bool = True) -> Path:
    """The local path of a downloadable model, fetching it first if it is not in the cache."""
    if is_cached(entry):
        return local_path(entry)
    return fetch(entry, progress=progress)


def fetch(entry: ModelEntry, *, progress: bool = True, retries: int = 3) -> Path:
    """Download every file of ``entry`` that is not in the cache yet; returns :func:`local_path`.

    Raises:
        DownloadError: one line saying what to download and where to put it (no network, HTTP
            error, a file with no direct address, a size or checksum mismatch).
    """
    files = entry.remote_files
    if not files:
        raise DownloadError(f"{entry.name} has no files to download (kind {entry.kind!r})")
    folder = model_dir(entry)
    for f in files:
        dest = folder / f.path
        if dest.is_file():
            continue
        if entry.hub_repo is not None and not os.environ.get(ENV_BASE_URL):
            _hub_download(entry, f, dest, progress=progress, what=f"{entry.name}/{f.path}" if len(files) > 1
                          else entry.name)
            continue
        url = _source_url(entry, f)
        if url is None:
            raise DownloadError(f"{entry.name}: {f.path} cannot be downloaded automatically; get it from "
                                f"{entry.homepage} and put it at {dest}")
        download(url, dest, sha256=f.sha256, size=f.size, progress=progress, retries=retries,
                 what=f"{entry.name}/{f.path}" if len(files) > 1 else entry.name)
    return local_path(entry)


def _hub_download(entry: ModelEntry, f: RemoteFile, dest: Path, *, progress: bool, what: str) -> None:
    """Fetch one file of a Hub repository to ``dest`` (= ``model_dir(entry) / f.path``) with
    ``hf_hub_download``, then check its known size and sha256 (removing it on a mismatch).
    Raises :class:`DownloadError` in one line."""
    from huggingface_hub import hf_hub_download

    source = f"https://huggingface.co/{entry.hub_repo} (file {f.path}, revision {entry.hub_revision})"
    try:
        hf_hub_download(entry.hub_repo, f.path, revision=entry.hub_revision, local_dir=model_dir(entry),
                        endpoint=os.environ.get("HF_ENDPOINT") or None,  # read now, not at import
                        tqdm_class=None if progress else _silent_bar_class())
    except Exception as exc:  # huggingface_hub's HTTP, offline and file-system errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DownloadError(f"cannot download {what} from the Hugging Face Hub ({type(exc).__name__}: {first}); "
                            f"check the network, or get it from {source} and put it at {dest}") from None
    if f.size is not None and dest.stat().st_size != f.size:
        size = dest.stat().st_size
        dest.unlink()
        raise DownloadError(f"{what}: got {size} bytes but expected {f.size}; the file was removed, try again "
                            f"or get it from {source}")
    if f.sha256 is not None and (digest := _sha256(dest)) != f.sha256.lower():
        dest.unlink()
        raise DownloadError(f"{what}: checksum mismatch (sha256 {digest[:16]}..., expected {f.sha256[:16]}...); "
                            f"the file was removed; try again, or get it from {source}")


def _silent_bar_class():
    """A tqdm that shows nothing (hf_hub_download takes a class, not a flag)."""
    from tqdm.auto import tqdm

    class SilentBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentBar


class _Interrupted(Exception):
    """The transfer stopped before the end; the ``.part`` file keeps what arrived."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on ``folder`` (POSIX flock), so two processes never write the same ``.part``."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
             progress: bool = True, retries: int = 3, what: str | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming, verifying, renaming at the end.

    Args:
        sha256: expected hex checksum; on a mismatch the partial file is removed.
        size: expected size in bytes (else the server's Content-Length is checked).
        progress: show a progress bar on stderr (tqdm, when it is a terminal).
        retries: how many times an interrupted transfer is resumed before giving up; the ``.part``
            file stays, so running again resumes too.
    """
    dest = Path(dest)
    what = what or dest.name
    hint = f"download {url} yourself and put it at {dest}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder {dest.parent} ({exc.strerror}); set "
                            f"{ENV_CACHE} to a writable folder") from None
    part = dest.with_name(dest.name + ".part")
    with _locked(dest.parent):
        if dest.is_file():  # another process finished it while we waited
            return dest
        if progress:
            print(f"downloading {what} from {url}", file=sys.stderr)
        for attempt in range(retries + 1):
            try:
                total = _transfer(url, part, progress=progress)
                break
            except _Interrupted as exc:
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    raise DownloadError(f"download of {what} interrupted after {have / 1e6:.1f} MB ({exc}); run "
                                        f"the same command again to resume, or {hint}") from None
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"cannot download {what}: HTTP {exc.code} {exc.reason} for {url}; {hint}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DownloadError(f"cannot download {what} ({reason}); check the network, or {hint}") from None
        got = part.stat().st_size
        expected = size if size is not None else total
        if expected is not None and got != expected:
            part.unlink()
            raise DownloadError(f"{what}: got {got} bytes but expected {expected}; the partial file was removed, "
                                f"try again or {hint}")
        digest = _sha256(part)
        if sha256 is not None and digest != sha256.lower():
            part.unlink()
            raise DownloadError(f"{what}: checksum mismatch (sha256 {digest[:16]}..., expected {sha256[:16]}...); "
                                f"the file was removed; try again, or {hint}")
        os.replace(part, dest)
        if sha256 is None:
            from ..io import atomic_write

            atomic_write(dest.with_name(dest.name + ".sha256"), f"{digest}  {dest.name}\n".encode())
    return dest


def _transfer(url: str, part: Path, *, progress: bool) -> int | None:
    """Append the rest of ``url`` to ``part``; returns the full size when the server says it.

    Raises :class:`_Interrupted` when the connection stops early (what arrived is kept).
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "shred (python urllib)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range past the end: what we have is the whole file
            return have
        raise
    with resp:
        if have and resp.status == 206:
            start = int(resp.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have:
                raise _Interrupted(f"server resumed at byte {start}, not {have}")
            mode = "ab"
        else:  # the server ignored the range: start over
            have, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = _progress_bar(total, have, part.name.removesuffix(".part")) if progress else None
        received = 0
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (http.client.IncompleteRead, ConnectionError, socket.timeout) as exc:
                        raise _Interrupted(type(exc).__name__) from None
                    if not block:
                        break
                    fh.write(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and have + received < total:
            raise _Interrupted(f"connection closed at byte {have + received} of {total}")
        return total


def _progress_bar(total: int | None, initial: int, name: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    # disable=None: only on a terminal, so logs and captured output stay clean.
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, disable=None, leave=False)
