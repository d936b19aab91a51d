import math

import pytest
import torch

from shred.diffusion import NoiseSchedule, ddim_invert, ddim_sample, ddim_step, time_pairs
from shred.errors import ShredError


def test_linear_schedule_is_float64_and_matches_ddpm():
    s = NoiseSchedule.linear()
    assert s.T == 1000 and s.abar.dtype == torch.float64
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    # abar_t = prod (1 - beta): check one value against an independent product (float64 products of
    # 500 factors in another order: round-off ~1e-14).
    assert s.abar_at(499) == pytest.approx(math.prod(1 - b for b in s.betas[:500].tolist()), rel=1e-12)
    assert s.abar_at(-1) == 1.0
    assert NoiseSchedule.from_dict(s.to_dict()).abar.equal(s.abar)


def test_abar_of_a_tensor_agrees_with_abar_at_including_the_edge():
    s = NoiseSchedule.linear()
    t = torch.tensor([[-1, 0], [499, 999]])
    got = s.abar_of(t)
    assert got.dtype == torch.float64 and got.shape == (2, 2)
    assert got.tolist() == [[s.abar_at(-1), s.abar_at(0)], [s.abar_at(499), s.abar_at(999)]]  # the same floats
    assert got[0, 0] == 1.0  # clean data, not abar[-1] (the last timestep) by wrap-around
    with pytest.raises(IndexError):
        s.abar_of(torch.tensor([1000]))


def test_cosine_and_given_schedules_round_trip():
    c = NoiseSchedule.cosine(T=50)
    assert c.T == 50 and torch.all(c.abar[1:] < c.abar[:-1])
    g = NoiseSchedule([0.1, 0.2, 0.3])
    # 0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7 in float64: round-off only.
    assert NoiseSchedule.from_dict(g.to_dict()).abar.allclose(torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64),
                                                              rtol=1e-15, atol=0)
    with pytest.raises(ShredError):
        NoiseSchedule([0.5, 1.5])


def test_time_pairs_authors_and_trailing_spacing():
    lead = time_pairs(1000, delta_t=100)
    assert [t for t, _ in lead] == list(range(900, -1, -100))
    assert lead[-1] == (0, -1) and all(tn == t - 100 for t, tn in lead[:-1])
    trail = time_pairs(1000, delta_t=100, spacing="trailing")
    assert trail[0] == (999, 899) and trail[-1] == (99, -1) and len(trail) == 10
    assert time_pairs(1000, steps=10) == lead
    full = time_pairs(1000, delta_t=1)  # naive inversion: the fully unrolled chain
    assert len(full) == 1000 and full[0] == (999, 998) and full[-1] == (0, -1)


@pytest.mark.parametrize("bad", [0, -5, 1001, 2.5, None])
def test_time_pairs_rejects_bad_delta_t(bad):
    with pytest.raises(ShredError, match="delta_t|exactly one"):
        time_pairs(1000, delta_t=bad)


def test_a_leading_trajectory_of_one_step_from_t0_is_refused():
    # range(0, 1000, 1000) is [0]: x_T would be denoised as if it were x_0.
    for kw in (dict(delta_t=1000), dict(steps=1)):
        with pytest.raises(ShredError, match="one step, from t = 0"):
            time_pairs(1000, **kw)
    assert time_pairs(1000, delta_t=1000, spacing="trailing") == [(999, -1)]
    assert time_pairs(1000, delta_t=600) == [(600, 0), (0, -1)]


def _affine_map(prior, pairs):
    """x0 = f(x_T) is affine per pixel for the Gaussian prior: return its slope and offset."""
    zero = torch.zeros(1, *prior.mu.shape, dtype=torch.float64)
    offset = ddim_sample(prior, zero, pairs)
    slope = ddim_sample(prior, zero + 1, pairs) - offset
    return slope[0], offset[0]


@pytest.mark.slow
def test_many_step_ddim_maps_standard_normal_to_the_prior(gaussian_prior):
    mu, s = gaussian_prior.mu, gaussian_prior.sigma
    a = gaussian_prior.schedule.abar_at(999)
    # The exact probability-flow map from t = 999 to data: x_t = sqrt(a) mu + sqrt(a s^2 + 1 - a) z
    # and x_0 = mu + s z, so x_0 = offset + slope * x_T with:
    scale = torch.sqrt(a * s ** 2 + 1 - a)
    exact_slope, exact_offset = s / scale, mu - s * math.sqrt(a) * mu / scale
    errors = []
    for delta_t in (100, 10, 1):
        slope, offset = _affine_map(gaussian_prior, time_pairs(1000, delta_t=delta_t, spacing="trailing"))
        errors.append(max((offset - exact_offset).abs().max().item(), (slope / exact_slope - 1).abs().max().item()))
    # DDIM is a first-order discretisation of this ODE: the error falls about linearly with delta_t
    # (measured 0.72, 0.14, 0.017 in the slope); 0.02 holds the 1000-step map to that.
    assert errors[2] < errors[1] < errors[0] and errors[2] < 0.02, errors
    # f(N(0, I)) = N(offset, slope^2): the prior's moments, up to what x_T at t = 999 still holds of
    # the data (offset: sqrt(abar_999) s |mu| <= 0.0064 * 0.3 * 0.5 = 1e-3, measured 9e-4) and the
    # 1000-step discretisation error of the slope just above (measured 0.017).
    slope, offset = _affine_map(gaussian_prior, time_pairs(1000, delta_t=1, spacing="trailing"))
    assert (offset - mu).abs().max() < 2e-3 and (slope / s - 1).abs().max() < 0.02
    # And by sampling: 4000 draws land on the prior's moments within sampling error.
    from shred.models import GaussianPrior

    small = GaussianPrior(mu[:1, :8, :8], s[:1, :8, :8])
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(4000, 1, 8, 8, generator=g, dtype=torch.float64)
    x0 = ddim_sample(small, x_T, time_pairs(1000, delta_t=1, spacing="trailing"))
    z_mean = (x0.mean(0) - small.mu) / (small.sigma / math.sqrt(4000))
    # 64 pixels, each a standard normal under the null (plus a ~0.1 bias): the largest of 64 exceeds
    # 4.5 with probability 64 * 7e-6 = 4e-4.
    assert z_mean.abs().max() < 4.5
    # The sample std of 4000 normals has relative standard error 1/sqrt(8000) = 1.1%; 0.05 leaves
    # room for 3 standard errors plus the 1.7 % slope error of the 1000-step map.
    assert ((x0.std(0) / small.sigma) - 1).abs().max() < 0.05


