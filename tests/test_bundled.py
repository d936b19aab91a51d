"""The bundled models, the quick start, and the comparison harness."""
import json
import subprocess
import sys

import numpy as np
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
    assert "PSNR" in res.stdout


def test_bench_harness_runs_resumes_and_reports(tmp_path, capsys):
    from shred.cli import main

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "run"
    argv = ["bench", "--data", str(data), "--n", "2", "--tasks", "sr4,inpaint,blind",
            "--methods", "pinv,shred,ddnm,repaint,shred-blind", "--set", "shred.iterations=2", "--set", "ddnm.steps=3",
            "--set", "repaint.steps=4", "--set", "repaint.jump_n_sample=1", "--set", "shred-blind.iterations=2",
            "--out", str(out), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert set(rows) == {"pinv", "shred", "ddnm", "repaint", "shred-blind"}
    # The prior-free baseline explains noiseless measurements exactly (up to the [0, 1] clamp).
    assert rows["pinv"]["sr4"]["measurement_error"] < 1e-6 and "skipped" in rows["pinv"]["blind"]
    assert "skipped" in rows["repaint"]["sr4"] and "psnr" in rows["repaint"]["inpaint"]
    # Blind methods run on the blind task only; the others need the kernel.
    assert "psnr" in rows["shred-blind"]["blind"] and "skipped" in rows["shred-blind"]["sr4"]
    assert "skipped" in rows["ddnm"]["blind"]
    assert rows["shred"]["sr4"]["settings"] == {"iterations": 2} and rows["ddnm"]["inpaint"]["seconds_per_image"] > 0
    # Every method saw the very same measurements.
    assert (out / "inputs" / "sr4.pt").is_file() and (out / "grids" / "inpaint.png").is_file()
    table = (out / "results.md").read_text()
    assert "| shred |" in table and "n/a" in table and "LPIPS" in table and "Measurement consistency" in table
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "raw").iterdir()}
    assert main(argv) == 0  # resumed: nothing recomputed
    assert {p.name: p.stat().st_mtime_ns for p in (out / "raw").iterdir()} == stamp
