"""Restoring at scale: images of any size (the canvas, tiles) and folders (batches, resuming,
unusable files). The processes of torchrun are in test_torchrun.py.

Tiny random-weight networks keep it fast: what is tested is which pixels the network and the
operator see, what is written and what is skipped, not the quality of the restorations.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shred.cli import main
from shred.diffusion import NoiseSchedule, ddim_sample, time_pairs
from shred.errors import ShredError
from shred.models.base import Denoiser, UNetDenoiser, accepts, canvas_size
from shred.models.lean_unet import LeanUNet
from shred.models.tiles import TiledDenoiser, tile_starts
from shred.operators import TaskOptions, build_task, crop_to_image, on_canvas, operator_from_spec
from shred.restoration import image_size_for
from shred.sizes import solve
from shred.solvers import Shred, ShredConfig, build_solver, seeded_noise, to_image_space

# Five levels: four down-samplings, so the network runs at multiples of 16 (48x40 -> a 48x48 canvas).
DEEP = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=[8, 8, 8, 8, 8],
            down_block_types=["DownBlock2D"] * 5, up_block_types=["UpBlock2D"] * 5, layers_per_block=1,
            norm_num_groups=4, attention_head_dim=8)


@pytest.fixture(scope="module")
def deep():
    torch.manual_seed(0)
    return UNetDenoiser(LeanUNet(**DEEP), NoiseSchedule.linear(), name="deep-random")


def _rand(shape, seed, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- sizes the networks take ---------------------------------------------------------------------
def test_size_multiples(deep, tiny_model_dir, gaussian_prior):
    from shred.models import load_model

    assert deep.size_multiple == 16 and canvas_size(deep, 48, 40) == (48, 48)
    tiny = load_model(str(tiny_model_dir))
    assert tiny.size_multiple == 2 and accepts(tiny, 6, 10) and not accepts(tiny, 7, 10)
    assert load_model("cifar10-32").size_multiple == 4 and load_model("fashion-mnist-28").size_multiple == 4
    assert gaussian_prior.size_multiple is None and accepts(gaussian_prior, 16, 16)
    with pytest.raises(ShredError, match="runs at 16x16 only"):
        canvas_size(gaussian_prior, 16, 24)
    # The network really runs at such sizes: a 48x32 input gives a 48x32 eps.
    x = torch.randn(1, 3, 48, 32)
    assert deep(x, torch.tensor([10])).shape == x.shape


def test_image_size_implied_by_a_task():
    assert image_size_for("sr", TaskOptions(scale=4), (80, 120)) == (320, 480)
    assert image_size_for("colorize+sr", TaskOptions(scale=2), (5, 7)) == (10, 14)
    assert image_size_for("old-photo", TaskOptions(scale=1), (5, 7)) == (5, 7)
    assert image_size_for("inpaint", None, (5, 7)) == (5, 7)


# -- the canvas operator ----------------------------------------------------------------------------
CANVAS_CASES = {
    "sr": ("sr", TaskOptions(scale=2)),
    "noisy-deblur": ("deblur", TaskOptions(kernel_sigma=1.0, sigma_y=0.05)),
    "inpaint": ("inpaint", TaskOptions(box_size=4)),
    "colorize+sr": ("colorize+sr", TaskOptions(scale=2)),
}


@pytest.mark.parametrize("case", sorted(CANVAS_CASES))
def test_canvas_operator_is_the_operator_of_the_crop(case):
    task, opts = CANVAS_CASES[case]
    op = build_task(task, (3, 10, 6), opts, generator=torch.Generator().manual_seed(0))
    big = on_canvas(op, (16, 12))
    assert big.in_shape == (3, 16, 12) and big.out_shape == op.out_shape and big.sigma_y == op.sigma_y
    x = _rand((2, 3, 16, 12), 1)
    inner = x[..., 3:13, 3:9]  # the image sits at the centre of the canvas
    assert torch.equal(big.A(x), op.A(inner)) and torch.equal(crop_to_image(x, big), inner)
    y = _rand((2, *op.out_shape), 2)
    # Adjoint in float64 (round-off ~1e-13 relative); the border gets zeros.
    assert abs((big.A(x) * y).sum() - (x * big.AT(y)).sum()) <= 1e-10 * (big.A(x) * y).sum().abs().clamp_min(1)
    # A^+ = C^T A^+: the Penrose conditions hold as well as they do for A (CGLS for the blur
    # stops at a relative residual ~1e-3 on its smallest singular values; closed forms are exact).
    p = big.pinv(big.A(x))
    tol = 2e-3 if case == "noisy-deblur" else 1e-10
    assert (big.A(p) - big.A(x)).norm() <= tol * big.A(x).norm()
    assert torch.equal(p[..., :3, :], torch.zeros_like(p[..., :3, :]))  # minimum norm: nothing in the border
    again = operator_from_spec(json.loads(json.dumps(big.spec())))
    assert torch.equal(again.A(x), big.A(x)) and again.spec() == big.spec()
    assert on_canvas(op, (10, 6)) is op


def test_ddrm_runs_on_a_canvas_through_the_separable_svd(deep):
    from shred.operators.svd import operator_svd

    op = build_task("sr", (3, 40, 40), TaskOptions(scale=4))
    big = on_canvas(op, (48, 48))
    svd = operator_svd(big)
    x = _rand((1, 3, 48, 48), 3)
    assert torch.allclose(svd.A(x), big.A(x), atol=1e-12)  # float64, Kronecker products of small SVDs
    res = solve(build_solver("ddrm", deep, steps=2), op.A(torch.rand(1, 3, 40, 40)), op, seeds=[0])
    assert res.x0.shape == (1, 3, 40, 40) and res.extras["canvas"] == [48, 48]


def test_a_48x40_image_on_its_canvas_is_the_direct_computation(deep):
    """SHRED on a 48x40 image with a network of stride 16: x_T lives on the 48x48 canvas, the loss
    compares y with H(crop(f(x_T))), the result is the crop. Written out here step by step."""
    op = build_task("sr", (3, 48, 40), TaskOptions(scale=2))
    y = op.A(torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(1)))
    cfg = ShredConfig(delta_t=250, lr=0.05, iterations=2, clip_x0=False, sphere=True, loss="mse", grad="surrogate")
    seen = []
    hook = deep.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape[-2:])))
    try:
        res = solve(Shred(deep, cfg), y, op, seeds=[7])
    finally:
        hook.remove()
    assert set(seen) == {(48, 48)} and res.x0.shape == (1, 3, 48, 40) and res.extras["canvas"] == [48, 48]

    # The same, directly: Algorithm 1 with x_T on the canvas and H applied to the centre crop.
    def direct(left: int) -> torch.Tensor:
        pairs = time_pairs(1000, delta_t=250, spacing="leading")
        x_T = seeded_noise((3, 48, 48), [7])
        radius = math.sqrt(3 * 48 * 48)
        x_T = (x_T * radius / x_T.flatten(1).norm(dim=1)).requires_grad_(True)
        opt = torch.optim.Adam([x_T], lr=0.05)
        for _ in range(2):
            x0 = to_image_space(ddim_sample(deep, x_T, pairs, grad="surrogate", clip_x0=False))
            last = x0.detach()[..., :, left:left + 40]
            loss = (y - op.A(x0[..., :, left:left + 40])).pow(2).sum() / y[0].numel()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x_T.mul_(radius / x_T.flatten(1).norm(dim=1))
        return last

    # The same float32 arithmetic, summed in other orders (the loss, the projection): relative
    # round-off ~1e-6 of values up to ~30 (a random network) after two Adam steps.
    scale = res.x0.abs().max()
    assert (res.x0 - direct(4)).abs().max() <= 1e-5 * scale
    assert (res.x0 - direct(0)).abs().max() > 1e-2 * scale  # the crop at the corner is another problem


def test_blind_deblurring_needs_a_size_the_network_takes(deep):
    op = build_task("blind-deblur", (3, 40, 40), TaskOptions(kernel="random", kernel_size=5),
                    generator=torch.Generator().manual_seed(0))
    with pytest.raises(ShredError, match="multiples of 16.*crop it to 32x32"):
        solve(build_solver("shred-blind", deep, iterations=1), torch.rand(1, 3, 40, 40), op, seeds=[0])


# -- tiles ------------------------------------------------------------------------------------------------
class _Pointwise(Denoiser):
    """eps = 2 x + 1, pixel by pixel: tiling must give it back exactly."""

    def __init__(self):
        super().__init__()
        self.channels, self.image_size, self.size_multiple, self.name = 3, (8, 8), 4, "pointwise"
        self.schedule = NoiseSchedule.linear()

    def forward(self, x_t, t):
        return 2 * x_t + 1


def test_tiles_cover_the_image_and_blend_to_a_partition_of_unity():
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68] and tile_starts(32, 32, 8) == [0]
    tiled = TiledDenoiser(_Pointwise(), tile=8, overlap=4)
    x = torch.randn(2, 3, 20, 28, requires_grad=True)
    eps = tiled(x, torch.zeros(2, dtype=torch.long))
    assert len(tiled.tiles(20, 28)) == 4 * 6
    # The normalised weights sum to one at every pixel, so a pointwise eps is unchanged (float32 round-off).
    assert torch.allclose(eps, 2 * x + 1, atol=1e-5)
    eps.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 2.0), atol=1e-5)
    with pytest.raises(ShredError, match="multiple of 4"):
        TiledDenoiser(_Pointwise(), tile=6)


def test_tiled_restoration_is_measurement_consistent_on_the_whole_image(deep):
    """A blur crossing tile borders: the loss is that of the whole image, and both gradients run."""
    op = build_task("deblur", (3, 48, 32), TaskOptions(kernel_sigma=1.5))
    y = op.A(torch.rand(1, 3, 48, 32, generator=torch.Generator().manual_seed(2)))
    calls = []
    hook = deep.register_forward_hook(lambda mod, args, out: calls.append(tuple(args[0].shape[-2:])))
    try:
        for grad in ("surrogate", "exact"):
            solver = Shred(TiledDenoiser(deep, tile=32, overlap=16), ShredConfig(delta_t=500, iterations=2, grad=grad))
            res = solve(solver, y, op, seeds=[0])
            assert res.x0.shape == (1, 3, 48, 32) and torch.isfinite(res.x0).all()
            assert len(solver.denoiser.tiles(48, 32)) == 2
            assert res.loss_history.shape == (2, 1)
    finally:
        hook.remove()
    assert set(calls) == {(32, 32)}  # only tiles went through the network
    # A tile as large as the image is the network itself.
    whole = Shred(deep, ShredConfig(delta_t=500, iterations=1))(y, op, seeds=[0]).x0
    one_tile = Shred(TiledDenoiser(deep, tile=48), ShredConfig(delta_t=500, iterations=1))(y, op, seeds=[0]).x0
    assert torch.equal(whole, one_tile)


def test_automatic_tiles_follow_the_free_memory(tiny_model_dir, monkeypatch):
    from shred.api import make_restorer
    from shred.models import load_model
    from shred.models import tiles

    den = load_model(str(tiny_model_dir))
    per_pixel = tiles.PEAK_PER_ACTIVATION["cpu"]["surrogate"] * tiles.activation_bytes_per_pixel(den)
    # Free memory for 30x30 pixels in the budget: a 32x32 image is tiled, a 16x24 one is not.
    monkeypatch.setattr(tiles, "available_bytes", lambda device: int(per_pixel * 900 / tiles.FREE_FRACTION))
    solver = make_restorer(den, "denoise", device="cpu", iterations=1).solver
    sizes = []
    hook = den.unet.register_forward_hook(lambda mod, args, out: sizes.append(tuple(args[0].shape[-2:])))
    try:
        for h, w in ((16, 24), (32, 32)):
            solve(solver, torch.rand(1, 3, h, w), build_task("denoise", (3, h, w)), seeds=[0])
    finally:
        hook.remove()
    assert set(sizes) == {(16, 24), (16, 16)}  # the 32x32 image went through in 16x16 tiles
    assert not isinstance(make_restorer(den, "denoise", tile="none").solver.denoiser, TiledDenoiser)


def test_memory_factors_cover_the_committed_measurements():
    """PEAK_PER_ACTIVATION stays above what bench/scale.py memory (CPU) and bench/speed.py (H200)
    measured, over the activation bytes this code counts for the same networks."""
    import importlib.util

    from conftest import ROOT
    from shred.models import load_model
    from shred.models import tiles

    cpu = json.loads((ROOT / "bench" / "results" / "scale-memory-cpu.json").read_text())
    for row in cpu["rows"]:
        estimate = tiles.activation_bytes_per_pixel(load_model(row["model"]))
        assert abs(estimate - row["activation_bytes_per_pixel"]) <= 0.5  # the JSON rounds it
        if row["tiles"] is None:
            assert tiles.PEAK_PER_ACTIVATION["cpu"][row["grad"]] >= row["bytes_per_pixel"] / estimate

    spec = importlib.util.spec_from_file_location("speed", ROOT / "bench" / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    h200 = json.loads((ROOT / "bench" / "results" / "speed-h200.json").read_text())
    rows = [r for r in h200["rows"] if r["precision"] == "fp32" and r["batch"] == 1]
    assert {r["grad"] for r in rows} == {"surrogate", "exact"}
    for r in rows:
        den = speed.make_denoiser(speed.ARCHS[r["model"]], "meta")  # no memory, nothing computed
        weights = sum(p.numel() * p.element_size() for p in den.parameters())
        pixels = math.prod(den.image_size)
        ratio = (r["peak_memory_gb"] * 2 ** 30 - weights) / (tiles.activation_bytes_per_pixel(den) * pixels)
        assert 0 < ratio <= tiles.PEAK_PER_ACTIVATION["cuda"][r["grad"]]

    # The README's table of sizes (bench/scale.py sizes) is this code's budget.
    sizes = json.loads((ROOT / "bench" / "results" / "scale-sizes.json").read_text())
    assert sizes["fraction_of_free_memory"] == tiles.FREE_FRACTION
    bpp = tiles.activation_bytes_per_pixel(load_model("cifar10-32"))
    for row in (r for r in sizes["rows"] if r["model"] == "cifar10-32"):
        assert row["budget_bytes_per_pixel"] == round(tiles.PEAK_PER_ACTIVATION[row["device"]][row["grad"]] * bpp)


# -- folders ----------------------------------------------------------------------------------------------
def _png(path: Path, h: int, w: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _stamps(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def mixed(tmp_path):
    """Degraded images (x2 super-resolution, specs beside them) and the files that cannot be used."""
    clean = tmp_path / "clean"
    for i, rel in enumerate(["a.png", "b.png", "c.png", "sub/d.png"]):
        _png(clean / rel, 16, 16, i)
    _png(clean / "wide.png", 12, 20, 9)  # another size: its own operator, restored at 12x20
    assert main(["degrade", str(clean), "--task", "sr", "--scale", "2", "--out", str(tmp_path / "y"), "--quiet"]) == 0
    y = tmp_path / "y"
    (y / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (y / "corrupt.json").write_text((y / "a.json").read_text())
    _png(y / "wrong.png", 9, 9, 5)  # a measurement of another size than its spec's 8x8
    (y / "wrong.json").write_text((y / "a.json").read_text())
    _png(y / "nospec.png", 8, 8, 6)
    return y


def test_folder_restore_skips_what_is_done_and_reports_bad_files(tmp_path, mixed, tiny_model_dir, capsys):
    out = tmp_path / "r"
    argv = ["restore", str(mixed), "--out", str(out), "--model", str(tiny_model_dir), "--iterations", "1",
            "--batch", "2", "--quiet"]
    assert main(argv) == 2  # some inputs were unusable
    err = capsys.readouterr().err.splitlines()
    bad = sorted(line for line in err if line.startswith("shred-ir: skipped"))
    assert len(bad) == 3, err
    assert "corrupt.png: cannot read the image" in bad[0] and "nospec.png: no spec nospec.json beside it" in bad[1]
    assert "wrong.png is 9x9 but its spec's sr of 16x16 images expects a 8x8 measurement" in bad[2]
    assert "8 images: 5 restored, 0 already done, 3 unusable" in err[-1]
    for rel in ["a", "b", "c", "sub/d", "wide"]:
        image, spec, report = out / f"{rel}.png", out / f"{rel}.json", out / f"{rel}.report.json"
        assert image.is_file() and spec.is_file()
        rec = json.loads(report.read_text())
        assert rec["config"]["iterations"] == 1 and len(rec["key"]) == 24 and rec["seed"] == 0
    assert Image.open(out / "wide.png").size == (20, 12)
    assert json.loads((out / "a.report.json").read_text())["batch"] == 2
    assert not (out / "corrupt.png").exists() and not (out / "wrong.png").exists()

    # One image of the folder is what the single-image command makes of it (same seed; float32
    # sums of a batch may round a pixel differently).
    assert main(["restore", str(mixed / "c.png"), "--out", str(tmp_path / "c1.png"), "--model", str(tiny_model_dir),
                 "--iterations", "1", "--quiet"]) == 0
    diff = np.abs(np.asarray(Image.open(out / "c.png"), int) - np.asarray(Image.open(tmp_path / "c1.png"), int))
    assert diff.max() <= 1

    stamps = _stamps(out)
    assert main(argv) == 2
    assert "0 restored, 5 already done" in capsys.readouterr().err.splitlines()[-1]
    assert _stamps(out) == stamps  # nothing rewritten
    # A changed setting is a new key: every image again; --overwrite redoes them too.
    assert main([*argv, "--lr", "0.2"]) == 2
    assert "5 restored" in capsys.readouterr().err.splitlines()[-1]
    assert json.loads((out / "a.report.json").read_text())["config"]["lr"] == 0.2
    assert main([*argv, "--lr", "0.2", "--overwrite"]) == 2
    assert "5 restored" in capsys.readouterr().err.splitlines()[-1]
    # A glob, and a folder restored into itself (refused before anything is done).
    assert main(["restore", str(mixed / "[ab].png"), "--out", str(tmp_path / "g"), "--model", str(tiny_model_dir),
                 "--iterations", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "a.json", "a.png", "a.report.json", "b.json", "b.png", "b.report.json"]
    assert main(["restore", str(mixed), "--out", str(mixed), "--model", str(tiny_model_dir)]) == 2
    assert "is the input folder" in capsys.readouterr().err


def test_a_folder_that_every_image_would_refuse_is_refused_once(tmp_path, mixed, tiny_model_dir, capsys):
    """A task that draws its operator at random, without --degrade-seed, refuses the whole folder
    in one line before any work (not one line per image); a run that writes nothing says so."""
    out = tmp_path / "r"
    code = main(["restore", str(mixed), "--task", "cs", "--fraction", "0.2", "--out", str(out),
                 "--model", str(tiny_model_dir), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "cs draws a random mask" in err[0], err
    assert not out.exists()
    assert main(["restore", str(mixed / "corrupt*.png"), "--task", "sr", "--out", str(out),
                 "--model", str(tiny_model_dir), "--quiet"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert "1 image: 0 restored, 0 already done, 1 unusable" in last and last.endswith("; nothing written"), last


def test_a_folder_batches_rounded_and_exact_measurements_apart(tmp_path, tiny_model_dir):
    """An 8-bit file's measurement carries its rounding as noise, a .npy one does not: the same
    spec, but not the same operator, so they are never restored in one batch with one of them."""
    from shred.folders import FolderRestore

    clean = _png(tmp_path / "clean" / "a.png", 16, 16, 1)
    y = tmp_path / "y"
    y.mkdir()
    for name in ("a.png", "b.npy"):
        assert main(["degrade", str(clean), "--task", "deblur", "--kernel-sigma", "1", "--out", str(y / name),
                     "--quiet"]) == 0
    job = FolderRestore(y, tmp_path / "out", model=str(tiny_model_dir), device="cpu", progress=False)
    ready, bad = job.prepare()
    assert not bad and [p.item.rel.name for p in ready] == ["a.png", "b.npy"]
    assert ready[0].group != ready[1].group and ready[0].key != ready[1].key


def test_folder_degrade_is_the_single_command_per_image_and_resumes(tmp_path, capsys):
    clean = tmp_path / "clean"
    for i in range(3):
        _png(clean / f"{i}.png", 16, 16, i)
    argv = ["degrade", str(clean), "--task", "cs", "--fraction", "0.3", "--sigma-y", "0.05", "--seed", "4",
            "--out", str(tmp_path / "y"), "--quiet"]
    assert main(argv) == 0
    assert main(["degrade", str(clean / "1.png"), "--task", "cs", "--fraction", "0.3", "--sigma-y", "0.05",
                 "--seed", "4", "--out", str(tmp_path / "one.png"), "--quiet"]) == 0
    assert (tmp_path / "y" / "1.png").read_bytes() == (tmp_path / "one.png").read_bytes()
    stamps = _stamps(tmp_path / "y")
    assert main(argv) == 0
    assert "0 degraded, 3 already done" in capsys.readouterr().err
    assert _stamps(tmp_path / "y") == stamps
