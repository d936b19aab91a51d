"""The peer methods (DDNM, DDNM+, DDRM, DPS, RePaint, naive inversion) and the operator SVDs.

Everything runs on the analytic Gaussian prior (3x16x16, pixels independent), whose exact eps
makes closed forms available: with a mask and no noise, the posterior of a missing pixel is its
prior N(mu, sigma^2), and every sampler here is linear in its noise, so its output spread follows a
scalar recursion.
"""
import json
import math

import pytest
import torch

from shred.diffusion import NoiseSchedule
from shred.errors import ShredError
from shred.operators import TaskOptions, build_task
from shred.operators.svd import operator_svd
from shred.solvers import (SOLVERS, DdnmConfig, DdrmConfig, DpsConfig, RepaintConfig, ShredConfig, build_solver,
                           to_image_space, to_model_space)
from shred.solvers.ancestral import ddpm_step, jump_schedule, spaced_timesteps

SHAPE = (3, 16, 16)

# Few steps for every registered solver, so that the registry-wide tests stay fast.
FAST = {
    "ddnm": dict(steps=10),
    "ddnm+": dict(steps=10),
    "ddrm": dict(steps=5),
    "dps": dict(steps=20),
    "repaint": dict(steps=20, jump_length=5, jump_n_sample=2),
    "shred": dict(config=ShredConfig(iterations=2)),
    "naive-inversion": dict(config=ShredConfig(iterations=1)),
    "dip": dict(channels=8, skip_channels=4, iterations=3),
    "pinv": dict(),
}
# Blind solvers need a blur to estimate; test_blind.py and test_dip.py run them through the call.
BLIND_SOLVERS = {"shred-blind", "selfdeblur"}
STOCHASTIC = ["ddnm", "ddnm+", "ddrm", "dps", "repaint"]

# Operators with a closed-form SVD, one of each structure and their compositions.
SVD_CASES = {
    "denoise": ("denoise", TaskOptions()),
    "inpaint": ("inpaint", TaskOptions(box_size=6)),
    "cs": ("cs", TaskOptions(fraction=0.1)),
    "sr": ("sr", TaskOptions(scale=4)),
    "sr-bicubic": ("sr-bicubic", TaskOptions(scale=2)),
    "deblur-gaussian": ("deblur", TaskOptions(kernel_sigma=1.5)),
    "deblur-random": ("deblur", TaskOptions(kernel="random", kernel_size=5)),   # dense: 16x16 <= 1024 pixels
    "colorize": ("colorize", TaskOptions()),
    "colorize+sr": ("colorize+sr", TaskOptions(scale=2)),
    "noisy-sr": ("sr", TaskOptions(scale=2, sigma_y=0.1)),
}
EXACT_TASKS = ["inpaint", "cs", "sr", "sr-bicubic", "colorize", "colorize+sr"]


