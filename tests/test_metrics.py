import pytest
import torch

from shred.errors import ShredError
from shred.metrics import frechet_distance, kernel_distance, laplacian_pyramid, psnr, swd
from shred.metrics.features import SmallResNet, _crop, load_classifier, save_classifier


def test_psnr_closed_form():
    x = torch.zeros(2, 1, 4, 4)
    y = x + 0.1
    # MSE 0.01 -> 20 dB; float32's 0.1 is off by 1.5e-8 relative, far inside rtol 1e-5.
    assert torch.allclose(psnr(y, x), torch.full((2,), 20.0, dtype=torch.float64))


def test_frechet_distance_of_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 4, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    # Equal covariances: the distance is the squared mean shift, 1, up to sampling error: the
    # shift's estimate has standard error sqrt(2 / 20000) = 0.01, so its square 0.02: 3 standard
    # errors allowed (measured 0.995). A wrong trace term would be off by >= 1.
    assert frechet_distance(a, b) == pytest.approx(1.0, abs=0.06)
    # Identical sets: 0 up to the matrix square root's float64 round-off (measured 2e-15).
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Scaling one set by 2: trace term (1 + 4 - 2 * 2) = 1 per dimension times the sample variances,
    # each within 2 % (4 standard errors of sqrt(2 / 20000)) of 1 (measured 4.027).
    assert frechet_distance(a, 2 * a) == pytest.approx(4.0, rel=0.02)


def test_kernel_distance_is_near_zero_for_one_distribution():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    same, _ = kernel_distance(a, b, subsets=10, subset_size=500)
    shifted, _ = kernel_distance(a, b + 1, subsets=10, subset_size=500)
    # Unbiased KID of one distribution: 0 +- its sampling spread (measured 0.001); a unit shift in
    # all 8 dimensions: 8.6.
    assert abs(same) < 0.05 and shifted > 5


def test_laplacian_pyramid_sums_back_for_constant_images():
    x = torch.full((1, 3, 32, 32), 0.7, dtype=torch.float64)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    # A constant has no detail: float64 round-off only.
    assert levels[0].abs().max() < 1e-12 and torch.allclose(levels[-1], torch.full_like(levels[-1], 0.7),
                                                            rtol=0, atol=1e-12)


def test_swd_separates_distributions():
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32)
    smooth = lambda n: (torch.rand(n, 3, 1, 1, generator=g) * ramp).expand(n, 3, 32, 32)  # noqa: E731
    a, b = smooth(100), smooth(100)
    noise = torch.rand(100, 3, 32, 32, generator=g)
    near, far = swd(a, b, patches_per_image=16), swd(a, noise, patches_per_image=16)
    assert set(far) == {"level0_32px", "level1_16px", "level2_8px", "mean"}
    assert near["mean"] * 3 < far["mean"]  # measured 123 vs 1130: a 9x gap, asked for 3x


def test_classifier_features_and_save_load(tmp_path):
    net = SmallResNet(channels=1, classes=10, width=8).eval()
    x = torch.rand(3, 1, 28, 28)
    assert net.features(x).shape == (3, 32)  # 4 * width, the documented feature size
    assert torch.equal(net(x), net.head(net.features(x)))  # the logits are the head of those features
    save_classifier(net, tmp_path / "c", {"test_accuracy": 0.5}, name="t")
    again = load_classifier(tmp_path / "c")
    # The same float32 weights; 1e-6 allows another summation order in the CPU kernels.
    assert torch.allclose(again.features(x), net.features(x), atol=1e-6)


def test_random_crops_are_shifts():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = _crop(torch.nn.functional.pad(x, (4, 4, 4, 4)), torch.tensor([4]), torch.tensor([5]), 4, 4)
    assert torch.equal(out[0, 0, :, :3], x[0, 0, :, 1:])


def _fake_lpips(build):
    """A stand-in ``lpips`` module whose ``LPIPS(net=..., verbose=...)`` is ``build``."""
    import types

    module = types.ModuleType("lpips")
    module.LPIPS = build
    return module


