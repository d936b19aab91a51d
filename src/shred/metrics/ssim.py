"""Structural similarity (SSIM, Wang, Bovik, Sheikh and Simoncelli, 2004).

Gaussian window of side 11 and standard deviation 1.5, K1 = 0.01, K2 = 0.03, as in the paper's
reference code. Images are [B, C, H, W] in [0, 1]; the SSIM map is averaged over channels and
positions, one value per image. Differentiable, so it also serves as a loss (SelfDeblur).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (ax / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(dtype=dtype, device=device)


def ssim(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5, padding: str = "valid") -> torch.Tensor:
    """Mean SSIM per image, [B].

    Args:
        x, ref: [B, C, H, W] images (``ref`` may have batch 1 and is then broadcast).
        data_range: the value range (1 for [0, 1] images).
        padding: ``"valid"`` (only windows inside the image: Wang et al.'s reference code, the
            value to report) or ``"same"`` (zero padding: the ``pytorch-ssim`` loss that
            SelfDeblur optimises).
    """
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    x, ref = x.to(dtype), ref.to(dtype)
    x, ref = torch.broadcast_tensors(x, ref)
    c = x.shape[1]
    win = min(window, x.shape[-2], x.shape[-1])
    w = _window(win, sigma, dtype, x.device).expand(c, 1, win, win)
    pad = win // 2 if padding == "same" else 0

    def blur(t):
        return F.conv2d(t, w, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(ref)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(ref * ref) - mu_y ** 2
    sxy = blur(x * ref) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
