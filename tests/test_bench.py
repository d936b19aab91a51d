"""The comparison harness (`shred-ir bench`): one run folder, resumable, safe to read, honest counts.

A random-weight 16x16 UNet and random images keep it fast: what is tested is the harness (which
images, which settings, how many network calls, what is reused, what is refused), not quality.
"""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from shred.cli import main
from shred.metrics import psnr

TINY_SETTINGS = ["--set", "shred@bundled.iterations=2", "--set", "shred@authors-code.iterations=1",
                 "--set", "ddrm.steps=2", "--set", "repaint.steps=4", "--set", "repaint.jump_n_sample=1",
                 "--set", "dip.iterations=2", "--set", "dip.channels=8", "--set", "shred-blind.iterations=2"]


def _images(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        # Smooth random images (bilinear up-sampled noise), closer to photos than white noise.
        small = Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8))
        small.resize((16, 16), Image.BILINEAR).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-data")
    return _images(root / "test", 6, 0), _images(root / "ref", 12, 1)


def _argv(out, data, tiny_model_dir, *extra):
    test, ref = data
    return ["bench", "--data", str(test), "--model", str(tiny_model_dir), "--reference", str(ref),
            "--reference-n", "12", "--min-realism-images", "2", "--device", "cpu", "--out", str(out), "--quiet",
            "--n", "2", *extra]


