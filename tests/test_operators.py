import json
import math

import numpy as np
import pytest
import torch

from conftest import shared
from shred.errors import ShredError
from shred.operators import (OPERATORS, TASKS, Blur, Mask, TaskOptions, anisotropic_gaussian_kernel, build_task,
                             gaussian_kernel, load_kernel, load_mask, operator_from_spec,
                             random_anisotropic_gaussian_kernel)

SHAPE = (3, 16, 16)


def _mask_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("mask") / "m.npy"
    np.save(p, (np.arange(256).reshape(16, 16) % 3 != 0).astype(np.uint8))
    return str(p)


# One instance of every task, and compositions, built with a fixed generator.
CASES = {
    "denoise": ("denoise", TaskOptions()),
    "inpaint": ("inpaint", TaskOptions(box_size=6)),
    "inpaint-mask": ("inpaint-mask", None),
    "cs": ("cs", TaskOptions(fraction=0.05)),
    "sr": ("sr", TaskOptions(scale=4)),
    "sr-bicubic": ("sr-bicubic", TaskOptions(scale=2)),
    "deblur": ("deblur", TaskOptions(kernel_sigma=1.5)),
    "deblur-random": ("deblur", TaskOptions(kernel="random", kernel_size=7)),
    "colorize": ("colorize", TaskOptions()),
    "colorize+sr": ("colorize+sr", TaskOptions(scale=2)),
    "inpaint+sr": ("inpaint+sr", TaskOptions(scale=2, box_size=4)),
    "noisy-sr": ("sr", TaskOptions(scale=2, sigma_y=0.05)),
    "blind-deblur": ("blind-deblur", TaskOptions(kernel="random", kernel_size=5)),
    "deblur-sv": ("deblur-sv", TaskOptions(kernel_size=5)),
    "blind-deblur-sv": ("blind-deblur-sv", TaskOptions(kernel_size=3)),
    "nonuniform-deblur": ("nonuniform-deblur", TaskOptions()),
    "old-photo": ("old-photo", TaskOptions(scale=2)),
}


def test_every_task_has_a_case():
    covered = {t for task, _ in CASES.values() for t in task.split("+")}
    assert covered == set(TASKS)


@pytest.fixture(params=sorted(CASES))
def op(request, tmp_path_factory):
    task, opts = CASES[request.param]
    if opts is None:
        opts = TaskOptions(mask=_mask_file(tmp_path_factory))
    return build_task(task, SHAPE, opts, generator=torch.Generator().manual_seed(0))


def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_adjoint(op):
    x, y = _rand((2, *op.in_shape), 1), _rand((2, *op.out_shape), 2)
    lhs = (op.A(x) * y).sum()
    rhs = (x * op.AT(y)).sum()
    # float64 sums of ~10^3 products: round-off ~1e-13 relative; a wrong adjoint is off by O(1).
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs.item()))


def test_pseudo_inverse(op):
    x = _rand((2, *op.in_shape), 3)
    Ax = op.A(x)
    err = (op.A(op.pinv(Ax)) - Ax).norm() / Ax.norm()
    # Closed forms are exact to rounding. CGLS (non-separable blur, masked SR) is iterative: it
    # stalls in the directions of tiny singular values of an ill-conditioned blur, which leaves a
    # relative residual near 1e-3 after its 500 iterations (measured 5e-4 for the 7x7 case here).
    iterative = op.coisometry is None and not getattr(op, "separable", True) or op.name == "compose"
    assert err < (2e-3 if iterative else 1e-10), err
    # A^+ y lies in the row space of A: A^+ A A^+ = A^+ for the closed forms.
    if op.coisometry is not None:
        p = op.pinv(Ax)
        assert torch.allclose(op.pinv(op.A(p)), p, atol=1e-10)  # float64 round-off


def test_batching(op):
    x = _rand((3, *op.in_shape), 4)
    batched = op.A(x)
    single = torch.cat([op.A(x[i:i + 1]) for i in range(3)])
    assert batched.shape == (3, *op.out_shape)
    assert torch.allclose(batched, single, atol=1e-12)  # the same float64 ops, batched or not


def test_differentiable(op):
    x = _rand((1, *op.in_shape), 5).requires_grad_(True)
    y = _rand((1, *op.out_shape), 6)
    g, = torch.autograd.grad((op.A(x) * y).sum(), x)
    # For a linear operator the gradient of <A x, y> is A^T y (float64 round-off apart).
    assert torch.allclose(g, op.AT(y), atol=1e-12)


