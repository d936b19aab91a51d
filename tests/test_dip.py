"""DIP and SelfDeblur behind the common solver call, at tiny widths and a few iterations."""
import pytest
import torch

from shred.errors import ShredError

from shred.operators import TaskOptions, build_task
from shred.solvers import DIPConfig, SelfDeblurConfig, build_solver
from shred.solvers.dip import SkipNet, dip_official_settings, max_scales

TINY = dict(channels=8, iterations=4)


@pytest.fixture(scope="module")
def clean():
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("task,opts", [("sr", TaskOptions(scale=2)), ("inpaint", TaskOptions(box_size=6)),
                                       ("denoise", TaskOptions()), ("deblur", TaskOptions(kernel_sigma=1.0))])
def test_dip_through_the_common_call(clean, task, opts):
    op = build_task(task, (3, 16, 16), opts)
    y = op.A(clean)
    res = build_solver("dip", None, **TINY)(y, op, seeds=[0, 1])
    assert res.x0.shape == (2, 3, 16, 16) and res.x0.min() >= 0 and res.x0.max() <= 1
    assert res.loss_history.shape == (4, 2) and res.iterations.tolist() == [4, 4] and res.x_T is None
    # Restoration i depends only on seed i (each seeds its own network, input and perturbations).
    again = build_solver("dip", None, config=DIPConfig(**TINY))(y, op, seeds=[1])
    assert torch.allclose(again.x0, res.x0[1:], atol=1e-5)


def test_dip_fits_the_measurement(clean):
    op = build_task("sr", (3, 16, 16), TaskOptions(scale=2))
    res = build_solver("dip", None, channels=16, iterations=60)(op.A(clean), op, seeds=[0])
    # Adam at lr 0.01 fits the 8x8 measurement within 60 steps: the loss falls by over 5x.
    assert res.loss_history[-1, 0] < res.loss_history[0, 0] / 5


def test_dip_official_settings():
    sr4 = dip_official_settings(build_task("sr", (3, 32, 32), TaskOptions(scale=4)))
    assert sr4 == dict(iterations=2000, reg_noise_std=0.03, skip_channels=4, upsample="bilinear")
    assert dip_official_settings(build_task("sr", (3, 32, 32), TaskOptions(scale=8)))["iterations"] == 4000
    inpaint = dip_official_settings(build_task("inpaint", (3, 32, 32)))
    assert inpaint["iterations"] == 6001 and inpaint["skip_channels"] == 128
    noisy = build_task("denoise", (3, 32, 32), TaskOptions(sigma_y=0.1))
    assert dip_official_settings(noisy)["iterations"] == 3000
    assert DIPConfig().resolved(noisy).reg_noise_std == pytest.approx(1 / 30)
    assert DIPConfig(iterations=7).resolved(noisy).iterations == 7
    with pytest.raises(ShredError):
        DIPConfig(lr=-1)


@pytest.mark.parametrize("size", [(16, 16), (20, 28), (17, 17)])
def test_skip_net_keeps_the_input_size(size):
    net = SkipNet(4, 3, down=(8,) * 3, up=(8,) * 3, skip=(2,) * 3, non_local_from=1)
    out = net(torch.rand(1, 4, *size))
    assert out.shape == (1, 3, *size) and (out > 0).all() and (out < 1).all()
    assert max_scales(256, 256) == 7 and max_scales(16, 16) == 3


def test_selfdeblur_estimates_a_valid_kernel(clean):
    op = build_task("blind-deblur", (3, 16, 16), TaskOptions(kernel="random", kernel_size=5),
                    torch.Generator().manual_seed(0))
    res = build_solver("selfdeblur", None, channels=8, skip_channels=4, iterations=6)(op.A(clean), op, seeds=[0])
    k = res.extras["kernel"]
    assert res.x0.shape == (1, 3, 16, 16) and k.shape == (1, 5, 5)
    assert (k >= 0).all() and abs(float(k.sum()) - 1) < 1e-5
    # The estimated operator is the returned kernel's (the restoration was fitted with it).
    assert torch.allclose(res.extras["operators"][0].kernel.float(), k[0].float(), atol=1e-7)  # float64 copy
    # The loss is recorded at every step, and the fit improves on the first step's.
    assert res.loss_history.shape == (6, 1) and float(res.loss_history[-1, 0]) < float(res.loss_history[0, 0])
    same = build_solver("selfdeblur", None, channels=8, skip_channels=4, iterations=2, boundary="same")
    assert same(op.A(clean), op, seeds=[0]).x0.shape == (1, 3, 16, 16)


def test_selfdeblur_on_a_spatially_varying_blur(clean):
    op = build_task("blind-deblur-sv", (3, 16, 16), TaskOptions(kernel_size=3), torch.Generator().manual_seed(0))
    res = build_solver("selfdeblur", None, channels=8, skip_channels=4, iterations=2)(op.A(clean), op, seeds=[0])
    k = res.extras["kernel"]
    assert k.shape == (1, 3, 3, 3, 3) and torch.allclose(k.sum((-2, -1)), torch.ones(1, 3, 3), atol=1e-5)


def test_selfdeblur_needs_a_blur(clean):
    op = build_task("sr", (3, 16, 16), TaskOptions(scale=2))
    with pytest.raises(ShredError, match="blind-deblur"):
        build_solver("selfdeblur", None, channels=8, iterations=1)(op.A(clean), op, seeds=[0])


def test_selfdeblur_official_schedule():
    c = SelfDeblurConfig()
    # selfdeblur_levin.py: 5000 steps, halvings at 2000/3000/4000, SSIM loss from step 1000.
    assert c.iterations == 5000 and [round(m * c.iterations) for m in c.milestones] == [2000, 3000, 4000]
    assert round(c.ssim_from * c.iterations) == 1000 and (c.lr, c.kernel_lr) == (0.01, 1e-4)
    assert SelfDeblurConfig.from_dict(c.to_dict()) == c
