import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from shred.cli import main


@pytest.fixture
def clean_png(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "clean.png"
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(p)
    return p


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_degrade_then_restore_from_the_spec(tmp_path, clean_png, tiny_model_dir, capsys):
    y, spec = tmp_path / "y.png", tmp_path / "y.json"
    code, out, err = run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", y], capsys)
    assert code == 0, err
    assert Image.open(y).size == (8, 8)
    s = json.loads(spec.read_text())
    assert s["task"] == "sr" and s["operator"] == {"name": "sr-avg", "in_shape": [3, 16, 16], "scale": 2}
    out_png, grid = tmp_path / "r.png", tmp_path / "grid.png"
    code, out, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "3", "--out", out_png,
                          "--grid", grid, "--clean", clean_png, "--quiet"], capsys)
    assert code == 0, err
    assert Image.open(out_png).size == (16, 16)
    # The grid: clean, input, restored, each scaled to a 128-pixel cell, 4 pixels apart.
    assert Image.open(grid).size == (3 * (128 + 4) + 4, 16 + 128 + 2 * 4)
    # The printed PSNR is the restoration's against --clean (read back from the 8-bit PNG: the
    # rounding to 1/255 moves it by well under the 0.05 dB allowed).
    from shred.io import read_image
    from shred.metrics import psnr

    printed = float(re.search(r"PSNR (\d+\.\d+) dB", err).group(1))
    assert printed == pytest.approx(float(psnr(read_image(out_png), read_image(clean_png))), abs=0.05)
    assert re.search(r"relative measurement error \d", err)


def test_spec_round_trips_the_operator(tmp_path, clean_png, capsys):
    from shred import read_spec
    from shred.io import read_image

    y = tmp_path / "y.npy"
    code, _, err = run(["degrade", clean_png, "--task", "cs", "--fraction", "0.1", "--seed", "5", "--out", y], capsys)
    assert code == 0, err
    op, spec = read_spec(tmp_path / "y.json")
    x = read_image(clean_png)
    # .npy keeps the measurement exact: it equals A(x) with the rebuilt operator (float32 storage).
    assert torch.allclose(read_image(y), op.A(x), atol=1e-6)
    assert int(op.mask.sum()) == round(0.1 * 256) and spec["seed"] == 5


def test_several_seeds_write_one_file_each(tmp_path, clean_png, tiny_model_dir, capsys):
    y = tmp_path / "y.png"
    run(["degrade", clean_png, "--task", "inpaint", "--out", y], capsys)
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "2", "--seeds", "0-2",
                        "--out", tmp_path / "r.png", "--grid", tmp_path / "g.png", "--quiet"], capsys)
    assert code == 0, err
    assert all((tmp_path / f"r_seed{s}.png").is_file() for s in range(3))
    a, b = (np.asarray(Image.open(tmp_path / f"r_seed{s}.png")) for s in (0, 1))
    assert not np.array_equal(a, b)


