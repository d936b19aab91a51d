"""Realism metrics: shred's KID / FID formulas against torchmetrics', and the Inception wiring."""
import pytest
import torch
from torch import nn

from shred.metrics import extract_features
from shred.metrics.realism import realism

torchmetrics = pytest.importorskip("torchmetrics")


class TinyFeatures(nn.Module):
    """A fixed random conv net mapping [B, 3, H, W] images in [0, 1] to 16 features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.num_features = 16

    def forward(self, x):
        if x.dtype == torch.uint8:
            x = x.float() / 255
        return self.conv(x).relu().mean(dim=(2, 3)).double()


def _sets(n_fake=30, n_real=40):
    g = torch.Generator().manual_seed(0)
    real = torch.rand(n_real, 3, 16, 16, generator=g)
    fake = (torch.rand(n_fake, 3, 16, 16, generator=g) * 0.8 + 0.1).clamp(0, 1)
    return fake, real


def test_fid_and_kid_agree_with_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    net = TinyFeatures().eval()
    fake, real = _sets()
    ours = realism(extract_features(net, fake), extract_features(net, real), subset_size=30, reference_subset_size=None)
    fid = FrechetInceptionDistance(feature=net, normalize=True)
    # Every subset of size n_fake holds all the fake images: KID differs only by the real subsets,
    # which both draw at random; with n_real = n_fake it would be deterministic, see below.
    fid.update(real, real=True)
    fid.update(fake, real=False)
    # Same formula on the same features; torchmetrics accumulates sums in float64 as we do.
    assert ours["fid"] == pytest.approx(float(fid.compute()), rel=1e-4)
    real30 = real[:30]
    ours30 = realism(extract_features(net, fake), extract_features(net, real30), subset_size=30,
                     reference_subset_size=None)
    kid = KernelInceptionDistance(feature=net, subsets=5, subset_size=30, normalize=True)
    kid.update(real30, real=True)
    kid.update(fake, real=False)
    mean, std = kid.compute()
    # With subsets as large as both sets every subset is the whole set: no randomness left.
    assert ours30["kid"] == pytest.approx(float(mean), rel=1e-6) and ours30["kid_std"] == pytest.approx(0, abs=1e-12)
    assert float(std) == pytest.approx(0, abs=1e-12)


def test_identical_sets_are_at_zero_and_a_shift_is_seen():
    net = TinyFeatures().eval()
    _, real = _sets(40, 40)
    f = extract_features(net, real)
    same = realism(f, f, subset_size=40, reference_subset_size=None)
    darker = realism(extract_features(net, real * 0.5), f)
    # FID of a set with itself is 0 up to round-off; the unbiased KID is 0 in expectation, and its
    # value on one set is of order 1/n of the kernel's spread: far below a real difference.
    assert abs(same["fid"]) < 1e-9 and darker["fid"] > 0.01
    assert darker["kid"] > 0 and abs(same["kid"]) < darker["kid"] / 10


def test_inception_features_are_wired_through_the_loader(monkeypatch):
    """Users with Inception weights get FID / KID proper; offline, a stand-in network takes its place."""
    import shred.metrics.features as features

    monkeypatch.setattr(features, "inception_network", lambda: TinyFeatures().eval())
    extractor, label = features.load_feature_net("inception")
    assert label == "FID" and features.kid_label(label) == "KID"
    fake, _ = _sets()
    got = extract_features(extractor, fake)
    # The network sees uint8 images, as FID's reference implementation feeds Inception.
    want = TinyFeatures()((fake * 255).round().to(torch.uint8)).float()
    assert torch.allclose(got, want, atol=1e-6)


def test_inception_without_its_weights_is_one_clear_error():
    from shred.errors import ShredError
    from shred.metrics.features import load_feature_net

    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(ShredError, match="torch-fidelity"):
            load_feature_net("inception")
    else:
        pytest.skip("torch-fidelity is installed here")


def test_a_larger_reference_draw_lowers_the_spread_and_stays_unbiased():
    net = TinyFeatures().eval()
    g = torch.Generator().manual_seed(3)
    ref = extract_features(net, torch.rand(400, 3, 16, 16, generator=g))
    same = extract_features(net, torch.rand(40, 3, 16, 16, generator=g))     # the same distribution
    shifted = extract_features(net, 0.7 * torch.rand(40, 3, 16, 16, generator=g))
    equal = realism(same, ref, subset_size=40, reference_subset_size=None)
    large = realism(same, ref, subset_size=40, reference_subset_size=400)
    moved = realism(shifted, ref, subset_size=40, reference_subset_size=400)
    # All 400 reference rows in every draw: no spread from the reference side at all.
    assert large["kid_std"] < 1e-12 < equal["kid_std"]
    # Unbiased: a sample of the reference distribution sits near 0, far below a real shift.
    assert abs(large["kid"]) < moved["kid"] / 10


def test_one_image_is_refused_in_one_sentence():
    from shred.errors import ShredError

    g = torch.Generator().manual_seed(0)
    feats, ref = torch.randn(1, 8, generator=g), torch.randn(30, 8, generator=g)
    with pytest.raises(ShredError, match="at least 2 images on each side, got 1 restorations and 30"):
        realism(feats, ref)
    with pytest.raises(ShredError, match="got 30 restorations and 1 reference"):
        realism(ref, feats)
    assert realism(ref[:2], ref)["n"] == 2
