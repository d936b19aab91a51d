"""Metrics. Images are [B, C, H, W] in [0, 1]; per-image results are [B] tensors."""
from .diversity import diversity, pairwise_rmse
from .image import psnr
from .kernel import kernel_ncc
from .ssim import ssim

__all__ = ["psnr", "ssim", "kernel_ncc", "diversity", "pairwise_rmse"]
