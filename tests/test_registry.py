"""One way to build every method (the registry), the peers' official defaults, batching and counting.

The analytic Gaussian prior and a random-weight tiny UNet stand in for real models: what is tested
here is wiring (which settings reach which solver, on which device, how many network calls), not
restoration quality.
"""
import pytest
import torch

from shred.errors import ShredError
from shred.models.counting import CountingDenoiser
from shred.operators import Blur, TaskOptions, build_task, gaussian_kernel
from shred.operators.svd import operator_svd
from shred.solvers import (SOLVERS, DdnmConfig, DpsConfig, ShredConfig, build_solver, is_blind, method_settings,
                           preset_config, to_image_space, why_not)
from shred.solvers.dps import official_scale

SHAPE = (3, 16, 16)
# A few iterations or steps for every method, so that the registry-wide tests stay fast.
FAST = {
    "pinv": {}, "ddnm": dict(steps=4), "ddnm+": dict(steps=4), "ddrm": dict(steps=3), "dps": dict(steps=4),
    "repaint": dict(steps=4, jump_length=2, jump_n_sample=2), "shred": dict(iterations=2),
    "naive-inversion": dict(iterations=1), "dip": dict(channels=8, skip_channels=4, iterations=2),
    "shred-blind": dict(iterations=2), "selfdeblur": dict(iterations=2, channels=8, skip_channels=4, hidden=16),
}


def _op(task, **opts):
    return build_task(task, SHAPE, TaskOptions(**opts), torch.Generator().manual_seed(0))


def _problem(name):
    """An operator every method accepts: a blur for the blind ones, a box hole otherwise."""
    return _op("deblur", kernel_sigma=1.0, kernel_size=5) if is_blind(name) else _op("inpaint", box_size=6)


@pytest.fixture(scope="module")
def clean(gaussian_prior):
    return to_image_space(gaussian_prior.sample(3, torch.Generator().manual_seed(1))).float()


def test_every_registered_method_has_fast_settings():
    assert set(FAST) == set(SOLVERS)


@pytest.mark.parametrize("name", sorted(FAST))
def test_every_method_restores_a_tiny_problem_through_the_one_call(gaussian_prior, clean, name):
    op = _problem(name)
    res = build_solver(name, gaussian_prior, **FAST[name])(op.A(clean[:2]), op, seeds=[0, 1])
    assert res.x0.shape == (2, *SHAPE) and torch.isfinite(res.x0).all()
    assert res.seeds == [0, 1]


@pytest.mark.parametrize("name", sorted(FAST))
def test_unknown_settings_are_refused_listing_the_valid_ones(name):
    with pytest.raises(ShredError) as err:
        build_solver(name, None, no_such_setting=1)
    message = str(err.value)
    assert "no_such_setting" in message and "\n" not in message
    assert all(s in message for s in method_settings(name))


def test_unknown_methods_list_the_registered_ones():
    with pytest.raises(ShredError) as err:
        build_solver("ddpm", None)
    assert all(name in str(err.value) for name in SOLVERS)


def test_shred_takes_single_settings_and_presets_by_name(gaussian_prior):
    # The example of the comparison issue, which raised a TypeError before.
    assert build_solver("shred", gaussian_prior, lr=0.05).config.lr == 0.05
    paper = build_solver("shred@paper", gaussian_prior, task="sr")
    assert paper.config == preset_config("paper", "sr") and paper.preset == "paper"
    assert build_solver("shred", gaussian_prior, preset="paper", task="sr").config == paper.config
    # authors-code for a model that is not bundled (the analytic prior is not).
    assert build_solver("shred", gaussian_prior, task="inpaint").config == preset_config("authors-code", "inpaint")
    blind = build_solver("shred-blind@paper", gaussian_prior)
    assert blind.config == preset_config("paper", "blind-deblur") and blind.blind.kernel_lr == 0.003
    with pytest.raises(ShredError, match="takes no preset"):
        build_solver("ddrm@paper", gaussian_prior)
    with pytest.raises(ShredError, match="the name says preset 'paper'"):
        build_solver("shred@paper", gaussian_prior, preset="bundled")
    with pytest.raises(ShredError, match="SHRED lr must be at most 10"):
        build_solver("shred", gaussian_prior, lr=1e300)


def test_applicability_comes_from_the_methods():
    sr = _op("sr", scale=4)
    assert why_not("repaint", sr) is not None and why_not("repaint", _op("cs", fraction=0.3)) is None
    # A non-separable blur has a (dense) SVD on small images only.
    assert why_not("ddrm", _op("deblur", kernel="random", kernel_size=5)) is None
    big = build_task("deblur", (3, 40, 40), TaskOptions(kernel="random", kernel_size=5), torch.Generator().manual_seed(0))
    assert "larger than 1024 pixels" in why_not("ddrm", big)
    assert is_blind("shred-blind") and is_blind("selfdeblur") and not is_blind("shred@paper")


