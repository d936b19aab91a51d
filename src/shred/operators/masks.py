"""Inpainting and subsampling masks: float64 tensors [H, W] of 0/1, 1 = pixel kept."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ShredError


def box_mask(h: int, w: int, box_size: int | None = None, top: int | None = None,
             left: int | None = None) -> torch.Tensor:
    """Mask hiding a square of side ``box_size`` (default: half the shorter side), centred unless
    ``top``/``left`` are given."""
    size = min(h, w) // 2 if box_size is None else int(box_size)
    if not 0 < size <= min(h, w):
        raise ShredError(f"box size {size} must be between 1 and {min(h, w)} for a {h}x{w} image")
    top = (h - size) // 2 if top is None else int(top)
    left = (w - size) // 2 if left is None else int(left)
    if not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ShredError(f"a box of side {size} at ({top}, {left}) does not fit a {h}x{w} image")
    m = torch.ones(h, w, dtype=torch.float64)
    m[top:top + size, left:left + size] = 0
    return m


def random_pixel_mask(h: int, w: int, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep exactly round(fraction * H * W) pixels (at least one), chosen uniformly at random:
    the compressed-sensing subsampling of the paper (1% and 5%)."""
    if not 0 < fraction <= 1:
        raise ShredError(f"the kept fraction must be in (0, 1], got {fraction}")
    n = max(1, round(fraction * h * w))
    keep = torch.randperm(h * w, generator=generator)[:n]
    m = torch.zeros(h * w, dtype=torch.float64)
    m[keep] = 1
    return m.view(h, w)


def load_mask(path: str | Path) -> torch.Tensor:
    """A mask [H, W] (1 = kept) from a file, as the user drew it.

    Images (PNG/JPEG/...): a pixel is kept when it is light (grey level > 0.5) and opaque (alpha
    > 0.5): a hole may be painted black, or erased to transparency. ``.npy`` arrays: non-zero is
    kept; [H, W, 4] arrays use the last channel as alpha the same way. Raises :class:`ShredError`
    for an unreadable file, NaN or infinite values, a non-numeric or non-2-D array, and a mask
    that keeps no pixel.
    """
    path = Path(path)
    if not path.is_file():
        raise ShredError(f"mask file {path} does not exist")
    if path.suffix.lower() == ".npy":
        from ..io import MAX_PIXELS

        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, OSError, EOFError, ...
            raise ShredError(f"{path}: not a readable .npy array ({exc})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
            raise ShredError(f"{path}: a mask is a numeric .npy array, got "
                             f"{getattr(arr, 'dtype', 'a .npz archive')}")
        if arr.size > 4 * MAX_PIXELS:
            raise ShredError(f"{path}: an array of shape {arr.shape} is too large for a mask")
        arr = np.squeeze(np.array(arr))
        alpha = None
        if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
            arr, alpha = arr[..., 0], (arr[..., 3] if arr.shape[-1] == 4 else None)
        elif arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            arr, alpha = arr[0], (arr[3] if arr.shape[0] == 4 else None)
        if arr.ndim != 2:
            raise ShredError(f"{path}: a mask must be a 2-D array, got shape {arr.shape}")
        if not (np.isfinite(arr).all() and (alpha is None or np.isfinite(alpha).all())):
            raise ShredError(f"{path}: the mask contains NaN or infinite values; 1 (or non-zero) = kept, 0 = hole")
        keep = arr != 0 if alpha is None else (arr != 0) & (alpha != 0)
        m = torch.as_tensor(keep, dtype=torch.float64)
    else:
        from ..io import read_image_and_alpha

        img, alpha = read_image_and_alpha(path, channels=1)
        keep = img[0, 0] > 0.5
        if alpha is not None:
            keep &= alpha > 0.5  # a hole erased to transparency is a hole
        m = keep.to(torch.float64)
    if m.sum() == 0:
        raise ShredError(f"{path}: the mask keeps no pixel (white/non-zero = kept, black/zero or transparent = hole)")
    return m


def describe_mask(m: torch.Tensor) -> str:
    """``keeps 768 of 1024 pixels (75.0 %)``: the kept fraction of a mask [H, W] (1 = kept)."""
    kept, total = int(m.sum()), m.numel()
    return f"keeps {kept} of {total} pixels ({100 * kept / total:.1f} %)"


def pack_mask(m: torch.Tensor) -> str:
    """Base64 of the bit-packed 0/1 mask (row-major), for JSON specs."""
    import base64
    bits = np.packbits(m.detach().cpu().numpy().astype(bool).ravel())
    return base64.b64encode(bits.tobytes()).decode("ascii")


def unpack_mask(data: str, h: int, w: int) -> torch.Tensor:
    import base64
    try:
        bits = np.frombuffer(base64.b64decode(data.encode("ascii"), validate=True), dtype=np.uint8)
    except Exception:
        raise ShredError("the mask in the spec is not valid base64") from None
    flat = np.unpackbits(bits)[: h * w]
    if flat.size != h * w:
        raise ShredError(f"the mask in the spec holds {flat.size} pixels, expected {h * w}")
    return torch.as_tensor(flat.reshape(h, w), dtype=torch.float64)