def test_lpips_is_reported_unavailable_not_faked(monkeypatch):
    import sys

    from shred.metrics.perceptual import lpips_metric

    monkeypatch.setitem(sys.modules, "lpips", None)  # the package is not installed
    fn, label = lpips_metric()
    assert fn is None and label.startswith("unavailable: the lpips package is not installed")

    def offline(net, verbose):  # installed, but the backbone weights cannot be fetched
        raise OSError("no network")

    monkeypatch.setitem(sys.modules, "lpips", _fake_lpips(offline))
    assert lpips_metric("vgg") == (None, "unavailable: vgg weights could not be loaded (OSError)")


def test_lpips_feeds_the_real_network_images_in_its_range(monkeypatch):
    import sys

    from shred.metrics.perceptual import lpips_metric

    seen = []

    class Net(torch.nn.Module):  # records its inputs, answers the mean absolute difference
        def forward(self, a, b):
            seen.append((a, b))
            return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)  # LPIPS's [B, 1, 1, 1]

    monkeypatch.setitem(sys.modules, "lpips", _fake_lpips(lambda net, verbose: Net()))
    fn, label = lpips_metric()
    assert label == "LPIPS-alex"
    x, ref = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    x[1] = 0.5
    assert fn(x, ref).tolist() == [2.0, 1.0]  # on [-1, 1] images: |-1 - 1| = 2, |0 - 1| = 1
    assert seen[0][0].min() == -1 and seen[0][1].max() == 1


@pytest.mark.parametrize("case", ["noise", "blur", "shift", "grey"])
def test_ssim_equals_scikit_image(case):
    # scikit-image's structural_similarity with Wang et al.'s settings (Gaussian window, sigma 1.5,
    # truncated at 3.5 sigma: 11x11; population covariances; K1 = 0.01, K2 = 0.03) averages the
    # SSIM map over the positions whose window lies inside the image: shred's "valid" SSIM.
    from skimage.metrics import structural_similarity

    from shred.metrics import ssim

    g = torch.Generator().manual_seed(7)
    ref = torch.rand(1, 3, 24, 20, generator=g, dtype=torch.float64)
    ref = torch.nn.functional.avg_pool2d(ref, 3, 1, 1)  # some structure
    x = {"noise": (ref + 0.1 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(0, 1),
         "blur": torch.nn.functional.avg_pool2d(ref, 5, 1, 2),
         "shift": torch.roll(ref, 2, dims=-1),
         "grey": ref.mean(1, keepdim=True).expand_as(ref)}[case]
    expected = structural_similarity(x[0].numpy(), ref[0].numpy(), gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=1.0, channel_axis=0)
    got = float(ssim(x, ref)[0])
    # Both compute in float64; they differ only in summation order (measured <= 2.3e-15).
    assert got == pytest.approx(expected, abs=1e-12)
    assert got < 0.99  # a real difference, not two images that agree trivially
    assert float(ssim(ref, ref)[0]) == pytest.approx(1.0, abs=1e-12)


def test_pluggable_torchscript_feature_network(tmp_path):
    from shred.metrics.features import load_feature_net

    class Pool(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    example = (torch.ones(2, 3, 8, 8),)
    torch.export.save(torch.export.export(Pool(), example), str(tmp_path / "my-inception.pt2"))
    fn, label = load_feature_net(str(tmp_path / "my-inception.pt2"))
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert label == "FID" and torch.allclose(fn(x), x.mean(dim=(2, 3)), rtol=0, atol=1e-7)  # float32 mean
    torch.export.save(torch.export.export(Pool(), example), str(tmp_path / "pool.pt2"))
    assert load_feature_net(str(tmp_path / "pool.pt2"))[1] == "FD-pool"
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(ShredError, match="not an exported"):
        load_feature_net(str(tmp_path / "junk.pt2"))
    fn, label = load_feature_net("cifar10")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    from shred.models.registry import BUNDLED_DIR

    assert label == "FID-C10" and torch.equal(fn(x), load_classifier(BUNDLED_DIR / "cifar10-classifier").features(x))
    assert fn(x).shape == (2, 128)
