import json
import math
import warnings
from pathlib import Path

import pytest
import torch

from shred.errors import ShredError
from shred.metrics import psnr
from shred.operators import TaskOptions, build_task
from shred.solvers import PRESETS, Shred, ShredConfig, preset_config, to_image_space

# Adam at a constant rate jitters at a floor set by the rate; annealing it (cosine) lets the
# analytic problems converge to the 1e-3 targets within 200 iterations (measured ~3e-5).
CONVERGE = dict(lr=0.2, iterations=200, lr_decay="cosine", clip_x0=False, sphere=False)


@pytest.fixture(scope="module")
def clean(gaussian_prior):
    return to_image_space(gaussian_prior.sample(2, torch.Generator().manual_seed(1))).float()


@pytest.mark.parametrize("grad", ["surrogate", "exact"])
def test_inversion_of_a_prior_sample(gaussian_prior, clean, grad):
    op = build_task("denoise", (3, 16, 16))
    res = Shred(gaussian_prior, ShredConfig(grad=grad, **CONVERGE))(op.A(clean), op, seeds=[0, 1])
    assert psnr(res.x0, clean).min() >= 40


@pytest.mark.parametrize("grad", ["surrogate", "exact"])
@pytest.mark.parametrize("task,opts", [("inpaint", TaskOptions()), ("sr", TaskOptions(scale=4)),
                                       ("cs", TaskOptions(fraction=0.05))])
def test_measurement_error_below_1e_3(gaussian_prior, clean, grad, task, opts):
    op = build_task(task, (3, 16, 16), opts, torch.Generator().manual_seed(0))
    y = op.A(clean)
    res = Shred(gaussian_prior, ShredConfig(grad=grad, **CONVERGE))(y, op, seeds=[0, 1])
    assert res.measurement_error(op, y).max() < 1e-3
    # The loss history is the per-image MSE, and it fell.
    assert res.loss_history.shape == (200, 2) and (res.loss_history[-1] < 1e-3 * res.loss_history[0]).all()


def test_result_fields_and_x0_is_f_of_x_T(gaussian_prior, clean):
    op = build_task("sr", (3, 16, 16), TaskOptions(scale=2))
    solver = Shred(gaussian_prior, ShredConfig(iterations=5, clip_x0=False))
    res = solver(op.A(clean), op, seeds=[0, 1])
    assert res.x0.shape == clean.shape and res.x_T.shape == clean.shape
    assert res.iterations.tolist() == [5, 5] and res.wall_time > 0 and res.seeds == [0, 1]
    with torch.no_grad():
        assert torch.allclose(to_image_space(solver.f(res.x_T)), res.x0, atol=1e-6)
    # The sphere projection keeps ||x_T|| = sqrt(D).
    assert torch.allclose(res.x_T.flatten(1).norm(dim=1), torch.full((2,), math.sqrt(3 * 16 * 16)), rtol=1e-5)


def test_seeds_make_runs_reproducible_and_independent_of_the_batch(gaussian_prior, clean):
    op = build_task("sr", (3, 16, 16), TaskOptions(scale=4))
    y = op.A(clean[:1])
    solver = Shred(gaussian_prior, ShredConfig(iterations=3))
    a = solver(y, op, seeds=[0, 1, 2]).x0
    b = solver(y, op, seeds=[2]).x0
    assert torch.allclose(a[2:], b, atol=1e-6)       # image i depends only on seed i
    assert not torch.allclose(a[0], a[1], atol=1e-3)  # different seeds, different solutions
    assert torch.equal(solver(y, op, seeds=[0, 1, 2]).x0, a)


def test_early_stopping_freezes_converged_images(gaussian_prior, clean):
    op = build_task("denoise", (3, 16, 16))
    cfg = ShredConfig(**{**CONVERGE, "iterations": 300, "epsilon": 1e-4})
    res = Shred(gaussian_prior, cfg)(op.A(clean), op, seeds=[0, 1])
    assert (res.iterations < 300).all()
    final = res.loss_history[res.iterations - 1, torch.arange(2)]
    assert (final < 1e-4).all()


def test_ddim_inversion_init_starts_close(gaussian_prior, clean):
    op = build_task("denoise", (3, 16, 16))
    cfg = ShredConfig(init="ddim-inversion", delta_t=10, iterations=1, clip_x0=False, sphere=False)
    inv = Shred(gaussian_prior, cfg)(op.A(clean), op, seeds=[None, None])
    noise = Shred(gaussian_prior, cfg.replace(init="noise"))(op.A(clean), op, seeds=[0, 1])
    # 100-step inversion is approximate (test_diffusion) but far closer than a
    # random start, which is an independent prior sample.
    assert psnr(inv.x0, clean).min() > psnr(noise.x0, clean).max() + 5


def test_config_round_trip_and_validation():
    cfg = ShredConfig(delta_t=50, grad="exact", epsilon=1e-3)
    assert ShredConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (dict(delta_t=0), dict(lr=-1.0), dict(grad="magic"), dict(iterations=0), dict(loss="l1")):
        with pytest.raises(ShredError):
            ShredConfig(**bad)
    with pytest.raises(ShredError, match="unknown SHRED settings: delta; known: delta_t, "):
        ShredConfig.from_dict({"delta": 3})


