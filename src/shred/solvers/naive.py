"""Naive inversion: SHRED through the fully unrolled chain (delta_t = 1, 1000 network calls per
iteration), the "naive inversion" row of the SHRED paper's Table 3 (5750 s per CelebA image against
55 s for SHRED with delta_t = 100 on a GTX 1080 Ti). It is :class:`Shred` with ``delta_t = 1``;
every other setting (gradient mode, loss, learning rate, iterations) is the given ShredConfig's.
"""
from __future__ import annotations

from .registry import register_solver
from .shred import Shred, ShredConfig


@register_solver("naive-inversion")
class NaiveInversion(Shred):
    """:class:`Shred` with ``delta_t`` forced to 1 (whatever the given config says)."""

    name = "naive-inversion"

    def __init__(self, denoiser, config: ShredConfig | None = None, **kwargs):
        kwargs.pop("delta_t", None)
        super().__init__(denoiser, config, delta_t=1, **kwargs)