def _op(name):
    task, opts = SVD_CASES[name]
    return build_task(task, SHAPE, opts, torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def clean(gaussian_prior):
    return to_image_space(gaussian_prior.sample(2, torch.Generator().manual_seed(1))).float()


# -- the registry: one call for all -------------------------------------------------------------
def test_every_registered_solver_has_fast_settings():
    assert set(FAST) | BLIND_SOLVERS == set(SOLVERS)


@pytest.mark.parametrize("name", sorted(FAST))
def test_every_solver_runs_through_the_same_call(gaussian_prior, clean, name):
    op = _op("inpaint")
    res = build_solver(name, gaussian_prior, **FAST[name])(op.A(clean), op, seeds=[0, 1])
    assert res.x0.shape == clean.shape and torch.isfinite(res.x0).all()
    n = int(res.iterations[0])
    assert res.iterations.tolist() == [n, n] and res.loss_history.shape == (n, 2)
    assert torch.isfinite(res.loss_history).all() and (res.loss_history >= 0).all()
    assert res.wall_time > 0 and res.seeds == [0, 1]
    assert res.x_T is None or res.x_T.shape == clean.shape


@pytest.mark.parametrize("name", STOCHASTIC)
def test_seeds_reproducible_and_image_i_depends_only_on_seed_i(gaussian_prior, clean, name):
    op = _op("inpaint")
    y = op.A(clean[:1])
    solver = build_solver(name, gaussian_prior, **FAST[name])
    a = solver(y, op, seeds=[0, 1, 2]).x0
    # The prior is elementwise, so batching changes no arithmetic: the tolerance is float32 round-off.
    assert torch.allclose(solver(y, op, seeds=[2]).x0, a[2:], atol=1e-6)
    assert torch.equal(solver(y, op, seeds=[0, 1, 2]).x0, a)
    assert not torch.allclose(a[0], a[1], atol=1e-3)


def test_pinv_baseline_is_the_minimum_norm_solution(gaussian_prior, clean):
    """A^+ y for x4 average pooling is nearest-neighbour up-sampling, and it explains y exactly."""
    op = _op("sr")
    y = op.A(clean)
    x0 = build_solver("pinv", gaussian_prior)(y, op, seeds=[0, 1]).x0
    nearest = y.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)
    assert torch.allclose(x0, nearest.clamp(0, 1), atol=1e-6)
    assert torch.allclose(op.A(x0), y.clamp(0, 1), atol=1e-6)
    box = _op("inpaint")
    hole = build_solver("pinv", gaussian_prior)(box.A(clean), box, seeds=[0, 1]).x0
    assert torch.allclose(box.A(hole), box.A(clean).clamp(0, 1), atol=1e-6)
    assert hole[:, :, 5:11, 5:11].abs().max() == 0  # the hole: zeros, no prior to fill it


def test_progress_bar_and_settings_errors(gaussian_prior, clean, capsys):
    op = _op("sr")
    build_solver("ddnm", gaussian_prior, steps=3)(op.A(clean), op, seeds=[0, 1], progress=True)
    with pytest.raises(ShredError, match="ddrm: unknown setting timesteps; valid: steps, eta, eta_b, zero_below"):
        build_solver("ddrm", gaussian_prior, timesteps=20)
    with pytest.raises(ShredError, match="exceeds the model's T"):
        build_solver("dps", gaussian_prior, steps=2000)
    with pytest.raises(ShredError, match="dps takes DpsConfig, got DdnmConfig"):
        build_solver("dps", gaussian_prior, config=DdnmConfig())
    big = build_task("sr", (3, 32, 32), TaskOptions(scale=2))
    with pytest.raises(ShredError, match="operator works on"):
        build_solver("ddrm", gaussian_prior)(torch.rand(1, 3, 16, 16), big)


def test_default_configs_are_the_official_ones():
    assert (DdnmConfig().steps, DdnmConfig().eta, DdnmConfig().travel_length, DdnmConfig().travel_repeat) == (100, 0.85, 1, 1)
    assert (DdrmConfig().steps, DdrmConfig().eta, DdrmConfig().eta_b, DdrmConfig().zero_below) == (20, 0.85, 1.0, 3e-2)
    assert (DpsConfig().steps, DpsConfig().scale, DpsConfig().clip_x0) == (1000, None, True)
    assert (RepaintConfig().steps, RepaintConfig().jump_length, RepaintConfig().jump_n_sample) == (250, 10, 10)
    for cfg in (DdnmConfig(plus=True), DdrmConfig(eta=0.5), DpsConfig(steps=50), RepaintConfig(variance="large")):
        assert type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (lambda: DdnmConfig(eta=1.5), lambda: DdrmConfig(steps=0), lambda: DpsConfig(variance="learned"),
                lambda: RepaintConfig(jump_length=0)):
        with pytest.raises(ShredError):
            bad()


