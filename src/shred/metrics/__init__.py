"""Metrics. Images are [B, C, H, W] in [0, 1]; per-image results are [B] tensors."""
from .image import psnr

__all__ = ["psnr"]