def test_inversion_then_sampling_returns_the_start(gaussian_prior):
    x0 = gaussian_prior.sample(3, torch.Generator().manual_seed(2))
    errs = []
    for delta_t in (100, 20, 5, 1):
        pairs = time_pairs(1000, delta_t=delta_t)
        with torch.no_grad():
            rec = ddim_sample(gaussian_prior, ddim_invert(gaussian_prior, x0, pairs), pairs)
        errs.append((rec - x0).abs().max().item())
    # Inversion evaluates eps one step late (at the destination t): first order in delta_t
    # (measured 0.54, 0.14, 0.036, 0.0075); 0.01 holds the 1000-step round trip to that.
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.01


def test_exact_gradient_passes_gradcheck(gaussian_prior):
    from shred.models import GaussianPrior

    small = GaussianPrior(gaussian_prior.mu[:1, :2, :2], gaussian_prior.sigma[:1, :2, :2])
    pairs = time_pairs(1000, delta_t=250)
    x_T = torch.randn(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    # gradcheck's float64 defaults: central differences with eps 1e-6, atol 1e-5, rtol 1e-3.
    assert torch.autograd.gradcheck(lambda x: ddim_sample(small, x, pairs, grad="exact"), (x_T,))
    assert torch.autograd.gradcheck(lambda x: ddim_sample(small, x, pairs, grad="exact", clip_x0=True), (x_T * 0.1,))


def test_checkpointed_and_stored_exact_gradients_agree(gaussian_prior):
    pairs = time_pairs(1000, delta_t=100)
    x_T = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    g1, = torch.autograd.grad(ddim_sample(gaussian_prior, x_T, pairs, grad="exact").square().sum(), x_T)
    g2, = torch.autograd.grad(ddim_sample(gaussian_prior, x_T, pairs, grad="exact",
                                          checkpoint_steps=False).square().sum(), x_T)
    # The same float64 operations, recomputed: identical up to round-off.
    assert torch.allclose(g1, g2, rtol=0, atol=1e-12)


def test_surrogate_gradient_equals_its_closed_form(gaussian_prior):
    # With eps held constant, each step scales x_t by sqrt(abar_next / abar_t); over the whole
    # trajectory d x0 / d x_T = sqrt(abar_{t_next of last} / abar_{t first}) = 1 / sqrt(abar_900).
    pairs = time_pairs(1000, delta_t=100)
    x_T = torch.randn(2, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    g, = torch.autograd.grad((ddim_sample(gaussian_prior, x_T, pairs, grad="surrogate") * w).sum(), x_T)
    expected = w / math.sqrt(gaussian_prior.schedule.abar_at(900))
    assert torch.allclose(g, expected, rtol=1e-12, atol=0)  # a product of 10 float64 factors


def test_ddim_step_clipping_rederives_eps():
    x_t = torch.tensor([[[[3.0]]]], dtype=torch.float64)
    eps = torch.zeros_like(x_t)
    x_next, x0 = ddim_step(x_t, eps, 0.5, 0.9, clip_x0=True)
    assert x0.item() == 1.0
    eps_re = (3.0 - math.sqrt(0.5)) / math.sqrt(0.5)
    assert x_next.item() == pytest.approx(math.sqrt(0.9) + math.sqrt(0.1) * eps_re, rel=1e-12)  # float64
    # The sampler itself switches no gradients off: plain sampling under grad keeps a graph.
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64, requires_grad=True)
    assert ddim_step(x, eps, 0.5, 0.9)[0].requires_grad


def test_fixed_point_inversion_is_the_sampler_s_inverse(gaussian_prior):
    from shred.models.counting import CountingDenoiser

    x0 = gaussian_prior.sample(3, torch.Generator().manual_seed(2))
    pairs = time_pairs(1000, delta_t=100)
    counter = CountingDenoiser(gaussian_prior)
    errs = {}
    for k in (1, 2, 4, 32):
        counter.reset()
        with torch.no_grad():
            x_T = ddim_invert(counter, x0, pairs, fixed_point=k)
        assert counter.image_calls == 3 * len(pairs) * k  # k network calls per step and image
        rec = ddim_sample(gaussian_prior, x_T, pairs)
        errs[k] = (rec - x0).abs().max().item()
    # One pass is first order in delta_t (0.54 at 10 steps, the test above). Each fixed-point
    # iteration shrinks the error of every step; this narrow prior (stds 0.1-0.3) contracts
    # slowly near t = 0 (measured 0.55, 0.34, 0.22, 0.015 at k = 1, 2, 4, 32).
    assert errs[2] < errs[1] * 0.7 and errs[4] < errs[2] * 0.7 and errs[32] < 0.03, errs
    with pytest.raises(ShredError, match="at least 1"):
        ddim_invert(gaussian_prior, x0, pairs, fixed_point=0)
