"""Metrics. Images are [B, C, H, W] in [0, 1]; per-image results are [B] tensors.

* :mod:`.image`, :mod:`.ssim`: per-image quality against a reference (PSNR, SSIM).
* :mod:`.distribution`: distances between image sets (patch SWD, Frechet distance, KID).
* :mod:`.features`: feature networks for those distances (shred's own classifiers offline).
* :mod:`.kernel`: blur-kernel error up to a shift; :mod:`.diversity`: spread of several restorations.
"""
from .distribution import extract_features, frechet_distance, kernel_distance, laplacian_pyramid, sliced_wasserstein, swd
from .diversity import diversity, pairwise_rmse
from .image import psnr
from .kernel import kernel_ncc
from .ssim import ssim

__all__ = ["extract_features", "frechet_distance", "kernel_distance", "laplacian_pyramid", "sliced_wasserstein", "swd",
           "diversity", "pairwise_rmse", "psnr", "kernel_ncc", "ssim"]