def test_delta_t_beyond_T_is_refused(gaussian_prior):
    with pytest.raises(ShredError, match="delta_t"):
        Shred(gaussian_prior, ShredConfig(delta_t=1001))


def test_presets():
    code = preset_config("authors-code", "sr")
    assert (code.lr, code.iterations, code.grad, code.clip_x0, code.sphere, code.spacing) == \
        (0.001, 100, "surrogate", True, True, "leading")
    paper = preset_config("paper", "cs")
    assert (paper.lr, paper.iterations, paper.grad, paper.loss, paper.spacing) == (0.01, 150, "exact", "norm", "trailing")
    assert preset_config("paper", "inpaint", iterations=7).iterations == 7
    assert set(PRESETS) == {"paper", "authors-code", "bundled", "plus"}
    bundled = preset_config("bundled", "sr")
    assert (bundled.lr, bundled.grad, bundled.clip_x0, bundled.sphere) == (0.03, "surrogate", True, True)
    with pytest.raises(ShredError):
        preset_config("fastest")


def test_auto_preset_picks_by_model(gaussian_prior):
    from shred.models import load_model
    from shred.solvers import resolve_preset

    assert resolve_preset("auto", gaussian_prior) == "authors-code"
    assert resolve_preset("auto", load_model("cifar10-32")) == "plus"
    assert resolve_preset("paper", load_model("cifar10-32")) == "paper"
    with pytest.raises(ShredError, match="resolve"):
        preset_config("auto")


def test_shape_mismatch_is_explained(gaussian_prior):
    op = build_task("sr", (3, 32, 32), TaskOptions(scale=4))
    with pytest.raises(ShredError, match="operator works on"):
        Shred(gaussian_prior)(torch.rand(1, 3, 8, 8), op)
    op16 = build_task("sr", (3, 16, 16), TaskOptions(scale=4))
    with pytest.raises(ShredError, match="NaN"):
        Shred(gaussian_prior)(torch.full((1, 3, 4, 4), float("nan")), op16)


# -- the narrated loop computes what the old one did ---------------------------------------------------
REFERENCE = Path(__file__).parent / "data" / "shred_loop_reference.safetensors"
LOOP_CASES = {  # name: (method, task, options, settings); made by tests/data/make_shred_loop_reference.py
    "authors_sr": ("shred@authors-code", "sr", dict(scale=4), dict(iterations=4)),
    "paper_inpaint": ("shred@paper", "inpaint", dict(box_size=6), dict(iterations=4)),
    "bundled_cs_plateau": ("shred@bundled", "cs", dict(fraction=0.2),
                           dict(iterations=14, stop="plateau", lr_decay="cosine", lr=0.001)),
    "authors_noisy_discrepancy": ("shred@authors-code", "sr", dict(scale=2, sigma_y=0.1),
                                  dict(iterations=8, stop="discrepancy", tau=1.1, lr=0.05)),
    "blind": ("shred-blind@authors-code", "blind-deblur", dict(kernel="random", kernel_size=5), dict(iterations=4)),
}


@pytest.mark.parametrize("name", sorted(LOOP_CASES))
def test_presets_restore_exactly_as_before_the_loop_was_rewritten(gaussian_prior, name):
    from safetensors.torch import load_file

    from shred.operators import TaskOptions, build_task
    from shred.solvers import build_solver

    ref = load_file(str(REFERENCE))
    method, task, opts, settings = LOOP_CASES[name]
    clean = to_image_space(gaussian_prior.sample(2, torch.Generator().manual_seed(1))).float()
    op = build_task(task, (3, 16, 16), TaskOptions(**opts), torch.Generator().manual_seed(0))
    y = op.degrade(clean.double(), generator=torch.Generator().manual_seed(2)).float()
    res = build_solver(method, gaussian_prior, task=task, **settings)(y, op, seeds=[3, 4])
    # Same arithmetic in the same order: equal to float32 round-off of the reference run.
    assert torch.equal(res.iterations, ref[f"{name}.iterations"])
    assert torch.allclose(res.x0, ref[f"{name}.x0"], atol=1e-6)
    assert torch.allclose(res.loss_history, ref[f"{name}.loss"], rtol=1e-5, atol=1e-9)
    if f"{name}.kernel" in ref:
        assert torch.allclose(res.extras["kernel"], ref[f"{name}.kernel"], atol=1e-6)


# -- SHRED+ options --------------------------------------------------------------------------------
def _problem(task, prior, **opts):
    from shred.operators import TaskOptions, build_task

    # Clamped: restorations are clamped to [0, 1], so only such images can be explained exactly.
    clean = to_image_space(prior.sample(2, torch.Generator().manual_seed(1))).float().clamp(0, 1)
    op = build_task(task, (3, 16, 16), TaskOptions(**opts), torch.Generator().manual_seed(0))
    return clean, op, op.degrade(clean.double(), generator=torch.Generator().manual_seed(2)).float()


