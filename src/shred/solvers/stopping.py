"""Noise-aware stopping rules for iterative solvers (ShredConfig ``stop``).

With noisy measurements y = H x + n, n ~ N(0, sigma_y^2 I), fitting y ever more closely ends up
fitting the noise. The **discrepancy principle** (Morozov, 1966) stops as soon as the residual is
as small as the noise can explain:

    ||y - H x_k|| <= tau * sigma_y * sqrt(m),      m = number of measurements, tau ~ 1,

that is, on the loss scale, ``mse <= tau^2 sigma_y^2`` or ``norm <= tau sigma_y sqrt(m)``.

Rules (``stop=``):

* ``"none"``: run all iterations (or until ``epsilon``).
* ``"discrepancy"``: sigma_y is the operator's (``Noisy``, ``--sigma-y``, with an image file's
  rounding: :func:`shred.operators.with_rounding`); some of it must be declared, not all rounding.
* ``"auto"``: sigma_y is the operator's when known, otherwise estimated from y alone by
  :func:`estimate_sigma_mad` (Donoho and Johnstone's wavelet rule); then the discrepancy principle.
  An image file's rounding alone (:attr:`Operator.rounding`, all of sigma_y) does not make it
  known: the estimate is taken, and never below the rounding (``"discrepancy"`` refuses then).
  Where y has too few fully measured 2 x 2 blocks for the estimate (sparse masks), it falls back to
  ``"plateau"``.
* ``"plateau"``: stop an image once its loss has not improved by a relative ``PLATEAU_RTOL`` for
  ``PLATEAU_PATIENCE`` checks; needs no noise level at all.

No rule looks at the ground truth.
"""
from __future__ import annotations

import math

import torch

from ..errors import ShredError

STOPS = ("none", "discrepancy", "auto", "plateau")
# 0.6745 is the median of |N(0, 1)|: median(|d|) / 0.6745 estimates the std of Gaussian d.
MAD_TO_SIGMA = 0.6744897501960817
MIN_BLOCKS = 32          # fewer measured 2x2 blocks than this per image: no MAD estimate
PLATEAU_PATIENCE = 10    # checks without improvement before a plateau stop
PLATEAU_RTOL = 1e-3      # an improvement is a relative decrease of the best loss by more than this


def estimate_sigma_mad(y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Noise std per image from the measurement alone, [B] (NaN where it cannot be estimated).

    Donoho and Johnstone (1994): the finest diagonal Haar wavelet coefficients
    d = (a - b - c + e) / 2 of each 2 x 2 block [[a, b], [c, e]] are almost pure noise for natural
    (and for blurred or down-sampled) images, and for white noise of std sigma they have std sigma
    (the Haar transform is orthonormal); so sigma ~ median(|d|) / 0.6745. The median ignores the
    few large coefficients at edges. Only blocks whose four entries are all measurements count
    (``weight``: the operator's 0/1 measurement mask). Image content at the finest scale biases
    the estimate upwards.
    """
    y = y.double()
    h, w = (y.shape[-2] // 2) * 2, (y.shape[-1] // 2) * 2
    y = y[..., :h, :w]
    a, b = y[..., 0::2, 0::2], y[..., 0::2, 1::2]
    c, e = y[..., 1::2, 0::2], y[..., 1::2, 1::2]
    d = ((a - b - c + e) / 2).expand(y.shape[0], *a.shape[1:])
    if weight is None:
        keep = torch.ones_like(d, dtype=torch.bool)
    else:
        m = weight.to(y)[..., :h, :w]
        m = m.view(*([1] * (4 - m.dim())), *m.shape)
        full = (m[..., 0::2, 0::2] * m[..., 0::2, 1::2] * m[..., 1::2, 0::2] * m[..., 1::2, 1::2]) > 0
        keep = full.expand_as(d)
    out = torch.full((y.shape[0],), float("nan"), dtype=torch.float64)
    for i in range(y.shape[0]):
        vals = d[i][keep[i]]
        if vals.numel() >= MIN_BLOCKS:
            out[i] = vals.abs().median() / MAD_TO_SIGMA
    return out


def discrepancy_threshold(sigma: torch.Tensor, tau: float, loss: str, m: int) -> torch.Tensor:
    """The loss value [B] at which ||y - H x|| = tau sigma sqrt(m), for ``loss`` mse or norm."""
    sigma = sigma.double()
    return (tau * sigma) ** 2 if loss == "mse" else tau * sigma * math.sqrt(m)


class StopRule:
    """Per-image stopping decisions for one solve. Built by :func:`make_stop_rule`.

    ``done(loss)`` is called at every check with the [B] loss of the iterate just recorded and
    returns a [B] bool tensor of images that should stop now.
    """

    def __init__(self, rule: str, threshold: torch.Tensor | None, sigma: torch.Tensor | None, source: str):
        self.rule = rule
        self.threshold = threshold
        self.sigma = sigma
        self.source = source
        self._best: torch.Tensor | None = None
        self._stale: torch.Tensor | None = None

    def done(self, loss: torch.Tensor) -> torch.Tensor:
        loss = loss.detach().double().cpu()
        out = torch.zeros_like(loss, dtype=torch.bool)
        if self.threshold is None:
            fallback = torch.ones_like(out)
        else:
            out |= loss <= self.threshold
            # A NaN threshold (no estimate for this image) never triggers; the plateau rule decides.
            fallback = torch.isnan(self.threshold)
        if bool(fallback.any()):
            if self._best is None:
                self._best, self._stale = loss.clone(), torch.zeros_like(loss, dtype=torch.long)
            else:
                better = loss < self._best * (1 - PLATEAU_RTOL)
                self._best = torch.where(better, loss, self._best)
                self._stale = torch.where(better, torch.zeros_like(self._stale), self._stale + 1)
            out |= fallback & (self._stale >= PLATEAU_PATIENCE)
        return out

    def info(self) -> dict:
        """What decided the stop, for ``Result.extras['stop']`` (JSON-safe)."""
        def listed(t):
            return None if t is None else [None if math.isnan(v) else v for v in t.tolist()]
        return {"rule": self.rule, "sigma_y": listed(self.sigma), "sigma_source": self.source,
                "threshold": listed(self.threshold)}


def make_stop_rule(stop: str, tau: float, loss: str, y: torch.Tensor, operator) -> StopRule | None:
    """The :class:`StopRule` of a solve, or None for ``stop="none"``."""
    if stop == "none":
        return None
    if stop == "plateau":
        return StopRule("plateau", None, None, "none")
    b = y.shape[0]
    known = float(operator.sigma_y)
    # An image file's rounding alone leaves the noise unknown: a noisy photo stored in 8 bits has
    # far more noise than its rounding.
    declared = operator.declared_sigma_y > 0
    if declared:
        sigma, source = torch.full((b,), known, dtype=torch.float64), "operator"
    elif stop == "discrepancy":
        raise ShredError("the 'discrepancy' stop rule needs the measurement's noise level (--sigma-y or the "
                         "operator's sigma_y, or a spec with noise); the 'auto' rule (--stop auto) estimates it "
                         "from the measurement")
    else:
        weight = operator.measurement_weight()
        # Never below the rounding (NaN, too few blocks to estimate from, stays NaN: a plateau stop).
        sigma = estimate_sigma_mad(y.detach().cpu(), None if weight is None else weight.cpu()).clamp(min=known)
        source = "mad"
    threshold = discrepancy_threshold(sigma, tau, loss, operator.num_measurements())
    return StopRule(stop, threshold, sigma, source)