# -- timestep plans and the DDPM step -----------------------------------------------------------
def test_schedules():
    assert spaced_timesteps(1000, 20, "leading") == list(range(0, 1000, 50))
    respaced = spaced_timesteps(1000, 250, "respaced")
    assert len(respaced) == 250 and respaced[0] == 0 and respaced[-1] == 999
    assert spaced_timesteps(1000, 1000, "respaced") == list(range(1000))
    assert jump_schedule(100, 1, 1) == list(range(99, -2, -1))
    times = jump_schedule(250, 10, 10)
    assert times[0] == 249 and times[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(times, times[1:]))
    # 250 plain steps plus 24 stretches of 10 steps, each rerun 9 more times (RePaint's defaults).
    assert sum(b < a for a, b in zip(times, times[1:])) == 250 + 24 * 9 * 10


def test_ddpm_step_ends_at_the_clean_estimate():
    x, x0 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(ddpm_step(x, x0, 0.9, 1.0, "small", torch.randn_like(x)), x0)


# -- the SVD facility ---------------------------------------------------------------------------
def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SVD_CASES))
def test_svd_reproduces_the_operator(name):
    op = _op(name)
    svd = operator_svd(op)
    x, y, c = _rand((2, *op.in_shape), 1), _rand((2, *op.out_shape), 2), _rand((2, svd.k), 3)
    assert (svd.singulars >= 0).all()
    # float64 round-off through three small dense SVDs stays below 1e-12 (measured <= 1e-14).
    tol = dict(atol=1e-12, rtol=1e-12)
    assert torch.allclose(svd.U(svd.s(x) * svd.Vt(x)[:, : svd.k]), op.A(x), **tol)   # A = U S V^T
    assert torch.allclose(svd.AT(y), op.AT(y), **tol)
    assert torch.allclose(svd.V(svd.Vt(x)), x, **tol)                              # V orthogonal
    d = _rand((2, svd.D), 4)
    assert torch.allclose(svd.Vt(svd.V(d)), d, **tol)
    assert torch.allclose(svd.Ut(svd.U(c)), c, **tol)                              # U^T U = I
    # A A^+ A = A; the Gaussian blur has singular values down to 1e-11, so its A^+ amplifies
    # round-off by up to 1e11 before A damps it again: check it relative to ||A x||.
    Ax = op.A(x)
    err = (op.A(svd.pinv(Ax)) - Ax).norm() / Ax.norm()
    assert err < (1e-6 if name.startswith("deblur") else 1e-12)


def test_svd_truncation_zeroes_small_singulars_per_axis():
    svd = operator_svd(_op("deblur-gaussian"))
    cut = svd.truncated(3e-2)
    assert (cut.singulars == 0).sum() > 0
    # Each singular value is a product of per-axis values that are now 0 or >= 3e-2.
    assert (cut.singulars[cut.singulars > 0] >= 3e-2 ** 2 * 0.999).all()
    mask_svd = operator_svd(_op("inpaint"))
    assert torch.equal(mask_svd.truncated(3e-2).singulars, mask_svd.singulars)


def test_a_dense_svd_is_computed_once_per_operator_and_truncates():
    op = _op("deblur-random")
    svd = operator_svd(op)
    assert operator_svd(op) is svd and operator_svd(_op("deblur-random")) is not svd
    cut = svd.truncated(3e-2)
    assert 0 < int((cut.singulars == 0).sum()) < svd.k
    assert torch.equal(cut.singulars[cut.singulars > 0], svd.singulars[svd.singulars >= 3e-2])


def test_operators_without_an_svd_are_refused(gaussian_prior, clean):
    op = build_task("inpaint+sr", SHAPE, TaskOptions(scale=2, box_size=4), torch.Generator().manual_seed(0))
    with pytest.raises(ShredError, match="SVD"):
        operator_svd(op)
    with pytest.raises(ShredError, match="SVD"):
        build_solver("ddrm", gaussian_prior, steps=2)(op.A(clean), op, seeds=[0, 1])
    # A kernel that is not separable gets a dense SVD up to 1024 pixels, not beyond.
    big = build_task("deblur", (3, 40, 40), TaskOptions(kernel="random", kernel_size=5),
                     torch.Generator().manual_seed(0))
    with pytest.raises(ShredError, match="larger than 1024 pixels"):
        operator_svd(big)


