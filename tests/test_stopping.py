"""Noise-aware stopping (ShredConfig ``stop``): the discrepancy principle and the MAD noise estimate."""
import math

import pytest
import torch

from shred.errors import ShredError
from shred.metrics import psnr
from shred.operators import TaskOptions, build_task
from shred.solvers import Shred, ShredConfig, to_image_space
from shred.solvers.stopping import estimate_sigma_mad, make_stop_rule

SIGMA_Y = 0.05
# A constant rate without clipping or sphere: the analytic problem then keeps fitting the noise
# for as long as it runs, which is what stopping must prevent.
RUN = dict(lr=0.2, iterations=60, clip_x0=False, sphere=False)


@pytest.fixture(scope="module")
def noisy_blur(gaussian_prior):
    clean = to_image_space(gaussian_prior.sample(2, torch.Generator().manual_seed(1))).float()
    op = build_task("deblur", (3, 16, 16), TaskOptions(kernel_sigma=1.0, sigma_y=SIGMA_Y))
    y = op.degrade(clean.double(), torch.Generator().manual_seed(2)).float()
    return clean, op, y


def residual_over_noise(res, op, y):
    return (y - op.A(res.x0)).flatten(1).norm(dim=1) / (SIGMA_Y * math.sqrt(op.num_measurements()))


def test_discrepancy_stops_at_the_noise_level_and_beats_convergence(gaussian_prior, noisy_blur):
    clean, op, y = noisy_blur
    full = Shred(gaussian_prior, ShredConfig(**RUN))(y, op, seeds=[0, 1])
    stopped = Shred(gaussian_prior, ShredConfig(**RUN, stop="discrepancy"))(y, op, seeds=[0, 1])
    assert (stopped.iterations < RUN["iterations"]).all()
    # The stopped iterate is the first whose residual is within tau sigma sqrt(m) (tau = 1): just
    # under the noise level (measured 0.975 and 0.981, after 6 and 4 steps; the iterate before was
    # above 1).
    ratio = residual_over_noise(stopped, op, y)
    assert ((ratio > 0.85) & (ratio <= 1.0)).all(), ratio
    # Running on fits the noise: the residual sinks well below it (measured 0.73, 0.67) and the
    # image degrades: measured 19.0 / 19.4 dB stopped vs 14.2 / 14.2 dB after 60 steps.
    assert (residual_over_noise(full, op, y) < 0.8).all()
    assert (psnr(stopped.x0, clean) > psnr(full.x0, clean) + 3).all()
    info = stopped.extras["stop"]
    assert info["rule"] == "discrepancy" and info["sigma_source"] == "operator"
    assert info["threshold"] == pytest.approx([SIGMA_Y ** 2] * 2)   # the MSE loss at ||r|| = sigma sqrt(m)


def test_auto_estimates_an_unknown_noise_level(gaussian_prior, noisy_blur):
    clean, op, y = noisy_blur
    # op.op is the blur without the noise model: sigma_y is unknown to the solver.
    res = Shred(gaussian_prior, ShredConfig(**RUN, stop="auto"))(y, op.op, seeds=[0, 1])
    est = torch.tensor(res.extras["stop"]["sigma_y"])
    assert res.extras["stop"]["sigma_source"] == "mad"
    # 128 Haar coefficients per image: the estimate is within ~15% (measured 5-10%; the blurred
    # image leaks a little signal into the finest scale, biasing it upwards).
    assert ((est / SIGMA_Y - 1).abs() < 0.2).all(), est
    full = Shred(gaussian_prior, ShredConfig(**RUN))(y, op.op, seeds=[0, 1])
    assert (psnr(res.x0, clean) > psnr(full.x0, clean) + 3).all()


def test_mad_estimate_of_white_noise_and_masks():
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(3, 3, 64, 64, generator=g)
    # 3 x 32 x 32 coefficients: the MAD estimator's standard error is ~1.7% here; 6 % is 3.5 of them.
    assert torch.allclose(estimate_sigma_mad(noise), torch.full((3,), 0.1, dtype=torch.float64), rtol=0.06)
    # A constant image plus noise: the constant cancels in the diagonal detail (up to the float32
    # rounding of the shifted values, ~6e-8 of 0.7).
    assert torch.allclose(estimate_sigma_mad(noise + 0.7), estimate_sigma_mad(noise), rtol=1e-5, atol=1e-6)
    # Only fully measured 2x2 blocks count; a sparse mask leaves none: NaN (the plateau decides).
    mask = torch.zeros(64, 64)
    mask[::4, ::4] = 1
    assert torch.isnan(estimate_sigma_mad(noise * mask, mask)).all()
    box = torch.ones(64, 64)
    box[16:48, 16:48] = 0
    # 3/4 of the blocks remain: standard error ~2 %; 0.1 allows 5 of them.
    assert torch.allclose(estimate_sigma_mad(noise * box, box), torch.full((3,), 0.1, dtype=torch.float64), rtol=0.1)


