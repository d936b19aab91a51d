"""Operators on a larger canvas: restoring an image of any size with a network that needs sides
of a multiple of its stride.

A fully convolutional UNet that halves its input L times runs on H x W only when 2^L divides both
sides. An image of another size is restored on the canvas of the next multiples, H' x W' >= H x W,
with the image placed at its centre. The degradation of the canvas is

    A_canvas = A o C,        C: [C, H', W'] -> [C, H, W], the crop to the image,

so the measurement y is used as it is, with no entry made up: the strip around the image is not
measured and the prior fills it, as it fills an inpainting hole; the restoration is cropped back.
C has orthonormal rows (C C^T = I; C^T pads with zeros), hence A_canvas^T = C^T A^T and
A_canvas^+ = C^T A^+ exactly (the four Penrose conditions hold because C C^T = I).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ShredError
from .base import Operator, register_operator
from .linear import Compose, Noisy, _shape


@register_operator("crop")
class Crop(Operator):
    """C: the [C, height, width] window of a larger image whose top-left corner is (top, left).

    A co-isometry (C C^T = I): C^T = C^+ puts an image back in place with zeros around it.
    """

    coisometry = 1.0

    def __init__(self, in_shape, height: int, width: int, top: int = 0, left: int = 0):
        self.in_shape = _shape(in_shape)
        c, H, W = self.in_shape
        height, width, top, left = int(height), int(width), int(top), int(left)
        if min(height, width) < 1 or top < 0 or left < 0 or top + height > H or left + width > W:
            raise ShredError(f"crop: a {height}x{width} window at ({top}, {left}) does not fit in {H}x{W}")
        self.top, self.left, self.height, self.width = top, left, height, width
        self.out_shape = (c, height, width)
        self._freeze()

    def A(self, x):
        return x[..., self.top:self.top + self.height, self.left:self.left + self.width]

    def AT(self, y):
        c, H, W = self.in_shape
        return F.pad(y, (self.left, W - self.left - self.width, self.top, H - self.top - self.height))

    def params(self):
        return {"height": self.height, "width": self.width, "top": self.top, "left": self.left}


@register_operator("canvas")
class Canvas(Compose):
    """A o C: the operator ``ops`` of an image, applied to the crop ``ops[0]`` (a :class:`Crop`)
    of a larger canvas. A :class:`Compose` (so the solvers' task is still its last stage), with the
    exact A^+ = C^T A^+ instead of CGLS over the chain."""

    def __init__(self, in_shape, ops: list[Operator]):
        if not ops or not isinstance(ops[0], Crop):
            raise ShredError("a canvas operator starts with its crop")
        super().__init__(in_shape, ops)

    @property
    def crop(self) -> Crop:
        return self.ops[0]

    def pinv(self, y):
        if not self.linear:
            raise NotImplementedError(f"{self.name} is not linear and has no pseudo-inverse")
        rest = self.ops[1:]
        inner = rest[0] if len(rest) == 1 else Compose(self.crop.out_shape, list(rest))
        return self.crop.AT(inner.pinv(y))


def on_canvas(op: Operator, size: tuple[int, int]) -> Operator:
    """``op`` (on [C, H, W] images) as an operator on the [C, size[0], size[1]] canvas with the
    image at its centre (module docstring); ``op`` itself when the sizes agree. Measurement noise
    stays the outermost layer, so ``sigma_y`` and ``degrade`` keep their meaning."""
    c, h, w = op.in_shape
    H, W = int(size[0]), int(size[1])
    if (H, W) == (h, w):
        return op
    if isinstance(op, Noisy):
        return Noisy((c, H, W), on_canvas(op.op, size), op.declared_sigma_y, rounding=op.rounding)
    crop = Crop((c, H, W), h, w, (H - h) // 2, (W - w) // 2)
    ops = list(op.ops) if type(op) is Compose else [op]
    return Canvas((c, H, W), [crop, *ops])


def crop_to_image(x: torch.Tensor, op: Operator) -> torch.Tensor:
    """Canvas images [B, C, H', W'] cropped back to ``op``'s image when ``op`` came from
    :func:`on_canvas`; ``x`` itself otherwise."""
    while isinstance(op, Noisy):
        op = op.op
    return op.crop.A(x) if isinstance(op, Canvas) else x