# -- DDNM and DDRM: consistency with y ----------------------------------------------------------
@pytest.mark.parametrize("name", ["ddnm", "ddnm+", "ddrm"])
@pytest.mark.parametrize("task", EXACT_TASKS)
def test_ddnm_and_ddrm_reproduce_y_exactly(gaussian_prior, clean, name, task):
    op = _op(task)
    y = op.A(clean)
    res = build_solver(name, gaussian_prior, **FAST[name])(y, op, seeds=[0, 1])
    # The last step sets the range-space part to A^+ y; what is left is float32 round-off (~1e-7).
    assert res.measurement_error(op, y).max() < 1e-5


def test_ddnm_time_travel_runs_the_jump_schedule(gaussian_prior, clean):
    op = _op("sr")
    y = op.A(clean)
    res = build_solver("ddnm", gaussian_prior, steps=10, travel_length=2, travel_repeat=2)(y, op, seeds=[0, 1])
    # 10 steps, plus one rerun of 2 steps at indices 0, 2, 4, 6.
    assert res.loss_history.shape[0] == 10 + 4 * 2
    assert res.measurement_error(op, y).max() < 1e-5


@pytest.mark.parametrize("task", ["sr", "colorize", "inpaint"])
def test_ddnm_plus_and_ddrm_denoise_where_ddnm_fits_the_noise(gaussian_prior, clean, task):
    opts = TaskOptions(scale=2, sigma_y=0.2, box_size=8)
    op = build_task(task, SHAPE, opts)
    y = op.degrade(clean, torch.Generator().manual_seed(5))
    Ax = op.A(clean)
    noise = (y - Ax).flatten(1).norm(dim=1)

    def range_error(name, **settings):
        x0 = build_solver(name, gaussian_prior, **settings)(y, op, seeds=[0, 1]).x0
        return (op.A(x0) - Ax).flatten(1).norm(dim=1) / noise

    assert torch.allclose(range_error("ddnm"), torch.ones(2), atol=1e-5)   # A x0 = y, noise and all
    # The prior's std in [0, 1] units is 0.05-0.15 against sigma_y = 0.2, so a noise-aware method
    # keeps well under the noise (measured 0.3-0.57 of it).
    for name, settings in [("ddnm+", {}), ("ddnm+", dict(simplified=True)), ("ddrm", {})]:
        assert (range_error(name, **settings) < 0.7).all(), (name, settings)


def test_ddnm_plus_needs_an_svd_unless_simplified(gaussian_prior, clean):
    op = build_task("inpaint+sr", SHAPE, TaskOptions(scale=2, box_size=4, sigma_y=0.05),
                    torch.Generator().manual_seed(0))
    y = op.degrade(clean, torch.Generator().manual_seed(1))
    with pytest.raises(ShredError, match="SVD"):
        build_solver("ddnm+", gaussian_prior, steps=2)(y, op, seeds=[0, 1])
    res = build_solver("ddnm+", gaussian_prior, steps=2, simplified=True)(y, op, seeds=[0, 1])
    assert torch.isfinite(res.x0).all()


# -- closed forms on the Gaussian prior ---------------------------------------------------------
N_SEEDS = 64


def _samples(gaussian_prior, name, settings):
    op = build_task("inpaint", SHAPE, TaskOptions(box_size=8))
    clean = to_image_space(gaussian_prior.sample(1, torch.Generator().manual_seed(1))).float()
    res = build_solver(name, gaussian_prior, **settings)(op.A(clean), op, seeds=list(range(N_SEEDS)))
    missing = (op.mask == 0).expand(SHAPE)
    return to_model_space(res.x0.double()), missing, to_model_space(clean.double())[0]


@pytest.mark.parametrize("name,settings", [("ddnm", {}), ("ddrm", {}), ("dps", dict(steps=100, clip_x0=False)),
                                           ("repaint", dict(steps=50, jump_length=5, jump_n_sample=3, clip_x0=False))])
