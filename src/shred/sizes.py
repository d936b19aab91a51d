"""Restoring images of any size with networks that run at multiples of their stride.

``solve(solver, y, operator, seeds=...)`` is ``solver(y, operator, seeds=...)`` for an operator of
any image size: the solver runs on the canvas of the next sides its network takes
(:func:`shred.models.base.canvas_size`), with the operator A o crop (:mod:`shred.operators.canvas`:
the measurement is used as it is, the border is left to the prior), and the restoration is cropped
back. Images larger than memory allows are a matter of the network's execution
(:class:`shred.models.tiles.TiledDenoiser`, chosen by :func:`shred.api.make_restorer`).
"""
from __future__ import annotations

import torch

from .errors import ShredError
from .models.base import canvas_size
from .operators import Operator, crop_to_image, on_canvas
from .solvers import Result


def solve(solver, y: torch.Tensor, operator: Operator, *, seeds, progress: bool = False) -> Result:
    """``solver(y, operator, ...)`` for images of any size: on the canvas of the sides the
    solver's network runs at (:func:`shred.models.base.canvas_size`; the image at its centre, the
    operator A o crop, :mod:`shred.operators.canvas`), with ``x0`` cropped back to the image and
    the canvas recorded in ``extras["canvas"]``. Solvers without a network (DIP, A^+ y) run as
    they are.

    ``y``: measurements [B, C', H', W'] in [0, 1] as ``operator`` (on [C, H, W] images) makes
    them. Returns the solver's :class:`shred.solvers.Result` with ``x0`` [len(seeds) or B, C, H, W]
    in [0, 1]. Raises :class:`ShredError` for a network that runs at one size only and another
    image size, and for blind deblurring of sides that are not multiples of the network's."""
    den = getattr(solver, "denoiser", None)
    _, h, w = operator.in_shape
    if den is None or den.size_multiple is None:
        return solver(y, operator, seeds=seeds, progress=progress)
    size = canvas_size(den, h, w)
    if size == (h, w):
        return solver(y, operator, seeds=seeds, progress=progress)
    if getattr(type(solver), "blind", False):  # the class flag (an instance's ``blind`` is its config)
        m = den.size_multiple
        raise ShredError(f"blind deblurring runs on images whose sides are multiples of {m} (the network's "
                         f"stride); this one is {h}x{w}: crop it to {h // m * m}x{w // m * m} or pass --resize")
    canvas = on_canvas(operator, size)
    res = solver(y, canvas, seeds=seeds, progress=progress)
    res.x0 = crop_to_image(res.x0, canvas)
    res.extras["canvas"] = list(size)
    return res
