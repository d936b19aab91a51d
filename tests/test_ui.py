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

# gradio's own deprecation noise (pandas 3) and tqdm's /dev/null handle in gradio's progress patch.
pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]

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
    # 32x32: the default 41-tap kernel needs an image of at least 21x21.
    base = TaskOptions(mask=str(_mask_png(tmp_path / "m.png", (slice(4, 8), slice(4, 8)))))
    other_mask = str(_mask_png(tmp_path / "m2.png", (slice(0, 3), slice(0, 32))))

    def spec(opts):
        return build_task(name, (3, 32, 32), opts, generator=torch.Generator().manual_seed(0)).spec()

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
    for bad in ("", "a", "3-1", "0-300", "-2", "1_0", "0-1_0", "\u0663"):  # seeds are 0 .. 2^63 - 1, in digits 0-9
        with pytest.raises(ShredError):
            parse_seeds(bad)


def test_seed_spread_is_the_mean_and_the_per_pixel_std():
    from shred.report import spread_image
    from shred.solvers.base import seed_spread

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


# --- the command ----------------------------------------------------------------------------------------
def test_ui_command_imports_gradio_only_when_it_runs_and_says_when_it_is_missing():
    import subprocess
    import sys

    script = ("import sys; from shred.cli import build_parser, main\n"
              "args = build_parser().parse_args(['ui', '--port', '8000', '--host', '0.0.0.0'])\n"
              "assert args.port == 8000 and 'gradio' not in sys.modules, 'gradio imported by the parser'\n"
              "sys.modules['gradio'] = None  # as if it were not installed\n"
              "sys.exit(main(['ui']))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()  # one line; the program name is shred's or shred-ir's
    assert "\n" not in line and line.endswith(": error: the browser page needs gradio: pip install 'shred[ui]'")


def test_binding_beyond_this_machine_is_explicit_and_warned():
    from shred.ui.command import host_warning

    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert "anyone who can reach this address" in host_warning("0.0.0.0")


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


def test_a_measurement_file_on_the_page_carries_its_rounding(den, tmp_path):
    """The page restores an uploaded file as `shred-ir restore` does: an 8-bit blurred file's
    rounding is added to the declared noise (none for a pooled one); a .npy measurement is exact."""
    from shred.operators import rounding_std
    from shred.restoration import load_measurement

    png = session.prepare(PageRequest("restore", str(SAMPLE), task="deblur"), den, tmp_path)
    assert png.operator.sigma_y == png.operator.rounding == rounding_std(256) and png.levels == 256
    exact = tmp_path / "sample.npy"
    np.save(exact, np.asarray(Image.open(SAMPLE), np.float32) / 255)
    npy = session.prepare(PageRequest("restore", str(exact), task="deblur"), den, tmp_path)
    assert npy.operator.sigma_y == 0 and torch.equal(npy.y, png.y)
    small = tmp_path / "small.png"
    Image.open(SAMPLE).resize((8, 8), Image.BOX).save(small)
    pooled = session.prepare(PageRequest("restore", str(small), task="sr"), den, tmp_path)
    assert pooled.operator.sigma_y == 0 and pooled.levels is None
    # The downloads (measurement.npy + spec.json) restore the same problem: the spec says the
    # values were read from an 8-bit file, so the command line counts the rounding too.
    work = tmp_path / "run"
    work.mkdir()
    out = session.restore_page(PageRequest("restore", str(SAMPLE), task="deblur", iterations=1), den, work,
                               model_name="cifar10-32", progress=False)
    assert json.loads(out.files[session.SPEC_JSON].read_text())["measurement_levels"] == 256
    m = load_measurement(out.files[session.MEASUREMENT_NPY], spec=out.files[session.SPEC_JSON])
    assert m.operator.rounding == rounding_std(256) and m.operator.spec() == png.operator.spec()


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
    from shred.solvers.base import seed_spread

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
    assert out.command == ("shred-ir restore measurement.npy --spec spec.json --model cifar10-32 --preset plus "
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


# --- the served page, driven with gradio_client --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """The app on a free 127.0.0.1 port, in this process: (demo, url)."""
    pytest.importorskip("gradio", reason="the page needs gradio: pip install -e '.[test]' (or '.[ui]')")
    from shred.ui.app import build_app, launch

    demo = build_app("cifar10-32", "cpu")
    port = _free_port()
    launch(demo, "127.0.0.1", port, block=False, quiet=True)
    yield demo, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[1], verbose=False)


def _editor(image: Path | None, layers=()):
    from gradio_client import handle_file

    return {"background": handle_file(str(image)) if image else None,
            "layers": [handle_file(str(p)) for p in layers], "composite": None, "id": None}


def _restore(client, **kw):
    args = dict(mode="degrade", image=_editor(SAMPLE), image_file=None, mask_file=None, clean_file=None,
                box_size=0, kernel_size=0, iterations=2, lr=0, seeds="0")
    args.update(kw)
    return client.predict(**args, api_name="/restore")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)))