def test_missing_pixels_have_the_posterior_mean(gaussian_prior, name, settings):
    """Mask, no noise, independent pixels: a missing pixel's posterior is its prior, mean mu.

    (x0 clipping is off so that the closed form holds; it truncates the prior at +-1.)
    """
    x, missing, truth = _samples(gaussian_prior, name, settings)
    mu = gaussian_prior.mu
    t_stat = ((x.mean(0) - mu) / (x.std(0) / math.sqrt(N_SEEDS)))[missing]
    # 192 independent t statistics with 63 degrees of freedom: RMS 1.016 +- 0.05, so [0.8, 1.25]
    # leaves > 4 standard errors; a biased mean (e.g. a wrong x0 formula) lands far outside.
    rms = t_stat.pow(2).mean().sqrt()
    assert 0.8 < rms < 1.25, rms
    if name in ("ddnm", "ddrm"):
        assert (x[:, ~missing] - truth[~missing]).abs().max() < 1e-5   # known pixels: y exactly


def _chain_std(sigma: torch.Tensor, transitions, update: str, eta: float = 0.0) -> torch.Tensor:
    """Output std of a sampler on N(mu, sigma^2) pixels, started from N(0, 1).

    Every step is linear in x_t (x0_hat = mu + g (x_t - sqrt(a) mu) for this prior), so the
    variance obeys v' = c^2 v + q with c the step's slope and q its fresh-noise variance:
    ``"ddim"``: x' = sqrt(a') x0_hat + sqrt(1 - a') (eta z + sqrt(1 - eta^2) eps_hat) (DDNM, and
    DDRM on unseen coordinates); ``"ddpm"``: the ancestral step with the posterior variance.
    A transition to a later timestep is forward diffusion (RePaint's resampling).
    """
    abar = NoiseSchedule.linear().abar.tolist()
    s2, v = sigma.pow(2), torch.ones_like(sigma)
    for t, t_next in transitions:
        a, a_next = abar[t], (1.0 if t_next < 0 else abar[t_next])
        if t_next > t:
            v = a_next / a * v + (1 - a_next / a)
            continue
        g = math.sqrt(a) * s2 / (a * s2 + 1 - a)                   # d x0_hat / d x_t
        if update == "ddim":
            e = (1 - math.sqrt(a) * g) / math.sqrt(1 - a)          # d eps_hat / d x_t
            c, q = math.sqrt(a_next) * g + math.sqrt(1 - a_next) * math.sqrt(1 - eta ** 2) * e, (1 - a_next) * eta ** 2
        else:
            beta = 1 - a / a_next
            c = beta * math.sqrt(a_next) / (1 - a) * g + (1 - a_next) * math.sqrt(1 - beta) / (1 - a)
            q = beta * (1 - a_next) / (1 - a)
        v = c ** 2 * v + q
    return v.sqrt()


def _transitions(timesteps, schedule):
    at = [timesteps[k] if k >= 0 else -1 for k in schedule]
    return list(zip(at, at[1:]))


@pytest.mark.parametrize("name,settings,update", [
    ("ddnm", dict(steps=100), "ddim"),
    ("ddrm", dict(steps=20), "ddim"),
    ("dps", dict(steps=100, clip_x0=False), "ddpm"),
    ("repaint", dict(steps=50, jump_length=5, jump_n_sample=3, clip_x0=False), "ddpm"),
])
def test_missing_pixel_spread_matches_the_closed_form(gaussian_prior, name, settings, update):
    """Few steps lose spread (0.65-0.97 of sigma here); the recursion says exactly how much. DPS's
    guidance does not reach missing pixels (each pixel's x0_hat depends on that pixel only)."""
    x, missing, _ = _samples(gaussian_prior, name, settings)
    steps = settings["steps"]
    if name == "repaint":
        plan = _transitions(spaced_timesteps(1000, steps, "respaced"), jump_schedule(steps, 5, 3))
    else:
        ts = spaced_timesteps(1000, steps, "respaced" if name == "dps" else "leading")
        plan = _transitions(ts, list(range(steps - 1, -2, -1)))
    expected = _chain_std(gaussian_prior.sigma, plan, update, eta=0.85)
    ratio = (x.std(0) / expected)[missing]
    # Each ratio has relative sd 1/sqrt(126) = 0.09; the mean of 192 has sd 0.0065: 0.03 is > 4 sd.
    assert abs(ratio.mean() - 1) < 0.03, ratio.mean()