def test_restore_with_task_and_resize_policy(tmp_path, tiny_model_dir, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(np.full((6, 6, 3), 128, np.uint8)).save(small)
    # The image keeps the size the measurement implies (6x6 x2 = 12x12), not the model's 16x16.
    code, _, err = run(["restore", small, "--task", "sr", "--scale", "2", "--model", tiny_model_dir,
                        "--iterations", "1", "--quiet"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "small_restored.png").size == (12, 12)
    # --resize restores at the model's size and says what it did to the measurement.
    code, _, err = run(["restore", small, "--task", "sr", "--scale", "2", "--model", tiny_model_dir,
                        "--iterations", "1", "--quiet", "--resize", "--out", tmp_path / "r16.png"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "r16.png").size == (16, 16)
    assert "small.png: resampled from 6x6 to 8x8" in err


def _bad_cases(tmp_path, clean_png, tiny_model_dir):
    notimg = tmp_path / "notimg.png"
    notimg.write_text("hello")
    mask8 = tmp_path / "mask8.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(mask8)
    nan = tmp_path / "nan.npy"
    arr = np.full((8, 8, 3), 0.5, np.float32)
    arr[2, 2, 1] = np.nan
    np.save(nan, arr)
    y = tmp_path / "good_y.png"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(y)
    restore = ["restore", "--model", tiny_model_dir, "--task", "sr", "--scale", "2", "--out", tmp_path / "o.png"]
    return {
        "missing file": (["degrade", tmp_path / "nope.png", "--task", "sr", "--out", tmp_path / "o.png"], "no such file"),
        "not an image": (["degrade", notimg, "--task", "sr", "--out", tmp_path / "o.png"], "not an image"),
        "mask size": (["degrade", clean_png, "--task", "inpaint-mask", "--mask", mask8, "--out", tmp_path / "o.png"],
                      "mask is 8x8 but the image is 16x16"),
        "scale": (["degrade", clean_png, "--task", "sr", "--scale", "3", "--out", tmp_path / "o.png"], "does not divide"),
        "delta_t 0": ([*restore[:1], y, *restore[1:], "--delta-t", "0"], "positive integer"),
        # int() would read "1_0" as 10 and Arabic-Indic digits as 10: only decimal digits are a count.
        "iterations 1_0": ([*restore[:1], y, *restore[1:], "--iterations", "1_0"], "expected an integer, got '1_0'"),
        "iterations in other digits": ([*restore[:1], y, *restore[1:], "--iterations", "\u0661\u0660"],
                                       "expected an integer, got"),
        "delta_t > T": ([*restore[:1], y, *restore[1:], "--delta-t", "1001"], "delta_t must be an integer in 1..T=1000"),
        "NaN": ([*restore[:1], nan, *restore[1:]], "NaN"),
    }


@pytest.mark.parametrize("case", ["missing file", "not an image", "mask size", "scale", "delta_t 0",
                                  "iterations 1_0", "iterations in other digits", "delta_t > T", "NaN"])
def test_bad_input_gives_one_line_and_no_output(case, tmp_path, clean_png, tiny_model_dir, capsys):
    argv, expect = _bad_cases(tmp_path, clean_png, tiny_model_dir)[case]
    before = set(tmp_path.iterdir())
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own checks exit
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(r"shred-ir( restore| degrade)?: error: ", lines[0]), err
    assert expect in lines[0], lines[0]
    assert set(tmp_path.iterdir()) == before  # nothing written, not even a temporary file


def test_existing_output_survives_a_failed_run(tmp_path, clean_png, capsys):
    out = tmp_path / "y.png"
    out.write_bytes(b"precious")
    code, _, _ = run(["degrade", clean_png, "--task", "sr", "--scale", "3", "--out", out], capsys)
    assert code == 2 and out.read_bytes() == b"precious"


def test_help_has_examples_and_runs_as_a_program():
    res = subprocess.run([sys.executable, "-m", "shred.cli", "restore", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "examples:" in res.stdout and "--seeds" in res.stdout


def test_restore_reports_and_honours_the_execution_options(tmp_path, clean_png, tiny_model_dir, capsys):
    y = tmp_path / "y.png"
    run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", y], capsys)
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "2", "--out", tmp_path / "a.png"],
                       capsys)
    assert code == 0, err
    assert "(fp32, NCHW, eager)" in err  # the CPU default
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "2", "--out", tmp_path / "b.png",
                        "--precision", "bf16", "--compile", "none"], capsys)
    assert code == 0, err
    assert "(bf16, NCHW, eager)" in err
    with pytest.raises(SystemExit) as e:
        main(["restore", str(y), "--precision", "int8"])
    assert e.value.code == 2
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from pathlib import Path

    return tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def test_the_console_command_is_shred_ir_and_never_shred():
    # GNU coreutils' `shred` overwrites the files it is given: typed where the virtual environment is
    # not active, `shred restore y.png` destroyed y.png. No script of ours may carry that name.
    assert _pyproject()["project"]["scripts"] == {"shred-ir": "shred.cli:main"}
    from shred.cli import PROG, build_parser

    assert PROG == "shred-ir" and build_parser().prog == "shred-ir"


def test_the_installed_entry_point_is_shred_ir():
    import json as _json
    from importlib.metadata import PackageNotFoundError, distribution
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        dist = distribution("shred")
    except PackageNotFoundError:
        pytest.skip("shred is not installed (pip install -e .)")
    url = _json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if url != root.as_uri():
        pytest.skip(f"the installed shred comes from {url or 'a wheel'}, not from this checkout {root}")
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"shred-ir": "shred.cli:main"}
    exe = Path(sys.executable).parent / "shred-ir"
    res = subprocess.run([str(exe), "restore", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("usage: shred-ir restore"), res.stderr
    assert not (Path(sys.executable).parent / "shred").exists()  # no stale script of the old name


def test_python_dash_m_shred_is_the_same_command():
    res = subprocess.run([sys.executable, "-m", "shred", "degrade", "--task", "sr"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith("shred-ir degrade: error: the following arguments are required: clean, --out")


def _choices(command: str) -> dict:
    from shred.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return {a.dest: list(a.choices) for a in sub._actions if a.choices}


def test_choices_come_from_the_registries():
    from shred.benchmark import DEFAULT_METHODS
    from shred.diffusion import SPACINGS
    from shred.models.fast import COMPILE_MODES, PRECISIONS
    from shred.operators import TASKS
    from shred.solvers import PRESETS, SOLVERS, split_method
    from shred.solvers.shred import INITS, LOSSES
    from shred.solvers.stopping import STOPS
    from shred.train import ARCHITECTURES

    restore = _choices("restore")
    assert restore["precision"] == ["auto", *PRECISIONS]
    assert restore["compile"] == ["auto", "none", *[m for m in COMPILE_MODES if m]]
    assert restore["preset"] == ["auto", *PRESETS]
    assert (restore["spacing"], restore["loss"], restore["init"], restore["stop"]) == \
        (list(SPACINGS), list(LOSSES), list(INITS), list(STOPS))
    assert sorted(restore["grad"]) == ["exact", "surrogate"]
    assert _choices("bench")["preset"] == ["auto", *PRESETS]
    assert _choices("train")["arch"] == list(ARCHITECTURES)
    assert _choices("demo")["task"] == [t for t in TASKS if t != "inpaint-mask"]  # the one that needs a file
    assert {split_method(m)[0] for m in DEFAULT_METHODS} <= set(SOLVERS)


def test_every_command_module_is_registered_once_with_add_parser_and_run():
    from shred import cli

    names = [m.__name__.rsplit(".", 1)[1] for m in cli.COMMANDS]
    assert {"degrade", "restore", "train", "demo", "bench", "models"} <= set(names) and len(set(names)) == len(names)
    assert all(callable(m.add_parser) and callable(m.run) for m in cli.COMMANDS)
    help_text = cli.build_parser().format_help()
    assert all(f"    {name}" in help_text for name in names)


def test_restore_runs_coarse_to_fine_from_the_command_line(tmp_path, clean_png, tiny_model_dir, capsys):
    y = tmp_path / "y.png"
    run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", y], capsys)
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--preset", "bundled", "--iterations", "3",
                        "--coarse-iterations", "2", "--coarse-stride", "5", "--out", tmp_path / "a.png"], capsys)
    assert code == 0, err
    assert "3 iterations x 10 steps (the first 2 at 2 steps)" in err
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--preset", "bundled", "--iterations", "2",
                        "--coarse-iterations", "5", "--out", tmp_path / "b.png"], capsys)
    assert code == 0 and "2 iterations x 10 steps (all at 5 steps: no fine iteration)" in err
    # A stride that can change nothing is said once, not silently ignored.
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "1", "--coarse-stride", "3",
                        "--out", tmp_path / "c.png"], capsys)
    assert code == 0 and "warning: --coarse-stride does nothing without --coarse-iterations" in err
    assert "(the first" not in err
    # SHRED+ runs coarse iterations of its own (12): a stride alone changes them, without a warning
    # about the stride; 2 iterations leave no fine one, which is said.
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--preset", "plus", "--iterations", "2",
                        "--coarse-stride", "5", "--out", tmp_path / "d.png"], capsys)
    assert code == 0 and "2 iterations x 10 steps (all at 2 steps: no fine iteration)" in err, err
    assert "warning: --coarse-stride" not in err
    assert "warning: --coarse-iterations 12 covers all 2 iterations: every one, and the answer, goes through 2" in err
    # The command line names its flags, not the library's settings.
    assert "(set --coarse-iterations below --iterations 2 to end on a fine one)" in err, err
    # A one-step trajectory has nothing for a stride to skip: said, and the counts read as counts.
    code, out, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "1", "--coarse-iterations", "1",
                        "--delta-t", "1000", "--spacing", "trailing", "--coarse-stride", "3",
                        "--out", tmp_path / "e.png"], capsys)
    assert code == 0, err
    assert "warning: --coarse-stride 3 keeps every DDIM step of a 1-step trajectory" in err
    assert "1 iteration x 1 step," in err and "1 seed on" in err and ": 1 iteration, relative" in out
    with pytest.raises(SystemExit) as e:  # argparse's own check
        main(["restore", str(y), "--model", str(tiny_model_dir), "--coarse-iterations", "-1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "coarse_iterations must be an integer >= 0, got -1" in err
    assert len(err.strip().splitlines()) == 1


def test_restore_takes_the_warm_start_and_finish_settings(tmp_path, clean_png, tiny_model_dir, capsys):
    y = tmp_path / "y.png"
    run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", y], capsys)
    outs = {}
    for finish in ("none", "ddnm"):
        r = tmp_path / f"{finish}.json"
        code, _, err = run(["restore", y, "--model", tiny_model_dir, "--preset", "plus", "--iterations", "2",
                            "--warm-from", "pinv", "--warm-strength", "0.7", "--finish", finish, "--finish-t", "200",
                            "--finish-steps", "3", "--report", r, "--out", tmp_path / f"{finish}.png"], capsys)
        assert code == 0, err
        config = json.loads(r.read_text())["config"]
        assert (config["warm_from"], config["warm_strength"], config["finish"]) == ("pinv", 0.7, finish)
        assert (config["finish_t"], config["finish_steps"]) == (200, 3)
        outs[finish] = np.asarray(Image.open(tmp_path / f"{finish}.png"))
    assert not np.array_equal(outs["none"], outs["ddnm"])
    for bad, message in ((["--finish-t", "0"], "finish_t must be"),
                         (["--warm-strength", "1.5"], "warm_strength must be"),
                         (["--finish", "dps"], "invalid choice: 'dps'")):
        with pytest.raises(SystemExit) as e:  # argparse's own check
            main(["restore", str(y), "--model", str(tiny_model_dir), *bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err, err


def test_warm_start_and_finish_settings_that_do_nothing_are_said(tmp_path, clean_png, tiny_model_dir, capsys):
    y = tmp_path / "y.png"
    run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", y], capsys)
    base = ["restore", y, "--model", tiny_model_dir, "--iterations", "1", "--quiet"]
    code, _, err = run([*base, "--preset", "bundled", "--warm-from", "ddrm", "--warm-strength", "0.3",
                        "--finish-t", "200", "--out", tmp_path / "a.png"], capsys)
    assert code == 0, err
    assert "--warm-from and --warm-strength do nothing without --init warm (this run starts from noise)" in err
    assert "--finish-t does nothing without --finish ddnm (this run's finish: none)" in err
    # A folder says the same (the notes come from shred.api.make_restorer, which both use).
    folder = tmp_path / "folder"
    folder.mkdir()
    run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", folder / "y.png"], capsys)
    code, _, err = run(["restore", folder, "--model", tiny_model_dir, "--iterations", "1", "--quiet", "--preset",
                        "bundled", "--finish-steps", "4", "--out", tmp_path / "restored"], capsys)
    assert code == 0 and "--finish-steps does nothing without --finish ddnm" in err, err
    # Asked-for values the finish cannot take are said, with what it takes instead.
    ddnm = [*base, "--finish", "ddnm"]
    code, _, err = run([*ddnm, "--finish-t", "5000", "--finish-steps", "4", "--out", tmp_path / "b.png"], capsys)
    assert code == 0 and "--finish-t 5000 is past the model's last timestep: the finish starts from t = " in err, err
    code, _, err = run([*ddnm, "--finish-t", "5", "--finish-steps", "20", "--out", tmp_path / "c.png"], capsys)
    assert code == 0 and "--finish-steps 20: a finish from t = 5 has 5 distinct steps, and takes 5" in err, err
    code, _, err = run([*base, "--out", tmp_path / "d.png"], capsys)   # the preset's own settings: nothing said
    assert code == 0 and "warning" not in err, err


def test_restore_warnings_name_flags_where_the_library_names_settings():
    from shred.cli.restore import flag_words

    assert flag_words("clip_x0=False with sphere=True") == "--no-clip-x0 with --sphere"
    assert flag_words("init='warm' and finish=\"ddnm\", lr=0.05; kernel_lr=2e-3)") == \
        "--init warm and --finish ddnm, --lr 0.05; --kernel-lr 2e-3)"
    # Bare names with an underscore are flags; bare ordinary words and other tools' names are not.
    assert flag_words("set coarse_iterations below iterations") == "set --coarse-iterations below iterations"
    assert flag_words("shred@plus.coarse_stride=2 and finish_travel_repeat=1") == \
        "shred@plus.coarse_stride=2 and finish_travel_repeat=1"


def test_restore_takes_finish_noise(tmp_path, clean_png, tiny_model_dir, capsys):
    y = tmp_path / "y.npy"
    run(["degrade", clean_png, "--task", "deblur", "--sigma-y", "0.05", "--out", y], capsys)
    outs = {}
    for mode in ("none", "tikhonov"):
        r = tmp_path / f"{mode}.json"
        code, _, err = run(["restore", y, "--model", tiny_model_dir, "--preset", "plus", "--iterations", "2",
                            "--finish", "consistency", "--finish-noise", mode, "--report", r,
                            "--out", tmp_path / f"{mode}.npy", "--quiet"], capsys)
        assert code == 0, err
        assert json.loads(r.read_text())["config"]["finish_noise"] == mode
        outs[mode] = np.load(tmp_path / f"{mode}.npy")
    assert not np.array_equal(outs["none"], outs["tikhonov"])
    with pytest.raises(SystemExit) as e:
        main(["restore", str(y), "--model", str(tiny_model_dir), "--finish-noise", "wiener"])
    assert e.value.code == 2 and "invalid choice: 'wiener'" in capsys.readouterr().err


def test_only_notes_on_settings_are_put_in_flag_words(tmp_path, clean_png, tiny_model_dir, capsys):
    """A file named like a setting keeps its name in a warning about the file."""
    y = tmp_path / "finish_t=5.png"
    run(["degrade", clean_png, "--task", "denoise", "--size", "8", "--out", y], capsys)
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--task", "denoise", "--resize", "--iterations", "1",
                        "--preset", "plus", "--out", tmp_path / "r.png", "--quiet"], capsys)
    assert code == 0, err
    assert "warning: finish_t=5.png: resampled from 8x8 to 16x16" in err, err
    assert "--finish-t 5" not in err