def test_page_restores_the_sample_and_reports_psnr(client):
    status, result, gallery, metrics, command, *downloads = _restore(client, task="sr", iterations=2)
    img = np.asarray(Image.open(result))
    clean = np.asarray(Image.open(SAMPLE))
    assert img.shape == (32, 32, 3) and img.std() > 10  # a picture, not a constant
    reported = float(status.split("PSNR ")[1].split(" dB")[0])
    # The page measures the float restoration, the file holds 8 bits: rounding moves PSNR by < 0.1 dB here.
    assert abs(_psnr(img, clean) - reported) < 0.1 and reported > 10
    assert status.startswith("**Done**") and "1 seed, 2 iterations," in status
    assert [g["caption"].split(":")[0] for g in gallery] == ["clean", "measurement (sr)", "seed 0"]
    assert "| 0 | 2 |" in metrics and "--iterations 2" in command
    names = [Path(d["value"]).name for d in downloads]
    assert names == ["restored.png", "grid.png", "spec.json", "measurement.npy"]
    assert np.load(downloads[3]["value"]).shape == (3, 8, 8)  # the x4 measurement of a 32x32 image


def test_page_inpaints_with_a_mask_file_and_a_brush_layer(client, tmp_path):
    mask = _mask_png(tmp_path / "mask.png", (slice(4, 12), slice(4, 12)))
    layer = _layer(tmp_path / "layer.png", (slice(20, 24), slice(0, 32)))
    status, result, gallery, metrics, command, *downloads = _restore(
        client, task="inpaint-mask", mask_file=_file_arg(mask), image=_editor(SAMPLE, [layer]), iterations=1,
        seeds="0-1")
    y = np.load(downloads[3]["value"])  # [3, 32, 32]: zero in the hole, the sample elsewhere
    hole = np.zeros((32, 32), bool)
    hole[4:12, 4:12] = hole[20:24, :] = True
    clean = np.asarray(Image.open(SAMPLE)).transpose(2, 0, 1) / 255
    assert np.all(y[:, hole] == 0) and np.allclose(y[:, ~hole], clean[:, ~hole], atol=1e-6)
    op, spec = shred.read_spec(downloads[2]["value"])
    assert torch.equal(op.mask == 0, torch.as_tensor(hole)) and spec["task"] == "inpaint-mask"
    assert [g["caption"].split(":")[0].split(" (")[0] for g in gallery] == [
        "clean", "measurement", "seed 0", "seed 1", "mean", "uncertainty"]
    assert "mean image" in metrics and "PSNR" in status


def _file_arg(path: Path):
    from gradio_client import handle_file

    return handle_file(str(path))