# -- DPS and RePaint ----------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["sr", "inpaint"])
def test_dps_lowers_the_measurement_error_of_unconditional_sampling(gaussian_prior, clean, task):
    op = build_task(task, SHAPE, TaskOptions(scale=2))
    y = op.A(clean)
    seeds = [0, 1]
    guided = build_solver("dps", gaussian_prior, steps=100)(y, op, seeds=seeds).measurement_error(op, y)
    free = build_solver("dps", gaussian_prior, steps=100, scale=0.0)(y, op, seeds=seeds).measurement_error(op, y)
    # Same seeds, so the difference is the guidance; measured 20-26% lower with zeta = 0.3.
    assert (guided < 0.9 * free).all(), (guided, free)


@pytest.mark.parametrize("task,opts", [("inpaint", TaskOptions()), ("cs", TaskOptions(fraction=0.3))])
def test_repaint_keeps_the_known_pixels(gaussian_prior, clean, task, opts):
    op = build_task(task, SHAPE, opts, torch.Generator().manual_seed(0))
    y = op.A(clean)
    res = build_solver("repaint", gaussian_prior, steps=50, jump_length=5, jump_n_sample=3)(y, op, seeds=[0, 1])
    known = op.mask.bool().expand(SHAPE)
    err = (res.x0 - clean)[:, known]
    # The output is the estimate from a last x_t whose known pixels carry noise sqrt(1 - abar_0) =
    # 0.01 in [-1, 1] units, i.e. 0.005 RMS in [0, 1] units (measured 0.005).
    assert err.pow(2).mean().sqrt() < 0.01
    missing_err = (res.x0 - clean)[:, ~known].pow(2).mean().sqrt()
    assert missing_err > 0.03   # the rest is a prior sample, not a copy of the truth


def test_repaint_refuses_operators_other_than_masks(gaussian_prior, clean):
    op = _op("sr")
    with pytest.raises(ShredError, match="masking operators only"):
        build_solver("repaint", gaussian_prior, **FAST["repaint"])(op.A(clean), op, seeds=[0, 1])


# -- naive inversion ----------------------------------------------------------------------------
def test_naive_inversion_is_shred_through_every_step(gaussian_prior, clean):
    solver = build_solver("naive-inversion", gaussian_prior, config=ShredConfig(delta_t=100, iterations=1))
    assert solver.config.delta_t == 1 and len(solver.pairs) == 1000
    assert solver.pairs[0] == (999, 998) and solver.pairs[-1] == (0, -1)


# -- a tiny real network ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_unet(tiny_model_dir):
    from shred.models import load_folder

    return load_folder(tiny_model_dir)


@pytest.mark.parametrize("name", sorted(FAST))
def test_every_solver_finds_the_device_of_a_real_network(tiny_unet, name):
    """Every method works where the network lives (DIP and pinv too: they follow a network they
    are given). The meta device stands in for a GPU: a solver stuck on the CPU would report cpu."""
    import copy

    elsewhere = copy.deepcopy(tiny_unet).to("meta")
    assert build_solver(name, elsewhere, **FAST[name]).device == torch.device("meta")
    assert build_solver(name, tiny_unet, **FAST[name]).device == torch.device("cpu")


@pytest.mark.parametrize("name", STOCHASTIC)
def test_peers_run_on_a_tiny_unet(tiny_unet, clean, name):
    """End to end through a random-weight diffusers UNet (DPS backpropagates through it)."""
    den = tiny_unet
    op = _op("inpaint")
    y = op.A(clean)
    res = build_solver(name, den, **FAST[name])(y, op, seeds=[0, 1])
    assert res.x0.shape == clean.shape and torch.isfinite(res.x0).all()
    if name in ("ddnm", "ddnm+", "ddrm"):
        assert res.measurement_error(op, y).max() < 1e-5
