"""Per-image quality metrics against a reference. Images are [B, C, H, W] in [0, 1]; results are [B]."""
from __future__ import annotations

import torch


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (inf for identical images)."""
    mse = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse)
