"""The browser page (`shred-ir ui`): its library helpers, its session layer, the served app driven
with gradio_client, and the page in a real (headless Debian) Chromium.

The served tests share one in-process server on a free 127.0.0.1 port with the bundled cifar10-32
model and run 1-2 SHRED iterations (the browser test a few more, so that its progress bar has
steps to show).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import shred
from shred.errors import ShredError
from shred.operators import TASKS, TaskOptions, build_task
from shred.ui import session
from shred.ui.session import PageRequest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "src" / "shred" / "samples" / "chelsea-32.png"
SCREENSHOT = ROOT / "docs" / "img" / "ui.png"


@pytest.fixture(scope="module")
def den():
    return shred.load_model("cifar10-32")


def _layer(path: Path, box: tuple[slice, slice], size=(32, 32)) -> Path:
    """An RGBA brush layer as the ImageEditor writes it: painted pixels opaque, the rest transparent."""
    a = np.zeros((*size, 4), np.uint8)
    a[box] = (255, 0, 255, 255)
    Image.fromarray(a).save(path)
    return path


def _mask_png(path: Path, box: tuple[slice, slice], size=(32, 32)) -> Path:
    m = np.full(size, 255, np.uint8)
    m[box] = 0  # black = missing
    Image.fromarray(m).save(path)
    return path


# --- the registry drives the page's option widgets -------------------------------------------------
CHANGED = dict(scale=2, fraction=0.5, box_size=4, kernel="random", kernel_size=5, kernel_sigma=1.0)


@pytest.mark.parametrize("name", list(TASKS))
def test_tasks_declare_exactly_the_options_they_read(name, tmp_path):
    base = TaskOptions(mask=str(_mask_png(tmp_path / "m.png", (slice(4, 8), slice(4, 8)), (16, 16))))
    other_mask = str(_mask_png(tmp_path / "m2.png", (slice(0, 3), slice(0, 16)), (16, 16)))

    def spec(opts):
        return build_task(name, (3, 16, 16), opts, generator=torch.Generator().manual_seed(0)).spec()

    reference = spec(base)
    declared = set(TASKS[name].options)
    for option, value in {**CHANGED, "mask": other_mask}.items():
        changed = spec(dataclasses.replace(base, **{option: value}))
        if option in declared:
            # A declared option must matter; with kernel="random" the Gaussian std no longer does.
            if option != "kernel_sigma":
                assert changed != reference, f"{name} declares {option} but ignores it"
        else:
            assert changed == reference, f"{name} reads {option} without declaring it"


def test_options_of_a_chain_is_the_union():
    assert session.options_of("colorize+sr") == {"scale"}
    assert session.options_of("inpaint-mask") == {"mask"}
    assert session.options_of("nonsense") == set()


# --- library helpers the page uses -----------------------------------------------------------------
def test_parse_seeds():
    from shred.seeding import parse_seeds

    assert parse_seeds("3") == [3]
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1, 5-6") == [1, 5, 6]
    assert parse_seeds("-2") == [-2]
    for bad in ("", "a", "3-1", "0-300"):
        with pytest.raises(ShredError):
            parse_seeds(bad)


def test_seed_spread_is_the_mean_and_the_per_pixel_std():
    from shred.report import seed_spread, spread_image

    x0 = torch.zeros(3, 3, 4, 4)
    x0[1] = 0.5
    x0[2, 0] = 1.0  # one channel of one seed differs
    mean, std = seed_spread(x0)
    assert mean.shape == (1, 3, 4, 4) and std.shape == (1, 1, 4, 4)
    assert torch.allclose(mean[0, 0], torch.full((4, 4), 0.5)) and torch.allclose(mean[0, 1], torch.full((4, 4), 1 / 6))
    # per channel: std([0, .5, 1]) = sqrt(1/6); std([0, .5, 0]) = sqrt(1/18) twice; averaged over channels
    expected = (np.sqrt(1 / 6) + 2 * np.sqrt(1 / 18)) / 3
    assert torch.allclose(std, torch.full((1, 1, 4, 4), expected, dtype=torch.float32), atol=1e-6)
    shown, top = spread_image(std)
    assert abs(top - expected) < 1e-6 and torch.allclose(shown, torch.ones_like(shown))
    with pytest.raises(ValueError):
        seed_spread(x0[:1])


# --- the session layer (no server) -----------------------------------------------------------------
def test_stroke_mask_and_the_union_with_a_mask_file(tmp_path):
    layer = _layer(tmp_path / "l.png", (slice(2, 6), slice(3, 9)))
    m = session.stroke_mask([str(layer)], (32, 32))
    assert m.dtype == torch.float64 and int((m == 0).sum()) == 4 * 6 and m[2, 3] == 0 and m[0, 0] == 1
    assert session.stroke_mask([str(_layer(tmp_path / "e.png", (slice(0, 0), slice(0, 0))))], (32, 32)) is None
    mask_file = _mask_png(tmp_path / "m.png", (slice(20, 30), slice(20, 30)))
    union, source = session.page_mask(PageRequest("degrade", str(SAMPLE), strokes=(str(layer),),
                                                  mask_file=str(mask_file)), (32, 32))
    assert source == "file + brush" and int((union == 0).sum()) == 24 + 100
    with pytest.raises(ShredError, match="brush layer is 32x32 but the image is 16x16"):
        session.stroke_mask([str(layer)], (16, 16))


@pytest.mark.parametrize("request_kw, message", [
    (dict(mode="restore", task="sr"), "the measurement is 32x32 but sr on cifar10-32 .* needs 8x8; tick 'Resize'"),
    (dict(mode="degrade", task="inpaint-mask"), "inpaint-mask needs a hole: paint it"),
    (dict(mode="degrade", task="sr", image=None), "give an image"),
    (dict(mode="degrade", task="nonsense"), "unknown task 'nonsense'"),
])
def test_bad_requests_are_one_line_errors(den, tmp_path, request_kw, message):
    kw = {"image": str(SAMPLE), **request_kw}
    with pytest.raises(ShredError, match=message):
        session.prepare(PageRequest(**kw), den, tmp_path)


def test_files_that_are_not_images_are_refused(den, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ShredError, match="not an image file"):
        session.prepare(PageRequest("degrade", str(text), task="sr"), den, tmp_path)
    nan = tmp_path / "nan.npy"
    arr = np.full((32, 32), 0.5, np.float32)
    arr[3, 3] = np.nan
    np.save(nan, arr)
    with pytest.raises(ShredError, match="NaN"):
        session.prepare(PageRequest("degrade", str(nan), task="sr"), den, tmp_path)


def test_resize_is_explicit_and_takes_the_mask_along(den, tmp_path):
    big = tmp_path / "big.png"
    Image.open(SAMPLE).resize((64, 48), Image.NEAREST).save(big)
    layer = _layer(tmp_path / "l.png", (slice(0, 48), slice(0, 16)), size=(48, 64))  # the left quarter
    req = PageRequest("degrade", str(big), strokes=(str(layer),), task="inpaint-mask")
    with pytest.raises(ShredError, match="the clean image is 48x64 but model cifar10-32 needs 32x32"):
        session.prepare(req, den, tmp_path)
    problem = session.prepare(dataclasses.replace(req, resize=True), den, tmp_path)
    assert problem.y.shape == (1, 3, 32, 32) and problem.mask.shape == (32, 32)
    # centre crop 48x48 of 64 columns drops 8 on each side: the hole keeps columns 8..16 of 48 -> 0..5 of 32
    holes = (problem.mask == 0).all(dim=0)
    assert holes[:5].all() and not holes[6:].any()
    assert torch.equal(problem.y[0, :, problem.mask == 0], torch.zeros(3, int((problem.mask == 0).sum())))


def test_describe_states_sizes_and_the_kept_fraction(den, tmp_path):
    layer = _layer(tmp_path / "l.png", (slice(0, 8), slice(0, 8)))
    text = session.describe(PageRequest("degrade", str(SAMPLE), strokes=(str(layer),), task="inpaint-mask"), den)
    assert "32x32 (yours is 32x32: fine)" in text and "keeps 960 of 1024 pixels (93.8 %)" in text
    text = session.describe(PageRequest("restore", str(SAMPLE), task="sr"), den)
    assert "measurement for this model is 8x8" in text and "tick Resize" in text
    text = session.describe(PageRequest("degrade", str(SAMPLE), task="cs", options=TaskOptions(fraction=0.25)), den)
    assert "keeps 256 of 1024 pixels (25.0 %)" in text
    assert "Problem:" in session.describe(PageRequest("degrade", str(SAMPLE), task="nonsense"), den)


def test_a_run_writes_downloads_that_the_cli_restores_identically(den, tmp_path):
    from shred.cli import main
    from shred.report import seed_spread

    layer = _layer(tmp_path / "l.png", (slice(10, 20), slice(8, 24)))
    req = PageRequest("degrade", str(SAMPLE), strokes=(str(layer),), task="inpaint-mask", iterations=1, seeds=(0, 1))
    work = tmp_path / "run"
    work.mkdir()
    out = session.restore_page(req, den, work, model_name="cifar10-32", progress=False)
    captions = [c for _, c in out.gallery]
    assert captions[:2] == ["clean", "measurement (inpaint-mask)"] and captions[2].startswith("seed 0: ")
    assert captions[4].startswith("mean: ") and captions[5].startswith("uncertainty")
    seeds_x0 = torch.cat([out.gallery[2][0], out.gallery[3][0]])
    mean, std = seed_spread(seeds_x0)
    assert torch.equal(out.gallery[4][0], mean) and abs(out.summary["max_std"] - float(std.max())) < 1e-7
    assert out.rows[0]["psnr"] > 10 and out.summary["mean_image_psnr"] > 10
    spec = json.loads(out.files[session.SPEC_JSON].read_text())
    assert spec["measurement"] == session.MEASUREMENT_NPY and spec["model"] == "cifar10-32"
    op, _ = shred.read_spec(out.files[session.SPEC_JSON])
    assert int((op.mask == 0).sum()) == 10 * 16  # the painted hole travels in the spec

    # The page's command, run by the CLI on the downloads, restores the same images.
    assert out.command == ("shred-ir restore measurement.npy --spec spec.json --model cifar10-32 --preset bundled "
                           "--iterations 1 --seeds 0,1 --out restored.png --grid grid.png")
    cli_dir = tmp_path / "cli"
    cli_dir.mkdir()
    for name in (session.SPEC_JSON, session.MEASUREMENT_NPY):
        shutil.copy(out.files[name], cli_dir / name)
    argv = out.command.split()[1:]  # without the program name
    argv = [str(cli_dir / a) if a in (session.SPEC_JSON, session.MEASUREMENT_NPY, session.RESTORED_PNG,
                                      session.GRID_PNG) else a for a in argv]
    assert main(argv + ["--quiet"]) == 0
    ui = np.asarray(Image.open(out.files[session.RESTORED_PNG]))
    cli = np.asarray(Image.open(cli_dir / "restored_seed0.png"))
    assert ui.shape == (32, 32, 3) and np.array_equal(ui, cli)


def test_stop_ends_a_run_within_one_network_evaluation(den, tmp_path):
    import threading

    calls = []
    stop = threading.Event()
    def count(*_):  # a forward hook: returns None so the output is kept
        calls.append(1)
        if len(calls) == 3:
            stop.set()

    hook = den.register_forward_hook(count)
    try:
        with pytest.raises(session.Stopped, match="stopped by the user"):
            session.restore_page(PageRequest("degrade", str(SAMPLE), task="sr", iterations=50), den, tmp_path,
                                 model_name="cifar10-32", progress=False, stop=stop)
    finally:
        hook.remove()
    assert len(calls) == 3  # the fourth evaluation was refused
    assert not den._forward_pre_hooks  # the stop hook is gone