def test_a_warm_start_is_not_undone_by_the_sphere_projection():
    """The bundled model's DDIM-inverted latent of a photo is shorter than noise (norm ~0.79 sqrt(D));
    the projection keeps its own norm. Rescaled to sqrt(D), as before, the same latent lands far
    from the photo (about 10 dB instead of 21 on the shipped sample)."""
    import shred
    from shred.metrics import psnr
    from shred.operators import TaskOptions, build_task
    from shred.solvers import build_solver

    den = shred.load_model("cifar10-32")
    x = shred.read_image(Path(shred.__file__).parent / "samples" / "chelsea-32.png")
    op = build_task("denoise", (3, 32, 32), TaskOptions())
    first = {}
    for sphere in (True, False):
        solver = build_solver("shred", den, init="ddim-inversion", sphere=sphere, iterations=1, lr=1e-9)
        res = solver(op.A(x), op, seeds=[0])
        first[sphere] = res.x0
    norm = res.x_T.flatten(1).norm(dim=1)
    assert (norm < 0.9 * math.sqrt(3 * 32 * 32)).all()
    # With the sphere on, the first iterate is the inversion's own reconstruction, as without it.
    assert torch.allclose(first[True], first[False], atol=1e-5)
    with torch.no_grad():
        rescaled = to_image_space(solver.f(res.x_T * math.sqrt(3 * 32 * 32) / norm.view(-1, 1, 1, 1)))
    # Measured 20.98 dB kept vs 10.31 dB rescaled (10 DDIM steps each way).
    assert float(psnr(first[True], x)) > 18 and float(psnr(first[True], x)) > float(psnr(rescaled, x)) + 6


def test_warm_start_blends_the_inversion_with_seeded_noise(gaussian_prior):
    from shred.diffusion import ddim_invert
    from shred.solvers import build_solver, seeded_noise, to_model_space

    _, op, y = _problem("sr", gaussian_prior, scale=2)
    solver = build_solver("shred", gaussian_prior, init="warm", warm_strength=0.36)
    x_T = solver.initial_latent(y, op, [5, 6])
    inv = ddim_invert(gaussian_prior, to_model_space(op.pinv(y).clamp(0, 1)), solver.pairs)
    want = 0.6 * inv + 0.8 * seeded_noise((3, 16, 16), [5, 6])
    assert torch.allclose(x_T, want.float(), atol=1e-5)


def test_every_phase_of_a_warm_run_shows_a_progress_bar(gaussian_prior, capsys):
    """The start (DDRM's 20 steps), its DDIM inversion and DDNM's finish each take as long as
    several iterations; with progress on, each shows a bar, not only SHRED's iterations."""
    from shred.solvers import build_solver

    _, op, y = _problem("sr", gaussian_prior, scale=2)
    kw = dict(init="warm", warm_from="ddrm", iterations=2, finish="ddnm", finish_steps=4)
    build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1], progress=True)
    err = capsys.readouterr().err
    for bar in ("ddrm:", "inversion:", "shred:", "finish:"):
        assert f"\r{bar}" in err, (bar, err[-400:])
    build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
    assert capsys.readouterr().err == ""


def test_coarse_and_render_trajectories_start_where_x_T_lives(gaussian_prior):
    from shred.models.counting import CountingDenoiser
    from shred.solvers import build_solver

    counter = CountingDenoiser(gaussian_prior)
    solver = build_solver("shred", counter, coarse_iterations=2, coarse_stride=2, iterations=3, render_delta_t=50)
    assert solver.coarse_pairs[0][0] == solver.pairs[0][0] == solver.render_pairs[0][0] == 900
    assert len(solver.coarse_pairs) == 5 and len(solver.render_pairs) == 19 and solver.render_pairs[-1] == (0, -1)
    _, op, y = _problem("sr", gaussian_prior, scale=2)
    solver(y[:1], op, seeds=[0])
    assert counter.image_calls == 2 * 5 + 1 * 10 + 19  # two coarse iterations, one fine, the render


def test_early_stopping_waits_for_the_first_fine_iteration(gaussian_prior):
    from shred.solvers import build_solver

    _, op, y = _problem("sr", gaussian_prior, scale=2)
    # Every loss is below epsilon: without coarse-to-fine the first iterate is the answer; with
    # three coarse iterations, the fourth (the first through all 10 steps) is.
    plain = build_solver("shred", gaussian_prior, iterations=6, epsilon=1e9)(y, op, seeds=[0, 1])
    solver = build_solver("shred", gaussian_prior, iterations=6, epsilon=1e9, coarse_iterations=3)
    res = solver(y, op, seeds=[0, 1])
    assert plain.iterations.tolist() == [1, 1] and res.iterations.tolist() == [4, 4]
    with torch.no_grad():
        fine = to_image_space(solver.f(res.x_T.to(torch.float32), pairs=solver.pairs))
    assert torch.allclose(res.x0, fine, atol=1e-5)