def test_discrepancy_needs_a_noise_level(gaussian_prior, noisy_blur):
    _, op, y = noisy_blur
    with pytest.raises(ShredError, match="--sigma-y"):
        Shred(gaussian_prior, ShredConfig(**RUN, stop="discrepancy"))(y, op.op, seeds=[0, 1])
    with pytest.raises(ShredError, match="stop"):
        ShredConfig(stop="sometimes")
    with pytest.raises(ShredError, match="tau"):
        ShredConfig(tau=0)


def test_plateau_rule_and_norm_loss_thresholds(noisy_blur):
    _, op, y = noisy_blur
    rule = make_stop_rule("plateau", 1.0, "mse", y, op)
    losses = [1.0, 0.5, 0.4] + [0.4] * 12
    stops = [bool(rule.done(torch.tensor([v, 1.0 / (k + 1)])).any()) for k, v in enumerate(losses)]
    # Image 0 stalls after the third check and stops 10 checks later; image 1 keeps improving.
    assert stops.index(True) == 12
    rule = make_stop_rule("discrepancy", 1.5, "norm", y, op)
    assert rule.threshold.tolist() == pytest.approx([1.5 * SIGMA_Y * math.sqrt(op.num_measurements())] * 2)
    assert make_stop_rule("none", 1.0, "mse", y, op) is None


def test_cli_stop_option(tmp_path, tiny_model_dir, capsys):
    import numpy as np
    from PIL import Image

    from shred.cli import main

    clean = tmp_path / "c.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(clean)
    y = tmp_path / "y.npy"
    assert main(["degrade", str(clean), "--task", "sr", "--scale", "2", "--sigma-y", "0.2", "--out", str(y)]) == 0
    capsys.readouterr()
    # tau 1.5: the random tiny model's residual starts above 1.5 sigma_y sqrt(m) and crosses it
    # within a few iterations (measured 1.47 after 3); at tau = 1 it never would in 8.
    code = main(["restore", str(y), "--model", str(tiny_model_dir), "--iterations", "8", "--lr", "0.05",
                 "--stop", "discrepancy", "--tau", "1.5", "--quiet", "--report", str(tmp_path / "r.json")])
    _, err = capsys.readouterr()
    assert code == 0, err
    import json
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"]["stop"]["rule"] == "discrepancy" and "resid/noise" in err
    row = rep["seeds"][0]
    # It stopped early, at the first iterate within tau sigma_y sqrt(m); the table's resid/noise and
    # the stop threshold (the MSE loss at that residual: (tau sigma_y)^2) say so.
    assert 1 <= row["iterations"] < 8 and 1.0 < row["noise_ratio"] <= 1.5, row
    assert rep["summary"]["stop"]["threshold"] == pytest.approx([(1.5 * 0.2) ** 2], rel=1e-12)


def test_auto_still_estimates_when_only_a_files_rounding_is_known(noisy_blur):
    """An 8-bit file's rounding (with_rounding) is a floor on the noise, not a declared level: "auto"
    estimates sigma_y from y as before (never below the rounding), "discrepancy" refuses as it does
    without any noise level, and a declared level on top of the rounding is used by both."""
    from shred.operators import rounding_std, with_rounding

    _, op, y = noisy_blur
    q = rounding_std(256)
    rounded = with_rounding(op.op, q)
    auto = make_stop_rule("auto", 1.0, "mse", y, rounded)
    assert auto.source == "mad"
    assert torch.equal(auto.sigma, estimate_sigma_mad(y).clamp(min=q))
    assert ((auto.sigma / SIGMA_Y - 1).abs() < 0.2).all()           # the noise in y, not the rounding
    flat = torch.full_like(y, 0.5)                                 # nothing to estimate: the floor
    assert make_stop_rule("auto", 1.0, "mse", flat, rounded).sigma.tolist() == [q, q]
    with pytest.raises(ShredError, match="needs the measurement.s noise level"):
        make_stop_rule("discrepancy", 1.0, "mse", y, rounded)
    both = with_rounding(op, q)                                     # sigma_y 0.05 declared, then rounded
    for stop in ("auto", "discrepancy"):
        rule = make_stop_rule(stop, 1.0, "mse", y, both)
        assert rule.source == "operator"
        assert rule.sigma.tolist() == pytest.approx([math.hypot(SIGMA_Y, q)] * 2)


def test_the_report_divides_by_the_estimated_noise_when_only_the_rounding_is_known(gaussian_prior, noisy_blur):
    from shred.operators import rounding_std, with_rounding
    from shred.report import seed_rows

    _, op, y = noisy_blur
    rounded = with_rounding(op.op, rounding_std(256))
    res = Shred(gaussian_prior, ShredConfig(**RUN, stop="auto"))(y, rounded, seeds=[0, 1])
    est = res.extras["stop"]["sigma_y"]
    assert res.extras["stop"]["sigma_source"] == "mad"
    ratios = [row["noise_ratio"] for row in seed_rows(res, rounded, y)]
    # The stop came at the estimated noise level: the residual is about that level, not 40x the rounding.
    assert all(0.8 < r <= 1.0 for r in ratios), (ratios, est)
    # Without a stop rule nothing estimated the noise, and the rounding alone is not a noise level.
    plain = Shred(gaussian_prior, ShredConfig(**RUN))(y, rounded, seeds=[0, 1])
    assert [row["noise_ratio"] for row in seed_rows(plain, rounded, y)] == [None, None]
