"""What every solver shares: one call signature and one result type.

``result = solver(y, operator, seeds=[0, 1], progress=True)``

* ``y``: [B, C', H', W'] measurements in [0, 1] units (B = 1 with several seeds gives several
  restorations of one image, the paper's Fig. 6).
* ``operator``: a :class:`shred.operators.Operator`; its ``in_shape`` is the shape of the images
  made (the model's channels, a size the network runs at: :func:`shred.models.base.accepts`).
* ``seeds``: one integer (or None) per restoration; restoration i depends only on seed i.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..errors import ShredError
from ..operators import Operator
from ..seeding import check_seed, generator



@dataclass
class Result:
    """A solver's output.

    Attributes:
        x0: [B, C, H, W] restored images in [0, 1] units. Not every solver clamps them: the peers
            (DDRM, DDNM, DPS, RePaint, as in their official code) and SHRED with ``clip_x0`` off
            and no finish may stray slightly outside [0, 1]; image writers and the benchmark clamp.
        x_T: [B, C, H, W] the optimised starting latents (None for solvers without one).
        loss_history: [N, B] the measurement loss at each iteration (float32, CPU).
        iterations: [B] iterations run per image (early stopping may end some sooner).
        wall_time: seconds spent in the solver.
        seeds: the seed of each restoration (drawn and recorded here when none was given).
        extras: solver-specific outputs (e.g. an estimated kernel).
    """

    x0: torch.Tensor
    x_T: torch.Tensor | None
    loss_history: torch.Tensor
    iterations: torch.Tensor
    wall_time: float
    seeds: list[int | None]
    extras: dict[str, Any] = field(default_factory=dict)

    def spread(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Several restorations of one measurement (seeds), summarised: the mean image
        [1, C, H, W] in [0, 1] (the fidelity estimate) and the per-pixel standard deviation over
        the seeds averaged over channels, [1, 1, H, W] (the uncertainty); :func:`seed_spread`."""
        return seed_spread(self.x0)

    def measurement_error(self, operator: Operator, y: torch.Tensor) -> torch.Tensor:
        """||y - A(x0)|| / ||y|| per image (relative measurement error), [B]."""
        x0 = self.x0.to(y.device, y.dtype)
        r = (y.expand(x0.shape[0], *y.shape[1:]) - operator.A(x0)).flatten(1).norm(dim=1)
        return r / y.flatten(1).norm(dim=1).clamp_min(1e-12)


class Solver:
    """Base class of every method: subclasses implement :meth:`solve`.

    Class attributes the registry (:mod:`shred.solvers.registry`) reads:

    * ``config_class``: the frozen settings dataclass (:class:`shred.config.FrozenConfig`), or None.
    * ``extra_settings``: keyword settings that are not config fields (SHRED: ``preset``, ``task``).
    * ``blind``: the method estimates the blur itself (runs on blind tasks only).
    """

    name = "solver"
    config_class: type | None = None
    extra_settings: tuple[str, ...] = ()
    blind = False

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        names = cls.config_class.names() if cls.config_class is not None else ()
        return (*names, *cls.extra_settings)

    @classmethod
    def unsupported(cls, operator: Operator) -> str | None:
        """None when this method can restore measurements of ``operator``, else the reason."""
        return None

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
    # A seed left to chance is drawn here and recorded in the result, so the run can be repeated.
    seeds = [fresh_seed() if s is None else check_seed(s) for s in seeds]
    if y.shape[0] == 1 and len(seeds) > 1:
        y = y.expand(len(seeds), *y.shape[1:])
    if len(seeds) != y.shape[0]:
        raise ShredError(f"{len(seeds)} seeds for {y.shape[0]} measurements; give one seed per image")
    return y, seeds


def seed_spread(x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean restoration and the per-pixel uncertainty of restorations from several seeds.

    Args:
        x0: [S, C, H, W] restorations in [0, 1], one per seed, S >= 2.

    Returns:
        ``(mean, std)``: the mean image [1, C, H, W] in [0, 1], and the standard deviation over
        the seeds (population, divisor S) averaged over the channels, [1, 1, H, W] in [0, 0.5].
        Both float32 on the CPU.

    Raises ``ValueError`` for fewer than two restorations (one has no spread).
    """
    if x0.dim() != 4 or x0.shape[0] < 2:
        raise ValueError(f"the spread needs [S >= 2, C, H, W] restorations, got shape {tuple(x0.shape)}")
    x = x0.detach().double().cpu()
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, correction=0, keepdim=True).mean(dim=1, keepdim=True)
    return mean.float(), std.float()


def fresh_seed() -> int:
    """A seed from the operating system's entropy (for runs without one)."""
    import secrets

    return secrets.randbits(63)


def randn(generators: Sequence[torch.Generator], shape: Sequence[int], device=None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal [len(generators), *shape]: row i from generators[i], drawn in float32 on
    the CPU so that it is the same on every device and batch size."""
    rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)


def seeded_noise(shape: Sequence[int], seeds: Sequence[int | None], device=None,
                 dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise [len(seeds), *shape]; row i drawn from a CPU generator seeded with
    seeds[i] (fresh entropy when None), so it is the same on every device and batch size."""
    return randn([generator(s) for s in seeds], shape, device, dtype)


def task_stage(operator: Operator) -> Operator:
    """The operator that defines a task's settings: noise stripped (:func:`shred.operators.unwrap`)
    and, for a chain such as colorize+sr, its last stage."""
    from ..operators import Compose, unwrap

    operator = unwrap(operator)
    while isinstance(operator, Compose):
        operator = unwrap(operator.ops[-1])
    return operator


def measurement_loss(residual: torch.Tensor, kind: str, m: int) -> torch.Tensor:
    """Per-image loss [B] of residual y - H(x): ``mse`` = ||r||^2 / m, ``norm`` = ||r|| (eq. 15)."""
    sq = residual.flatten(1).pow(2).sum(1)
    return sq / m if kind == "mse" else sq.clamp_min(1e-30).sqrt()


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to the models' [-1, 1]."""
    return 2 * x - 1


def to_image_space(x: torch.Tensor) -> torch.Tensor:
    """The models' [-1, 1] to [0, 1] images."""
    return (x + 1) / 2
