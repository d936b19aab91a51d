"""LPIPS (Zhang et al. 2018), only where its real network weights are available.

LPIPS needs ImageNet-trained AlexNet/VGG features plus its own linear calibration layers. shred
does not ship them and never approximates them: :func:`lpips_metric` returns the real metric when
the ``lpips`` package can build it offline (its calibration ships with the package; the backbone
comes from torchvision's cache, ``~/.cache/torch/hub/checkpoints``), and otherwise ``None`` with the
reason, which reports then print as "unavailable".
"""
from __future__ import annotations

from typing import Callable

import torch


def lpips_metric(net: str = "alex") -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, str]:
    """``(fn, label)``: fn(x, ref) -> [B] LPIPS distances for images in [0, 1], or ``(None, reason)``."""
    try:
        import lpips
    except ImportError:
        return None, "unavailable: the lpips package is not installed (pip install lpips, with torchvision)"
    try:
        model = lpips.LPIPS(net=net, verbose=False).eval()
    except Exception as exc:  # no network: the backbone weights cannot be fetched
        return None, f"unavailable: {net} weights could not be loaded ({type(exc).__name__})"

    @torch.no_grad()
    def fn(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return model(x.float() * 2 - 1, ref.float() * 2 - 1).flatten()

    return fn, f"LPIPS-{net}"
