"""Sampler pieces the stochastic peer methods share, as pure functions.

* Per-image noise streams (EDM's ``StackedRandomGenerator`` idea): restoration i draws all of its
  noise, x_T first, from its own CPU generator seeded with seeds[i].
* Timestep plans: the ``leading`` spacing of DDIM/DDRM/DDNM (t = k * (T // steps)) and the
  ``respaced`` plan of guided-diffusion's ``space_timesteps`` (DPS, RePaint); RePaint's jump
  schedule (used by DDNM as "time travel").
* The DDPM ancestral step between two timesteps of a (respaced) chain.

These belong with :mod:`shred.diffusion` in spirit; they live here so that the peers could be
added without touching that package.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import ShredError
from ..seeding import generator

SPACINGS = ("leading", "respaced")
VARIANCES = ("small", "large")


def image_generators(seeds: Sequence[int | None]) -> list[torch.Generator]:
    """One CPU generator per restoration, seeded with its seed (fresh entropy for None).

    Their first draw of a [C, H, W] tensor equals :func:`shred.solvers.seeded_noise`'s row."""
    return [generator(s) for s in seeds]


def spaced_timesteps(T: int, steps: int, spacing: str) -> list[int]:
    """The ``steps`` timesteps of a shortened chain, ascending.

    * ``"leading"``: k * (T // steps), k = 0 .. steps-1 (DDRM's ``range(0, T, skip)``; DDNM's
      ``i * skip``). T = 1000, 20 steps: 0, 50, ..., 950.
    * ``"respaced"``: guided-diffusion's ``space_timesteps(T, [steps])``, evenly spread over
      0 .. T-1 with both ends kept (DPS, RePaint). T = 1000, 250 steps: 0, 4, 8, ..., 995, 999.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= T:
        raise ShredError(f"steps must be an integer in 1..T={T}, got {steps!r}")
    if spacing == "leading":
        return [k * (T // steps) for k in range(steps)]
    if spacing == "respaced":
        if steps == 1:
            return [0]
        stride = (T - 1) / (steps - 1)
        return sorted({round(k * stride) for k in range(steps)})
    raise ShredError(f"unknown spacing {spacing!r}; use one of {', '.join(SPACINGS)}")


def jump_schedule(steps: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """RePaint's resampling schedule over step indices steps-1 .. 0, ending at -1.

    Walking down one index at a time, at every multiple j of ``jump_length`` below
    ``steps - jump_length`` the walk goes back up ``jump_length`` indices, ``jump_n_sample - 1``
    times in all (RePaint ``guided_diffusion/scheduler.py`` ``get_schedule_jump`` with
    n_sample = 1; DDNM's ``get_schedule_jump`` with travel_length, travel_repeat is the same).
    ``jump_n_sample = 1`` gives the plain chain steps-1, ..., 0, -1.
    """
    if jump_length < 1 or jump_n_sample < 1:
        raise ShredError("jump length and number of resamplings must be positive integers")
    jumps = {j: jump_n_sample - 1 for j in range(0, steps - jump_length, jump_length)}
    t, times = steps, []
    while t >= 1:
        t -= 1
        times.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                times.append(t)
    times.append(-1)
    return times


def ddpm_step(x_t: torch.Tensor, x0_hat: torch.Tensor, abar_t: float, abar_next: float,
              variance: str, noise: torch.Tensor) -> torch.Tensor:
    """One ancestral step x_t -> x_next of the chain through abar_t > abar_next (DDPM eqs. 6-7).

    With alpha = abar_t / abar_next and beta = 1 - alpha (the respaced chain's beta), the mean is
    the posterior mean of q(x_next | x_t, x0_hat),
        beta sqrt(abar_next) / (1 - abar_t) x0_hat + (1 - abar_next) sqrt(alpha) / (1 - abar_t) x_t,
    and the variance is ``"small"`` (the posterior's, beta (1 - abar_next) / (1 - abar_t)) or
    ``"large"`` (beta). The last step (abar_next = 1) returns x0_hat without noise.
    """
    if abar_next >= 1.0:
        return x0_hat
    alpha = abar_t / abar_next
    beta = 1.0 - alpha
    mean = (beta * math.sqrt(abar_next) / (1 - abar_t)) * x0_hat \
        + ((1 - abar_next) * math.sqrt(alpha) / (1 - abar_t)) * x_t
    if variance == "small":
        var = beta * (1 - abar_next) / (1 - abar_t)
    elif variance == "large":
        var = beta
    else:
        raise ShredError(f"unknown variance {variance!r}; use one of {', '.join(VARIANCES)}")
    return mean + math.sqrt(var) * noise
