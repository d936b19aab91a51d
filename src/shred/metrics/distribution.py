"""Distances between sets of images: sliced Wasserstein on Laplacian-pyramid patches, and the
Frechet distance and kernel inception-style distance on the features of any feature network.

Image sets are [N, C, H, W] in [0, 1]. These compare distributions, so they need many images: the
numbers depend on N (report it) and are comparable only at equal N.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

# --- sliced Wasserstein distance (Karras et al. 2018, "Progressive growing of GANs", section 5) -------

_GAUSS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = (_GAUSS[:, None] * _GAUSS[None, :]).to(x)
    c = x.shape[1]
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k.expand(c, 1, 5, 5), groups=c)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 8) -> list[torch.Tensor]:
    """Levels of the Laplacian pyramid, finest first; the last level is the low-pass residual at
    ``min_size`` or just above (5-tap binomial filter, as in the PGGAN code)."""
    levels = []
    while x.shape[-1] // 2 >= min_size and x.shape[-2] // 2 >= min_size:
        low = _blur(x)[..., ::2, ::2]
        levels.append(x - _blur(F.interpolate(low, scale_factor=2, mode="nearest")))
        x = low
    levels.append(x)
    return levels


def _patches(level: torch.Tensor, n_per_image: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random ``size`` x ``size`` patches: [N * n_per_image, C * size * size]."""
    n, c, h, w = level.shape
    ys = torch.randint(0, h - size + 1, (n, n_per_image), generator=generator)
    xs = torch.randint(0, w - size + 1, (n, n_per_image), generator=generator)
    d = torch.arange(size)
    rows = (ys[..., None] + d).view(n, n_per_image, size, 1).expand(-1, -1, size, size)
    cols = (xs[..., None] + d).view(n, n_per_image, 1, size).expand(-1, -1, size, size)
    b = torch.arange(n).view(n, 1, 1, 1).expand_as(rows)
    p = level.permute(0, 2, 3, 1)[b, rows, cols]  # [n, k, size, size, c]
    return p.permute(0, 1, 4, 2, 3).reshape(n * n_per_image, c * size * size)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = 512, repeats: int = 4,
                       generator: torch.Generator | None = None) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projections
    of descriptor sets a and b ([N, D] each, equal N)."""
    total = 0.0
    for _ in range(repeats):
        d = torch.randn(a.shape[1], directions, generator=generator, dtype=torch.float64)
        d = d / d.norm(dim=0, keepdim=True)
        # NumPy sorts these rows several times faster than torch.sort on a CPU.
        pa = np.sort((d.T @ a.double().T).numpy(), axis=1)
        pb = np.sort((d.T @ b.double().T).numpy(), axis=1)
        total += float(np.abs(pa - pb).mean())
    return total / repeats


def swd(x: torch.Tensor, y: torch.Tensor, patches_per_image: int = 64, patch_size: int = 7,
        seed: int = 0) -> dict[str, float]:
    """Sliced Wasserstein distance between two image sets on 7x7 Laplacian-pyramid patches.

    Per level (finest first) and their mean, multiplied by 1e3 as in Karras et al. Each patch is
    normalised by the per-channel mean and std of its level over both sets together. Needs equal N.
    """
    if x.shape[0] != y.shape[0] or x.shape[1:] != y.shape[1:]:
        raise ValueError("swd needs two image sets of the same shape")
    g = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    lx, ly = laplacian_pyramid(x.double()), laplacian_pyramid(y.double())
    for i, (a, b) in enumerate(zip(lx, ly)):
        size = min(patch_size, a.shape[-1])
        pa = _patches(a, patches_per_image, size, g)
        pb = _patches(b, patches_per_image, size, g)
        c = a.shape[1]
        both = torch.cat([pa, pb]).view(-1, c, size * size)
        mean = both.mean(dim=(0, 2)).repeat_interleave(size * size)
        std = both.std(dim=(0, 2)).clamp_min(1e-8).repeat_interleave(size * size)
        out[f"level{i}_{a.shape[-1]}px"] = 1e3 * sliced_wasserstein((pa - mean) / std, (pb - mean) / std, generator=g)
    out["mean"] = float(np.mean(list(out.values())))
    return out


# --- Frechet distance and KID on features ---------------------------------------------------------

def frechet_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature sets [N, D]
    (Heusel et al. 2017, the formula behind FID)."""
    from scipy import linalg

    a, b = fa.double().cpu().numpy(), fb.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sa @ sb)
    if not np.isfinite(covmean).all():
        eps = np.eye(sa.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sa + eps) @ (sb + eps))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.trace(covmean))


def kernel_distance(fa: torch.Tensor, fb: torch.Tensor, subsets: int = 50, subset_size: int = 1000,
                    seed: int = 0, reference_subset_size: int | None = None) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3, averaged over random subsets; returns (mean, std over the subsets).

    Each subset draws min(subset_size, N_a) rows of ``fa`` and min(reference_subset_size, N_b)
    rows of ``fb`` (default: the same size, as torchmetrics and the KID paper). The estimate is
    unbiased for any two sizes; a reference subset larger than a small ``fa`` (100 restorations
    against 1000 real images) lowers the variance that the reference draw adds.
    """
    a, b = fa.double(), fb.double()
    d = a.shape[1]
    m = min(subset_size, a.shape[0])
    n = min(reference_subset_size or subset_size, b.shape[0])
    if reference_subset_size is None:
        m = n = min(m, n)
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]
        y = b[torch.randperm(b.shape[0], generator=g)[:n]]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
               - 2 * kxy.mean())
        vals.append(mmd.item())
    return float(np.mean(vals)), float(np.std(vals))


@torch.no_grad()
def extract_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int = 500,
             device=None) -> torch.Tensor:
    """Run a feature network over images [N, C, H, W] in [0, 1] in batches; returns [N, D] on the CPU."""
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        if device is not None:
            x = x.to(device)
        out.append(extractor(x).float().cpu())
    return torch.cat(out)