def test_spec_round_trip(op):
    spec = json.loads(json.dumps(op.spec()))
    again = operator_from_spec(spec)
    x = _rand((2, *op.in_shape), 7)
    assert type(again) is type(op) and again.out_shape == op.out_shape
    assert torch.equal(again.A(x), op.A(x))
    assert again.spec() == op.spec()


def test_operators_are_immutable(op):
    with pytest.raises(AttributeError):
        op.in_shape = (1, 2, 2)


def test_float32_input_keeps_float32(op):
    x = torch.rand(1, *op.in_shape)
    assert op.A(x).dtype == torch.float32


def test_registry_names():
    assert {"identity", "mask", "sr-avg", "sr-bicubic", "blur", "colorize", "compose", "noisy"} <= set(OPERATORS)


def test_avgpool_and_colorize_values():
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    sr = build_task("sr", (3, 4, 4), TaskOptions(scale=2))
    assert sr.A(x)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    col = build_task("colorize", (3, 1, 1))
    assert col.A(torch.tensor([[[[0.0]], [[0.3]], [[0.9]]]])).item() == pytest.approx(0.4, rel=1e-6)  # float32


def test_bicubic_preserves_constants_and_smooth_ramps():
    op = build_task("sr-bicubic", (1, 32, 32), TaskOptions(scale=4))
    ones = torch.ones(1, 1, 32, 32, dtype=torch.float64)
    # The bicubic weights sum to 1 (float64 round-off apart).
    assert torch.allclose(op.A(ones), torch.ones(1, 1, 8, 8, dtype=torch.float64), rtol=0, atol=1e-12)
    ramp = torch.arange(32, dtype=torch.float64).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    # Away from the borders a linear ramp is sampled at the block centres (i + 0.5) * 4 - 0.5.
    assert torch.allclose(op.A(ramp)[0, 0, 0, 2:6], torch.tensor([9.5, 13.5, 17.5, 21.5], dtype=torch.float64),
                          rtol=0, atol=1e-10)  # cubic interpolation reproduces linear functions exactly


def test_blur_is_a_convolution():
    k = torch.zeros(3, 3, dtype=torch.float64)
    k[1, 2] = 1  # shifts the image one pixel to the right under convolution
    op = Blur((1, 5, 5), k)
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 1
    shifted = torch.zeros_like(x)
    shifted[0, 0, 2, 3] = 1
    assert torch.equal(op.A(x), shifted)  # the whole image, not one pixel


def test_noise_is_added_only_by_degrade():
    op = build_task("sr", SHAPE, TaskOptions(scale=2, sigma_y=0.1))
    x = torch.rand(1, *SHAPE, dtype=torch.float64)
    y = op.degrade(x, torch.Generator().manual_seed(0))
    assert op.sigma_y == 0.1 and torch.equal(op.A(x), build_task("sr", SHAPE, TaskOptions(scale=2)).A(x))
    # 192 noise values: their std has relative standard error 1/sqrt(384) = 5 %; 0.08-0.12 is 4 of them.
    noise = y - op.A(x)
    assert 0.08 < noise.std().item() < 0.12 and abs(noise.mean().item()) < 0.03  # mean: 4 standard errors


def test_mask_generators_are_seeded_and_exact():
    a = build_task("cs", SHAPE, TaskOptions(fraction=0.05), torch.Generator().manual_seed(3))
    b = build_task("cs", SHAPE, TaskOptions(fraction=0.05), torch.Generator().manual_seed(3))
    c = build_task("cs", SHAPE, TaskOptions(fraction=0.05), torch.Generator().manual_seed(4))
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)
    assert int(a.mask.sum()) == round(0.05 * 256)
    box = build_task("inpaint", (3, 32, 32))
    assert box.mask.sum() == 32 * 32 - 16 * 16 and box.mask[16, 16] == 0 and box.mask[0, 0] == 1


def test_kernel_generators():
    k = gaussian_kernel(9, 1.5)
    assert k.shape == (9, 9) and k.sum().item() == pytest.approx(1, rel=1e-12) and torch.allclose(k, k.T)
    # exp(-r^2 / (2 sigma^2)): neighbours of the centre one pixel apart differ by exp(1 / 4.5).
    assert (k[4, 4] / k[4, 5]).item() == pytest.approx(math.exp(1 / 4.5), rel=1e-12)
    an = anisotropic_gaussian_kernel(21, 1.0, 4.0, 0.0)
    assert an.sum(0).std() > an.sum(1).std()  # wider along x than along y
    r1 = random_anisotropic_gaussian_kernel(41, torch.Generator().manual_seed(0))
    r2 = random_anisotropic_gaussian_kernel(41, torch.Generator().manual_seed(0))
    r3 = random_anisotropic_gaussian_kernel(41, torch.Generator().manual_seed(1))
    assert r1.shape == (41, 41) and torch.equal(r1, r2) and not torch.equal(r1, r3) and (r1 >= 0).all()
    assert r1.sum().item() == pytest.approx(1, rel=1e-12)  # a blur keeps the mean brightness


