import pytest
import torch

from shred.errors import ShredError
from shred.metrics import frechet_distance, kernel_distance, laplacian_pyramid, psnr, swd
from shred.metrics.features import SmallResNet, _crop, load_classifier, save_classifier


def test_psnr_closed_form():
    x = torch.zeros(2, 1, 4, 4)
    y = x + 0.1
    assert torch.allclose(psnr(y, x), torch.full((2,), 20.0, dtype=torch.float64))


def test_frechet_distance_of_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 4, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    # Equal covariances: the distance is the squared mean shift, 1, up to sampling error.
    assert frechet_distance(a, b) == pytest.approx(1.0, abs=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Scaling one set by 2: trace term (1 + 4 - 2 * 2) = 1 per dimension.
    assert frechet_distance(a, 2 * a) == pytest.approx(4.0, rel=0.02)


def test_kernel_distance_is_near_zero_for_one_distribution():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    same, _ = kernel_distance(a, b, subsets=10, subset_size=500)
    shifted, _ = kernel_distance(a, b + 1, subsets=10, subset_size=500)
    assert abs(same) < 0.05 < shifted


def test_laplacian_pyramid_sums_back_for_constant_images():
    x = torch.full((1, 3, 32, 32), 0.7, dtype=torch.float64)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    assert levels[0].abs().max() < 1e-12 and torch.allclose(levels[-1], torch.full_like(levels[-1], 0.7))


def test_swd_separates_distributions():
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32)
    smooth = lambda n: (torch.rand(n, 3, 1, 1, generator=g) * ramp).expand(n, 3, 32, 32)  # noqa: E731
    a, b = smooth(100), smooth(100)
    noise = torch.rand(100, 3, 32, 32, generator=g)
    near, far = swd(a, b, patches_per_image=16), swd(a, noise, patches_per_image=16)
    assert set(far) == {"level0_32px", "level1_16px", "level2_8px", "mean"}
    assert near["mean"] * 3 < far["mean"]


def test_classifier_features_and_save_load(tmp_path):
    net = SmallResNet(channels=1, classes=10, width=8).eval()
    x = torch.rand(3, 1, 28, 28)
    assert net.features(x).shape == (3, 32) and net(x).shape == (3, 10)
    save_classifier(net, tmp_path / "c", {"test_accuracy": 0.5}, name="t")
    again = load_classifier(tmp_path / "c")
    assert torch.allclose(again.features(x), net.features(x), atol=1e-6)


def test_random_crops_are_shifts():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = _crop(torch.nn.functional.pad(x, (4, 4, 4, 4)), torch.tensor([4]), torch.tensor([5]), 4, 4)
    assert torch.equal(out[0, 0, :, :3], x[0, 0, :, 1:])


def test_lpips_is_reported_unavailable_not_faked():
    from shred.metrics.perceptual import lpips_metric

    fn, label = lpips_metric()
    try:
        import lpips  # noqa: F401
        have = True
    except ImportError:
        have = False
    if not have:
        assert fn is None and label.startswith("unavailable")
    else:  # pragma: no cover - only where the real package is installed
        assert fn is not None or label.startswith("unavailable")


def test_pluggable_torchscript_feature_network(tmp_path):
    from shred.metrics.features import load_feature_net

    class Pool(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    example = (torch.ones(2, 3, 8, 8),)
    torch.export.save(torch.export.export(Pool(), example), str(tmp_path / "my-inception.pt2"))
    fn, label = load_feature_net(str(tmp_path / "my-inception.pt2"))
    assert label == "FID" and fn(torch.ones(2, 3, 8, 8)).shape == (2, 3)
    torch.export.save(torch.export.export(Pool(), example), str(tmp_path / "pool.pt2"))
    assert load_feature_net(str(tmp_path / "pool.pt2"))[1] == "FD-pool"
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(ShredError, match="not an exported"):
        load_feature_net(str(tmp_path / "junk.pt2"))
    fn, label = load_feature_net("cifar10")
    assert label == "FID-C10" and fn(torch.rand(2, 3, 32, 32)).shape == (2, 128)