def _stamps(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_bench_reports_realism_counts_and_resumes(tmp_path, data, tiny_model_dir):
    out = tmp_path / "run"
    argv = _argv(out, data, tiny_model_dir, "--n", "3", "--n-for", "blind=2", "--tasks", "sr4,inpaint,blind",
                 "--methods", "pinv,shred@bundled,shred@authors-code,ddrm,repaint,dip,shred-blind",
                 "--max-images", "dip=1", "--batch", "2", *TINY_SETTINGS)
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["fid_label"] == "FID-C10" and res["kid_label"] == "KID-C10"
    sr4, blind = res["tasks"]["sr4"], res["tasks"]["blind"]
    assert sr4["n"] == 3 and len(sr4["indices"]) == 3 and blind["n"] == 2
    rows = sr4["rows"]
    # Calls are counted at the network: 2 iterations x 10 DDIM steps, 1 x 10, 2 DDRM steps, none.
    assert rows["shred@bundled"]["calls_per_image"] == 20 and rows["shred@authors-code"]["calls_per_image"] == 10
    assert rows["ddrm"]["calls_per_image"] == 2 and rows["pinv"]["calls_per_image"] == 0
    assert rows["shred@bundled"]["config"]["iterations"] == 2 and rows["shred@bundled"]["config"]["lr"] == 0.03
    for m in ("shred@bundled", "ddrm", "pinv"):
        e = rows[m]
        assert e["n"] == 3 and np.isfinite([e["psnr"], e["ssim"], e["kid"], e["fid"], e["seconds_per_image"]]).all()
        assert e["kid_std"] >= 0 and e["fid"] >= 0
    assert rows["pinv"]["measurement_error"] < 1e-6  # A^+ y explains noiseless SR exactly
    assert rows["dip"]["n"] == 1 and "kid" not in rows["dip"]  # below the realism threshold, not computed
    assert "skipped" in rows["repaint"] and "skipped" in rows["shred-blind"]
    assert blind["rows"]["shred-blind"]["n"] == 2 and "skipped" in blind["rows"]["ddrm"]
    for ref_row in ("clean images", "A^+ y"):
        assert np.isfinite(sr4["reference_rows"][ref_row]["kid"])
    # Blind deblurring: the input row is the blurred measurement itself, scored like the methods.
    assert "A^+ y" not in blind["reference_rows"]
    blurred = load_file(out / "inputs" / "blind.safetensors")
    expected = float(psnr(blurred["y"].float().clamp(0, 1), blurred["x"].float()).mean())
    assert blind["reference_rows"]["input y"]["psnr"] == pytest.approx(expected, abs=1e-6)
    table = (out / "results.md").read_text()
    assert "KID-C10" in table and "FID-C10" in table and "| FID |" not in table and "*clean images*" in table
    assert (out / "grids" / "sr4.png").is_file()
    # Nothing in the run folder is a pickle: tensors are safetensors, the rest JSON, markdown, PNG.
    assert {p.suffix for p in out.rglob("*") if p.is_file()} <= {".json", ".safetensors", ".md", ".png"}

    stamps = _stamps(out / "raw")
    assert main(argv) == 0  # resumed: every chunk is reused
    assert _stamps(out / "raw") == stamps

    # Changed settings are a new key: recomputed, never mixed with the old results.
    changed = [a if a != "shred@bundled.iterations=2" else "shred@bundled.iterations=3" for a in argv]
    assert main(changed) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["tasks"]["sr4"]["rows"]["shred@bundled"]["calls_per_image"] == 30
    assert len(list((out / "raw" / "sr4" / "shred_at_bundled").iterdir())) == 2
    assert all(_stamps(out / "raw")[k] == v for k, v in stamps.items())


def test_batch_size_does_not_change_the_restorations(tmp_path, data, tiny_model_dir):
    runs = {}
    for batch in (1, 3):
        out = tmp_path / f"b{batch}"
        assert main(_argv(out, data, tiny_model_dir, "--n", "3", "--tasks", "sr4", "--methods", "shred@bundled,ddrm",
                          "--batch", str(batch), "--features", "none", *TINY_SETTINGS[:2], *TINY_SETTINGS[4:6])) == 0
        runs[batch] = json.loads((out / "results.json").read_text())["tasks"]["sr4"]["rows"]
    for m in ("shred@bundled", "ddrm"):
        # Float32 convolutions of a batch may sum in another order than one image's.
        assert abs(runs[1][m]["psnr"] - runs[3][m]["psnr"]) < 1e-3, m
        assert runs[1][m]["calls_per_image"] == runs[3][m]["calls_per_image"]


@pytest.mark.parametrize("extra,message", [
    (["--methods", "ddrm", "--set", "ddrm.stepz=3"], "ddrm: unknown setting stepz; valid: steps"),
    (["--methods", "ddpm"], "unknown method 'ddpm'"),
    (["--methods", "ddrm", "--set", "dip.iterations=2"], "not among the methods"),
    (["--methods", "ddrm", "--n", "7"], "holds 6 images, fewer than the 7 asked for"),
    (["--methods", "ddrm", "--tasks", "sr5"], "unknown tasks sr5"),
    (["--methods", "ddrm", "--set", "ddrm.eta=2"], "DDRM eta must be a number in [0, 1], got 2"),
    # Checked before any method runs, not when the report needs the reference features.
    (["--methods", "pinv", "--reference-n", "13"], "has 12 images, fewer than the 13 asked for; lower --reference-n"),
])
def test_bad_runs_are_refused_before_anything_is_created(tmp_path, data, tiny_model_dir, capsys, extra, message):
    out = tmp_path / "run"
    assert main(_argv(out, data, tiny_model_dir, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_setting_added_later_at_its_default_recomputes_nothing(tmp_path, data, tiny_model_dir):
    from shred.benchmark.run import LATER_SETTINGS, key_config
    from shred.solvers import ShredConfig

    # The key of a run stored before invert_fixed_point existed is the one made today at its default.
    stored = {k: v for k, v in ShredConfig().to_dict().items() if k not in LATER_SETTINGS}
    assert key_config(ShredConfig().to_dict()) == stored
    assert key_config(ShredConfig(invert_fixed_point=3).to_dict()) == {**stored, "invert_fixed_point": 3}
    from shred.solvers import BlindConfig   # the blind variant's settings enter the key the same way
    search = ("kernel_estimate", "search_widths", "search_steps", "search_sigma", "restore_sigma")
    blind = {k: v for k, v in BlindConfig().to_dict().items() if k != "kernel_steps" and k not in search}
    assert key_config(BlindConfig().to_dict()) == blind   # the kernel network never reads the search's settings
    assert key_config(BlindConfig(kernel_steps=20).to_dict()) == {**blind, "kernel_steps": 20}
    b = BlindConfig(kernel_estimate="auto")
    assert key_config(b.to_dict()) == {**blind, **{k: getattr(b, k) for k in search}}
    # restore_sigma came after the first searches: None (the search's noise, as they ran) stays out.
    assert "restore_sigma" not in key_config(b.replace(restore_sigma=None).to_dict())
    out = tmp_path / "run"
    argv = _argv(out, data, tiny_model_dir, "--tasks", "sr4", "--methods", "shred@bundled", "--features", "none",
                 *TINY_SETTINGS[:2])
    assert main(argv) == 0
    raw = lambda: {k: v for k, v in _stamps(out).items() if k.startswith("raw")}  # noqa: E731
    first = raw()
    assert main([*argv, "--set", "shred@bundled.invert_fixed_point=1"]) == 0 and raw() == first
    assert main([*argv, "--set", "shred@bundled.invert_fixed_point=2"]) == 0
    assert len(raw()) > len(first)  # another key: computed beside the first


@pytest.mark.parametrize("text,value", [("shred@plus#v.clip_x0=false", False), ("shred.sphere=True", True),
                                        ("shred.sphere=off", False), ("ddrm.steps=20", 20), ("ddrm.eta=0.5", 0.5),
                                        ("shred.finish=ddnm", "ddnm"), ("shred.lr=on", "on")])
def test_set_values_are_typed_as_people_write_them(text, value):
    from shred.cli.bench import setting

    method, name, got = setting(text)
    assert (method, name) == tuple(text.split("=")[0].rsplit(".", 1)) and got == value and type(got) is type(value)


def test_a_coarse_stride_that_changes_nothing_is_said(tmp_path, data, tiny_model_dir, capsys):
    argv = _argv(tmp_path / "run", data, tiny_model_dir, "--tasks", "sr4", "--features", "none", "--n", "1",
                 "--methods", "shred@bundled,shred@plus", "--set", "shred@bundled.iterations=1",
                 "--set", "shred@plus.iterations=1", "--set", "shred@bundled.coarse_stride=3",
                 "--set", "shred@plus.coarse_stride=3")
    assert main(argv) == 0
    err = capsys.readouterr().err
    # bundled runs no coarse iterations; plus runs its own, which the stride changes.
    assert "shred@bundled.coarse_stride=3 does nothing on sr4: no coarse iterations there" in err
    assert "shred@plus.coarse_stride" not in err


def test_an_out_that_is_a_file_is_refused(tmp_path, data, tiny_model_dir, capsys):
    out = tmp_path / "run"
    out.write_text("keep me")
    assert main(_argv(out, data, tiny_model_dir, "--methods", "pinv")) == 2
    assert "is a file" in capsys.readouterr().err and out.read_text() == "keep me"


class _Payload:
    """Unpickling this touches a marker file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_pickles_never_run_and_damaged_chunks_are_recomputed(tmp_path, data, tiny_model_dir, capsys):
    out = tmp_path / "run"
    argv = _argv(out, data, tiny_model_dir, "--n", "2", "--tasks", "sr4", "--methods", "ddrm", "--batch", "2",
                 "--features", "none", "--set", "ddrm.steps=2")
    assert main(argv) == 0
    marker = tmp_path / "ran"
    (chunk,) = (out / "raw" / "sr4" / "ddrm").rglob("0-2.safetensors")
    chunk.write_bytes(pickle.dumps(_Payload(marker)))
    assert main(argv + ["--report-only"]) == 0  # the damaged chunk is left out of the report
    assert "missing" in json.loads((out / "results.json").read_text())["tasks"]["sr4"]["rows"]["ddrm"]
    assert main(argv) == 0
    assert not marker.exists()
    assert chunk.read_bytes()[:8] != pickle.dumps(_Payload(marker))[:8]  # recomputed as safetensors
    # A planted input file is refused in one line that names it; nothing runs.
    (out / "inputs" / "sr4.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inputs/sr4.safetensors: damaged" in err[0] and not marker.exists()


def test_report_only_and_help(tmp_path, data, tiny_model_dir, capsys):
    assert main(["bench", "--out", str(tmp_path / "none"), "--report-only"]) == 2
    assert "holds no run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "--batch" in text and "KID-C10 / FID-C10" in text and "calls" in text


def test_report_only_of_a_whole_comparison_run_in_parts(tmp_path, data, tiny_model_dir):
    """Parts run with narrowed --tasks/--methods; --report-only with the whole command line reports
    them all (the methods not run as missing) and leaves the run's config.json alone."""
    out = tmp_path / "run"
    common = ["--features", "none", "--set", "ddrm.steps=2"]
    assert main(_argv(out, data, tiny_model_dir, "--tasks", "sr4", "--methods", "pinv")) == 0
    assert main(_argv(out, data, tiny_model_dir, "--tasks", "inpaint", "--methods", "pinv,ddrm", *common)) == 0
    before = (out / "config.json").read_bytes()
    assert main(_argv(out, data, tiny_model_dir, "--tasks", "sr4,inpaint", "--methods", "pinv,ddrm", *common,
                      "--report-only")) == 0
    rows = {t: b["rows"] for t, b in json.loads((out / "results.json").read_text())["tasks"].items()}
    assert rows["sr4"]["pinv"]["n"] == 2 and rows["inpaint"]["ddrm"]["n"] == 2
    assert "missing" in rows["sr4"]["ddrm"]
    assert (out / "config.json").read_bytes() == before
    # Without --tasks/--methods it is the last part's configuration.
    assert main(_argv(out, data, tiny_model_dir, "--report-only")) == 0
    assert list(json.loads((out / "results.json").read_text())["tasks"]) == ["inpaint"]


def test_one_image_at_a_time_methods_save_each_image(tmp_path, data, tiny_model_dir):
    """DIP restores image by image; an interrupted run must keep the images it finished."""
    out = tmp_path / "run"
    argv = _argv(out, data, tiny_model_dir, "--n", "3", "--tasks", "sr4", "--methods", "dip", "--features", "none",
                 "--batch", "3", "--set", "dip.iterations=1", "--set", "dip.channels=8")
    assert main(argv) == 0
    chunks = sorted(p.name for p in (out / "raw" / "sr4" / "dip").rglob("*.safetensors"))
    assert chunks == ["0-1.safetensors", "1-2.safetensors", "2-3.safetensors"]


def test_methods_run_on_fewer_images_are_also_compared_on_the_same_images(tmp_path, data, tiny_model_dir):
    out = tmp_path / "run"
    assert main(_argv(out, data, tiny_model_dir, "--n", "3", "--tasks", "sr4", "--methods", "pinv,ddrm",
                      "--max-images", "ddrm=2", "--set", "ddrm.steps=2")) == 0
    res = json.loads((out / "results.json").read_text())
    sr4 = res["tasks"]["sr4"]
    same = sr4["same_images"]
    assert same["n"] == 2 and same["positions"] == [0, 1] and same["methods"] == ["ddrm", "pinv"]
    # ddrm ran on exactly those images: the same figures as its own row; pinv is scored on 2 of its 3.
    for k in ("psnr", "ssim", "kid", "kid_std", "fid", "measurement_error"):
        assert same["rows"]["ddrm"][k] == pytest.approx(sr4["rows"]["ddrm"][k], rel=1e-6, abs=1e-9)
    assert sr4["rows"]["pinv"]["n"] == 3 and same["rows"]["pinv"]["n"] == 2
    # pinv's figures are recomputed on its first 2 images: the per-image PSNRs stored with its chunks.
    per_image = [v for f in sorted((out / "raw" / "sr4" / "pinv").rglob("*.json"))
                 for v in json.loads(f.read_text())["psnr"]]
    assert len(per_image) == 3 and same["rows"]["pinv"]["psnr"] == pytest.approx(sum(per_image[:2]) / 2)
    assert same["rows"]["pinv"]["kid"] != pytest.approx(sr4["rows"]["pinv"]["kid"])
    assert same["reference_rows"]["clean images"]["n"] == 2
    assert "The same 2 images for every method" in (out / "results.md").read_text()
    # All methods on all images: no second table.
    out2 = tmp_path / "run2"
    assert main(_argv(out2, data, tiny_model_dir, "--n", "2", "--tasks", "sr4", "--methods", "pinv,ddrm",
                      "--set", "ddrm.steps=2")) == 0
    assert "same_images" not in json.loads((out2 / "results.json").read_text())["tasks"]["sr4"]


def test_larger_shared_sets_score_fewer_methods_on_more_images(tmp_path, data, tiny_model_dir):
    # ddrm on 2 images, ddnm on 3, pinv on 4: the same-images table has all three on 2; the larger
    # set has pinv and ddnm on 3 (pinv rescored on 3 of its 4, ddnm its own row); 4 holds pinv alone.
    out = tmp_path / "run"
    assert main(_argv(out, data, tiny_model_dir, "--n", "4", "--tasks", "sr4", "--methods", "pinv,ddrm,ddnm",
                      "--max-images", "ddrm=2", "--max-images", "ddnm=3", "--set", "ddrm.steps=2",
                      "--set", "ddnm.steps=2")) == 0
    sr4 = json.loads((out / "results.json").read_text())["tasks"]["sr4"]
    assert sr4["same_images"]["n"] == 2
    (larger,) = sr4["larger_shared_sets"]
    assert larger["n"] == 3 and larger["positions"] == [0, 1, 2] and larger["methods"] == ["ddnm", "pinv"]
    rows = sr4["rows"]
    assert larger["rows"]["ddnm"]["kid"] == pytest.approx(rows["ddnm"]["kid"], rel=1e-6, abs=1e-9)
    assert larger["rows"]["pinv"]["kid"] != pytest.approx(rows["pinv"]["kid"])
    assert larger["reference_rows"]["clean images"]["n"] == 3
    md = (out / "results.md").read_text()
    section = md.split("On larger shared image sets")[1]
    assert "| method | n = 3 |" in section and "| ddnm | " in section and "| ddrm |" not in section
    pinv_kid = 1e3 * larger["rows"]["pinv"]["kid"]
    assert f"| pinv | {pinv_kid:.2f} ± " in section


def test_a_piped_bench_log_has_one_bar_and_no_cursor_movements(tmp_path, data, tiny_model_dir):
    # Piped into a log, the solvers' bars nested under the bench's left "\x1b[A" (cursor up) escapes in
    # it: off a terminal only the solver's bar is drawn (its iterations are what a long run is
    # watched by), and each chunk's line says how far the run is.
    import os
    import subprocess
    import sys

    argv = [a for a in _argv(tmp_path / "run", data, tiny_model_dir, "--tasks", "sr4", "--methods", "shred@bundled",
                             "--features", "none", *TINY_SETTINGS[:2]) if a != "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "shred", *argv], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    # The bar's first state (0/2) is always drawn; later ones only after tqdm's refresh interval,
    # which two tiny iterations may not reach (the bar is cleared on close).
    assert "\x1b[A" not in log and "bench:" not in log and "shred:" in log and "/2 [" in log, log[-2000:]
    assert "shred@bundled" in log and "images 0-1" in log, log[-2000:]


def test_one_image_gets_a_report_without_realism_and_one_is_refused_as_a_minimum(tmp_path, data, tiny_model_dir,
                                                                                 capsys):
    # KID and FID of one image used to crash the report (scipy's sqrtm) after numpy's warnings.
    argv = _argv(tmp_path / "run", data, tiny_model_dir, "--tasks", "sr4", "--methods", "pinv")
    argv[argv.index("--n") + 1] = "1"
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "error" not in err, err
    sr4 = json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]["sr4"]
    assert sr4["reference_rows"]["clean images"] == {"n": 1} and "kid" not in sr4["rows"]["pinv"]
    for flag, value in (("--min-realism-images", "1"), ("--reference-n", "1"), ("--min-realism-images", "0")):
        argv = _argv(tmp_path / "run2", data, tiny_model_dir, "--tasks", "sr4", "--methods", "pinv", flag, value)
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and f"KID and FID need at least 2 images, got {value}" in err, err
    assert not (tmp_path / "run2").exists()


def _refuse(name):
    raise AssertionError(f"not strict JSON: {name}")


def test_an_image_restored_exactly_is_counted_not_averaged_into_an_infinite_psnr(tmp_path, data, tiny_model_dir):
    """Colorization of a grey image: A^+ y is exact, its PSNR infinite, and so is the mean. The
    row says how many images are exact and the mean PSNR over the others."""
    from shred.benchmark.report import _psnr, _psnr_cell

    assert _psnr([20.0, 30.0]) == {"psnr": 25.0}
    row = _psnr([20.0, float("inf"), 30.0])
    assert row["psnr"] == float("inf") and row["psnr_exact"] == 1 and row["psnr_others"] == 25.0
    assert _psnr_cell({**row, "n": 3}) == "inf (1 exact; 25.00 on 2)"
    assert _psnr_cell({**_psnr([float("inf")] * 2), "n": 2}) == "inf (2 exact)"
    test = tmp_path / "grey"
    test.mkdir()
    for i, name in enumerate(sorted(p.name for p in data[0].iterdir())[:3]):
        img = Image.open(data[0] / name)
        (img.convert("L").convert("RGB") if i == 1 else img).save(test / name)
    out = tmp_path / "run"
    assert main(_argv(out, (test, data[1]), tiny_model_dir, "--n", "3", "--tasks", "colorize",
                      "--methods", "pinv")) == 0
    # Strict JSON (no Infinity, which parsers outside Python refuse): the infinite mean is null.
    rows = json.loads((out / "results.json").read_text(), parse_constant=_refuse)["tasks"]["colorize"]
    pinv = rows["rows"]["pinv"]
    assert pinv["psnr"] is None and pinv["psnr_exact"] == 1 and 10 < pinv["psnr_others"] < 60
    assert rows["reference_rows"]["A^+ y"]["psnr_exact"] == 1
    assert f"| pinv | inf (1 exact; {pinv['psnr_others']:.2f} on 2) |" in (out / "results.md").read_text()


def test_the_report_names_the_machine_the_methods_ran_on_not_the_one_writing_it(tmp_path, data, tiny_model_dir):
    """`--report-only` may run elsewhere or with another thread count: the header keeps the
    methods' machine, and says when they ran on several."""
    out = tmp_path / "run"
    assert main(_argv(out, data, tiny_model_dir, "--tasks", "sr4", "--methods", "pinv,ddnm",
                      "--set", "ddnm.steps=2")) == 0
    threads = torch.get_num_threads()
    header = (out / "results.md").read_text().splitlines()[0]
    assert f"{threads} threads" in header
    torch.set_num_threads(threads + 1)
    try:
        assert main(_argv(out, data, tiny_model_dir, "--tasks", "sr4", "--methods", "pinv,ddnm",
                          "--set", "ddnm.steps=2", "--report-only")) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads((out / "results.json").read_text())
    assert res["hardware"]["cpu_threads"] == threads and res["hardware_varies"] is False
    assert (out / "results.md").read_text().splitlines()[0] == header
    # One method's chunks from another machine.
    for meta in (out / "raw").rglob("*.json"):
        rec = json.loads(meta.read_text())
        if rec.get("method") == "ddnm":
            rec["hardware"] = {**rec["hardware"], "cpu": "another CPU"}
            meta.write_text(json.dumps(rec))
    assert main(_argv(out, data, tiny_model_dir, "--tasks", "sr4", "--methods", "pinv,ddnm",
                      "--set", "ddnm.steps=2", "--report-only")) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["hardware_varies"] is True and res["hardware"] is None  # not the machine writing the report
    assert res["tasks"]["sr4"]["rows"]["ddnm"]["hardware"]["cpu"] == "another CPU"
    assert "several machines" in (out / "results.md").read_text().splitlines()[0]
    # A method resumed elsewhere: its row lists both machines.
    from shred.benchmark.report import _one_or_all

    a, b = {"cpu": "A"}, {"cpu": "B"}
    assert _one_or_all([{"hardware": a}, {"hardware": a}], "hardware") == a
    assert _one_or_all([{"hardware": a}, {"hardware": b}, {"hardware": a}], "hardware") == [a, b]


def test_blind_shred_plus_results_are_keyed_by_the_settings_its_kernel_search_restores_with(tmp_path, data,
                                                                                             tiny_model_dir):
    """The kernel search restores with the preset's deblurring settings, not the blind entry's:
    changing those recomputes the run, changing the unused kernel network's does not."""
    out = tmp_path / "run"
    argv = _argv(out, data, tiny_model_dir, "--n", "1", "--tasks", "blind", "--methods", "shred-blind@plus",
                 "--features", "none", "--set", "shred-blind@plus.search_widths=(0.5,1.0)",
                 "--set", "shred-blind@plus.search_steps=2", "--set", "shred-blind@plus.iterations=1",
                 "--set", "shred-blind@plus.coarse_iterations=0")
    assert main(argv) == 0
    raw = lambda: {k: v for k, v in _stamps(out).items() if k.startswith("raw")}  # noqa: E731
    first = raw()
    assert main([*argv, "--set", "shred-blind@plus.kernel_lr=0.01"]) == 0 and raw() == first
    assert main([*argv, "--set", "shred-blind@plus.lr=0.2"]) == 0 and len(raw()) > len(first)