@pytest.mark.parametrize("kw, message", [
    (dict(mode="restore", task="sr"), "the measurement is 32x32 but sr on cifar10-32 (32x32) needs 8x8"),
    (dict(task="inpaint-mask"), "inpaint-mask needs a hole"),
    (dict(task="sr", seeds="0-x"), "seeds look like 0, 0-7 or 0,3,5"),
    (dict(task="sr", scale=5), "does not divide"),
])
def test_bad_input_is_one_message_in_the_page_and_the_server_keeps_serving(client, kw, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        _restore(client, **kw)
    text = str(err.value)
    assert message in text and "Traceback" not in text and "\n" not in text.strip()
    assert client.predict(api_name="/sample")[0]["background"]  # still answering


def test_files_that_are_not_images_or_hold_nan_are_refused_in_the_page(client, tmp_path):
    from gradio_client.exceptions import AppError

    bad = tmp_path / "notes.npy"
    bad.write_text("not an array")
    with pytest.raises(AppError) as err:
        _restore(client, task="sr", image=_editor(None), image_file=_file_arg(bad))
    assert str(err.value).startswith("notes.npy: not a readable .npy array")  # the name, not the server's path
    nan = tmp_path / "nan.npy"
    arr = np.full((32, 32, 3), 0.5, np.float32)
    arr[0, 0, 0] = np.nan
    np.save(nan, arr)
    with pytest.raises(AppError, match="NaN"):
        _restore(client, task="sr", image=_editor(None), image_file=_file_arg(nan))


def test_stop_ends_a_long_run_and_the_queue_runs_one_job_at_a_time(server, client):
    from gradio_client.utils import Status

    demo, _ = server
    run = next(fn for fn in demo.fns.values() if fn.api_name == "restore")
    assert run.concurrency_limit == 1 and run.concurrency_id == "network"
    job = client.submit(mode="degrade", image=_editor(SAMPLE), image_file=None, mask_file=None, clean_file=None,
                        task="sr", box_size=0, kernel_size=0, iterations=400, lr=0, seeds="0", api_name="/restore")
    deadline = time.monotonic() + 60
    while job.status().code != Status.PROGRESS and time.monotonic() < deadline:
        time.sleep(0.1)  # wait until SHRED's progress bar reports iterations
    started = time.monotonic()
    client.predict(api_name="/stop")
    status = job.result(timeout=60)[0]
    assert status.startswith("**Stopped:**") and time.monotonic() - started < 20  # 400 iterations take minutes


# --- the page in a real browser ------------------------------------------------------------------------
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
# Record every text the progress bar shows while the run goes (polling could miss a fast run).
WATCH_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver(() => document.querySelectorAll('.progress-level').forEach(
      e => window.__progress.push(e.textContent.trim()))).observe(
      document.body, {subtree: true, childList: true, characterData: true});
}"""


def _chromium() -> str | None:
    import os

    for candidate in (os.environ.get("SHRED_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def test_in_a_browser_paint_a_hole_run_and_watch_the_progress(server, tmp_path):
    """Upload the sample, paint a stroke with the brush, run inpaint-mask with two seeds, and check the
    kept fraction shown before running, the progress bar during the run and the result after it.
    SHRED_UPDATE_SCREENSHOT=1 runs the preset's iterations (100) instead of 4 and writes the
    screenshot to docs/img/ui.png (README)."""
    import os
    import re

    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed "
                                   "(pip install -e '.[test]')")
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium browser found (Debian: apt-get install chromium chromium-driver; .ci/run does it)")
    _, url = server
    update_screenshot = bool(os.environ.get("SHRED_UPDATE_SCREENSHOT"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            # The page is live once its load event has filled the info panel; an upload before that is lost.
            page.wait_for_function("document.querySelector('#info')?.innerText.includes('Model')", timeout=60_000)
            page.locator("#editor input[type=file]").first.set_input_files(str(SAMPLE))
            # The page has the image once its size line reads it (the editor's blank canvas is 800x800).
            page.wait_for_function("document.querySelector('#info')?.innerText.includes('yours is 32x32')",
                                   timeout=30_000)
            task = page.locator("#task input")
            task.click()
            task.fill("inpaint-mask")
            page.keyboard.press("Enter")
            page.locator("#iterations input").fill("0" if update_screenshot else "4")  # 0: the preset's
            page.locator("#seeds input, #seeds textarea").first.fill("0-1")

            page.get_by_role("button", name="Brush", exact=True).click()
            box = page.locator("#editor canvas").first.bounding_box()
            x, y = box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2 - 20
            page.mouse.move(x, y)
            page.mouse.down()
            for k in range(25):
                page.mouse.move(x + 5 * k, y + 2 * k)
            page.mouse.up()
            page.wait_for_function("document.querySelector('#info')?.innerText.includes('keeps')", timeout=30_000)
            info = page.locator("#info").inner_text()
            kept = re.search(r"keeps (\d+) of 1024 pixels", info)
            assert kept and 500 < int(kept.group(1)) < 1024, info  # a stroke, not the whole image

            page.evaluate(WATCH_PROGRESS)
            page.click("#run")
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('Done') || "
                                   "document.querySelector('.toast-body') !== null",
                                   timeout=900_000 if update_screenshot else 180_000)
            status = page.locator("#status").inner_text()
            toasts = [t.inner_text() for t in page.locator(".toast-body").all()]
            assert "Done" in status and "PSNR" in status, f"status {status!r}, messages {toasts}"
            page.wait_for_function("document.querySelectorAll('#gallery img').length >= 6")
            # naturalWidth is 0 until the browser has decoded the file
            page.wait_for_function("document.querySelector('#result img')?.naturalWidth > 0")
            assert page.evaluate("document.querySelector('#result img').naturalWidth") == 32  # the file's own size
            percents = [float(v) for t in page.evaluate("window.__progress")
                        for v in re.findall(r"shred - ([\d.]+)%", t)]
            moving = sorted({v for v in percents if 0 < v < 100})
            assert len(moving) >= 2, f"the progress bar did not move: {percents}"

            shot = tmp_path / "ui.png"
            page.screenshot(path=str(shot), full_page=True)
            assert Image.open(shot).size[0] == 1280
            if update_screenshot:
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, SCREENSHOT)
        finally:
            browser.close()
