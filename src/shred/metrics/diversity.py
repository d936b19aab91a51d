"""How different several restorations of one measurement are (the paper's Fig. 6).

Images are [N, C, H, W] in [0, 1]: N restorations of the same measurement from N starting noises.
"""
from __future__ import annotations

import torch


def pairwise_rmse(x: torch.Tensor) -> torch.Tensor:
    """[N, N] root-mean-square distance between every pair of images (0 on the diagonal)."""
    flat = x.double().flatten(1)
    d2 = torch.cdist(flat, flat).pow(2) / flat.shape[1]
    return d2.clamp_min(0).sqrt()


def diversity(x: torch.Tensor) -> float:
    """Mean pairwise RMS distance over the N (N - 1) / 2 distinct pairs, in [0, 1] units.

    0 when every restoration is the same image; an image against its negative scores about 0.5.
    Needs N >= 2.
    """
    n = x.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least two restorations")
    d = pairwise_rmse(x)
    iu = torch.triu_indices(n, n, offset=1)
    return float(d[iu[0], iu[1]].mean())
