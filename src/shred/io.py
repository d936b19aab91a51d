"""Reading and writing images, atomically, and side-by-side grids.

Images in memory are float32 tensors [1, C, H, W] in [0, 1] (C = 1 grey or 3 RGB). Files: PNG, JPEG
(8 bits per channel) and .npy (float, [H, W], [H, W, C] or [C, H, W], values in [0, 1]; lossless).
Every write goes to a new temporary file in the target folder (created exclusively, under an
unpredictable name) and is renamed into place, so an interrupted run never leaves a half-written
file or clobbers a good one; :func:`write_all` does the same for several files at once, renaming
only when every one of them was written.

Images are read as viewers display them (EXIF orientation applied, 16-bit and float TIFFs scaled to
[0, 1]); anything Pillow cannot decode, and images over :data:`MAX_PIXELS`, are refused in one line.

:func:`check_outputs` is the check every command runs
before any work: each output can be written, none is named twice, and none is one of the run's
inputs (docs/GUARANTEES.md).
"""
from __future__ import annotations

import io as _io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence, Union

import numpy as np
import torch

from .errors import ShredError, ShredWarning

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy",)


Content = Union[bytes, Callable[[BinaryIO], Any]]


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 less the process umask."""
    try:  # Linux >= 4.7 reports the umask without changing it (os.umask would, for all threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _write_temp(path: Path, content: Content) -> Path:
    """Write ``content`` into a new temporary file in ``path``'s folder and return its path.

    The file is created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``, as :func:`tempfile.mkstemp`
    does) under an unpredictable name, so a planted file or symlink cannot redirect the write;
    it is readable only by its owner while written, flushed to disk, then given the mode a
    normally created file would have. Removed again on any failure.
    """
    folder = path.parent
    if not folder.is_dir():
        raise ShredError(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ShredError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, (bytes, bytearray, memoryview)):
                f.write(content)
            else:
                content(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a quota: one line, nothing left behind
            raise ShredError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return tmp


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_all(files: Sequence[tuple[str | os.PathLike, Content]]) -> list[Path]:
    """Write several files all or nothing: every one into its temporary file first (see
    :func:`atomic_write`), and only when all of them succeeded rename each onto its name.

    ``files``: (path, content) pairs; content is bytes or a function writing to a binary file
    object (e.g. ``lambda f: torch.save(obj, f)``). Returns the paths. On any failure (a full
    disk, a missing folder, an encoder error) every temporary file is removed and no target is
    touched; raises :class:`ShredError` for OS errors and a path named twice.
    """
    paths = [Path(p) for p, _ in files]
    if len({p.resolve() for p in paths}) != len(paths):
        raise ShredError("the same file is named twice among the outputs: " + ", ".join(map(str, paths)))
    for p in paths:  # the one way a rename could fail after the first: checked before any write
        if p.is_dir():
            raise ShredError(f"cannot write {p}: it is a folder")
    temps: list[Path] = []
    try:
        for path, (_, content) in zip(paths, files):
            temps.append(_write_temp(path, content))
        for i, (tmp, path) in enumerate(zip(temps, paths)):
            os.replace(tmp, path)  # replaces a symlink at ``path`` itself, never its target
            temps[i] = None
    except OSError as exc:
        raise ShredError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        for tmp in temps:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    for folder in {p.parent for p in paths}:
        _sync_folder(folder)
    return paths


def atomic_write(path: str | os.PathLike, content: Content) -> Path:
    """Write one file atomically: into a new, exclusively created temporary file with an
    unpredictable name in the same folder, flushed to disk, then renamed onto ``path``. An
    interrupted or failed write leaves the previous file (if any) untouched and no temporary file.

    ``content``: bytes, or a function writing to a binary file object. Raises :class:`ShredError`
    when the folder does not exist or the write fails (full disk, permissions).
    """
    return write_all([(path, content)])[0]


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, data)


def finite_json(obj: Any) -> Any:
    """``obj`` with every infinite or NaN float (in nested dicts, lists and tuples) replaced by None,
    so that it is strict JSON (RFC 8259 has no ``Infinity`` or ``NaN``; jq, JavaScript and most
    parsers outside Python refuse them). A record that must tell an infinite value apart, such as
    the PSNR of an exactly restored image, says so in a field of its own (``psnr_exact``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def strict_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``obj`` as strict JSON: infinite and NaN floats as ``null``
    (:func:`finite_json`); ``kwargs`` go to ``json.dumps`` (``indent``)."""
    return json.dumps(finite_json(obj), allow_nan=False, **kwargs)


def json_bytes(obj: Any, strict: bool = True) -> bytes:
    """``obj`` as indented JSON text with a final newline, UTF-8. ``strict`` (the default) writes
    infinite and NaN floats as ``null`` (:func:`finite_json`); ``strict=False`` keeps Python's
    ``Infinity`` / ``NaN``, which only Python reads back, for files shred alone reads (a bench
    run's chunk records)."""
    return (json.dumps(finite_json(obj) if strict else obj, indent=2, allow_nan=not strict) + "\n").encode()


def write_json(path: str | os.PathLike, obj: Any, strict: bool = True) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`json_bytes`)."""
    atomic_write(path, json_bytes(obj, strict))


def to_channels(x: torch.Tensor, channels: int | None, source: str) -> torch.Tensor:
    """[B, C, H, W] with ``channels`` channels: 1 takes the channel mean, 3 repeats a grey image;
    None keeps C. Raises :class:`ShredError` (naming ``source``) for any other conversion."""
    c = x.shape[1]
    if channels is None or channels == c:
        return x
    if channels == 1:
        # Grey = channel mean: the same map as the colorization operator.
        return x.mean(dim=1, keepdim=True)
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    raise ShredError(f"{source}: cannot turn a {c}-channel image into {channels} channels")


# Inputs larger than this are refused before they are decoded: 8192 x 8192 pixels, whose float32 RGB
# copy is already 0.8 GB (the models work at 32 to 256 pixels; --resize brings a photo down to them).
MAX_PIXELS = 8192 * 8192


def _too_big(path: Path, h: int, w: int) -> ShredError:
    return ShredError(f"{path.name}: {w}x{h} pixels is over the limit of {MAX_PIXELS // 2 ** 20} megapixels "
                      f"({int(MAX_PIXELS ** 0.5)}x{int(MAX_PIXELS ** 0.5)}); shrink it first")


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header alone, without Pillow's decompression-bomb check
    (which refuses to open a 20000x20000 file at all, so its size cannot be named otherwise)."""
    from PIL import Image

    Image.init()
    try:
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for factory, accept in Image.OPEN.values():
                if accept and not accept(prefix):
                    continue
                fp.seek(0)
                try:
                    return factory(fp, str(path)).size
                except Exception:  # noqa: BLE001 - the next plugin may know the format
                    continue
    except OSError:
        pass
    return None


def _read_array(path: Path) -> np.ndarray:
    """A .npy image as float32 [C, H, W], C = 1 or 3, values in [0, 1] (checked, not clipped)."""
    try:
        # Memory-mapped: the shape is checked before any pixel is read.
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, OSError, EOFError, ...
        raise ShredError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray):
        raise ShredError(f"{path}: a .npz archive, not a .npy array; save one image with numpy.save")
    if arr.dtype.kind not in "fiub":
        raise ShredError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3):
        arr = arr.transpose(2, 0, 1)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3) or min(arr.shape) < 1:
        raise ShredError(f"{path}: expected [H, W], [H, W, C] or [C, H, W] with C = 1 or 3, got {arr.shape}")
    if arr.shape[1] * arr.shape[2] > MAX_PIXELS:
        raise _too_big(path, arr.shape[1], arr.shape[2])
    try:
        arr = np.array(arr, dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise ShredError(f"{path}: cannot read the array ({exc})") from None
    if not np.isfinite(arr).all():
        raise ShredError(f"{path}: the image contains NaN or infinite values")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise ShredError(f"{path}: values span [{arr.min():.3g}, {arr.max():.3g}]; images must lie in [0, 1]")
    return np.clip(arr, 0, 1)


def _pixels(im, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Pillow image as (float32 [H, W, C] in [0, 1], C = 1 or 3; its alpha [H, W] in
    [0, 1], or None when it has none)."""
    mode = im.mode
    if mode == "F":  # 32-bit float (TIFF): values are taken as they are, and must be in [0, 1]
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ShredError(f"{path.name}: the image contains NaN or infinite values")
        if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
            raise ShredError(f"{path.name}: a floating-point image with values in [{arr.min():.3g}, {arr.max():.3g}]; "
                             "float images must lie in [0, 1] (scale it, or save it as 8- or 16-bit)")
        return np.clip(arr, 0, 1)[..., None], None
    if mode.startswith("I;16"):
        return (np.asarray(im).astype(np.float32) / 65535.0)[..., None], None
    if mode == "I":  # 32-bit integers: 16-bit data in a wider container is the common case
        arr = np.asarray(im).astype(np.float64)
        if arr.min() < 0:
            raise ShredError(f"{path.name}: a 32-bit integer image with negative values; save it as 8- or 16-bit")
        top = 65535.0 if arr.max() <= 65535 else float(2 ** 32 - 1)
        return (arr / top).astype(np.float32)[..., None], None
    has_alpha = "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info
    grey = mode in ("1", "L", "LA", "La") or (mode == "P" and im.palette is not None and im.palette.mode == "L")
    alpha = None
    if has_alpha:
        rgba = np.asarray(im.convert("LA" if grey else "RGBA"), dtype=np.float32) / 255.0
        arr, alpha = rgba[..., :-1], rgba[..., -1]
    else:
        arr = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
        arr = arr[..., None] if arr.ndim == 2 else arr
    return arr, alpha


def read_image_and_alpha(path: str | os.PathLike, channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An image file as it is displayed: float32 [1, C, H, W] in [0, 1], and its alpha channel
    as float32 [H, W] in [0, 1] (0 = transparent), or None when the file has none.

    EXIF orientation is applied (a phone photo comes out upright, as viewers show it); 16-bit
    images are scaled by 65535; floating-point TIFFs are read as they are and must lie in [0, 1].
    ``channels`` converts as :func:`read_image`. Raises :class:`ShredError` in one line for a
    missing file, a file Pillow cannot read or decode (truncated, corrupt chunk), an image over
    :data:`MAX_PIXELS`, and NaN or out-of-range values.
    """
    path = Path(path)
    if not path.exists():
        raise ShredError(f"{path}: no such file")
    if path.is_dir():
        raise ShredError(f"{path} is a folder; give an image file")
    if path.suffix.lower() in ARRAY_SUFFIXES:
        x = torch.from_numpy(np.ascontiguousarray(_read_array(path)))[None]
        return to_channels(x, channels, str(path)), None
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            im = Image.open(path)
            with im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise _too_big(path, h, w)
                im.load()
                try:
                    im = ImageOps.exif_transpose(im)
                except Exception:  # noqa: BLE001 - a corrupt EXIF block: viewers ignore it too
                    pass
                arr, alpha = _pixels(im, path)
        # What Pillow noticed on the way (a truncated TIFF strip, corrupt EXIF), with the file's name;
        # its warning about images over its own limit is moot: shred's limit, below it, refused them.
        for note in said:
            if not issubclass(note.category, Image.DecompressionBombWarning):
                warnings.warn(f"{path.name}: {str(note.message).strip()}", ShredWarning, stacklevel=3)
    except ShredError:
        raise
    except Image.DecompressionBombError:
        size = _header_size(path)
        if size is not None:
            raise _too_big(path, size[1], size[0]) from None
        raise ShredError(f"{path.name}: the image is over the limit of {MAX_PIXELS // 2 ** 20} megapixels; "
                         "shrink it first") from None
    except UnidentifiedImageError:
        raise ShredError(f"{path}: not an image file Pillow can read (PNG, JPEG or TIFF expected)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ShredError(f"{path.name}: cannot read the image ({first[:160]})") from None
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
    return to_channels(x, channels, str(path)), None if alpha is None else torch.from_numpy(alpha)


def stored_levels(path: str | os.PathLike) -> int | None:
    """How many levels per channel ``path`` stores values in [0, 1] at, as :func:`read_image`
    scales them: 256 for 8-bit files (PNG, JPEG, 8-bit TIFF; Pillow reads 16-bit colour as 8-bit),
    65536 for 16-bit grey ones (and 32-bit integers, at least as fine), 2 for a 1-bit image, None for
    floating-point data (.npy, float TIFF), which is not rounded. What a palette or JPEG
    compression loses is not rounding and is not counted. Reads the header only; a file that
    cannot be opened gives None (:func:`read_image` says why)."""
    path = Path(path)
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception:  # noqa: BLE001 - read_image refuses such a file in its own words
        return None
    if mode == "F":
        return None
    if mode.startswith("I"):  # I;16, and 32-bit integers (read_image scales both by 65535, or by 2^32 - 1)
        return 65536
    if mode == "1":
        return 2
    return 256


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """An image file as it is displayed, as float32 [1, C, H, W] in [0, 1]
    (:func:`read_image_and_alpha`).

    ``channels`` converts: 1 takes the channel mean of a colour image, 3 repeats a grey one. An
    alpha channel is dropped, with a :class:`ShredWarning` when some pixels are transparent
    (shred restores the colours stored under them). Raises :class:`ShredError` for a missing file,
    a file that is not a readable image, an image too large, and NaN or out-of-range values.
    """
    import warnings

    x, alpha = read_image_and_alpha(path, channels)
    if alpha is not None and bool((alpha < 1).any()):
        share = float((alpha < 1).double().mean())
        warnings.warn(f"{Path(path).name}: its alpha channel is ignored ({100 * share:.1f} % of the pixels are "
                      "not opaque); shred reads the colours stored under it", ShredWarning, stacklevel=2)
    return x


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError("write one image at a time")
        x = x[0]
    arr = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def image_bytes(x: torch.Tensor, suffix: str) -> bytes:
    """Encode a [1, C, H, W] or [C, H, W] image in [0, 1] as PNG, JPEG (quality 95) or .npy."""
    suffix = suffix.lower()
    buf = _io.BytesIO()
    if suffix in ARRAY_SUFFIXES:
        t = x[0] if x.dim() == 4 else x
        np.save(buf, t.detach().float().cpu().clamp(0, 1).numpy())
        return buf.getvalue()
    from PIL import Image

    img = Image.fromarray(_to_uint8(x))
    if suffix == ".png":
        img.save(buf, format="PNG")
    elif suffix in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=95)
    else:
        raise ShredError(f"cannot write {suffix!r} files; use .png, .jpg or .npy")
    return buf.getvalue()


def write_image(path: str | os.PathLike, x: torch.Tensor) -> None:
    """Write one image in [0, 1] atomically; the format follows the suffix."""
    write_bytes(path, image_bytes(x, Path(path).suffix))


def check_writable(path: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES + ARRAY_SUFFIXES) -> Path:
    """Fail early, before any work, when an output path has a type shred cannot write, or cannot be
    written at all (see :func:`check_outputs`, which also compares it with the run's inputs)."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ShredError(f"{path}: unsupported output type; use one of {', '.join(suffixes)}")
    check_outputs([("the output", path)])
    return path


def _crop_box(h: int, w: int, th: int, tw: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred crop of an h x w image to th:tw's aspect ratio."""
    scale = min(h / th, w / tw)
    ch, cw = round(th * scale), round(tw * scale)
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _folder_problem(folder: Path, *, create: bool) -> str | None:
    """Why new files cannot be created in ``folder``, or None. ``create``: a missing folder is
    fine when its nearest existing ancestor is a writable folder (the caller creates it)."""
    folder = Path(folder) if str(folder) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if existing != folder and not create:
        return f"folder {folder} does not exist"
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        why = "a read-only file system" if read_only else "no write permission"
        return f"folder {existing} is not writable ({why})"
    return None


def _same_file(a: Path, b: Path) -> bool:
    """Whether two names reach one file: the same path once symlinks are resolved, or a hard link."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


Named = tuple[str, "str | os.PathLike | None"]


def check_outputs(outputs: Sequence[Named], inputs: Sequence[Named] = (), *, create_folders: bool = False) -> None:
    """Refuse, before any work, a run whose outputs cannot be written or would destroy a file.

    ``outputs`` and ``inputs`` are (label, path) pairs (None paths are skipped); the label names
    the option in the one-line :class:`ShredError` (``"--out"``, ``"the spec"``). Refused:

    * an output whose folder does not exist (unless ``create_folders``: then its nearest existing
      ancestor must be a folder), whose folder is a file, or is not writable;
    * an output that is an existing folder;
    * an output named twice, also through a symlink or a hard link;
    * an output that is one of the inputs, also through a symlink or a hard link, or that would
      replace an existing file inside an input folder (a model folder is read as a whole).
    """
    ins = [(label, Path(p)) for label, p in inputs if p is not None and str(p) != ""]
    seen: list[tuple[str, Path]] = []
    for label, p in outputs:
        if p is None:
            continue
        p = Path(p)
        problem = _folder_problem(p.parent, create=create_folders)
        if problem is not None:
            raise ShredError(f"cannot write {p}: {problem}")
        if p.is_dir():
            raise ShredError(f"{label} {p} is a folder; give a file name")
        for other_label, q in seen:
            if _same_file(p, q):
                raise ShredError(f"{p} is named twice as an output ({other_label} and {label}); give each its own name")
        for in_label, q in ins:
            if _same_file(p, q):
                raise ShredError(f"{p} is both an input ({in_label}) and an output ({label}); writing it would "
                                 "destroy the input: give the output another name")
            if q.is_dir() and p.exists() and p.resolve().is_relative_to(q.resolve()):
                raise ShredError(f"{label} {p} would replace a file of {in_label} {q}; give the output another name")
        seen.append((label, p))


def check_output_folder(folder: str | os.PathLike, label: str = "the output folder") -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created or written
    (a missing folder is fine when it can be created: the caller creates it when writing)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ShredError(f"{label} {folder} is a file; give a folder")
    problem = _folder_problem(folder, create=True)
    if problem is not None:
        raise ShredError(f"cannot write into {label} {folder}: {problem}")
    return folder


def make_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) when missing; a failure is one :class:`ShredError` line."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShredError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    return folder


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop to the target aspect ratio, then resample (bicubic, anti-aliased) to ``size``
    (:func:`resize_note` says what that does in words)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    top, left, ch, cw = _crop_box(h, w, th, tw)
    x = x[..., top:top + ch, left:left + cw]
    return F.interpolate(x, size=(th, tw), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def resize_note(source: str, size: tuple[int, int], target: tuple[int, int]) -> str:
    """One line on what :func:`resize` does to a ``size`` (H, W) image named ``source``: the
    centre crop (and the share of the pixels it cuts) and the resampling to ``target``."""
    (h, w), (th, tw) = size, target
    _, _, ch, cw = _crop_box(h, w, th, tw)
    crop = "" if (ch, cw) == (h, w) else \
        f"centre-cropped from {h}x{w} to {ch}x{cw} (cutting {100 * (1 - ch * cw / (h * w)):.0f} % of it), then "
    return f"{source}: {crop}resampled from {ch}x{cw} to {th}x{tw} (bicubic)"


def make_grid(columns: Sequence[tuple[str, torch.Tensor]], cell: int | None = None, pad: int = 4):
    """A PIL image with one labelled column per (label, images [B, C, H, W] in [0, 1]) entry and one
    row per batch element. Images are scaled (nearest) to ``cell`` pixels, by default at least 128
    so that 32-pixel images stay visible; grey images are shown as grey RGB."""
    from PIL import Image, ImageDraw, ImageFont

    rows = max(t.shape[0] for _, t in columns)
    side = cell or max(128, max(max(t.shape[-2:]) for _, t in columns))
    font = ImageFont.load_default()
    label_h = 16
    W = len(columns) * (side + pad) + pad
    H = label_h + rows * (side + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, (label, imgs) in enumerate(columns):
        x0 = pad + j * (side + pad)
        draw.text((x0, 2), label[: max(4, side // 6)], fill=(0, 0, 0), font=font)
        for i in range(imgs.shape[0]):
            t = imgs[i:i + 1]
            if t.shape[1] == 1:
                t = t.expand(-1, 3, -1, -1)
            tile = Image.fromarray(_to_uint8(t))
            h, w = t.shape[-2:]
            s = side / max(h, w)
            tile = tile.resize((max(1, round(w * s)), max(1, round(h * s))), Image.NEAREST)
            canvas.paste(tile, (x0, label_h + pad + i * (side + pad)))
    return canvas


def grid_bytes(columns: Sequence[tuple[str, torch.Tensor]], suffix: str, **kw) -> bytes:
    """:func:`make_grid` encoded as PNG, or JPEG (quality 95) for ``.jpg``/``.jpeg``."""
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ShredError(f"a grid is written as .png or .jpg, not {suffix!r}")
    buf = _io.BytesIO()
    make_grid(columns, **kw).save(buf, format="PNG" if suffix == ".png" else "JPEG", quality=95)
    return buf.getvalue()


def write_grid(path: str | os.PathLike, columns: Sequence[tuple[str, torch.Tensor]], **kw) -> None:
    """Write :func:`make_grid` atomically (PNG or JPEG by suffix)."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ShredError(f"{path}: a grid is written as .png or .jpg")
    write_bytes(path, grid_bytes(columns, Path(path).suffix, **kw))