def test_kernel_files(tmp_path):
    k = np.random.default_rng(0).random((5, 5))
    np.save(tmp_path / "k.npy", k)
    got = load_kernel(str(tmp_path / "k.npy"))
    assert np.allclose(got.numpy(), k / k.sum())
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    with pytest.raises(ShredError, match="odd"):
        load_kernel(str(tmp_path / "even.npy"))
    np.save(tmp_path / "neg.npy", -np.ones((3, 3)))
    with pytest.raises(ShredError, match="negative"):
        load_kernel(str(tmp_path / "neg.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ShredError, match="not a readable"):
        load_kernel(str(tmp_path / "junk.npy"))
    with pytest.raises(ShredError, match="does not exist"):
        load_kernel(str(tmp_path / "missing.npy"))


def test_shared_kernel_files():
    path = shared("kernels", "bird_kernel.npy")
    bird = load_kernel(str(path))
    raw = np.load(path)
    assert bird.shape == (41, 41) and np.allclose(bird.numpy(), raw / raw.sum(), rtol=0, atol=1e-15)
    levin = shared("kernels", "Levin09.mat")
    with pytest.raises(ShredError, match="pick one"):
        load_kernel(str(levin))
    k = load_kernel(f"{levin}:0")
    assert k.sum().item() == pytest.approx(1, rel=1e-12) and k.shape[0] % 2 == 1


def test_mask_files(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "white.png")
    assert load_mask(tmp_path / "white.png").sum() == 256
    with pytest.raises(ShredError, match="mask is 16x16 but the image is 32x32"):
        Mask((3, 32, 32), load_mask(tmp_path / "white.png"))
    ddnm = load_mask(shared("masks", "ddnm_mask.npy"))
    assert ddnm.shape == (256, 256) and float(ddnm.float().mean()) == pytest.approx(48438 / 65536, abs=1e-9)  # pixels kept


def test_bad_task_values():
    with pytest.raises(ShredError, match="does not divide"):
        build_task("sr", (3, 32, 32), TaskOptions(scale=3))
    with pytest.raises(ShredError, match="unknown task"):
        build_task("warp", SHAPE)
    with pytest.raises(ShredError, match="fraction"):
        build_task("cs", SHAPE, TaskOptions(fraction=1.5))
    with pytest.raises(ShredError, match="colour"):
        build_task("colorize", (1, 8, 8))


def test_unwrap_reaches_the_operator_inside_noise_and_one_element_compositions():
    from shred.operators import Blur, Compose, Mask, Noisy, gaussian_kernel, unwrap

    blur = Blur((1, 8, 8), gaussian_kernel(3, 1.0))
    wrapped = Noisy((1, 8, 8), Compose((1, 8, 8), [Noisy((1, 8, 8), blur, 0.1)]), 0.2)
    assert unwrap(wrapped) is blur
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(unwrap(wrapped).A(x), wrapped.A(x))
    two = Compose((1, 8, 8), [blur, Mask((1, 8, 8), torch.ones(8, 8))])
    assert unwrap(two) is two and unwrap(blur) is blur  # nothing to unwrap: the operator itself


def test_with_rounding_adds_in_quadrature_and_the_spec_keeps_the_declared_noise_only():
    from shred.operators import Noisy, operator_from_spec, rounding_std, with_rounding

    blur = build_task("deblur", (1, 8, 8), TaskOptions(kernel_sigma=1.0))
    q = rounding_std(256)
    assert rounding_std(65536) < q / 200
    assert with_rounding(blur, 0.0) is blur
    once = with_rounding(blur, q)
    assert isinstance(once, Noisy) and once.op is blur and once.sigma_y == once.rounding == q
    assert once.declared_sigma_y == 0
    declared = build_task("deblur", (1, 8, 8), TaskOptions(kernel_sigma=1.0, sigma_y=0.02))
    both = with_rounding(declared, q)
    assert both.sigma_y == pytest.approx(math.hypot(0.02, q)) and both.rounding == q
    assert both.declared_sigma_y == 0.02 and not isinstance(both.op, Noisy)
    # A file has one rounding: applied again, it replaces, never adds; 0 takes it away.
    assert with_rounding(both, q).sigma_y == both.sigma_y and with_rounding(once, q).sigma_y == q
    assert with_rounding(once, 0.0) is blur and with_rounding(both, 0.0).spec() == declared.spec()
    # The spec is the measurement's degradation, without the file's rounding: restoring from a
    # spec written after a restore must not count the rounding twice.
    assert once.spec() == blur.spec() and both.spec() == declared.spec()
    assert operator_from_spec(both.spec()).sigma_y == 0.02
    # degrade draws the declared noise only (the file rounds when it is written).
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(once.A(x), blur.A(x)) and torch.equal(once.degrade(x), blur.A(x))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(both.degrade(x, g()), declared.degrade(x, g()))
    for bad in (-1e-3, float("nan"), float("inf"), 2.0, "0.1", None, True):
        with pytest.raises(ShredError, match="rounding noise must be a number in"):
            with_rounding(blur, bad)
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(ShredError, match="levels must be an integer >= 2"):
            rounding_std(bad)
    # What a file's rounding counts as: noise for an uneven operator (a blur) from 8 bits or fewer;
    # nothing for 16 bits, floats, or operators whose singular values are all equal.
    from shred.operators import counted_rounding
    assert (counted_rounding(blur, 256), counted_rounding(blur, 65536), counted_rounding(blur, None)) == (q, 0.0, 0.0)
    assert counted_rounding(blur, 2) == pytest.approx(0.2887, abs=1e-4)
    assert counted_rounding(declared, 256) == q and blur.uneven and declared.uneven
    for task, opts in [("inpaint", {}), ("cs", {"fraction": 0.2}), ("sr", {"scale": 2}), ("colorize", {}),
                       ("denoise", {}), ("colorize+sr", {"scale": 2})]:
        even = build_task(task, (3, 8, 8), TaskOptions(**opts), torch.Generator().manual_seed(0))
        assert not even.uneven and counted_rounding(even, 256) == 0.0, task
    assert build_task("sr-bicubic", (3, 8, 8), TaskOptions(scale=2)).uneven
    # A declared sigma_y of 1 (the most allowed) with a rounding on top is not refused.
    assert with_rounding(Noisy((1, 8, 8), blur, 1.0), q).sigma_y > 1


def test_a_composition_of_one_operator_is_as_even_as_that_operator():
    """A hand-written spec can wrap a single mask in a composition: it stays even (no file rounding
    counted, DDNM+'s simplified form in SHRED+'s finish), as the mask alone is."""
    from shred.operators.linear import Compose

    mask = build_task("inpaint", (3, 8, 8), TaskOptions(box_size=4))
    blur = build_task("deblur", (3, 16, 16), TaskOptions(kernel_sigma=1.0))
    assert not mask.uneven and not Compose(mask.in_shape, [mask]).uneven
    assert blur.uneven and Compose(blur.in_shape, [blur]).uneven


def test_a_large_kernel_blurs_through_the_fft_as_the_direct_convolution_does():
    """Kernels over 15 x 15 taps convolve through the FFT (the paper's 41 x 41 at 256 pixels: 846 ms
    a direct float32 convolution on 2 CPU threads, 3 ms through the FFT); the maps are unchanged."""
    import torch.nn.functional as F

    from shred.operators.kernels import random_anisotropic_gaussian_kernel
    from shred.operators.linear import FFT_TAPS, Blur

    for size in (15, 17, 41):
        k = random_anisotropic_gaussian_kernel(size, generator=torch.Generator().manual_seed(size))
        op = Blur((3, 48, 40), k)
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(2, 3, 48, 40, dtype=torch.float64, generator=g), torch.rand(2, 3, 48, 40, dtype=torch.float64, generator=g)
        w = op.kernel.flip(0, 1).expand(3, 1, size, size)
        torch.testing.assert_close(op.A(x), F.conv2d(x, w, padding=size // 2, groups=3), rtol=0, atol=1e-13)
        torch.testing.assert_close(op.AT(y), F.conv_transpose2d(y, w, padding=size // 2, groups=3), rtol=0, atol=1e-13)
        assert abs(float((op.A(x) * y).sum() - (x * op.AT(y)).sum())) < 1e-10
        direct = size * size <= FFT_TAPS
        # the direct path is bit for bit the convolution; the FFT one is not
        assert torch.equal(op.A(x), F.conv2d(x, w, padding=size // 2, groups=3)) == direct
    # half and bfloat16 images blur too (through float32), as the direct path allows
    for low in (torch.float16, torch.bfloat16):
        out = op.A(x.to(low))
        assert out.dtype == low and torch.allclose(out.double(), op.A(x), atol=2e-2)
    # gradients flow through the FFT path (SHRED differentiates the loss through A)
    x = torch.rand(1, 3, 48, 40, requires_grad=True)
    op.A(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
