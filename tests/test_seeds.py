"""Several seeds of one measurement: the mean image (fidelity) and the per-pixel spread (uncertainty)."""
import numpy as np
import torch
from PIL import Image

from shred.cli import main
from shred.solvers import Result


def test_result_spread_is_the_seed_mean_and_per_pixel_std():
    x0 = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    res = Result(x0=x0, x_T=None, loss_history=torch.zeros(1, 4), iterations=torch.ones(4, dtype=torch.long),
                 wall_time=0.0, seeds=[0, 1, 2, 3])
    mean, std = res.spread()
    assert torch.allclose(mean, x0.mean(0, keepdim=True), atol=1e-6)
    # Population std over the seeds, averaged over the colour channels.
    want = x0.double().std(0, correction=0).mean(0).float()
    assert mean.shape == (1, 3, 8, 8) and std.shape == (1, 1, 8, 8) and torch.allclose(std[0, 0], want, atol=1e-6)


def _x4_measurement(tmp_path):
    """(clean, y): a random 16x16 image and its x4 measurement, written by `shred-ir degrade`."""
    rng = np.random.default_rng(0)
    clean = tmp_path / "clean.png"
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(clean)
    y = tmp_path / "y.png"
    assert main(["degrade", str(clean), "--task", "sr", "--scale", "4", "--out", str(y), "--quiet"]) == 0
    return clean, y


def test_restore_with_several_seeds_writes_their_mean_and_uncertainty(tmp_path, tiny_model_dir, capsys):
    clean, y = _x4_measurement(tmp_path)
    out = tmp_path / "r.png"
    assert main(["restore", str(y), "--model", str(tiny_model_dir), "--seeds", "0-2", "--iterations", "1",
                 "--out", str(out), "--clean", str(clean), "--quiet", "--device", "cpu"]) == 0
    seeds = [np.asarray(Image.open(tmp_path / f"r_seed{s}.png"), dtype=np.float64) for s in range(3)]
    mean = np.asarray(Image.open(tmp_path / "r_mean.png"), dtype=np.float64)
    # The mean of the 8-bit seed images, up to their rounding (half a level each, plus the mean's own).
    assert np.abs(mean - np.mean(seeds, axis=0)).max() <= 1.5
    unc = np.asarray(Image.open(tmp_path / "r_uncertainty.png"), dtype=np.float64)
    assert unc.shape == (16, 16) and unc.max() == 255  # scaled so that the largest spread is white
    assert "the seeds' mean image:" in capsys.readouterr().err


def test_restore_refuses_seed_and_seeds_together(tmp_path, tiny_model_dir, capsys):
    _, y = _x4_measurement(tmp_path)
    capsys.readouterr()
    code = main(["restore", str(y), "--model", str(tiny_model_dir), "--seeds", "0-3", "--seed", "5",
                 "--iterations", "1", "--out", str(tmp_path / "r.png"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--seed and --seeds both given: give one" in err and "Traceback" not in err
    assert not list(tmp_path.glob("r*.png"))  # refused before any work
    assert main(["restore", str(y), "--model", str(tiny_model_dir), "--seed", "5", "--iterations", "1",
                 "--out", str(tmp_path / "one.png"), "--quiet"]) == 0