def test_all_iterations_coarse_is_called_out(gaussian_prior):
    from shred.solvers import build_solver

    _, op, y = _problem("sr", gaussian_prior, scale=2)
    with pytest.warns(UserWarning, match=r"coarse_iterations=3 covers all 3 iterations: every one, and the answer, "
                                         r"goes through 5 DDIM steps instead of 10"):
        solver = build_solver("shred", gaussian_prior, iterations=3, coarse_iterations=3)
    res = solver(y, op, seeds=[0, 1])
    with torch.no_grad():  # the answer is indeed an x0 of the coarse trajectory
        coarse = to_image_space(solver.f(res.x_T.to(torch.float32), pairs=solver.coarse_pairs))
    assert torch.allclose(res.x0, coarse, atol=1e-5)
    with warnings.catch_warnings():  # one fine iteration, or a stride that keeps every step: nothing to say
        warnings.simplefilter("error")
        build_solver("shred", gaussian_prior, iterations=4, coarse_iterations=3)
        build_solver("shred", gaussian_prior, iterations=3, coarse_iterations=3, coarse_stride=1)


@pytest.mark.parametrize("task,opts", [("sr", dict(scale=4)), ("inpaint", dict(box_size=6)),
                                       ("colorize", {}), ("deblur", dict(kernel_sigma=2.0, kernel_size=9))])
def test_the_consistency_finish_explains_noiseless_measurements(gaussian_prior, task, opts):
    from shred.solvers import build_solver

    _, op, y = _problem(task, gaussian_prior, **opts)
    plain = build_solver("shred", gaussian_prior, iterations=2)(y, op, seeds=[0, 1])
    done = build_solver("shred", gaussian_prior, iterations=2, finish="consistency")(y, op, seeds=[0, 1])
    before, after = plain.measurement_error(op, y), done.measurement_error(op, y)
    assert (before > 0.01).all()
    # Exact for masks, pooling and colorization; a blur loses its directions below 3e-2 (DDNM's cut).
    assert (after < (0.02 if task == "deblur" else 1e-4)).all() and (after < before).all()


def test_the_consistency_finish_leaves_the_noise_in_noisy_measurements(gaussian_prior):
    from shred.solvers import build_solver

    _, op, y = _problem("inpaint", gaussian_prior, box_size=6, sigma_y=0.1)
    res = build_solver("shred", gaussian_prior, iterations=2, finish="consistency", tau=1.0)(y, op, seeds=[0, 1])
    r = ((y - op.A(res.x0)) * op.measurement_weight()).flatten(1).norm(dim=1)
    # The residual is brought down to the discrepancy level tau sigma_y sqrt(m), not to zero
    # (x0 is clamped to [0, 1] afterwards, which moves it a little).
    level = 0.1 * math.sqrt(op.num_measurements())
    assert torch.allclose(r, torch.full_like(r, level), rtol=0.05)


@pytest.mark.parametrize("preset", ["authors-code", "paper"])
def test_the_default_path_converges(gaussian_prior, preset):
    """The presets users run, clipping and the sphere (authors' code) or the exact gradient of the
    norm loss (paper) on, drive the measurement loss down and bring x0 closer to the image. The
    learning rate is raised from the 256x256 presets' so that 60 iterations suffice here."""
    from shred.metrics import psnr
    from shred.solvers import build_solver

    clean, op, y = _problem("sr", gaussian_prior, scale=2)
    res = build_solver(f"shred@{preset}", gaussian_prior, task="sr", iterations=60, lr=0.03)(y, op, seeds=[0, 1])
    first = build_solver(f"shred@{preset}", gaussian_prior, task="sr", iterations=1)(y, op, seeds=[0, 1])
    h = res.loss_history
    # Measured: 15x lower (mse, authors' code) and 6x lower (norm, paper) after 60 iterations.
    assert (h[-1] < 0.2 * h[0]).all()
    assert (psnr(res.x0, clean) > psnr(first.x0, clean) + 0.5).all()


@pytest.mark.parametrize("task,opts", [("sr", dict(scale=4)), ("inpaint", dict(box_size=6)), ("colorize", {})])
def test_the_ddnm_finish_explains_noiseless_measurements_in_its_calls(gaussian_prior, task, opts):
    from shred.models.counting import CountingDenoiser
    from shred.solvers import build_solver

    _, op, y = _problem(task, gaussian_prior, **opts)
    counter = CountingDenoiser(gaussian_prior)
    res = build_solver("shred", counter, iterations=2, finish="ddnm", finish_t=300, finish_steps=6)(y, op, seeds=[0, 1])
    # DDNM's last step has abar' = 1: A x0 = y to float32 round-off, up to the final [0, 1] clamp
    # (colorization leaves each channel free, so a pixel can cross 0 or 1: measured 1.0e-4).
    assert (res.measurement_error(op, y) < 1e-3).all()
    assert counter.image_calls == 2 * (2 * 10 + 6)  # two iterations of 10 steps, then the finish
    again = build_solver("shred", gaussian_prior, iterations=2, finish="ddnm", finish_t=300, finish_steps=6)(
        y, op, seeds=[0, 1])
    assert torch.equal(res.x0, again.x0)  # its noise comes from the seeds


