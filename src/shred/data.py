"""Image collections for training and evaluation: a folder, a zip of images, or IDX files.

Everything is decoded once into memory as a uint8 tensor [N, C, H, W] (CIFAR-10's 50,000 images are
150 MB), with integer labels when the source has them (the class sub-folder of each image, or an
IDX labels file next to the images).

Known splits of ``../shared/data`` have names: ``cifar10-train``, ``cifar10-test``,
``fashion-mnist-train``, ``fashion-mnist-test`` (see :func:`resolve_split`).
"""
from __future__ import annotations

import gzip
import io as _io
import os
import struct
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ShredError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SHARED_DATA = Path(os.environ.get("SHRED_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))

SPLITS = {
    "cifar10-train": "cifar10/cifar10-train-jpeg.zip",
    "cifar10-test": "cifar10/cifar10-test-jpeg.zip",
    "fashion-mnist-train": "fashion-mnist/train-images-idx3-ubyte.gz",
    "fashion-mnist-test": "fashion-mnist/t10k-images-idx3-ubyte.gz",
}


@dataclass
class ImageSet:
    """Decoded images: ``images`` uint8 [N, C, H, W]; ``labels`` int64 [N] or None;
    ``classes`` the label names; ``source`` where they came from."""

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str]
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def float01(self, idx=None) -> torch.Tensor:
        """Images as float32 in [0, 1] (all, or those at ``idx``)."""
        x = self.images if idx is None else self.images[idx]
        return x.float() / 255.0


def resolve_split(name: str) -> Path:
    """Path of a known split name (see :data:`SPLITS`), or ``name`` itself when it is a path."""
    if name in SPLITS:
        path = SHARED_DATA / SPLITS[name]
        if not path.exists():
            raise ShredError(f"split {name} needs {path}, which is missing; set SHRED_SHARED_DATA to the data folder")
        return path
    return Path(name)


def _decode(data: bytes, name: str) -> np.ndarray:
    """One image as displayed (EXIF orientation applied), uint8 [C, H, W]; a ShredError naming
    ``name`` when Pillow cannot decode it or it is over :data:`shred.io.MAX_PIXELS`."""
    import warnings

    from PIL import Image, ImageOps

    from .io import MAX_PIXELS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(_io.BytesIO(data))
        with im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise ShredError(f"{name}: {im.size[0]}x{im.size[1]} pixels is over the limit of "
                                 f"{MAX_PIXELS // 2 ** 20} megapixels; resize the training images first")
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # noqa: BLE001 - a corrupt EXIF block: viewers ignore it too
                pass
            im = im.convert("L") if im.mode in ("L", "LA", "1") else im.convert("RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except ShredError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, DecompressionBombError, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ShredError(f"{name}: cannot read the image ({first[:160]}); remove or replace it") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_zip_chunk(args) -> list[np.ndarray]:
    path, names = args
    try:
        with zipfile.ZipFile(path) as z:
            return [_decode(z.read(n), f"{path}:{n}") for n in names]
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ShredError(f"{path}: a damaged zip file ({exc}); download or pack it again") from None


def _decode_file_chunk(paths) -> list[np.ndarray]:
    out = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            raise ShredError(f"{p}: cannot read the file ({exc.strerror or exc})") from None
        out.append(_decode(data, str(p)))
    return out


def _stack(arrays: list[np.ndarray], source: str) -> torch.Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ShredError(f"{source}: images of different sizes or channel counts ({sorted(shapes)[:3]}...); "
                         "resize them to one size first")
    return torch.from_numpy(np.stack(arrays))


def _labels_from_parents(names: list[str]) -> tuple[torch.Tensor | None, list[str]]:
    parents = [Path(n).parent.name for n in names]
    classes = sorted(set(parents))
    if len(classes) < 2:
        return None, []
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[p] for p in parents], dtype=torch.long), classes


def _run_chunks(fn, chunks, workers: int):
    if workers <= 1 or len(chunks) <= 1:
        return [r for c in chunks for r in fn(c)]
    with ProcessPoolExecutor(workers) as pool:
        return [r for rs in pool.map(fn, chunks) for r in rs]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ShredError(f"{path}: cannot read the IDX file ({exc})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ShredError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ShredError(f"{path}: truncated IDX file (its header is cut)")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ShredError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


def load_images(source: str | os.PathLike, *, limit: int | None = None, workers: int = 0) -> ImageSet:
    """Decode a folder (recursively), a .zip of images, or an IDX images file (optionally .gz).

    ``limit`` keeps the first N images in sorted order; ``workers`` > 1 decodes in parallel processes.
    """
    path = resolve_split(str(source))
    if not path.exists():
        raise ShredError(f"{path}: no such file or folder")
    if path.is_dir():
        names = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not names:
            raise ShredError(f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
        names = names[:limit]
        chunks = [names[i:i + 1000] for i in range(0, len(names), 1000)]
        arrays = _run_chunks(_decode_file_chunk, chunks, workers)
        labels, classes = _labels_from_parents([str(Path(n).relative_to(path)) for n in names])
        return ImageSet(_stack(arrays, str(path)), labels, classes, str(path))
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = sorted(n for n in z.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ShredError(f"{path}: a damaged zip file ({exc}); download or pack it again") from None
        if not names:
            raise ShredError(f"{path}: the zip holds no images")
        names = names[:limit]
        chunks = [(str(path), names[i:i + 1000]) for i in range(0, len(names), 1000)]
        arrays = _run_chunks(_decode_zip_chunk, chunks, workers)
        labels, classes = _labels_from_parents(names)
        return ImageSet(_stack(arrays, str(path)), labels, classes, str(path))
    if "idx" in path.name:
        arr = _read_idx(path)
        if arr.ndim != 3:
            raise ShredError(f"{path}: expected an IDX array of images [N, H, W], got {arr.shape}")
        arr = arr[:limit]
        labels = None
        lab_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        if lab_path != path and lab_path.exists():
            labels = torch.from_numpy(_read_idx(lab_path)[:limit].astype(np.int64))
        return ImageSet(torch.from_numpy(arr.copy())[:, None], labels,
                        [str(i) for i in range(10)] if labels is not None else [], str(path))
    raise ShredError(f"{path}: not a folder, a zip of images or an IDX file")