# -- the peers' official defaults -------------------------------------------------------------------
def test_peer_defaults_are_the_cited_official_values():
    # wyhuai/DDNM configs/celeba_hq.yml (T_sampling 100, travel 1/1), main.py --eta 0.85,
    # functions/svd_operators.py Deblurring ZERO = 3e-2.
    assert DdnmConfig() == DdnmConfig(steps=100, eta=0.85, travel_length=1, travel_repeat=1, zero_below=3e-2)
    # DPS2022 configs: 1000 steps; zeta 0.3 (super_resolution, gaussian/motion deblur), 0.5 (inpainting).
    assert DpsConfig().steps == 1000 and DpsConfig().scale is None
    assert official_scale(_op("inpaint", box_size=6)) == 0.5 and official_scale(_op("cs", fraction=0.1)) == 0.5
    assert official_scale(_op("sr", scale=4)) == 0.3 and official_scale(_op("deblur", kernel_sigma=1.0)) == 0.3
    assert official_scale(_op("sr", scale=2, sigma_y=0.05)) == 0.3  # noise does not change the task


def test_dps_applies_the_official_scale_of_the_task(gaussian_prior, clean):
    op = _op("inpaint", box_size=6)
    y = op.A(clean[:1])
    auto = build_solver("dps", gaussian_prior, steps=4)(y, op, seeds=[0])
    half = build_solver("dps", gaussian_prior, steps=4, scale=0.5)(y, op, seeds=[0])
    low = build_solver("dps", gaussian_prior, steps=4, scale=0.3)(y, op, seeds=[0])
    assert auto.extras["scale"] == 0.5 and torch.equal(auto.x0, half.x0) and not torch.allclose(auto.x0, low.x0)


def test_ddnm_deblurring_cuts_small_singular_values_as_the_official_code(gaussian_prior, clean):
    op = Blur(SHAPE, gaussian_kernel(9, 2.0))
    ddnm = build_solver("ddnm", gaussian_prior, steps=4)
    A, A_pinv = ddnm.range_maps(op)
    svd = operator_svd(op)
    assert A != op.A and int((svd.truncated(3e-2).singulars == 0).sum()) > 0
    x = clean[:1].double()
    # The cut pseudo-inverse inverts the kept directions only: A^+ A is the projection onto them.
    kept = svd.truncated(3e-2)
    assert torch.allclose(A_pinv(A(x)), kept.V(kept.pad(torch.where(kept.s(x) > 0, kept.Vt(x)[:, :kept.k], 0 * kept.s(x)))),
                          atol=1e-8)
    # zero_below=0 is the exact pseudo-inverse of the operator itself; operators that lose no
    # direction (x4 pooling) keep their own maps.
    assert build_solver("ddnm", gaussian_prior, zero_below=0.0).range_maps(op) == (op.A, op.pinv)
    sr = _op("sr", scale=4)
    assert ddnm.range_maps(sr) == (sr.A, sr.pinv)


@pytest.mark.parametrize("name", ["dip", "selfdeblur", "pinv"])
def test_methods_without_a_diffusion_model_run_on_the_requested_device(name, clean):
    solver = build_solver(name, None, device="cuda:0", **FAST[name])
    assert solver.device == torch.device("cuda:0")
    if torch.cuda.is_available():
        return
    op = _problem(name)
    # On a machine without a GPU the work goes where asked, and fails there (it used to run on the CPU).
    with pytest.raises((RuntimeError, AssertionError), match="CUDA|cuda"):
        solver(op.A(clean[:1]), op, seeds=[0])


# -- batches and counted network calls -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(n for n in FAST if n not in ("dip", "selfdeblur", "naive-inversion")))
def test_a_batch_restores_each_image_as_alone(tiny_unet_16, clean, name):
    """Restoration i depends only on image i and seed i: batch 3 = three batches of 1."""
    op = _problem(name)
    y = op.A(clean)
    solver = build_solver(name, tiny_unet_16, **FAST[name])
    together = solver(y, op, seeds=[5, 6, 7]).x0
    alone = torch.cat([solver(y[i:i + 1], op, seeds=[5 + i]).x0 for i in range(3)])
    # Float32 convolutions of a batch may sum in another order than those of one image.
    assert torch.allclose(together, alone, atol=2e-4), (together - alone).abs().max()


def test_counted_calls_match_what_each_method_asks_for(tiny_unet_16, clean):
    op = _op("inpaint", box_size=6)
    y = op.A(clean[:2])
    counter = CountingDenoiser(tiny_unet_16)
    cases = {"shred": (dict(iterations=3), 3 * 10, 0),           # 3 iterations x 10 DDIM steps, surrogate
             "ddrm": (dict(steps=3), 3, 0), "ddnm": (dict(steps=4), 4, 0),
             "dps": (dict(steps=4), 4, 4),                        # every call backpropagates
             "pinv": ({}, 0, 0)}
    for name, (settings, per_image, grad_per_image) in cases.items():
        counter.reset()
        build_solver(name, counter, **settings)(y, op, seeds=[0, 1])
        assert counter.image_calls == 2 * per_image and counter.grad_image_calls == 2 * grad_per_image, name
    # The exact gradient checkpoints each step: its forward is recomputed in the backward pass.
    counter.reset()
    build_solver("shred", counter, config=ShredConfig(iterations=1, grad="exact"))(y, op, seeds=[0, 1])
    assert counter.image_calls == 2 * 2 * 10 and counter.grad_image_calls == 2 * 2 * 10


@pytest.fixture(scope="module")
def tiny_unet_16(tiny_model_dir):
    from shred.models import load_folder

    return load_folder(tiny_model_dir)
