"""Fetching released checkpoints into a local cache: resumable, verified, atomic.

Where files go: ``$SHRED_CACHE``, else ``$XDG_CACHE_HOME/shred``, else ``~/.cache/shred``; a model's
files sit in ``<cache>/<name>/`` (``/`` in a name becomes ``--``). A file is downloaded into
``<file>.part`` (resumed with an HTTP ``Range`` request after an interruption, by a retry or by
running the command again) and verified before it is renamed into place, so a file under its final
name is always one that loads:

* its size: the registry's, else the server's Content-Length (a transfer that stops short is kept
  as ``.part`` and resumed);
* its content: never an HTML page (a sign-in or error page answered with 200); a checkpoint is a
  complete torch file that loads as tensors only (``weights_only``, no code runs) and, for a
  one-file model, has the keys of a layout shred knows; JSON parses; safetensors headers match
  the file's size;
* its sha256, where a public source gives one (recorded in the registry with that source).

A ``.part`` kept from an earlier attempt that does not verify once completed (a stale or longer
file answered with 416) is fetched again from the start, once. A cached file that does not pass the
same checks (quick ones on every use, the full ones for ``shred-ir models download``) is fetched
again, or named for deletion when it cannot be fetched by a program. Without a published checksum,
the one computed is written to ``<file>.sha256`` (``sha256sum`` format) so it can be pinned.

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
from typing import Callable

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
    """The local path of a downloadable model, fetching it first if it is not in the cache (or a
    cached file fails the quick checks of :func:`check_file`)."""
    return fetch(entry, progress=progress)


def fetch(entry: ModelEntry, *, progress: bool = True, retries: int = 3, thorough: bool = False) -> Path:
    """Download every file of ``entry`` that is not in the cache yet, or that is but does not pass
    :func:`check_file` (quick checks; all of them with ``thorough``); returns :func:`local_path`.

    Raises:
        DownloadError: one line saying what to download and where to put it (no network, HTTP
            error, a file with no direct address, a file that does not verify).
    """
    files = entry.remote_files
    if not files:
        raise DownloadError(f"{entry.name} has no files to download (kind {entry.kind!r})")
    folder = model_dir(entry)
    for f in files:
        dest = folder / f.path
        url = _source_url(entry, f)
        keys = len(files) == 1  # a one-file model's keys must be a layout shred knows
        if dest.is_file():
            problem = check_file(dest, size=f.size, keys=keys, thorough=thorough)
            if problem is None:
                continue
            if url is None:
                raise DownloadError(f"{dest} in the cache is not usable ({problem}); delete it and get the file "
                                    f"again from {entry.homepage}")
            print(f"{dest} in the cache is not usable ({problem}); fetching it again", file=sys.stderr)
            dest.unlink()
            dest.with_name(dest.name + ".sha256").unlink(missing_ok=True)
        what = f"{entry.name}/{f.path}" if len(files) > 1 else entry.name
        if entry.hub_repo is not None and not os.environ.get(ENV_BASE_URL):
            _hub_download(entry, f, dest, progress=progress, what=what)
            problem = check_file(dest, size=f.size, keys=keys, name=dest.name)
            if problem is not None:
                dest.unlink()
                raise DownloadError(f"{what} from the Hugging Face Hub is not usable ({problem}); the file was "
                                    f"removed, try again")
            continue
        if url is None:
            raise DownloadError(f"{entry.name}: {f.path} cannot be downloaded automatically; get it from "
                                f"{entry.homepage} and put it at {dest}")
        download(url, dest, sha256=f.sha256, size=f.size, progress=progress, retries=retries,
                 what=what,
                 check=lambda path, keys=keys, name=dest.name: check_file(path, keys=keys, name=name))
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


TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return start.startswith(b"<!doctype html") or start.startswith(b"<html") or start.startswith(b"<head")


def _safetensors_problem(path: Path, size: int) -> str | None:
    import json
    import struct

    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return "too short for a safetensors file"
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            return "a safetensors header longer than the file (truncated)"
        try:
            header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "not a safetensors file (unreadable header)"
    if 8 + n + end != size:
        return f"a safetensors file of {size} bytes whose header describes {8 + n + end} (truncated or padded)"
    return None


def check_file(path: str | os.PathLike, *, size: int | None = None, keys: bool = False,
               thorough: bool = True, name: str | None = None) -> str | None:
    """Why a fetched file is not usable, in a phrase, or None when it passes.

    Quick checks (every use of a cached file): the expected ``size``; not an HTML page; a JSON file
    parses; a safetensors header matches the file's size; a torch zip file is a complete zip with
    its ``data.pkl``. ``thorough`` (before a download is renamed into place, and for ``shred-ir
    models download``) also loads a torch file as tensors only (``weights_only``: a pickle that
    would run code is refused, not run) and, with ``keys``, checks it is a checkpoint layout shred
    knows (:mod:`shred.models.formats`). ``name``: the file's final name, whose suffix says its
    type (default: ``path``'s own; a ``.part`` file is checked under the name it will get).
    """
    path = Path(path)
    got = path.stat().st_size
    if size is not None and got != size:
        return f"{got} bytes, expected {size}"
    with open(path, "rb") as fh:
        head = fh.read(1024)
    suffix = Path(name or path.name).suffix.lower()
    if _looks_like_html(head) and suffix not in (".html", ".htm"):
        return "an HTML page, not the file"
    if suffix == ".json":
        import json

        try:
            if not isinstance(json.loads(path.read_bytes()), dict):
                return "not a JSON object"
        except ValueError as exc:
            return f"not valid JSON ({str(exc)[:80]})"
    elif suffix == ".safetensors":
        return _safetensors_problem(path, got)
    elif suffix in TORCH_SUFFIXES:
        import zipfile

        if head[:2] == b"PK":
            try:
                with zipfile.ZipFile(path) as z:
                    if not any(n.endswith("data.pkl") for n in z.namelist()):
                        return "a zip file, but not a PyTorch checkpoint"
            except (zipfile.BadZipFile, OSError):
                return "an incomplete zip (truncated PyTorch checkpoint)"
        elif head[:1] != b"\x80":  # the legacy torch format is a pickle stream
            return "not a PyTorch checkpoint"
        if thorough:
            from ..errors import CheckpointError
            from .checkpoints import read_torch_file

            try:
                state = read_torch_file(path)
                if keys:
                    from .convert import detect_format

                    detect_format(state, path.name)
            except CheckpointError as exc:
                reason = str(exc).removeprefix(f"{path}: ").removeprefix(f"{path.name}: ")
                return reason.split("; the file is truncated")[0][:200]
    return None


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
             check: Callable[[Path], str | None] | None = None, progress: bool = True, retries: int = 3,
             what: str | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming, verifying, renaming at the end.

    Args:
        sha256: expected hex checksum (from a public source); on a mismatch the file is removed.
        size: expected size in bytes (else the server's Content-Length is checked).
        check: ``check(path) -> problem or None``, run on the complete ``.part`` before it is
            renamed (:func:`check_file` for models); a problem removes it, or keeps it to be resumed
            when the server gave no length (the transfer may have stopped short).
        progress: show a progress bar on stderr (tqdm, when it is a terminal).
        retries: how many times an interrupted transfer is resumed before giving up; the ``.part``
            file stays, so running again resumes too.

    Raises:
        DownloadError: one line (network, HTTP error, an HTML page, a file that does not verify).
    """
    dest = Path(dest)
    what = what or dest.name
    hint = f"download {url} yourself and put it at {dest}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder {dest.parent} ({exc.strerror}); set "
                            f"{ENV_CACHE} to a writable folder") from None
    if not os.access(dest.parent, os.W_OK | os.X_OK):  # found before any request
        raise DownloadError(f"cannot write into the cache folder {dest.parent}; set {ENV_CACHE} to a writable folder")
    part = dest.with_name(dest.name + ".part")
    with _locked(dest.parent):
        if dest.is_file():  # another process finished it while we waited
            return dest
        if progress:
            print(f"downloading {what} from {url}", file=sys.stderr)
        for fresh in (False, True):
            kept = part.stat().st_size if part.exists() else 0
            if kept and size is not None and kept > size:  # stale: longer than the file can be
                part.unlink()
                kept = 0
            total = _transfer_with_retries(url, part, progress=progress, retries=retries, what=what, hint=hint)
            problem, resumable = _verify(part, size if size is not None else total, sha256, check)
            if problem is None:
                break
            if kept and not fresh:
                # The bytes kept from an earlier attempt may be the wrong ones (a stale .part, a
                # file changed on the server): start over once.
                if progress:
                    print(f"{part.name} does not verify ({problem}); fetching {what} from the start",
                          file=sys.stderr)
                part.unlink()
                continue
            got = part.stat().st_size
            if resumable and total is None:
                raise DownloadError(f"{what}: the transfer ended after {got / 1e6:.1f} MB without a complete file "
                                    f"({problem}) and the server gave no length; the bytes are kept in {part}: run "
                                    f"the same command again to resume, or delete {part} to start over, or {hint}")
            part.unlink()
            raise DownloadError(f"{what}: {problem}; nothing was kept, try again or {hint}")
        digest = _sha256(part) if sha256 is None else sha256
        os.replace(part, dest)
        if sha256 is None:
            from ..io import atomic_write

            atomic_write(dest.with_name(dest.name + ".sha256"), f"{digest}  {dest.name}\n".encode())
    return dest


