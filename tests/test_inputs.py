"""Every kind of bad input ends in a correct result or one line (issue 15): images as displayed,
masks as drawn, random operators never re-drawn, value ranges, numbers at the door, specs and model
configs as schemas, sane weights, training that never writes a broken model, and defaults that say
what they assumed."""
import json
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import shred
from shred.cli import main
from shred.errors import CheckpointError, ShredError, ShredWarning


def run(argv, capsys):
    """(exit status, stdout, stderr) of the CLI; argparse's own refusals exit through SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, *needles):
    """The CLI refused in one line (exit status 2) that contains every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"shred-ir( \w+)?: error: ", line)]
    assert code == 2 and len(errors) == 1, err
    assert "internal error" not in err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def clean_png(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "clean.png"
    Image.fromarray((rng.random((32, 32, 3)) * 200 + 20).astype(np.uint8)).save(p)
    return p


# --- 1. images as displayed -----------------------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path):
    rng = np.random.default_rng(1)
    stored = (rng.random((8, 12, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=100)
    decoded = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255  # as stored
    x = shred.read_image(path)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(x, decoded[::-1, ::-1])  # exactly the stored pixels turned as viewers show them


def test_exif_rotation_by_90_swaps_the_sides(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise: a 12-wide, 8-high file is shown 8 wide
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (12, 8), (10, 20, 30)).save(path, exif=exif)
    assert tuple(shred.read_image(path).shape) == (1, 3, 12, 8)


def test_float_tiff_is_read_as_its_values(tmp_path):
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    assert torch.equal(shred.read_image(path)[0, 0], torch.from_numpy(values))  # not black
    Image.fromarray(values * 255).save(path)
    with pytest.raises(ShredError, match=r"float.tif: a floating-point image with values in \[0, 255\]"):
        shred.read_image(path)


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)).save(path)
    x = shred.read_image(path)[0, 0]
    assert torch.allclose(x, torch.tensor([[0, 32768], [65535, 1000]]) / 65535.0)


def test_a_measurement_read_from_a_file_carries_its_rounding_as_noise(tmp_path, clean_png, capsys):
    """An 8-bit file rounds y after any noise: for a blur, whose A^+ amplifies it unevenly,
    load_measurement adds the rounding's standard deviation to the declared sigma_y in quadrature
    (0.00113); a .npy or float TIFF measurement is taken as it is, and so is a mask's or a pooling's
    measurement. The restore line names it."""
    import math

    from shred.io import stored_levels
    from shred.operators import on_canvas, rounding_std, unwrap
    from shred.restoration import load_measurement

    q = rounding_std(256)
    assert q == pytest.approx(0.0011320593513522)
    deep, flt = tmp_path / "deep.png", tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(deep)
    Image.fromarray(np.zeros((4, 4), np.float32)).save(flt)
    assert (stored_levels(clean_png), stored_levels(deep), stored_levels(flt)) == (256, 65536, None)
    assert stored_levels(tmp_path / "missing.png") is None and rounding_std(65536) < q / 200
    out = {}
    for name, extra in [("y.png", []), ("y.npy", []), ("yn.png", ["--sigma-y", "0.05"])]:
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        code, _, err = run(["degrade", clean_png, "--task", "deblur", "--kernel-sigma", "1", *extra,
                            "--out", folder / name], capsys)
        assert code == 0, err
        out[name] = load_measurement(folder / name, spec=(folder / name).with_suffix(".json"))
    true_blur = unwrap(out["y.npy"].operator)
    assert out["y.npy"].operator.sigma_y == 0 and out["y.npy"].operator.rounding == 0
    png = out["y.png"].operator
    assert png.sigma_y == png.rounding == q and png.op.spec() == true_blur.spec()
    assert png.spec() == true_blur.spec()                        # the spec: how y was degraded
    noisy = out["yn.png"].operator
    assert noisy.sigma_y == pytest.approx(math.hypot(0.05, q)) and noisy.rounding == q
    assert noisy.op.spec() == true_blur.spec()                   # one noise layer, not two
    assert noisy.spec() == json.loads((tmp_path / "yn_png" / "yn.json").read_text())["operator"]
    canvas = on_canvas(noisy, (40, 40))                          # the canvas keeps both parts
    assert (canvas.rounding, canvas.declared_sigma_y) == (q, 0.05)
    code, _, err = run(["restore", tmp_path / "y_png" / "y.png", "--iterations", "1", "--out", tmp_path / "r.png"],
                       capsys)
    assert code == 0 and "noise sigma_y 0.00113, the file's rounding" in err, err
    code, _, err = run(["restore", tmp_path / "yn_png" / "yn.png", "--iterations", "1", "--out", tmp_path / "rn.png"],
                       capsys)
    assert code == 0 and "noise sigma_y 0.05, 0.05001 with the file's rounding" in err, err
    # A folder restore writes each image's spec; restoring from that spec counts the rounding once.
    assert run(["restore", tmp_path / "y_png", "--out", tmp_path / "folder", "--iterations", "1", "--quiet"],
               capsys)[0] == 0
    again = load_measurement(tmp_path / "y_png" / "y.png", spec=tmp_path / "folder" / "y.json").operator
    assert again.sigma_y == q and again.spec() == true_blur.spec()
    # Without a declared level the rounding is not one: --stop discrepancy refuses as for a .npy.
    code, _, err = run(["restore", tmp_path / "y_png" / "y.png", "--stop", "discrepancy", "--iterations", "1",
                        "--out", tmp_path / "rd.png"], capsys)
    one_error_line(code, err, "needs the measurement's noise level")
    # Inpainting and average pooling: every singular value alike, nothing amplified, nothing counted.
    for task, opts in [("inpaint", []), ("sr", ["--scale", "2"])]:
        y = tmp_path / f"{task}.png"
        assert run(["degrade", clean_png, "--task", task, *opts, "--out", y, "--quiet"], capsys)[0] == 0
        m = load_measurement(y, spec=y.with_suffix(".json")).operator
        assert m.sigma_y == m.rounding == 0


def _png_with_broken_chunk(path):
    """An 8x8 PNG whose image data stops half-way into a garbage chunk header (Pillow: SyntaxError)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compress(b"".join(b"\x00" + bytes(range(24)) for _ in range(8)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", z[: len(z) // 2]) + b"\xdb\x15\x0b\x52\x1a#D\x96" + bytes(16))


def test_corrupt_chunk_is_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    _png_with_broken_chunk(bad)
    with pytest.raises(ShredError, match="broken.png: cannot read the image"):
        shred.read_image(bad)
    code, _, err = run(["degrade", bad, "--task", "sr", "--out", tmp_path / "y.png"], capsys)
    one_error_line(code, err, "broken.png: cannot read the image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png"]


def test_images_over_the_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    import PIL.Image

    import shred.io

    path = tmp_path / "big.png"
    Image.new("L", (20, 10)).save(path)
    monkeypatch.setattr(shred.io, "MAX_PIXELS", 100)
    with pytest.raises(ShredError, match="big.png: 20x10 pixels is over the limit"):
        shred.read_image(path)
    # Beyond Pillow's own bomb limit the file is not even opened; its size is still named.
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ShredError, match="big.png: 20x10 pixels is over the limit"):
        shred.read_image(path)


def test_alpha_is_dropped_with_a_warning_only_when_something_is_transparent(tmp_path):
    rgba = np.full((4, 4, 4), 255, dtype=np.uint8)
    rgba[..., :3] = 200
    path = tmp_path / "opaque.png"
    Image.fromarray(rgba).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(shred.read_image(path).shape) == (1, 3, 4, 4)
    rgba[0, :, 3] = 0
    Image.fromarray(rgba).save(path)
    with pytest.warns(ShredWarning, match=r"alpha channel is ignored \(25.0 % of the pixels"):
        shred.read_image(path)


def test_an_npz_archive_named_npy_is_one_line(tmp_path):
    with open(tmp_path / "x.npy", "wb") as f:
        np.savez(f, a=np.zeros((4, 4)))  # an archive under an image's name
    with pytest.raises(ShredError, match="x.npy: a .npz archive"):
        shred.read_image(tmp_path / "x.npy")


def test_training_images_are_read_as_displayed_and_a_broken_one_is_named(tmp_path):
    from shred.data import load_images

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (16, 8), (10, 20, 30)).save(tmp_path / "a.jpg", exif=exif)
    Image.new("RGB", (8, 16), (10, 20, 30)).save(tmp_path / "b.png")
    assert tuple(load_images(tmp_path).images.shape) == (2, 3, 16, 8)
    _png_with_broken_chunk(tmp_path / "c.png")
    with pytest.raises(ShredError, match=r"c.png: cannot read the image .*; remove or replace it"):
        load_images(tmp_path)


# --- 2. masks as drawn ---------------------------------------------------------------------------------
def _rgba_mask(path, hole_rows):
    rgba = np.full((32, 32, 4), 255, dtype=np.uint8)
    rgba[hole_rows, :, 3] = 0  # the hole erased to transparency, its colour left white
    Image.fromarray(rgba).save(path)
    return path


def test_a_hole_erased_to_transparency_is_a_hole(tmp_path, clean_png, capsys):
    from shred.operators import load_mask

    mask = _rgba_mask(tmp_path / "m.png", slice(0, 8))
    assert float(load_mask(mask).mean()) == 0.75
    code, out, err = run(["degrade", clean_png, "--task", "inpaint-mask", "--mask", mask, "--out",
                          tmp_path / "y.png"], capsys)
    assert code == 0, err
    assert "the mask keeps 768 of 1024 pixels (75.0 %)" in out  # the kept fraction, every time
    assert json.loads((tmp_path / "y.json").read_text())["operator"]["kept_fraction"] == 0.75


def test_masks_that_hide_nothing_or_everything_or_hold_nan_are_refused(tmp_path, clean_png, capsys):
    from shred.operators import load_mask

    white = tmp_path / "white.png"
    Image.new("L", (32, 32), 255).save(white)
    code, _, err = run(["degrade", clean_png, "--task", "inpaint-mask", "--mask", white, "--out",
                        tmp_path / "y.png"], capsys)
    one_error_line(code, err, "the mask hides no pixel")
    np.save(tmp_path / "nan.npy", np.full((32, 32), np.nan))
    code, _, err = run(["degrade", clean_png, "--task", "inpaint-mask", "--mask", tmp_path / "nan.npy", "--out",
                        tmp_path / "y.png"], capsys)
    one_error_line(code, err, "nan.npy: the mask contains NaN")
    assert not (tmp_path / "y.png").exists()
    np.save(tmp_path / "zero.npy", np.zeros((32, 32)))
    with pytest.raises(ShredError, match="keeps no pixel"):
        load_mask(tmp_path / "zero.npy")
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ShredError, match="numeric"):
        load_mask(tmp_path / "text.npy")


def test_rgba_npy_masks_honour_their_alpha(tmp_path):
    from shred.operators import load_mask

    arr = np.ones((8, 8, 4))
    arr[:2, :, 3] = 0
    np.save(tmp_path / "m.npy", arr)
    assert float(load_mask(tmp_path / "m.npy").mean()) == 0.75


# --- 3. random operators are never re-drawn -------------------------------------------------------------
def _build(task, opts, seed):
    from shred.operators import build_task

    return build_task(task, (3, 16, 16), opts, generator=torch.Generator().manual_seed(seed))


def _options_for(task, tmp_path):
    from shred.operators import TaskOptions

    mask = tmp_path / "m.png"
    Image.fromarray(np.where(np.arange(16)[:, None] < 4, 0, 255).repeat(16, 1).astype(np.uint8)).save(mask)
    variants = [TaskOptions(mask=str(mask), kernel_size=5)]
    if "deblur" in task:
        variants.append(TaskOptions(kernel="random", kernel_size=5))
    return variants


def test_random_parts_is_exactly_what_a_seed_changes(tmp_path):
    """Over the registry: a non-blind task's operator depends on the generator iff
    random_parts names what it draws (so the check in load_measurement misses nothing)."""
    from shred.operators import TASKS
    from shred.operators.tasks import random_parts

    for name, task in TASKS.items():
        if task.preset_key.startswith("blind"):
            continue  # blind tasks estimate their kernel: the drawn one only sets its size
        for opts in _options_for(name, tmp_path):
            changes = _build(name, opts, 0).spec() != _build(name, opts, 1).spec()
            assert changes == bool(random_parts(name, opts)), (name, opts)


@pytest.mark.parametrize("argv,what", [(["--task", "cs", "--fraction", "0.2"], "mask"),
                                       (["--task", "deblur", "--kernel", "random", "--kernel-size", "7"], "kernel"),
                                       (["--task", "deblur-sv", "--kernel-size", "5"], "kernels")])
def test_restoring_a_random_operator_needs_its_spec_or_seed(argv, what, tmp_path, clean_png, capsys):
    from shred.restoration import load_measurement

    y = tmp_path / "y.png"
    code, _, err = run(["degrade", clean_png, *argv, "--seed", "7", "--out", y], capsys)
    assert code == 0, err
    (tmp_path / "y.json").rename(tmp_path / "lost.json")
    code, _, err = run(["restore", y, *argv, "--iterations", "1", "--out", tmp_path / "r.png"], capsys)
    one_error_line(code, err, f"draws a random {what}", "--spec", "--degrade-seed")
    assert not (tmp_path / "r.png").exists()
    # With the seed degrade was given, the very operator comes back.
    true_op, _ = shred.read_spec(tmp_path / "lost.json")
    opts = shred.TaskOptions(**json.loads((tmp_path / "lost.json").read_text())["task_options"])
    m = load_measurement(y, task=argv[1], options=opts, degrade_seed=7)
    assert m.operator.spec() == true_op.spec()
    # y came from an 8-bit PNG: a blur counts the file's rounding as noise, a mask does not.
    assert m.operator.rounding == m.operator.sigma_y == (0.0 if what == "mask" else shred.operators.rounding_std(256))


def test_blind_tasks_need_no_seed(tmp_path, clean_png, capsys):
    from shred.restoration import load_measurement

    y = tmp_path / "y.png"
    assert run(["degrade", clean_png, "--task", "blind-deblur", "--kernel", "random", "--kernel-size", "7",
                "--out", y], capsys)[0] == 0
    opts = shred.TaskOptions(kernel="random", kernel_size=7)
    assert load_measurement(y, task="blind-deblur", options=opts).task == "blind-deblur"


# --- 4. value ranges ------------------------------------------------------------------------------------
def test_the_api_refuses_measurements_in_another_range():
    from shred.api import check_measurement_range

    x = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)  # from black to white
    y, op = shred.degrade(x, "sr", shred.TaskOptions(scale=4), seed=0)
    check_measurement_range(y, op)
    den = shred.GaussianPrior(torch.zeros(3, 32, 32), torch.ones(3, 32, 32))
    with pytest.raises(ShredError, match=r"the measurement spans \[-0\.\d+, 0\.\d+\].*\(y \+ 1\) / 2"):
        shred.restore(y * 2 - 1, op, den, task="sr", iterations=1)
    with pytest.raises(ShredError, match=r"spans \[\d+(\.\d+)?, \d+(\.\d+)?\].*divide by 255"):
        shred.restore(y * 255, op, den, task="sr", iterations=1)
    # Measurement noise is allowed for: 5 sigma_y beyond [0, 1] on top of the slack.
    noisy, op_n = shred.degrade(x, "sr", shred.TaskOptions(scale=4, sigma_y=0.2), seed=0)
    check_measurement_range(noisy, op_n)
    with pytest.raises(ShredError, match="the clean image spans"):
        shred.degrade(x * 2 - 1, "sr")


def test_a_clean_image_of_another_size_is_refused_or_resampled_with_a_word(tmp_path):
    from shred.restoration import load_clean

    den = shred.load_model("cifar10-32")
    Image.new("RGB", (8, 8), (100, 100, 100)).save(tmp_path / "small.png")
    with pytest.raises(ShredError, match="small.png is 8x8 but the restoration is 32x32.*--resize"):
        load_clean(tmp_path / "small.png", den)
    with pytest.warns(ShredWarning, match="small.png: resampled from 8x8 to 32x32"):
        assert tuple(load_clean(tmp_path / "small.png", den, allow_resize=True).shape) == (1, 3, 32, 32)


# --- 5. numbers at the door -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["degrade", "{clean}", "--task", "cs", "--seed", str(2 ** 64), "--out", "{tmp}/y.png"],
    ["restore", "{clean}", "--task", "sr", "--seed", str(2 ** 64), "--out", "{tmp}/r.png"],
    ["restore", "{clean}", "--task", "sr", "--seeds", f"0-{10 ** 18}", "--out", "{tmp}/r.png"],
    ["restore", "{clean}", "--task", "sr", "--seeds", "-1,2", "--out", "{tmp}/r.png"],
    ["restore", "{clean}", "--task", "sr", "--lr", "1e300", "--out", "{tmp}/r.png"],
    ["restore", "{clean}", "--task", "sr", "--iterations", "1000000000", "--out", "{tmp}/r.png"],
    ["degrade", "{clean}", "--task", "sr", "--sigma-y", "5", "--out", "{tmp}/y.png"],
    ["degrade", "{clean}", "--task", "deblur", "--kernel-size", "4", "--out", "{tmp}/y.png"],
    ["degrade", "{clean}", "--task", "sr", "--size", "100000", "--out", "{tmp}/y.png"],
    ["train", "{tmp}", "--arch", "tiny", "--steps", "1", "--lr", "1e30", "--out", "{tmp}/run"],
    ["train", "{tmp}", "--arch", "tiny", "--steps", "1", "--seed", str(2 ** 63), "--out", "{tmp}/run"],
])
def test_numbers_out_of_range_are_refused_by_the_parser(argv, tmp_path, clean_png, capsys):
    argv = [a.format(clean=clean_png, tmp=tmp_path) for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "argument --" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.png"]


def test_the_lr_limit_is_shred_configs_own(capsys, tmp_path, clean_png):
    code, _, err = run(["restore", clean_png, "--task", "sr", "--lr", "1e300"], capsys)
    assert "SHRED lr must be at most 10, got 1e300" in err
    with pytest.raises(ShredError, match="SHRED lr must be at most 10"):
        shred.ShredConfig(lr=1e300)
    code, _, err = run(["restore", clean_png, "--task", "sr", "--coarse-iterations", str(10 ** 23)], capsys)
    assert code == 2 and f"SHRED coarse_iterations must be at most 100000, got {10 ** 23}" in err, err
    # Echoed as typed; an integer too long for int() is out of range, not "not an integer".
    code, _, err = run(["restore", clean_png, "--task", "sr", "--iterations", "1000000"], capsys)
    assert code == 2 and "SHRED iterations must be at most 100000, got 1000000" in err, err
    # Digits 0-9 only: Python's "1_000_000" is not a count on the command line.
    code, _, err = run(["restore", clean_png, "--task", "sr", "--iterations", "1_000_000"], capsys)
    assert code == 2 and "expected an integer, got '1_000_000'" in err, err
    code, _, err = run(["restore", clean_png, "--task", "sr", "--iterations", "9" * 5000], capsys)
    assert code == 2 and "must be at most 100000, got 99999999" in err and "(5000 characters)" in err, err
    assert len(err) < 300
    code, _, err = run(["restore", clean_png, "--task", "sr", "--iterations", "x" * 5000], capsys)
    assert code == 2 and "expected an integer, got xxxx" in err and len(err) < 300, err


def test_seeds_are_checked_in_the_library_too():
    from shred.seeding import generator, parse_seeds

    with pytest.raises(ShredError, match="2\\^63 - 1"):
        generator(2 ** 64)
    with pytest.raises(ShredError, match="2\\^63 - 1"):
        shred.degrade(torch.rand(1, 3, 8, 8), "cs", seed=2 ** 64)
    with pytest.raises(ShredError, match="between 1 and 256 seeds"):
        parse_seeds(f"0-{10 ** 18}")  # refused before a list of 10^18 seeds is made
    assert generator(2 ** 63 - 1).initial_seed() == 2 ** 63 - 1


@pytest.mark.parametrize("opts,needle", [
    (dict(kernel_size=100001), "kernel size 100001 is larger than a 32x32 image can use (at most 63)"),
    (dict(kernel_sigma=1e6), "kernel sigma 1e+06 implies a kernel side of 6000001"),
    (dict(kernel_sigma=1e300), "implies a kernel side of 6e+300"),
])
def test_kernels_larger_than_the_image_are_refused_before_allocating(opts, needle):
    from shred.operators import build_task

    with pytest.raises(ShredError) as info:
        build_task("deblur", (3, 32, 32), shred.TaskOptions(**opts))
    assert needle in str(info.value)


def test_a_batch_that_cannot_fit_is_refused_with_what_it_needs(monkeypatch):
    import shred.models.memory as memory
    from shred.api import make_restorer

    den = shred.load_model("cifar10-32")
    per_image = memory.activation_bytes(den)
    assert 1e6 < per_image < 1e8  # a 3x32x32 UNet of 64-128 channels: a few MB per image
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * per_image)
    with pytest.raises(ShredError, match=r"not enough memory: 256 restorations of 3x32x32 .*use at most 10 seeds"):
        make_restorer(den, "sr", images=256)
    restorer = make_restorer(den, "sr", images=2, iterations=1)

    def allocation_fails(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(restorer.solver, "solve", allocation_fails)
    y, op = shred.degrade(torch.rand(1, 3, 32, 32), "sr")
    with pytest.raises(ShredError, match="out of memory running 2 restorations of 3x32x32"):
        restorer.restore(y, op, seeds=[0, 1])


# --- 6. specs and model configs as schemas -------------------------------------------------------------
@pytest.fixture
def spec_pair(tmp_path, clean_png, capsys):
    y = tmp_path / "y.png"
    assert run(["degrade", clean_png, "--task", "colorize+sr", "--scale", "2", "--sigma-y", "0.01", "--out", y],
               capsys)[0] == 0
    return y, json.loads((tmp_path / "y.json").read_text())


def _op_path(spec):
    """The sr-avg stage inside noisy(compose(colorize, sr-avg))."""
    return spec["operator"]["op"]["ops"][1]


@pytest.mark.parametrize("edit,field", [
    (lambda s: _op_path(s).pop("in_shape"), "operator.op.ops[1].in_shape is missing"),
    (lambda s: _op_path(s).update(scale="four"), "operator.op.ops[1].scale must be a positive integer, got 'four'"),
    (lambda s: s["operator"].update(in_shape="abc"), "operator.in_shape must be a list of 3 integers"),
    (lambda s: s["operator"].update(in_shape=None), "operator.in_shape must be a list of 3 integers"),
    (lambda s: s.update(shred_spec="1"), "shred_spec must be a positive integer"),
    (lambda s: s["operator"].update(sigma_y=5), "operator.sigma_y must be at most 1"),
    (lambda s: s["operator"].update(in_shape=[3, 100000, 100000]), "sides in 1..4096"),
    (lambda s: s["operator"]["op"].update(ops=[]), "operator.op.ops must be a non-empty list"),
    (lambda s: _op_path(s).update(name="sr-nope"), "operator.op.ops[1].name must be one of"),
    (lambda s: _op_path(s).update(scalee=2), "unknown field 'scalee'"),
    (lambda s: s.update(seed=2 ** 64), "seed: seeds are integers"),
    (lambda s: s.update(task="super-res"), "task must be null or a task"),
    (lambda s: s.update(model=3), "model must be null or a string"),
    (lambda s: s.update(task_options={"scale": "x"}), "task_options: task option scale must be"),
    (lambda s: s.update(measurement_shape=[1, 4, 4]), "measurement_shape [1, 4, 4] differs"),
    (lambda s: s.update(image_shape=[3, 16, 16]), "image_shape [3, 16, 16] differs"),
    (lambda s: s.update(measurement_levels=1), "measurement_levels must be null or an integer in 2 .. 2^32"),
    (lambda s: s.update(measurement_levels=10 ** 400), "measurement_levels must be null or an integer in 2 .. 2^32"),
])
def test_a_hand_edited_spec_is_refused_naming_the_field(edit, field, spec_pair, tmp_path, capsys):
    y, spec = spec_pair
    edit(spec)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    with pytest.raises(ShredError) as info:
        shred.read_spec(bad)
    assert str(info.value).startswith("bad.json: ") and field in str(info.value), str(info.value)
    code, _, err = run(["restore", y, "--spec", bad, "--iterations", "1", "--out", tmp_path / "r.png"], capsys)
    one_error_line(code, err, field)


def test_a_giant_spec_shape_is_checked_against_the_model_before_building(tmp_path, monkeypatch):
    from shred.operators import linear
    from shred.restoration import load_measurement

    # Any size is restored (issue 18), but not with a model of other channels: refused before
    # the 4096-pixel operator is built.
    spec = {"shred_spec": 1, "task": "sr-bicubic",
            "operator": {"name": "sr-bicubic", "in_shape": [1, 4096, 4096], "scale": 4}}
    (tmp_path / "y.json").write_text(json.dumps(spec))
    Image.new("L", (1024, 1024)).save(tmp_path / "y.png")
    monkeypatch.setattr(linear, "bicubic_matrix", lambda *a: pytest.fail("the operator was built"))
    with pytest.raises(ShredError, match="describes 1-channel images but model cifar10-32 makes 3-channel ones"):
        load_measurement(tmp_path / "y.png", spec=tmp_path / "y.json", model="cifar10-32")


@pytest.fixture
def bundled_copy(tmp_path):
    import shutil
    from pathlib import Path

    src = Path(shred.__file__).parent / "bundled" / "cifar10-32"
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["unet"].update(block_out_channels="abc"), "block_out_channels must be a list"),
    (lambda c: c["unet"].update(layers_per_block="1"), "layers_per_block must be an integer"),
    (lambda c: c["unet"].update(sample_size=10 ** 9), "sample_size must be an integer"),
    (lambda c: c["unet"].update(norm_num_groups=7), "cannot build a UNet2DModel from this configuration"),
    (lambda c: c["unet"].update(down_block_types=["Nope", "Nope", "Nope"]), "cannot build a UNet2DModel"),
    (lambda c: c.update(unet=[1, 2]), "must be a JSON object"),
    (lambda c: c.pop("schedule"), "schedule is missing"),
    (lambda c: c.update(schedule={"kind": "linear", "T": "x"}), "schedule.T must be an integer"),
    (lambda c: c.update(shred_format="1"), "shred_format must be a positive integer"),
])
def test_a_model_config_is_checked_field_by_field(edit, needle, bundled_copy):
    cfg = json.loads((bundled_copy / "config.json").read_text())
    edit(cfg)
    (bundled_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as info:
        shred.load_model(bundled_copy)
    assert "config.json" in str(info.value) and needle in str(info.value), str(info.value)


# --- 7. weights are sane -------------------------------------------------------------------------------
def _rewrite_weights(folder, change):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    save_file(change(state), str(folder / "model.safetensors"))


def test_integer_weights_are_refused(bundled_copy):
    _rewrite_weights(bundled_copy, lambda s: {k: (v.float() * 100).to(torch.int8) for k, v in s.items()})
    with pytest.raises(CheckpointError, match=r"model.safetensors: weights are int8 .*floating-point"):
        shred.load_model(bundled_copy)


def test_a_nan_weight_is_refused(bundled_copy, tmp_path, capsys):
    def poison(state):
        k = sorted(state)[0]
        state[k] = state[k].clone()
        state[k].view(-1)[0] = float("nan")
        return state

    _rewrite_weights(bundled_copy, poison)
    with pytest.raises(CheckpointError, match="model.safetensors: 1 weight is NaN or infinite"):
        shred.load_model(bundled_copy)
    Image.new("RGB", (8, 8), (90, 90, 90)).save(tmp_path / "y.png")
    code, _, err = run(["restore", tmp_path / "y.png", "--task", "sr", "--model", bundled_copy, "--out",
                        tmp_path / "r.png"], capsys)
    one_error_line(code, err, "NaN or infinite")
    assert not (tmp_path / "r.png").exists()


def _small_ddim(seed=0):
    from ckpt_factory import ddim_state

    return ddim_state(ch=32, mult=(1, 2), attention=(2,), seed=seed)


def test_the_ermongroup_training_layout_loads_its_ema_weights(tmp_path):
    from shred.models import load_checkpoint_file

    model, ema = _small_ddim(0), _small_ddim(1)
    optimizer = {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "params": [0, 1]}]}
    torch.save([{f"module.{k}": v for k, v in model.items()}, optimizer, 12, 3400, ema], tmp_path / "ckpt.pth")
    den = load_checkpoint_file(tmp_path / "ckpt.pth")
    reference = load_checkpoint_file(_saved(tmp_path / "ema.pt", ema))
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([500])
    assert torch.equal(den(x, t), reference(x, t))  # the EMA weights, not the training ones

    torch.save([model, optimizer, 12, 3400], tmp_path / "no-ema.pth")
    with pytest.warns(ShredWarning, match="without EMA weights"):
        load_checkpoint_file(tmp_path / "no-ema.pth")
    torch.save([model, optimizer], tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"a list of 2 entries.*torch.save\(model.state_dict\(\), path\)"):
        load_checkpoint_file(tmp_path / "odd.pth")


def _saved(path, state):
    torch.save(state, path)
    return path


# --- 8. training never writes a broken model -------------------------------------------------------------
@pytest.fixture
def tiny_data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_truncated_checkpoint_names_the_file_and_restart(tmp_path, tiny_data, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(_saved(tmp_path / "full.pt", _small_ddim()).read_bytes()[:5000])
    code, _, err = run(["train", tiny_data, "--arch", "tiny", "--steps", "1", "--batch", "2", "--quiet", "--out",
                        run_dir], capsys)
    one_error_line(code, err, "checkpoint.pt is truncated or corrupt", "--restart")
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt"]
    code, _, err = run(["train", tiny_data, "--arch", "tiny", "--steps", "1", "--batch", "2", "--quiet", "--out",
                        run_dir, "--restart", "--no-compile"], capsys)
    assert code == 0, err


def test_a_diverging_run_stops_without_writing(tmp_path, tiny_data):
    from shred.train import Trainer, TrainConfig

    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), arch="tiny", steps=3, batch=2, compile=False)
    trainer = Trainer(cfg, device="cpu")
    step = trainer._step_fn
    trainer._step_fn = lambda *a: step(*a) * float("nan")  # the loss (and then every weight) turns NaN
    with pytest.raises(ShredError, match="training diverged: the loss became nan at step 1.*nothing was written"):
        trainer.run(progress=False)
    assert list((tmp_path / "run").iterdir()) == []


# --- 9. defaults say what they assumed ---------------------------------------------------------------------
def test_restoring_with_assumed_defaults_says_so(tmp_path, clean_png, capsys):
    from shred.restoration import load_measurement

    y = tmp_path / "y.png"
    run(["degrade", clean_png, "--task", "deblur", "--kernel-sigma", "1", "--out", y], capsys)
    with pytest.warns(ShredWarning, match="assuming a Gaussian blur kernel of sigma 3 px"):
        load_measurement(y, task="deblur")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_measurement(y, task="deblur", options=shred.TaskOptions(kernel_sigma=1.0),
                         given={"kernel", "kernel_sigma"})
    with pytest.warns(ShredWarning, match="assuming a centred 16x16 hole"):
        load_measurement(y, task="inpaint")
    code, _, err = run(["restore", y, "--task", "deblur", "--kernel-sigma", "1", "--iterations", "1", "--quiet",
                        "--out", tmp_path / "r.png"], capsys)
    assert code == 0 and "warning: assuming a Gaussian blur kernel of sigma 1 px" in err, err


def test_resize_says_what_it_cut(tmp_path):
    from shred.restoration import load_measurement

    Image.new("RGB", (6, 10), (50, 60, 70)).save(tmp_path / "y.png")  # 10 high, 6 wide
    with pytest.warns(ShredWarning, match=r"y.png: centre-cropped from 10x6 to 6x6 \(cutting 40 % of it\), "
                                          r"then resampled from 6x6 to 8x8"):
        load_measurement(tmp_path / "y.png", task="sr", allow_resize=True)


def test_sr_bicubic_down_to_one_pixel_is_matlabs():
    from shred.operators import build_task

    op = build_task("sr-bicubic", (3, 8, 8), shred.TaskOptions(scale=8))
    assert op.out_shape == (3, 1, 1)
    # MATLAB imresize(x, 1/8) of an 8x8 image: the mean, weights wrapped mod 2n before mirroring.
    assert torch.allclose(op.Dh, torch.full((1, 8), 0.125, dtype=torch.float64))
    for shape, scale in [((3, 16, 16), 16), ((3, 16, 8), 8)]:
        op = build_task("sr-bicubic", shape, shred.TaskOptions(scale=scale))
        assert torch.allclose(op.Dh.sum(1), torch.ones(op.Dh.shape[0], dtype=torch.float64))


def test_counts_seeds_and_ports_are_decimal_digits_only(capsys):
    """int() takes "1_0" as 10 and other scripts' digits; a count on the command line does not."""
    import argparse

    from shred.cli.bench import name_count
    from shred.cli.options import integer, positive_int, seed, size
    from shred.config import decimal_int
    from shred.ui.command import _port

    assert decimal_int(" -12 ") == -12 and decimal_int("+3") == 3 and positive_int("7") == 7
    assert seed("5") == 5 and integer("-4") == -4 and name_count("dps=10") == ("dps", 10) and _port("8080") == 8080
    for bad in ("1_0", "\u0661\u0660", "1e3", "0x10", "", "1.0"):
        with pytest.raises(ValueError):
            decimal_int(bad)
        for parse in (positive_int, seed, integer, _port, lambda t: name_count(f"dps={t}"), size):
            with pytest.raises(argparse.ArgumentTypeError):
                parse(bad)
    assert size("32") == (32, 32) and size("16x8") == (16, 8)
    with pytest.raises(argparse.ArgumentTypeError):
        size("16x\u0668")
    # A kernel file's index: digits 0-9 only ("k.npy:²" was an internal error); here no such file.
    from shred.errors import ShredError
    from shred.operators.kernels import load_kernel

    for bad in ("\u00b2", "\u0661"):
        with pytest.raises(ShredError, match="does not exist"):
            load_kernel(f"k.mat:{bad}")
