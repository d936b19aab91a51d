import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHRED_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(*parts) -> Path:
    """A path under ../shared/data, skipping the test with a reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


@pytest.fixture(scope="session")
def gaussian_prior():
    """A 3x16x16 analytic prior with pixel means in [-0.5, 0.5] and stds in [0.1, 0.3]."""
    from shred.models import GaussianPrior

    g = torch.Generator().manual_seed(0)
    mu = torch.rand(3, 16, 16, generator=g, dtype=torch.float64) - 0.5
    sigma = 0.1 + 0.2 * torch.rand(3, 16, 16, generator=g, dtype=torch.float64)
    return GaussianPrior(mu, sigma)


TINY_UNET = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[8, 16],
                 down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                 layers_per_block=1, norm_num_groups=4, attention_head_dim=8)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-weight 3x16x16 diffusers UNet saved in shred's folder format."""
    from shred.diffusion import NoiseSchedule
    from shred.models import build_unet, save_folder

    torch.manual_seed(0)
    unet = build_unet(TINY_UNET)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_folder(unet, NoiseSchedule.linear(), folder, name="tiny-random", dtype=torch.float32)
    return folder
