"""The bundled models and the quick start."""
import re
import subprocess
import sys

import pytest
import torch
from PIL import Image

from shred.diffusion import ddim_sample, time_pairs
from shred.models import bundled_models, default_model, load_model
from shred.solvers import seeded_noise, to_image_space


@pytest.mark.parametrize("name,shape", [("cifar10-32", (3, 32, 32)), ("fashion-mnist-28", (1, 28, 28))])
def test_bundled_model_loads_and_samples_in_range(name, shape):
    den = load_model(name)
    assert (den.channels, *den.image_size) == shape
    assert den.info["training"]["steps"] > 1000 and den.info["weights_dtype"] == "float16"
    x_T = seeded_noise(shape, [0, 1])
    with torch.no_grad():
        eps = den(x_T, torch.tensor([999, 500]))
        x0 = ddim_sample(den, x_T, time_pairs(1000, steps=10), clip_x0=True)
    assert eps.shape == (2, *shape) and torch.isfinite(eps).all()
    # An eps network at t = 999 sees almost pure noise: its prediction is close to x_T itself.
    assert torch.nn.functional.cosine_similarity(eps.flatten(1), x_T.flatten(1)).min() > 0.9
    img = to_image_space(x0)
    assert img.min() >= 0 and img.max() <= 1 and img.std() > 0.05


def test_bundled_models_are_small_and_picked_by_channels():
    names = {e.name for e in bundled_models()}
    assert names == {"cifar10-32", "fashion-mnist-28"}
    for e in bundled_models():
        assert (e.path / "model.safetensors").stat().st_size <= 16 * 2 ** 20
    assert default_model(3) == "cifar10-32" and default_model(1) == "fashion-mnist-28"


def test_quick_start_demo_in_a_subprocess(tmp_path):
    res = subprocess.run([sys.executable, "-m", "shred", "demo", "--out-dir", str(tmp_path / "demo"), "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    for f in ("clean.png", "degraded.png", "restored.png", "grid.png"):
        assert (tmp_path / "demo" / f).is_file()
    assert Image.open(tmp_path / "demo" / "restored.png").size == (32, 32)
    # SHRED+ (the default for the bundled model): the seed-mean image beats the input (A^+ y).
    m = re.search(r"PSNR ([0-9.]+) dB for the mean of 4 samples .* input shown as A\^\+ y: ([0-9.]+) dB", res.stdout)
    assert m is not None, res.stdout
    assert float(m.group(1)) > float(m.group(2))


