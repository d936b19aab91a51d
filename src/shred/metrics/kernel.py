"""How close an estimated blur kernel is to the true one, ignoring a shift.

A blind method recovers the kernel k only up to a translation: shifting k by s pixels and the
image by -s pixels gives the same blurred measurement k * x. The score is therefore the largest
normalised cross-correlation over all shifts,

    NCC(k_hat, k) = max_s <S_s k_hat, k> / (||k_hat|| ||k||),

which is 1 for identical kernels (up to shift) and, for non-negative kernels, lies in [0, 1].
No mean is subtracted (a cosine similarity, as in the kernel-similarity measure of Hu and Yang,
2012): the kernels are non-negative, and a flat kernel should not score like a peaked one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kernel_ncc(k_est: torch.Tensor, k_true: torch.Tensor, max_shift: int | None = None) -> torch.Tensor:
    """Maximum normalised cross-correlation over integer shifts, per kernel.

    Args:
        k_est: [kh, kw] or [B, kh, kw] estimated kernels (any non-negative scale).
        k_true: [kh', kw'] or [B, kh', kw'] reference kernels; sizes may differ from ``k_est``
            (both are compared on a common zero-padded support).
        max_shift: largest |shift| in pixels along each axis (default: every overlap).

    Returns:
        [B] (or a 0-d tensor for 2-D inputs) float64 in [0, 1] for non-negative kernels.
    """
    squeeze = k_est.dim() == 2 and k_true.dim() == 2
    a = k_est.double().reshape(-1, *k_est.shape[-2:])
    b = k_true.double().reshape(-1, *k_true.shape[-2:])
    n = max(a.shape[0], b.shape[0])
    a, b = a.expand(n, *a.shape[1:]), b.expand(n, *b.shape[1:])
    a = a / a.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, 1, 1)
    b = b / b.flatten(1).norm(dim=1).clamp_min(1e-300).view(-1, 1, 1)
    (ah, aw), (bh, bw) = a.shape[-2:], b.shape[-2:]
    # Every overlap of the two supports: pad the estimate by the reference's size minus one and
    # correlate (conv2d is a correlation), one group per kernel pair.
    padded = F.pad(a, (bw - 1, bw - 1, bh - 1, bh - 1))[None]
    corr = F.conv2d(padded, b[:, None].contiguous(), groups=n)[0]
    if max_shift is not None:
        # Output index i places the reference at offset i; the centres align at i0.
        i0, j0 = bh - 1 + ah // 2 - bh // 2, bw - 1 + aw // 2 - bw // 2
        corr = corr[:, max(0, i0 - max_shift):i0 + max_shift + 1, max(0, j0 - max_shift):j0 + max_shift + 1]
    out = corr.flatten(1).max(dim=1).values.clamp(max=1.0)
    return out[0] if squeeze else out
