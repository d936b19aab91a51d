"""Realism of a set of restorations: KID and FID on a feature network, against real images.

The paper's realism claim is FID on Inception features at 256x256. Offline, shred measures the same
two distances on the features of its own CIFAR-10 classifier (``KID-C10``, ``FID-C10``; never
"FID"), restorations against a fixed reference set of real images (``cifar10-train``), whose
features are computed once and cached (safetensors). With Inception weights, ``features="inception"``
gives KID and FID proper.

* KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the cubic polynomial kernel,
  averaged over random subsets; reported with its standard deviation over the subsets. Unbiased,
  so it is comparable across n (its spread is not: report n).
* FID (Heusel et al. 2017): the Frechet distance between Gaussians fitted to the two feature sets;
  biased upwards at small n, so compare only at equal n.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from .distribution import extract_features, frechet_distance, kernel_distance


def realism(features: torch.Tensor, reference: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000,
            reference_subset_size: int | None = 1000, seed: int = 0) -> dict[str, float]:
    """KID and FID between ``features`` [n, D] and ``reference`` [N, D].

    KID: mean and std over ``subsets`` random draws of min(subset_size, n) restorations against
    min(reference_subset_size, N) real images (with n <= 1000 every draw holds all n restorations,
    so the std is that of the reference draw). Returns ``{"kid", "kid_std", "fid", "n"}``.
    Raises :class:`shred.errors.ShredError` when either set holds fewer than 2 images."""
    if min(features.shape[0], reference.shape[0]) < 2:
        from ..errors import ShredError
        raise ShredError(f"KID and FID need at least 2 images on each side, got {features.shape[0]} "
                         f"restorations and {reference.shape[0]} reference images")
    kid, kid_std = kernel_distance(features, reference, subsets=subsets, subset_size=subset_size, seed=seed,
                                   reference_subset_size=reference_subset_size)
    return {"kid": kid, "kid_std": kid_std, "fid": frechet_distance(features, reference), "n": int(features.shape[0])}


def reference_features(extractor: Callable, label: str, data: str, n: int, *, seed: int = 0,
                       cache_dir: str | Path | None = None, identity: str = "") -> torch.Tensor:
    """Features [n, D] of ``n`` real images of ``data`` (a seeded choice), cached in ``cache_dir``
    as ``<label>-<data>-<n>-<seed>-<hash>.safetensors`` (the hash covers ``identity``, e.g. the
    feature network's weights, so a changed network never reuses stale features)."""
    from ..data import load_images

    key = hashlib.sha256(json.dumps([label, data, n, seed, identity]).encode()).hexdigest()[:12]
    path = None
    if cache_dir is not None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{label}-{Path(data).name}-{n}-{seed}")
        path = Path(cache_dir) / f"{safe}-{key}.safetensors"
        if path.is_file():
            from safetensors import SafetensorError
            from safetensors.torch import load_file
            try:
                return load_file(str(path))["features"]
            except (SafetensorError, OSError, KeyError):
                pass  # damaged cache: computed again and replaced below
    images = load_images(data).float01()
    if n > images.shape[0]:
        from ..errors import ShredError
        raise ShredError(f"the reference set {data} has {images.shape[0]} images, fewer than the {n} asked for; "
                         "lower --reference-n")
    g = torch.Generator().manual_seed(seed)
    chosen = images[torch.randperm(images.shape[0], generator=g)[:n]]
    feats = extract_features(extractor, chosen).contiguous()
    if path is not None:
        from safetensors.torch import save
        from ..io import write_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, save({"features": feats}))
    return feats
