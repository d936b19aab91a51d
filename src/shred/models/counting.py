"""Count what a method asks of the network: ``CountingDenoiser`` wraps any denoiser.

The comparison reports *network calls per image* measured at the network's door, not read from a
method's config: every forward evaluation of a batch of B images adds B image-calls. Calls made
while autograd records (DPS, SHRED's exact gradient) are counted separately, because each of them
also costs a backward pass through the network (about twice a forward's work).
"""
from __future__ import annotations

import torch

from .base import Denoiser


class CountingDenoiser(Denoiser):
    """``eps = inner(x_t, t)``, counting. Same call contract and attributes as ``inner``.

    Attributes:
        calls: forward evaluations (batches).
        image_calls: forward evaluations summed over the batch (one image through the network once).
        grad_image_calls: the part of ``image_calls`` made with autograd recording (a backward
            through the network follows).
    """

    def __init__(self, inner: Denoiser):
        super().__init__()
        self.inner = inner
        self.schedule = inner.schedule
        self.channels = inner.channels
        self.image_size = inner.image_size
        self.size_multiple = inner.size_multiple
        self.name = inner.name
        for attr in ("info", "num_classes", "class_label", "learned_sigma", "options"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))
        self.reset()

    def reset(self) -> None:
        self.calls = self.image_calls = self.grad_image_calls = 0

    def counts(self) -> dict[str, int]:
        return {"calls": self.calls, "image_calls": self.image_calls, "grad_image_calls": self.grad_image_calls}

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = int(x_t.shape[0])
        self.calls += 1
        self.image_calls += b
        if torch.is_grad_enabled() and x_t.requires_grad:
            self.grad_image_calls += b
        return self.inner(x_t, t)

    def describe(self) -> str:
        return self.inner.describe()
