"""Blur kernels: Gaussian generators and readers for .npy / .mat / image files.

Every kernel is a float64 tensor [kh, kw], non-negative, summing to 1, with odd sides.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import ShredError


def _normalise(k: torch.Tensor, source: str) -> torch.Tensor:
    if k.dim() != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ShredError(f"{source}: a blur kernel must be a 2-D array with odd sides, got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise ShredError(f"{source}: the kernel contains NaN or infinite values")
    if (k < -1e-12).any():
        raise ShredError(f"{source}: the kernel has negative entries; a blur kernel is non-negative")
    if float(k.max()) > 1e6:  # entries near the float64 limit would sum to infinity
        k = k / k.max()
    total = float(k.sum())
    if total <= 0:
        raise ShredError(f"{source}: the kernel sums to {total:g}; it must have positive mass")
    k = k.clamp_min(0).to(torch.float64)
    # Leave an already-normalised kernel bit for bit as it is, so that specs round-trip exactly.
    return k if abs(float(k.sum()) - 1.0) < 1e-12 else k / k.sum()


# Above this side a kernel is refused before it is built: 1025 x 1025 float64 is 8 MB, and no image
# shred restores (at most a few hundred pixels a side) can feel a wider one.
MAX_KERNEL_SIZE = 1025


def max_kernel_size(shape) -> int:
    """The widest kernel an image of ``shape`` (C, H, W) can feel: 2 max(H, W) - 1 (a 'same'
    convolution never reaches kernel entries further from the centre than the image is long),
    and at most :data:`MAX_KERNEL_SIZE`."""
    return min(2 * max(int(s) for s in shape[1:]) - 1, MAX_KERNEL_SIZE)


def _count(n: int) -> str:
    return str(n) if n < 10 ** 9 else f"{float(n):.3g}"


def check_kernel_size(size: int, shape, what: str | None = None, fix: str = "a smaller --kernel-size") -> None:
    """Raise :class:`ShredError` when a kernel side ``size`` is wider than images of ``shape``
    (C, H, W) can use (:func:`max_kernel_size`), before anything is allocated. ``what`` names the
    kernel in the message (default ``kernel size N``), ``fix`` says what to change."""
    limit = max_kernel_size(shape)
    if size > limit:
        h, w = shape[1:]
        raise ShredError(f"{what or f'kernel size {_count(size)}'} is larger than a {h}x{w} image can use "
                         f"(at most {limit}); use {fix}")


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Isotropic Gaussian kernel [size, size] with standard deviation ``sigma`` pixels."""
    return anisotropic_gaussian_kernel(size, sigma, sigma, 0.0)


def anisotropic_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, angle: float) -> torch.Tensor:
    """Gaussian kernel with principal standard deviations (sigma_x, sigma_y) rotated by ``angle``
    radians: covariance R diag(sigma_x^2, sigma_y^2) R^T."""
    if size < 1 or size % 2 == 0:
        raise ShredError(f"kernel size must be a positive odd integer, got {size}")
    if size > MAX_KERNEL_SIZE:
        raise ShredError(f"kernel size {_count(size)} is over the limit of {MAX_KERNEL_SIZE}")
    if not (sigma_x > 0 and sigma_y > 0 and math.isfinite(sigma_x) and math.isfinite(sigma_y)):
        raise ShredError("kernel standard deviations must be positive and finite")
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor([sigma_x ** 2, sigma_y ** 2], dtype=torch.float64)) @ rot.T
    half = size // 2
    ax = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    pts = torch.stack([xx, yy], -1)
    quad = torch.einsum("...i,ij,...j->...", pts, torch.linalg.inv(cov), pts)
    return _normalise(torch.exp(-0.5 * quad), "gaussian kernel")


def random_anisotropic_gaussian_kernel(size: int = 41, generator: torch.Generator | None = None,
                                       sigma_range: tuple[float, float] = (2.0, 8.0)) -> torch.Tensor:
    """A random anisotropic Gaussian kernel, as in the paper's blind deconvolution (41 x 41).

    sigma_x and sigma_y are uniform in ``sigma_range`` pixels and the angle uniform in [0, pi).
    """
    u = torch.rand(3, generator=generator, dtype=torch.float64)
    lo, hi = sigma_range
    return anisotropic_gaussian_kernel(size, lo + (hi - lo) * float(u[0]), lo + (hi - lo) * float(u[1]),
                                       math.pi * float(u[2]))


