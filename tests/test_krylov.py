"""Tikhonov corrections without an SVD (shred.operators.krylov) against exact ones."""
import math

import pytest
import torch

from shred.errors import ShredError
from shred.operators import TaskOptions, build_task
from shred.operators.kernels import random_anisotropic_gaussian_kernel
from shred.operators.krylov import KrylovTikhonov, WithoutSVD, discrepancy_tikhonov_krylov
from shred.operators.linear import Blur
from shred.operators.svd import discrepancy_tikhonov, operator_svd


def _blur_problem(sigma, shape=(3, 32, 32), batch=3):
    kernel = random_anisotropic_gaussian_kernel(9, generator=torch.Generator().manual_seed(3))
    op = Blur(shape, kernel)                                   # not separable: a dense SVD at 32 x 32
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *shape, dtype=torch.float64, generator=g)
    y = op.A(x) + sigma * torch.randn(batch, *shape, dtype=torch.float64, generator=g)
    x0 = 0.8 * x + 0.2 * torch.rand(batch, *shape, dtype=torch.float64, generator=g)
    return op, x, y, x0


@pytest.mark.parametrize("sigma,steps,tol", [(0.01, 40, 1e-6), (0.002, 80, 1e-3)])
def test_the_krylov_discrepancy_step_matches_the_svd_one(sigma, steps, tol):
    op, x, y, x0 = _blur_problem(sigma)
    r = y - op.A(x0)
    target = torch.full((3,), sigma * math.sqrt(op.num_measurements()), dtype=torch.float64)
    exact = discrepancy_tikhonov(operator_svd(op), r, target)
    dx = discrepancy_tikhonov_krylov(op.A, op.AT, r, target, steps=steps)
    assert float((dx - exact).norm() / exact.norm()) < tol
    # Its residual is the target (Morozov), as the subspace's own residual says.
    left = (r - op.A(dx)).flatten(1).norm(dim=1)
    torch.testing.assert_close(left, target, rtol=1e-6, atol=0)
    # Already at the noise level: nothing.
    assert discrepancy_tikhonov_krylov(op.A, op.AT, r, r.flatten(1).norm(dim=1) * 1.01).abs().max() == 0


def test_a_krylov_tikhonov_solve_is_the_normal_equations_one_where_the_subspace_is_whole():
    """On an 8 x 8 mask-then-pooling operator (no SVD; y is image-sized with zeros in the hole, so
    the maps are weighted) 64 steps span everything A^T reaches: dx(mu) is the dense solve's for
    every mu, and residual2 is its residual."""
    from shred.solvers.shred import weighted_maps

    shape = (1, 8, 8)
    op = build_task("inpaint+sr", shape, TaskOptions(box_size=3, scale=2), torch.Generator().manual_seed(0))
    with pytest.raises(ShredError):
        operator_svd(op)
    A, AT = weighted_maps(op)
    g = torch.Generator().manual_seed(1)
    r = A(torch.rand(2, *shape, dtype=torch.float64, generator=g)) + 0.1 * A(torch.randn(2, *shape, dtype=torch.float64, generator=g))
    krylov = KrylovTikhonov(A, AT, r, steps=64)
    D = 64
    M = A(torch.eye(D, dtype=torch.float64).view(D, *shape)).reshape(D, -1).T        # [m, D]
    for mu in (1e-3, 0.1, 10.0):
        dx = krylov.solve(torch.full((2,), mu, dtype=torch.float64))
        for i in range(2):
            dense = torch.linalg.solve(M.T @ M + mu * torch.eye(D, dtype=torch.float64), M.T @ r[i].flatten())
            torch.testing.assert_close(dx[i].flatten(), dense, rtol=1e-8, atol=1e-10)
        left = (r - A(dx)).flatten(1).pow(2).sum(1)
        torch.testing.assert_close(krylov.residual2(torch.full((2,), mu, dtype=torch.float64)), left,
                                   rtol=1e-8, atol=1e-12)


def test_a_zero_residual_gives_a_zero_correction():
    op, _, _, x0 = _blur_problem(0.0, shape=(1, 8, 8), batch=2)
    r = torch.zeros_like(op.A(x0))
    r[1] = op.A(x0[1:]) [0]
    dx = KrylovTikhonov(op.A, op.AT, r, steps=10).solve(torch.full((2,), 0.01, dtype=torch.float64))
    assert torch.isfinite(dx).all() and dx[0].abs().max() == 0 and dx[1].abs().max() > 0
    with pytest.raises(ValueError):
        KrylovTikhonov(op.A, op.AT, r, steps=0)


def test_without_svd_hides_the_svd_and_keeps_everything_else():
    op = build_task("deblur", (3, 8, 8), TaskOptions(kernel_sigma=1.0, kernel_size=5, sigma_y=0.02),
                    torch.Generator().manual_seed(0))
    hidden = WithoutSVD(op).to("cpu")
    with pytest.raises(ShredError, match="no closed-form SVD"):
        operator_svd(hidden)
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(hidden.A(x), op.A(x)) and torch.equal(hidden.AT(x), op.AT(x))
    assert (hidden.sigma_y, hidden.uneven, hidden.linear, hidden.num_measurements()) == \
        (op.sigma_y, op.uneven, op.linear, op.num_measurements())
    pool = build_task("sr", (3, 8, 8), TaskOptions(scale=2), torch.Generator().manual_seed(0))
    assert WithoutSVD(pool).coisometry == pool.coisometry == 0.25