def test_the_ddnm_finish_travels_back_in_time_at_its_cost(gaussian_prior):
    from shred.models.counting import CountingDenoiser
    from shred.solvers import build_solver
    from shred.solvers.ancestral import jump_schedule

    _, op, y = _problem("sr", gaussian_prior, scale=4)
    fin = dict(iterations=2, finish="ddnm", finish_t=300, finish_steps=6)
    plain = build_solver("shred", gaussian_prior, **fin)(y, op, seeds=[0, 1])
    # Hand-written chain of the plain finish: 6 steps down, nothing else (travel 1 / 1 = none).
    assert jump_schedule(6, 1, 1) == [5, 4, 3, 2, 1, 0, -1]
    counter = CountingDenoiser(gaussian_prior)
    res = build_solver("shred", counter, **fin, finish_travel_length=2, finish_travel_repeat=2)(y, op, seeds=[0, 1])
    # Jumps of 2 at step indices 0 and 2, once each: 6 + 2 x 2 = 10 finish calls per image.
    assert counter.image_calls == 2 * (2 * 10 + 10)
    assert (res.measurement_error(op, y) < 1e-3).all()  # still ends on DDNM's exact step
    assert not torch.equal(res.x0, plain.x0)


@pytest.mark.parametrize("settings,why", [
    (dict(finish="consistency", finish_travel_length=3, finish_travel_repeat=2), "finish is 'consistency'"),
    (dict(finish="ddnm", finish_travel_length=3, finish_travel_repeat=1), "makes no jump"),
    (dict(finish="ddnm", finish_steps=6, finish_travel_length=6, finish_travel_repeat=2), "this one takes 6"),
    # t = 3, 2, 1: finish_t caps the steps (15 asked) at 3 distinct timesteps.
    (dict(finish="ddnm", finish_t=3, finish_steps=15, finish_travel_length=4, finish_travel_repeat=2), "takes 3"),
])
def test_time_travel_that_cannot_jump_is_called_out(gaussian_prior, settings, why):
    from shred.models.counting import CountingDenoiser
    from shred.solvers import build_solver

    _, op, y = _problem("sr", gaussian_prior, scale=4)
    counter = CountingDenoiser(gaussian_prior)
    with pytest.warns(UserWarning, match=why):
        solver = build_solver("shred", counter, iterations=1, **settings)
    solver(y, op, seeds=[0, 1])
    calls = counter.image_calls
    counter = CountingDenoiser(gaussian_prior)
    plain = {**settings, "finish_travel_length": 1, "finish_travel_repeat": 1}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        build_solver("shred", counter, iterations=1, **plain)(y, op, seeds=[0, 1])
    # Without time travel only the finish's own note is left: 15 steps asked from t = 3.
    assert [str(w.message) for w in said] == (["finish_steps=15: a finish from t = 3 has 3 distinct steps, and "
                                               "takes 3 (one network call each)"] if "finish_t" in settings else [])
    assert calls == counter.image_calls  # indeed no jump


def test_time_travel_that_jumps_is_not_called_out(gaussian_prior):
    import warnings

    from shred.solvers import build_solver

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solver = build_solver("shred", gaussian_prior, finish="ddnm", finish_steps=6, finish_travel_length=5,
                              finish_travel_repeat=2)
    assert len(solver.finish_schedule) == 6 + 5 + 5 + 1  # down 6, up 5 at index 0, down 5 again, then -1


@pytest.mark.parametrize("task,opts", [("deblur", dict(kernel_sigma=2.0, kernel_size=9)), ("sr", dict(scale=2)),
                                       ("inpaint", dict(box_size=6)), ("colorize", {})])