def _mat73_kernels(path: Path) -> list[np.ndarray]:
    """Kernels from a MATLAB v7.3 (HDF5) file; cell arrays are HDF5 object references and every
    array is stored transposed (MATLAB is column-major)."""
    import h5py

    found: list[np.ndarray] = []
    with h5py.File(path, "r") as f:
        def collect(ds):
            if ds.dtype == object:
                for ref in ds[()].flat:
                    collect(f[ref])
            elif ds.ndim == 2 and ds.dtype.kind in "fiu" and min(ds.shape) > 1:
                found.append(np.asarray(ds[()], dtype=np.float64).T)
        for key, item in f.items():
            if not key.startswith("#") and isinstance(item, h5py.Dataset):
                collect(item)
    return found


def _mat_kernels(path: Path) -> list[np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        try:
            return _mat73_kernels(path)
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, ValueError, ...
            raise ShredError(f"{path}: not a readable MATLAB v7.3 file ({str(exc)[:160]})") from None
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, TypeError, OSError, ...
        raise ShredError(f"{path}: not a readable MATLAB file ({str(exc)[:160]})") from None
    found: list[np.ndarray] = []

    def collect(obj):
        if isinstance(obj, np.ndarray) and obj.dtype == object:
            for item in obj.flat:
                collect(item)
        elif isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.dtype.kind in "fiu" and min(obj.shape) > 1:
            found.append(obj.astype(np.float64))
        elif isinstance(obj, np.ndarray) and obj.ndim == 3 and obj.dtype.kind in "fiu":
            found.extend(obj[..., i].astype(np.float64) for i in range(obj.shape[-1]))
    for key, value in mat.items():
        if not key.startswith("__"):
            collect(value)
    return found


def load_kernel(spec: str) -> torch.Tensor:
    """A kernel from ``FILE`` or ``FILE:INDEX`` (.npy, .mat holding one or several kernels, or a
    grey image). A .mat file with several kernels needs the index (0-based)."""
    path_str, index = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isascii() and tail.isdigit() and head:  # str.isdigit() alone also takes "²" and "١"
        path_str, index = head, int(tail)
    path = Path(path_str)
    if not path.is_file():
        raise ShredError(f"kernel file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, OSError, EOFError, ...
            raise ShredError(f"{path}: not a readable .npy array ({str(exc)[:160]})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise ShredError(f"{path}: a kernel is a numeric .npy array, got {getattr(arr, 'dtype', 'a .npz archive')}")
        if arr.ndim in (2, 3) and max(arr.shape[-2:]) > MAX_KERNEL_SIZE:
            raise ShredError(f"{path}: a {arr.shape[-2]}x{arr.shape[-1]} kernel is over the limit of {MAX_KERNEL_SIZE}")
        try:
            arr = np.array(arr, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise ShredError(f"{path}: cannot read the array ({exc})") from None
        arrays = [arr] if arr.ndim == 2 else [arr[i] for i in range(arr.shape[0])] if arr.ndim == 3 else []
    elif suffix == ".mat":
        arrays = _mat_kernels(path)
    elif suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        from ..io import read_image
        arrays = [read_image(path, channels=1)[0, 0].double().numpy()]
    else:
        raise ShredError(f"{path}: unsupported kernel file type {suffix!r}; use .npy, .mat or an image")
    if not arrays:
        raise ShredError(f"{path}: no 2-D kernel found in the file")
    if index is None:
        if len(arrays) > 1:
            raise ShredError(f"{path} holds {len(arrays)} kernels; pick one with {path}:INDEX (0..{len(arrays) - 1})")
        index = 0
    if not 0 <= index < len(arrays):
        raise ShredError(f"{path} holds {len(arrays)} kernels; index {index} is out of range")
    k = np.asarray(arrays[index], dtype=np.float64)
    if max(k.shape) > MAX_KERNEL_SIZE:
        raise ShredError(f"{path}: a {k.shape[0]}x{k.shape[1]} kernel is over the limit of {MAX_KERNEL_SIZE}")
    return _normalise(torch.as_tensor(k), str(path))
