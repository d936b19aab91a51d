"""Several solutions (Fig. 6): diversity, the per-seed table and report; the old-photo task (Fig. 7)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from shred.cli import main
from shred.metrics import diversity, pairwise_rmse
from shred.operators import AvgPoolSR, Colorize, Compose, TaskOptions, build_task, preset_key
from shred.report import format_table, kernel_image, run_summary, seed_rows
from shred.solvers import Shred, ShredConfig, preset_config


def test_diversity_is_the_mean_pairwise_rms_distance():
    x = torch.zeros(3, 3, 4, 4)
    x[1] += 0.5
    x[2] += 1.0
    d = pairwise_rmse(x)
    assert torch.allclose(d, torch.tensor([[0, .5, 1], [.5, 0, .5], [1, .5, 0]], dtype=torch.float64))
    assert diversity(x) == pytest.approx(2 / 3)
    assert diversity(x[:1].expand(4, -1, -1, -1)) == 0
    with pytest.raises(ValueError):
        diversity(x[:1])


def test_seed_rows_and_summary(gaussian_prior):
    from shred.solvers import to_image_space
    clean = to_image_space(gaussian_prior.sample(1, torch.Generator().manual_seed(1))).float()
    op = build_task("inpaint", (3, 16, 16), TaskOptions(box_size=8, sigma_y=0.02))
    y = op.degrade(clean.double(), torch.Generator().manual_seed(0)).float()
    res = Shred(gaussian_prior, ShredConfig(iterations=5, lr=0.1, clip_x0=False))(y, op, seeds=[0, 1, 2])
    rows = seed_rows(res, op, y, clean=clean)
    assert [r["seed"] for r in rows] == [0, 1, 2] and all(r["iterations"] == 5 for r in rows)
    # The relative error is ||y - A x0|| / ||y|| over the kept pixels, as Result computes it.
    assert rows[1]["rel_error"] == pytest.approx(float(res.measurement_error(op, y)[1]), rel=1e-5)
    # Each column is the metric of that restoration, computed here independently (float64).
    from shred.metrics import psnr, ssim

    for i, r in enumerate(rows):
        x0 = res.x0[i:i + 1].double()
        residual = ((y[i if y.shape[0] > 1 else 0].double() - op.A(x0)[0]) * op.measurement_weight()).norm()
        assert r["noise_ratio"] == pytest.approx(float(residual / (0.02 * op.num_measurements() ** 0.5)), rel=1e-9)
        assert r["psnr"] == pytest.approx(float(psnr(x0, clean.double())), rel=1e-12)
        assert r["ssim"] == pytest.approx(float(ssim(x0, clean.double())), rel=1e-12)
        assert r["loss"] == pytest.approx(float(res.loss_history[4, i]), rel=1e-12)  # the 5th iteration's
    summary = run_summary(res, rows)
    # The box is filled differently from each seed: the restorations differ.
    assert summary["diversity_rmse"] == pytest.approx(diversity(res.x0)) and summary["diversity_rmse"] > 0.01
    table = format_table(rows)
    assert table.splitlines()[0].split()[:2] == ["seed", "iters"] and len(table.splitlines()) == 4
    json.dumps({"summary": summary, "seeds": rows})  # JSON-safe


def test_kernel_image_peak_is_white():
    k = torch.rand(2, 3, 5, 5)
    img = kernel_image(k)
    assert img.shape == (1, 1, 2 * 6 - 1, 3 * 6 - 1) and float(img.max()) == 1.0
    # Each cell scaled by its own maximum (float32 image of float64 ratios), one grey pixel between.
    torch.testing.assert_close(img[0, 0, 6:11, 12:17], (k[1, 2] / k[1, 2].max()).float(), rtol=0, atol=1e-7)
    assert (img[0, 0, 5, :] == 0.5).all() and (img[0, 0, :, 5] == 0.5).all()
    single = torch.rand(7, 7)
    torch.testing.assert_close(kernel_image(single)[0, 0], (single / single.max()).float(), rtol=0, atol=1e-7)


def test_cli_several_seeds_print_a_table_and_report(tmp_path, tiny_model_dir, capsys):
    clean = tmp_path / "c.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(clean)
    y = tmp_path / "y.png"
    assert main(["degrade", str(clean), "--task", "inpaint", "--out", str(y)]) == 0
    capsys.readouterr()
    report = tmp_path / "r.json"
    code = main(["restore", str(y), "--model", str(tiny_model_dir), "--iterations", "2", "--seeds", "0-3",
                 "--clean", str(clean), "--report", str(report), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines[0].split()[:2] == ["seed", "iters"] and len(lines) == 6 and "diversity" in lines[-1]
    rep = json.loads(report.read_text())
    assert [r["seed"] for r in rep["seeds"]] == [0, 1, 2, 3]
    # The reported diversity is that of the written restorations: 8-bit rounding moves each pixel by
    # at most 0.5/255, so a pairwise RMS distance by at most 1/255.
    from shred.io import read_image
    from shred.metrics import psnr

    written = torch.cat([read_image(tmp_path / f"y_restored_seed{s}.png") for s in range(4)])
    assert rep["summary"]["diversity_rmse"] == pytest.approx(diversity(written), abs=1 / 255)
    assert rep["summary"]["diversity_rmse"] > 0.01  # four noises, four different restorations
    # The same rounding moves these PSNRs (~5 dB: RMS errors ~0.5) by < 0.5 %, i.e. < 0.05 dB.
    for r, x in zip(rep["seeds"], written):
        assert r["psnr"] == pytest.approx(float(psnr(x[None], read_image(clean))), abs=0.1)
    assert rep["config"]["iterations"] == 2


def test_old_photo_task_and_preset(tmp_path, tiny_model_dir, capsys):
    op = build_task("old-photo", (3, 16, 16), TaskOptions(scale=2))
    assert isinstance(op, Compose) and isinstance(op.ops[0], Colorize) and isinstance(op.ops[1], AvgPoolSR)
    assert op.out_shape == (1, 8, 8) and preset_key("old-photo") == "old-photo"
    assert preset_config("authors-code", "old-photo").stop == "auto"
    assert preset_config("authors-code", "nonuniform-deblur").iterations == 25
    # A sepia "photo" of the measurement's size: the channel mean is the grey input.
    photo = tmp_path / "old.png"
    rgb = np.random.default_rng(1).random((8, 8, 1)) * np.array([[[1.0, 0.85, 0.6]]])
    Image.fromarray((rgb * 255).astype(np.uint8)).save(photo)
    code = main(["restore", str(photo), "--task", "old-photo", "--scale", "2", "--model", str(tiny_model_dir),
                 "--iterations", "3", "--out", str(tmp_path / "r.png"), "--quiet", "--report", str(tmp_path / "r.json")])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert Image.open(tmp_path / "r.png").size == (16, 16) and Image.open(tmp_path / "r.png").mode == "RGB"
    stop = json.loads((tmp_path / "r.json").read_text())["summary"]["stop"]
    # 8x8 grey: 16 Haar blocks, too few for a noise estimate: the plateau rule decides.
    assert stop["rule"] == "auto" and stop["sigma_source"] == "mad" and stop["sigma_y"] == [None]


def _no_constants(name):
    raise AssertionError(f"not strict JSON: {name}")


def test_a_restoration_equal_to_the_clean_image_is_marked_exact_and_written_as_strict_json():
    """PSNR against an identical image is infinite; the report JSON says so in `psnr_exact` and
    writes the value as null (RFC 8259 has no Infinity: jq and JavaScript refuse it)."""
    from shred.io import json_bytes
    from shred.operators import Identity
    from shred.restoration import RunReport
    from shred.solvers import Result

    x0 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    res = Result(x0=x0, x_T=None, loss_history=torch.zeros(1, 2), iterations=torch.ones(2, dtype=torch.long),
                 wall_time=0.0, seeds=[0, 1])
    clean = x0[:1]
    op = Identity((3, 8, 8))
    rows = seed_rows(res, op, clean, clean=clean)
    assert rows[0]["psnr"] == float("inf") and rows[0]["psnr_exact"] is True
    assert "psnr_exact" not in rows[1] and 0 < rows[1]["psnr"] < 60
    summary = run_summary(res, rows)
    assert summary["psnr_exact"] == 1 and summary["mean_psnr"] == float("inf")
    assert summary["psnr_others"] == rows[1]["psnr"]
    assert "inf" in format_table(rows)  # the printed table keeps the value
    rec = json.loads(RunReport(rows, summary, {"summary": summary, "seeds": rows}).json_bytes(),
                     parse_constant=_no_constants)
    assert rec["seeds"][0]["psnr"] is None and rec["seeds"][0]["psnr_exact"] is True
    assert rec["summary"]["mean_psnr"] is None and rec["summary"]["psnr_exact"] == 1
    assert rec["seeds"][1]["psnr"] == rows[1]["psnr"]
    # Nested lists, tuples and NaN too; strict=False keeps Python's spelling for shred's own files.
    obj = {"a": [float("nan"), 1.5, (float("-inf"),)], "b": {"c": float("inf")}, "d": "inf", "e": 2}
    assert json.loads(json_bytes(obj), parse_constant=_no_constants) == {
        "a": [None, 1.5, [None]], "b": {"c": None}, "d": "inf", "e": 2}
    assert b"Infinity" in json_bytes(obj, strict=False)