def test_the_discrepancy_tikhonov_step_is_tikhonov_at_the_noise_level(task, opts):
    """discrepancy_tikhonov against a dense solve: dx = (A^T A + mu I)^-1 A^T r for its mu, and the
    residual left is the target; nothing when the residual is already below it; mu_min otherwise."""
    from shred.operators import TaskOptions, build_task
    from shred.operators.svd import discrepancy_tikhonov, operator_svd

    shape = (3, 8, 8)
    op = build_task(task, shape, TaskOptions(**opts), torch.Generator().manual_seed(0))
    svd = operator_svd(op)
    g = torch.Generator().manual_seed(3)
    x, x0 = torch.rand(2, *shape, generator=g, dtype=torch.float64), torch.rand(2, *shape, generator=g, dtype=torch.float64)
    weight = op.measurement_weight()
    w = weight.double() if weight is not None else 1.0
    y = (op.A(x) + 0.02 * torch.randn(op.A(x).shape, generator=g, dtype=torch.float64)) * w
    r = (y - op.A(x0)) * w
    norm = r.flatten(1).norm(dim=1)
    target = norm * torch.tensor([0.3, 0.6], dtype=torch.float64)
    dx = discrepancy_tikhonov(svd, r, target)
    left = ((y - op.A(x0 + dx)) * w).flatten(1).norm(dim=1)
    torch.testing.assert_close(left, target, rtol=1e-6, atol=1e-9)
    # The same dx from the normal equations, with mu recovered from one coordinate's gain.
    D = x0[0].numel()
    cols = torch.eye(D, dtype=torch.float64).view(D, *shape)
    A = (op.A(cols) * w).reshape(D, -1).T                                        # [m, D]
    for i in range(2):
        def residual(mu):
            d = torch.linalg.solve(A.T @ A + mu * torch.eye(D, dtype=torch.float64), A.T @ r[i].flatten())
            return (r[i].flatten() - A @ d).norm(), d
        lo, hi = math.log(9e-4), math.log(1e8)
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if residual(math.exp(mid))[0] > target[i] else (mid, hi)
        torch.testing.assert_close(dx[i].flatten(), residual(math.exp(lo))[1], rtol=1e-4, atol=1e-6)
    # Already at the noise level: no correction. Out of reach: mu_min, and the residual above the target.
    assert discrepancy_tikhonov(svd, r, norm * 1.01).abs().max() == 0
    tiny = discrepancy_tikhonov(svd, r, torch.zeros(2, dtype=torch.float64))
    s = svd.singulars
    gain = s / (s ** 2 + 9e-4)
    torch.testing.assert_close(tiny, svd.V(svd.pad(gain * svd.Ut(r))))


def test_finish_noise_tikhonov_changes_nothing_without_noise_and_leaves_the_noise_with_it(gaussian_prior):
    from shred.solvers import build_solver

    for finish in ("consistency", "ddnm"):
        _, op, y = _problem("deblur", gaussian_prior, kernel_sigma=2.0, kernel_size=9)
        kw = dict(iterations=2, finish=finish, finish_steps=4)
        plain = build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
        tik = build_solver("shred", gaussian_prior, finish_noise="tikhonov", **kw)(y, op, seeds=[0, 1])
        assert torch.equal(plain.x0, tik.x0)  # sigma_y = 0: the comparison's tasks are unchanged
        _, op, y = _problem("deblur", gaussian_prior, kernel_sigma=2.0, kernel_size=9, sigma_y=0.05)
        plain = build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
        tik = build_solver("shred", gaussian_prior, finish_noise="tikhonov", **kw)(y, op, seeds=[0, 1])
        level = 0.05 * math.sqrt(op.num_measurements())
        r = (y - op.A(tik.x0)).flatten(1).norm(dim=1)
        r_plain = (y - op.A(plain.x0)).flatten(1).norm(dim=1)
        # Brought to the discrepancy level where the finish left more (measured: image 0, 1.05 and
        # 1.02 x the level, to 1.000 and 1.002; the [0, 1] clamp moves it a little); an image the
        # finish left below it is not touched (image 1).
        above = r_plain > level
        assert above[0] and not above[1], (r_plain / level)
        assert abs(float(r[0] / level) - 1) < 0.01 and float(r[0]) < float(r_plain[0])
        assert torch.equal(plain.x0[1], tik.x0[1]) and not torch.equal(plain.x0[0], tik.x0[0])