def _verify(part: Path, expected: int | None, sha256: str | None,
            check: Callable[[Path], str | None] | None) -> tuple[str | None, bool]:
    """(why ``part`` is not the file or None, whether resuming could still complete it)."""
    got = part.stat().st_size
    if expected is not None and got != expected:
        return f"got {got} bytes but expected {expected}", got < expected
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256.lower():
            return f"checksum mismatch (sha256 {digest[:16]}..., expected {sha256[:16]}...)", False
    if check is not None:
        problem = check(part)
        if problem is not None:
            return problem, "HTML" not in problem
    return None, False


def _transfer_with_retries(url: str, part: Path, *, progress: bool, retries: int, what: str, hint: str) -> int | None:
    """:func:`_transfer`, resumed up to ``retries`` times; one-line DownloadErrors."""
    for attempt in range(retries + 1):
        try:
            return _transfer(url, part, progress=progress)
        except _Interrupted as exc:
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"download of {what} interrupted after {have / 1e6:.1f} MB ({exc}); run "
                                    f"the same command again to resume, or {hint}") from None
        except _NotTheFile as exc:
            raise DownloadError(f"{what}: {exc}; nothing was kept, {hint}") from None
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"cannot download {what}: HTTP {exc.code} {exc.reason} for {url}; {hint}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(f"cannot download {what} ({reason}); check the network, or {hint}") from None
    return None  # not reached


