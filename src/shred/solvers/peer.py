"""What the peer methods (DDNM, DDRM, DPS, RePaint) share behind the one solver call.

``solver = build_solver("ddrm", denoiser, steps=20)`` then ``solver(y, operator, seeds=[0, 1])``,
exactly as for SHRED. Each peer has a frozen config dataclass (:class:`shred.config.FrozenConfig`)
whose defaults are its official configuration; keyword settings replace single fields.

Units: y and the returned x0 are in [0, 1] (x0 is not clamped; image writers clamp). The peers
work in the models' [-1, 1], where a linear operator's measurement is ``2 y - A(1)`` and the noise
standard deviation is ``2 sigma_y`` (the official codes apply A to [-1, 1] images and double
sigma_y "to account for scaling to [-1,1]"). ``loss_history[n, i]`` is the mean squared
measurement error ||y - A(x0_hat)||^2 / m of image i's clean-image estimate at network call n, in
[0, 1] units: the quantity SHRED's default loss reports.
"""
from __future__ import annotations

import time
import torch

from ..errors import ShredError
from ..models.base import Denoiser, check_image_shape, module_device
from ..operators import Operator
from .ancestral import image_generators
from .base import Result, Solver, measurement_loss, randn, to_image_space


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ShredError(message)


def model_space_measurement(y: torch.Tensor, operator: Operator) -> torch.Tensor:
    """The measurement of the [-1, 1] image: A(2x - 1) = 2 A(x) - A(1) for a linear A."""
    check(operator.linear, f"operator {operator.name!r} is not linear")
    ones = torch.ones(1, *operator.in_shape, dtype=y.dtype, device=y.device)
    return 2 * y - operator.A(ones)


class MeasurementTrace:
    """Collects the per-image measurement MSE of each step's clean-image estimate."""

    def __init__(self, y: torch.Tensor, operator: Operator):
        self.y, self.operator = y, operator
        self.weight = operator.measurement_weight()
        self.m = operator.num_measurements()
        self.rows: list[torch.Tensor] = []

    @torch.no_grad()
    def __call__(self, x0_model: torch.Tensor) -> torch.Tensor:
        residual = self.y - self.operator.A(to_image_space(x0_model))
        if self.weight is not None:
            residual = residual * self.weight.to(residual)
        loss = measurement_loss(residual, "mse", self.m)
        self.rows.append(loss)
        return loss

    def history(self, batch: int) -> torch.Tensor:
        if not self.rows:
            return torch.zeros(0, batch)
        return torch.stack(self.rows).float().cpu()


class PeerSolver(Solver):
    """Base of the peer solvers: configuration, devices, noise streams and the result.

    Args:
        denoiser: the frozen eps_theta (:class:`shred.models.Denoiser`).
        config: the method's config dataclass (default: its official configuration).
        device / dtype: where and in what precision the sampler runs (default: the denoiser's
            device, float32).
        **settings: config fields to replace, e.g. ``steps=50``.
    """

    def __init__(self, denoiser: Denoiser, config=None, *, device=None, dtype: torch.dtype = torch.float32,
                 **settings):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise ShredError(f"{self.name} takes a {self.config_class.__name__}, got {type(config).__name__}")
        if denoiser is None:
            raise ShredError(f"{self.name} needs a diffusion model (a denoiser)")
        self.config = config.replace(**settings) if settings else config
        self.denoiser = denoiser
        self.device = torch.device(device) if device is not None else module_device(denoiser)
        self.dtype = dtype
        T = denoiser.schedule.T
        steps = getattr(self.config, "steps", None)
        check(steps is None or steps <= T, f"{self.name}: steps={steps} exceeds the model's T={T}")

    # -- helpers for the sampling loops -----------------------------------------------------------
    def image_shape(self, operator: Operator) -> tuple[int, int, int]:
        return check_image_shape(self.denoiser, operator.in_shape)

    def abar(self, t: int) -> float:
        return self.denoiser.schedule.abar_at(t)

    def eps(self, x_t: torch.Tensor, t: int) -> torch.Tensor:
        return self.denoiser(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device))

    def noise(self, generators, shape) -> torch.Tensor:
        return randn(generators, shape, self.device, self.dtype)

    def start(self, y: torch.Tensor, operator: Operator, seeds):
        """Common set-up: (y on the device, the image shape, the trace, the generators, the start time)."""
        shape = self.image_shape(operator)
        y = y.to(self.device, self.dtype)
        return y, shape, MeasurementTrace(y, operator), image_generators(seeds), time.perf_counter()

    def progress_bar(self, total: int, progress: bool):
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=self.name, unit="step", disable=not progress, leave=False)

    def result(self, x0_model: torch.Tensor, x_T: torch.Tensor | None, trace: MeasurementTrace,
               started: float, seeds, **extras) -> Result:
        B = x0_model.shape[0]
        history = trace.history(B)
        return Result(x0=to_image_space(x0_model).detach(), x_T=None if x_T is None else x_T.detach(),
                      loss_history=history, iterations=torch.full((B,), history.shape[0], dtype=torch.long),
                      wall_time=time.perf_counter() - started, seeds=list(seeds),
                      extras={"config": self.config.to_dict(), **extras})
