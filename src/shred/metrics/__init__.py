"""Metrics. Images are [B, C, H, W] in [0, 1]; per-image results are [B] tensors.

* :mod:`.image`: per-image quality against a reference (PSNR, ...).
* :mod:`.distribution`: distances between image sets (patch SWD, Frechet distance, KID).
* :mod:`.features`: feature networks for those distances (shred's own classifiers offline).
"""
from .distribution import features, frechet_distance, kernel_distance, laplacian_pyramid, sliced_wasserstein, swd
from .image import psnr

__all__ = ["features", "frechet_distance", "kernel_distance", "laplacian_pyramid", "sliced_wasserstein", "swd",
           "psnr"]