class _NotTheFile(Exception):
    """The server answered with something that is not the file (an HTML page)."""


def _transfer(url: str, part: Path, *, progress: bool) -> int | None:
    """Append the rest of ``url`` to ``part``; returns the full size when the server says it.

    Raises :class:`_Interrupted` when the connection stops early (what arrived is kept), and
    :class:`_NotTheFile` for an HTML page.
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "shred (python urllib)"}
    if have:
        # From the last byte we have, not the next: the answer then shows that the file is at least
        # as long as the .part and agrees with it there; a 416 means the .part is longer than the
        # file (stale), whatever the server says about the size.
        headers["Range"] = f"bytes={have - 1}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is longer than the file: start over
            part.unlink()
            return _transfer(url, part, progress=progress)
        raise
    with resp:
        kind = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "text/html" and not part.name.removesuffix(".part").lower().endswith((".html", ".htm")):
            raise _NotTheFile(f"the server answered with an HTML page ({kind}), not the file")
        if have and resp.status == 206:
            start = int(resp.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have - 1:
                raise _Interrupted(f"server resumed at byte {start}, not {have - 1}")
            with open(part, "rb") as fh:
                fh.seek(have - 1)
                kept_last = fh.read(1)
            if resp.read(1) != kept_last:  # the file changed since the .part was written: start over
                resp.close()
                part.unlink()
                return _transfer(url, part, progress=progress)
            mode = "ab"
            length = resp.headers.get("Content-Length")
            total = have - 1 + int(length) if length is not None else None
        else:  # the server ignored the range: start over
            have, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
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
