"""Timestep plans for the deterministic DDIM sampler, as explicit ``(t, t_next)`` pairs.

SHRED's sampler f jumps ``delta_t`` steps at a time (eq. 14). Two spacings are in use:

* ``"leading"`` (the authors' released code): ``t = T - delta_t, ..., delta_t, 0`` and a final step
  to ``t_next = -1`` (abar = 1). With T = 1000 and delta_t = 100: 900, 800, ..., 0; x_T is the
  latent at t = 900.
* ``"trailing"`` (Algorithm 1 of the paper, which starts at t = T): ``t = T-1, T-1-delta_t, ...``
  down to the last t >= 0, then -1. With T = 1000 and delta_t = 100: 999, 899, ..., 99.

``delta_t = 1`` is the fully unrolled chain, the "naive inversion" of the paper's Table 3.
"""
from __future__ import annotations

from ..errors import ShredError

SPACINGS = ("leading", "trailing")


def time_pairs(T: int, delta_t: int | None = None, steps: int | None = None,
               spacing: str = "leading") -> list[tuple[int, int]]:
    """The ``(t, t_next)`` pairs of a DDIM trajectory from x_T to x_0, in sampling order.

    Give either ``delta_t`` (the skip) or ``steps`` (the number of network calls); ``steps`` sets
    ``delta_t = T // steps``. The last pair always ends at ``t_next = -1`` (clean data).
    """
    if not isinstance(T, int) or T < 1:
        raise ShredError(f"T must be a positive integer, got {T!r}")
    if (delta_t is None) == (steps is None):
        raise ShredError("give exactly one of delta_t and steps")
    if steps is not None:
        if not isinstance(steps, int) or not 1 <= steps <= T:
            raise ShredError(f"steps must be an integer in 1..T={T}, got {steps!r}")
        delta_t = T // steps
    if not isinstance(delta_t, int) or isinstance(delta_t, bool) or not 1 <= delta_t <= T:
        raise ShredError(f"delta_t must be an integer in 1..T={T}, got {delta_t!r}")
    if spacing == "leading":
        ts = list(range(0, T, delta_t)) if steps is None else [i * delta_t for i in range(steps)]
        ts = ts[::-1]
        if T > 1 and ts[0] == 0:
            raise ShredError(f"delta_t {delta_t} with leading spacing leaves one step, from t = 0 (x_T would be "
                             f"taken for a clean image); use delta_t below T = {T}, or trailing spacing")
    elif spacing == "trailing":
        ts = list(range(T - 1, -1, -delta_t))
        if steps is not None:
            ts = ts[:steps]
    else:
        raise ShredError(f"unknown spacing {spacing!r}; use one of {', '.join(SPACINGS)}")
    return list(zip(ts, ts[1:] + [-1]))
