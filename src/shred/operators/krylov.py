"""Tikhonov corrections for operators without a closed-form SVD, from a Krylov subspace.

A non-separable blur on an image over :data:`shred.operators.svd.DENSE_MAX_PIXELS` pixels, a
spatially varying blur or a mask composed with other operators has no SVD here, so the
per-singular-value formulas of :mod:`shred.operators.svd` cannot run on them. This module computes
the same Tikhonov correction of a residual r = y - A x,

    dx(mu) = argmin ||r - A dx||^2 + mu ||dx||^2 = (A^T A + mu I)^{-1} A^T r,

from k steps of Golub-Kahan bidiagonalisation started at r (Golub and Kahan 1965; the hybrid
"project, then regularise" scheme of O'Leary and Simmons 1981 and Chung, Nagy and O'Leary 2008):

    A V_k = U_{k+1} B_k,    U_{k+1} e_1 = r / ||r||,

with B_k lower bidiagonal, (k + 1) x k, and U, V orthonormal (kept so by full reorthogonalisation).
On the subspace span(V_k) the problem is small: dx = V_k z with z = argmin ||beta e_1 - B_k z||^2 +
mu ||z||^2, solved for any mu from the SVD of B_k, and ||r - A dx|| = ||beta e_1 - B_k z|| exactly.
Each step costs one A and one A^T (no network call); the directions A sees best enter the subspace
first, so a few dozen steps give the correction of a blur's well-seen frequencies, which is what
Tikhonov keeps (tested against the exact SVD formula on a 32 x 32 blur).

All tensors are batched: every image gets its own subspace and its own mu.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .base import Operator

Map = Callable[[torch.Tensor], torch.Tensor]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def _normalise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = x.flatten(1).norm(dim=1)
    tiny = torch.finfo(x.dtype).tiny ** 0.5
    scale = torch.where(norm > tiny, 1 / norm.clamp_min(tiny), torch.zeros_like(norm))
    return x * scale.view(-1, *[1] * (x.dim() - 1)), torch.where(norm > tiny, norm, torch.zeros_like(norm))


def _orthogonalise(x: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    for _ in range(2):                                            # classical Gram-Schmidt, twice
        for b in basis:
            x = x - _dot(x, b).view(-1, *[1] * (x.dim() - 1)) * b
    return x


class KrylovTikhonov:
    """Tikhonov corrections of one batch of residuals on a Golub-Kahan subspace (module docstring).

    ``A`` maps [B, C, H, W] images to [B, *out] measurements and ``AT`` back (the adjoint); ``r``
    ([B, *out]) holds the residuals y - A x, with zeros outside the measured entries. ``steps`` is
    k, the subspace's dimension (fewer where the space is exhausted). Computed in the dtype of r
    (pass float64 for an accurate residual).
    """

    def __init__(self, A: Map, AT: Map, r: torch.Tensor, steps: int = 40):
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        u, beta = _normalise(r)
        self.beta = beta                                          # ||r||, [B]
        us, vs, alphas, betas = [u], [], [], []
        v = AT(u)
        for j in range(steps):
            if vs:
                v = v - betas[-1].view(-1, 1, 1, 1) * vs[-1]
            v, alpha = _normalise(_orthogonalise(v, vs))
            vs.append(v)
            alphas.append(alpha)
            u = A(v) - alpha.view(-1, *[1] * (r.dim() - 1)) * us[-1]
            u, b = _normalise(_orthogonalise(u, us))
            us.append(u)
            betas.append(b)
            if j + 1 < steps:
                v = AT(u)
        k = len(vs)
        B = r.new_zeros(r.shape[0], k + 1, k)
        idx = torch.arange(k)
        B[:, idx, idx] = torch.stack(alphas, 1)
        B[:, idx + 1, idx] = torch.stack(betas, 1)
        P, self.s, Qh = torch.linalg.svd(B, full_matrices=False)  # B = P diag(s) Q^T, s [B, k]
        self.c = beta[:, None] * P[:, 0, :]                       # P^T (beta e_1), [B, k]
        self.outside = (beta.pow(2) - self.c.pow(2).sum(1)).clamp_min(0)
        self._Q = Qh.transpose(1, 2)
        self._V = torch.stack(vs, 1)                              # [B, k, C, H, W]

    def residual2(self, mu: torch.Tensor) -> torch.Tensor:
        """||r - A dx(mu)||^2 per image ([B]) for per-image mu ([B], > 0)."""
        return tikhonov_residual2(self.s, self.c, self.outside, mu)

    def solve(self, mu: torch.Tensor) -> torch.Tensor:
        """dx(mu) ([B, C, H, W]) for per-image mu ([B], > 0)."""
        gain = self.s / (self.s.pow(2) + mu[:, None])
        z = torch.einsum("bij,bj->bi", self._Q, gain * self.c)
        return torch.einsum("bk,bk...->b...", z, self._V)


def tikhonov_residual2(s: torch.Tensor, c: torch.Tensor, outside: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """||r - A dx(mu)||^2 ([B]) from singular values ``s`` ([k] or [B, k]), the residual's
    coefficients ``c`` = U^T r ([B, k]) and its part ``outside`` the range ([B]): coordinate i keeps
    the fraction mu / (s_i^2 + mu)."""
    keep = mu[:, None] / (s.pow(2) + mu[:, None])
    return (keep.pow(2) * c.pow(2)).sum(1) + outside


def discrepancy_mu(s: torch.Tensor, c: torch.Tensor, outside: torch.Tensor, target: torch.Tensor,
                   mu_min: float = 9e-4, steps: int = 60) -> torch.Tensor:
    """The Tikhonov parameter mu >= ``mu_min`` ([B]) whose residual (:func:`tikhonov_residual2`)
    is ``target`` ([B]) by Morozov's discrepancy principle, found by bisection on log mu (the
    residual grows with mu); ``mu_min`` where even that leaves more than the target."""
    goal = target.to(c).pow(2)
    lo = torch.full_like(goal, math.log(mu_min))
    hi = torch.full_like(goal, math.log(max(float(s.max()) ** 2, mu_min) * 1e8))
    for _ in range(steps):
        mid = (lo + hi) / 2
        over = tikhonov_residual2(s, c, outside, mid.exp()) > goal
        hi, lo = torch.where(over, mid, hi), torch.where(over, lo, mid)
    return lo.exp()


def discrepancy_tikhonov_krylov(A: Map, AT: Map, r: torch.Tensor, target: torch.Tensor, mu_min: float = 9e-4,
                                steps: int = 40) -> torch.Tensor:
    """:func:`shred.operators.svd.discrepancy_tikhonov` without an SVD: the Tikhonov correction
    dx ([B, C, H, W]) of residuals ``r`` ([B, *out]) with ||r - A dx|| = ``target`` ([B]) on a
    ``steps``-dimensional Golub-Kahan subspace (:class:`KrylovTikhonov`); dx = 0 where
    ||r|| <= target already."""
    krylov = KrylovTikhonov(A, AT, r, steps)
    mu = discrepancy_mu(krylov.s, krylov.c, krylov.outside, target, mu_min)
    dx = krylov.solve(mu)
    done = r.flatten(1).pow(2).sum(1) <= target.to(r).pow(2)
    return torch.where(done.view(-1, 1, 1, 1), torch.zeros_like(dx), dx)


class WithoutSVD(Operator):
    """An operator with its SVD hidden: every map and noise attribute is ``op``'s (its coisometry
    too), A^+ is CGLS (A^T / c for a coisometry), and :func:`shred.operators.svd.operator_svd` has
    no rule for it. On a 32 x 32 blur this runs the path a blur without a closed-form SVD takes (a
    non-separable kernel on an image over 1024 pixels), so that path can be measured and tested
    against the exact one (bench/quantized_y.py ``--no-svd``)."""

    name = "without-svd"

    def __init__(self, op: Operator):
        self.op = op
        self.in_shape, self.out_shape = op.in_shape, op.out_shape
        self.coisometry = op.coisometry
        self._freeze()

    def A(self, x):
        return self.op.A(x)

    def AT(self, y):
        return self.op.AT(y)

    def degrade(self, x, generator=None):
        return self.op.degrade(x, generator)

    sigma_y = property(lambda self: self.op.sigma_y)
    rounding = property(lambda self: self.op.rounding)
    uneven = property(lambda self: self.op.uneven)

    def num_measurements(self):
        return self.op.num_measurements()

    def measurement_weight(self):
        return self.op.measurement_weight()
