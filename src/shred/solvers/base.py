"""What every solver shares: one call signature and one result type.

``result = solver(y, operator, seeds=[0, 1], progress=True)``

* ``y``: [B, C', H', W'] measurements in [0, 1] units (B = 1 with several seeds gives several
  restorations of one image, the paper's Fig. 6).
* ``operator``: a :class:`shred.operators.Operator` whose ``in_shape`` is the model's image shape.
* ``seeds``: one integer (or None) per restoration; restoration i depends only on seed i.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..errors import ShredError
from ..operators import Operator
from ..seeding import generator


@dataclass
class Result:
    """A solver's output.

    Attributes:
        x0: [B, C, H, W] restored images in [0, 1].
        x_T: [B, C, H, W] the optimised starting latents (None for solvers without one).
        loss_history: [N, B] the measurement loss at each iteration (float32, CPU).
        iterations: [B] iterations run per image (early stopping may end some sooner).
        wall_time: seconds spent in the solver.
        seeds: the seed of each restoration.
        extras: solver-specific outputs (e.g. an estimated kernel).
    """

    x0: torch.Tensor
    x_T: torch.Tensor | None
    loss_history: torch.Tensor
    iterations: torch.Tensor
    wall_time: float
    seeds: list[int | None]
    extras: dict[str, Any] = field(default_factory=dict)

    def measurement_error(self, operator: Operator, y: torch.Tensor) -> torch.Tensor:
        """||y - A(x0)|| / ||y|| per image (relative measurement error), [B]."""
        x0 = self.x0.to(y.device, y.dtype)
        r = (y.expand(x0.shape[0], *y.shape[1:]) - operator.A(x0)).flatten(1).norm(dim=1)
        return r / y.flatten(1).norm(dim=1).clamp_min(1e-12)


class Solver:
    """Base class: subclasses implement :meth:`solve`."""

    name = "solver"

    def __call__(self, y: torch.Tensor, operator: Operator, *, seeds: Sequence[int | None] | None = None,
                 progress: bool = False) -> Result:
        y, seeds = prepare_batch(y, operator, seeds)
        return self.solve(y, operator, seeds, progress)

    def solve(self, y, operator, seeds, progress) -> Result:  # pragma: no cover
        raise NotImplementedError


def prepare_batch(y: torch.Tensor, operator: Operator, seeds) -> tuple[torch.Tensor, list[int | None]]:
    """Check y against the operator and pair every restoration with a seed."""
    if y.dim() == 3:
        y = y.unsqueeze(0)
    if y.dim() != 4:
        raise ShredError(f"measurements must be [B, C, H, W], got shape {tuple(y.shape)}")
    if tuple(y.shape[1:]) != tuple(operator.out_shape):
        raise ShredError(f"the measurement has shape {tuple(y.shape[1:])} but the operator produces "
                         f"{tuple(operator.out_shape)}")
    if not torch.isfinite(y).all():
        raise ShredError("the measurement contains NaN or infinite values")
    if seeds is None:
        seeds = [None] * y.shape[0]
    seeds = list(seeds)
    if y.shape[0] == 1 and len(seeds) > 1:
        y = y.expand(len(seeds), *y.shape[1:])
    if len(seeds) != y.shape[0]:
        raise ShredError(f"{len(seeds)} seeds for {y.shape[0]} measurements; give one seed per image")
    return y, seeds


def seeded_noise(shape: Sequence[int], seeds: Sequence[int | None], device=None,
                 dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise [len(seeds), *shape]; row i drawn from a CPU generator seeded with
    seeds[i] (fresh entropy when None), so it is the same on every device and batch size."""
    rows = [torch.randn(tuple(shape), generator=generator(s), dtype=torch.float32) for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to the models' [-1, 1]."""
    return 2 * x - 1


def to_image_space(x: torch.Tensor) -> torch.Tensor:
    """The models' [-1, 1] to [0, 1] images."""
    return (x + 1) / 2
