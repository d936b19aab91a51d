"""LeanUNet: diffusers' UNet2DModel forward pass without importing diffusers, for shred's own models."""
import subprocess
import sys

import pytest
import torch

from shred.models.registry import BUNDLED_DIR
from shred.models.lean_unet import LeanUNet, supports
from shred.models.unet import load_folder

SMALL = dict(sample_size=28, in_channels=1, out_channels=1, block_out_channels=[32, 64, 64], layers_per_block=2,
             down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
             up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"], attention_head_dim=16,
             norm_num_groups=16, norm_eps=1e-6, downsample_padding=0, mid_block_scale_factor=1.5,
             freq_shift=1, flip_sin_to_cos=False)


@pytest.mark.parametrize("name", ["cifar10-32", "fashion-mnist-28"])
def test_bundled_models_give_the_same_eps_as_diffusers(name):
    lean = load_folder(BUNDLED_DIR / name)
    ref = load_folder(BUNDLED_DIR / name, lean=False)
    assert isinstance(lean.unet, LeanUNet) and not isinstance(ref.unet, LeanUNet)
    x = torch.randn(3, lean.channels, *lean.image_size, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 421, 999])
    with torch.no_grad():
        a, b = lean(x, t), ref(x, t)
    assert a.abs().max() > 0.5  # a real eps, not a zero tensor
    # The same float32 arithmetic in another order (fused attention, other conv calls): round-off of
    # a few 1e-6 (docs/MODELS.md), held to 1e-4.
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_multi_head_padding_free_odd_sizes_match_diffusers():
    """Multi-head attention, two resnets per level, padding-0 down-sampling, a mid-block scale
    factor and the other sinusoid layout, on 28 -> 14 -> 7 pixels: diffusers' weights load with
    the same keys and give the same output."""
    from diffusers import UNet2DModel

    assert supports(SMALL)
    torch.manual_seed(0)
    ref = UNet2DModel(**SMALL).eval()
    lean = LeanUNet(**SMALL).eval()
    lean.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 1, 28, 28)
    for t in (torch.tensor([3, 700]), torch.tensor(250), 17):
        with torch.no_grad():
            torch.testing.assert_close(lean(x, t).sample, ref(x, t).sample, atol=1e-5, rtol=1e-5)  # float32 order
    assert lean.config.in_channels == 1 and lean.dtype == torch.float32


@pytest.mark.parametrize("change", [dict(resnet_time_scale_shift="scale_shift"), dict(num_class_embeds=10),
                                    dict(down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnSkipDownBlock2D"]),
                                    dict(dropout=0.1), dict(time_embedding_type="fourier")])
def test_other_configurations_are_left_to_diffusers(change):
    assert not supports({**SMALL, **change})
    with pytest.raises(ValueError, match="diffusers"):
        LeanUNet(**{**SMALL, **change})


@pytest.mark.slow  # a fresh interpreter importing torch
def test_loading_a_bundled_model_does_not_import_diffusers():
    code = ("import sys, shred; d = shred.load_model('cifar10-32'); "
            "print(type(d.unet).__name__, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LeanUNet", "False"]