def test_the_ddnm_finish_under_noise_is_ddnm_plus_per_singular_value_on_a_blur(gaussian_prior, monkeypatch):
    """The SVD-free simplified DDNM+ applies A^+ in full while sigma_t >= sigma_y, which on a blur
    amplifies the noise up to 33x (6.2 dB on noisy deblurring with the bundled model); the
    finish takes DDNM+ per singular value where A^+ amplifies the noise more than twice
    (noise_gain), as DDNM's program does, and keeps the simplified form elsewhere."""
    from shred.metrics import psnr
    from shred.operators import TaskOptions, build_task
    from shred.solvers import build_solver
    from shred.solvers import ddnm as ddnm_module

    asked = []
    original = ddnm_module.Ddnm.__init__

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("simplified"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(ddnm_module.Ddnm, "__init__", spy)
    clean, op, y = _problem("deblur", gaussian_prior, kernel_sigma=2.0, kernel_size=9, sigma_y=0.05)
    kw = dict(iterations=2, finish="ddnm", finish_steps=6)
    res = build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
    assert asked == [False]
    # Against the simplified form on the same problem: the blur's noise is not amplified (measured:
    # 18.6 and 18.3 dB against 8.8 and 7.7; the blurred y itself 13.3 and 13.5).
    monkeypatch.setattr(ddnm_module.Ddnm, "__init__", lambda self, *a, **k: original(self, *a, **{**k, "simplified": True}))
    simplified = build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
    assert (psnr(res.x0, clean) > psnr(simplified.x0, clean) + 5).all(), (psnr(res.x0, clean), psnr(simplified.x0, clean))
    assert (psnr(res.x0, clean) > psnr(y.clamp(0, 1), clean) + 3).all()
    monkeypatch.setattr(ddnm_module.Ddnm, "__init__", spy)
    # Where A^+ amplifies the noise at most twice (the identity, masks, x2 pooling, colorization):
    # the simplified form, which denoises better there. x4 pooling (singular values 1/4) amplifies
    # it 4 times: per singular value.
    for task, opts, simplified in [("denoise", {}, True), ("inpaint", dict(box_size=6), True),
                                   ("sr", dict(scale=2), True), ("colorize", {}, True),
                                   ("sr", dict(scale=4), False)]:
        asked.clear()
        _, op, y = _problem(task, gaussian_prior, sigma_y=0.05, **opts)
        build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
        assert asked == [simplified], task
    _, op, y = _problem("denoise", gaussian_prior, sigma_y=0.05)
    # finish_ddnm_plus chooses otherwise; the plus preset keeps "auto" and takes the Tikhonov step.
    asked.clear()
    build_solver("shred", gaussian_prior, finish_ddnm_plus="svd", **kw)(y, op, seeds=[0, 1])
    assert asked == [False]
    from shred.solvers import preset_config

    plus = preset_config("plus", "denoise")
    assert (plus.finish_ddnm_plus, plus.finish_noise) == ("auto", "tikhonov")
    # A mask composed with x4 pooling has no SVD: the Tikhonov form (the next test), not the
    # simplified; composed with x2 pooling (gain 2) the simplified.
    for scale, simplified in [(4, False), (2, True)]:
        asked.clear()
        both = build_task("inpaint+sr", (3, 16, 16), TaskOptions(box_size=6, scale=scale, sigma_y=0.05),
                          torch.Generator().manual_seed(0))
        y_both = both.degrade(clean.double(), generator=torch.Generator().manual_seed(2)).float()
        build_solver("shred", gaussian_prior, **kw)(y_both, both, seeds=[0, 1])
        assert asked == [simplified], scale


def test_the_noise_gain_of_an_operator():
    """noise_gain, which picks SHRED+'s DDNM+ form: 1 for unit singular values, f for pooling by
    f, sqrt(3) for colorization, products for compositions, infinity for blurs."""
    from shred.operators import TaskOptions, build_task
    from shred.operators.krylov import WithoutSVD
    from shred.solvers.shred import noise_gain

    want = {"denoise": 1.0, "inpaint": 1.0, "cs": 1.0, "sr": 2.0, "colorize": math.sqrt(3),
            "inpaint+sr": 2.0, "colorize+inpaint": math.sqrt(3), "colorize+sr": 2 * math.sqrt(3),
            "deblur": math.inf, "sr-bicubic": math.inf, "inpaint+deblur": math.inf, "deblur-sv": math.inf}
    for task, gain in want.items():
        op = build_task(task, (3, 16, 16), TaskOptions(box_size=6, scale=2, sigma_y=0.05), torch.Generator().manual_seed(0))
        assert noise_gain(op) == pytest.approx(gain), task
        assert noise_gain(WithoutSVD(op)) == pytest.approx(gain), task


@pytest.mark.parametrize("sigma_y", [0.0, 0.05])
def test_without_an_svd_a_mask_composed_with_pooling_starts_from_ddnm(gaussian_prior, sigma_y, monkeypatch, capsys):
    """DDRM needs an SVD, which a mask composed with pooling lacks. Its warm start inverted A^+ y
    (the Tikhonov estimate under noise), which is zero in the hole: 15.09 dB on noiseless
    inpainting with x2 SR with the bundled model, against DDNM's 19.28 (16 training images,
    bench/results/quantized-y-ddnm-start-train.json). Where A has a null space
    the start is now DDNM's 20 steps; where it has none (a blur without an SVD) it is unchanged."""
    from shred.metrics import psnr
    from shred.models.counting import CountingDenoiser
    from shred.operators.krylov import WithoutSVD
    from shred.solvers import build_solver
    from shred.solvers import shred as shred_module

    used = []
    original = shred_module.tikhonov_corrector
    monkeypatch.setattr(shred_module, "tikhonov_corrector", lambda *a, **k: used.append(a[2]) or original(*a, **k))
    clean, op, y = _problem("inpaint+sr", gaussian_prior, box_size=8, scale=2, sigma_y=sigma_y)
    solver = build_solver("shred", gaussian_prior, init="warm", warm_from="ddrm")
    start = solver.cheap_estimate(y, op, [0, 1], progress=True)
    assert "\rddnm:" in capsys.readouterr().err  # the start's own progress bar
    # Under noise DDNM+ takes the finish's form: the simplified one here (x2 pooling amplifies the
    # noise twice); a mask before a blur (next) takes the Tikhonov one, at 2 sigma_y in model space.
    assert used == []
    _, masked_blur, y_masked_blur = _problem("inpaint+deblur", gaussian_prior, box_size=8, sigma_y=sigma_y)
    solver.cheap_estimate(y_masked_blur, masked_blur, [0, 1])
    assert used == ([pytest.approx(2 * sigma_y)] if sigma_y > 0 else [])
    pinv = op.pinv(y.double()).float().clamp(0, 1)
    # Measured: 19.0 and 19.4 dB noiseless (18.4 and 18.7 at 0.05) against A^+ y's 10.7 and 10.5.
    assert (psnr(start, clean) > psnr(pinv, clean) + 6).all(), (psnr(start, clean), psnr(pinv, clean))
    if sigma_y == 0:  # no DDNM+ form to choose: DDNM itself
        assert torch.equal(start, build_solver("ddnm", gaussian_prior, steps=20)(y, op, seeds=[0, 1]).x0.clamp(0, 1))
    counter = CountingDenoiser(gaussian_prior)
    calls = {}
    for warm_from in ("pinv", "ddrm", "ddnm"):
        counter.image_calls = 0
        build_solver("shred", counter, init="warm", warm_from=warm_from, iterations=1)(y, op, seeds=[0, 1])
        calls[warm_from] = counter.image_calls
    assert calls == {"pinv": 2 * 20, "ddrm": 2 * 40, "ddnm": 2 * 40}  # 10 inversion + 10 per iteration
    # A mask before a blur keeps y at full size (m = n) and still leaves its hole unseen.
    from shred.solvers.shred import has_null_space

    assert masked_blur.num_measurements() == 3 * 16 * 16 and has_null_space(WithoutSVD(masked_blur))
    # A blur without an SVD has no null space: A^+ y (the Tikhonov estimate under noise: the next test).
    _, blur, y_blur = _problem("deblur", gaussian_prior, kernel_sigma=2.0, kernel_size=9)
    hidden = WithoutSVD(blur)
    assert torch.equal(solver.cheap_estimate(y_blur, hidden, [0, 1]), hidden.pinv(y_blur).clamp(0, 1))
    # warm_from="ddnm" asks for DDNM's start on any linear operator, one with an SVD included.
    _, sr, y_sr = _problem("sr", gaussian_prior, scale=2)
    asked = build_solver("shred", gaussian_prior, init="warm", warm_from="ddnm").cheap_estimate(y_sr, sr, [0, 1])
    assert torch.equal(asked, build_solver("ddnm", gaussian_prior, steps=20)(y_sr, sr, seeds=[0, 1]).x0.clamp(0, 1))


def test_without_an_svd_the_noisy_finish_is_tikhonov_and_does_not_amplify_the_noise(gaussian_prior, monkeypatch):
    """A blur without a closed-form SVD (a non-separable kernel over 1024 pixels; here the same
    blur with its SVD hidden) used to take the simplified DDNM+ (A^+ in full: 6.2 dB on noisy
    deblurring with the bundled model) and to start from A^+ y; its finish now takes the Tikhonov
    form on Golub-Kahan subspaces and its warm start the Tikhonov estimate."""
    from shred.metrics import psnr
    from shred.operators.krylov import WithoutSVD
    from shred.solvers import build_solver
    from shred.solvers import shred as shred_module

    used = []
    original = shred_module.tikhonov_corrector
    monkeypatch.setattr(shred_module, "tikhonov_corrector", lambda *a, **k: used.append(a[2]) or original(*a, **k))
    clean, op, y = _problem("deblur", gaussian_prior, kernel_sigma=2.0, kernel_size=9, sigma_y=0.05)
    hidden = WithoutSVD(op)
    kw = dict(iterations=2, finish="ddnm", finish_steps=6, init="warm", warm_from="ddrm")
    exact = build_solver("shred", gaussian_prior, **kw)(y, op, seeds=[0, 1])
    assert used == []
    res = build_solver("shred", gaussian_prior, **kw)(y, hidden, seeds=[0, 1])
    assert used == [pytest.approx(0.1)]  # the model-space noise level, 2 sigma_y
    simplified = build_solver("shred", gaussian_prior, finish_ddnm_plus="simplified", **kw)(y, hidden, seeds=[0, 1])
    # Measured: 18.45 and 18.26 dB, against 18.58 and 18.33 with the SVD and 5.66 and 5.54 for the
    # simplified form (the blurred y: 13.28 and 13.49).
    got, exact_db, simple_db = psnr(res.x0, clean), psnr(exact.x0, clean), psnr(simplified.x0, clean)
    assert (got > simple_db + 5).all(), (got, simple_db)
    assert (got > exact_db - 0.5).all(), (got, exact_db)
    # The warm start's estimate: the Tikhonov one at the noise level, not A^+ y (14.9 dB against 5.5).
    solver = build_solver("shred", gaussian_prior, **kw)
    start = solver.cheap_estimate(y, hidden, [0, 1])
    pinv = hidden.pinv(y.double()).float().clamp(0, 1)
    assert (psnr(start, clean) > psnr(pinv, clean) + 5).all(), (psnr(start, clean), psnr(pinv, clean))
    # The last Tikhonov step runs too, to the noise level.
    tik = build_solver("shred", gaussian_prior, finish_noise="tikhonov", **kw)(y, hidden, seeds=[0, 1])
    level = 0.05 * math.sqrt(op.num_measurements())
    r = (y - op.A(tik.x0)).flatten(1).norm(dim=1)
    assert (r < 1.05 * level).all(), r / level
