"""The execution options (shred.models.fast): the automatic choice per device, their wiring into the
API and the CLI, and that every fast configuration computes what the float32 path computes."""
import shutil

import pytest
import torch

import shred
from shred.errors import ShredError
from shred.metrics import psnr
from shred.models import RunOptions, accelerate, load_folder, run_options
from shred.models.fast import COMPILE_MIN_WORK, FastDenoiser
from shred.solvers import ShredConfig
from shred.solvers.shred import check_interval


def test_automatic_choice_per_device_and_run_size():
    assert RunOptions.for_device("cpu") == RunOptions()  # float32 NCHW eager
    # On a GPU: bf16 + channels-last; compiled only for surrogate runs big enough to pay for it.
    assert RunOptions.for_device("cuda", "surrogate", 1, 100) == RunOptions("bf16", True, None)
    assert RunOptions.for_device("cuda", "surrogate", 8, 100).compile == "default"
    assert COMPILE_MIN_WORK == 800
    assert RunOptions.for_device("cuda", "surrogate", 7, 100).compile is None
    assert RunOptions.for_device("cuda", "exact", 32, 100) == RunOptions("bf16", True, None)


def test_run_options_resolve_strings_dicts_and_reject_nonsense():
    assert run_options("plain", "cuda") == RunOptions() == run_options(None, "cpu")
    assert run_options("auto", "cpu") == RunOptions()
    assert run_options({"precision": "bf16", "compile": "auto"}, "cpu") == RunOptions("bf16", False, None)
    assert run_options({"precision": "auto", "compile": "none"}, "cuda", images=16) == RunOptions("bf16", True, None)
    assert run_options({"compile": "default"}, "cpu").compile == "default"
    given = RunOptions("fp16", False, None)
    assert run_options(given, "cuda") is given
    with pytest.raises(ShredError, match="unknown run options: speed"):
        run_options({"speed": "max"}, "cpu")
    with pytest.raises(ShredError, match="precision must be one of"):
        run_options({"precision": "int8"}, "cpu")
    with pytest.raises(ShredError, match="run options must be"):
        run_options("fastest", "cpu")


def test_accelerate_keeps_the_contract_and_never_stacks(tiny_model_dir):
    den = load_folder(tiny_model_dir)
    assert accelerate(den, RunOptions()) is den and accelerate(den, None) is den
    fast = accelerate(den, RunOptions("bf16", True, None))
    assert isinstance(fast, FastDenoiser)
    assert (fast.name, fast.channels, fast.image_size, fast.schedule) == (den.name, den.channels, den.image_size,
                                                                          den.schedule)
    again = accelerate(fast, RunOptions("fp32", True, None))
    assert again.inner is den and again.options.precision == "fp32"
    assert accelerate(fast, RunOptions()) is den


def _eps_pair(model_dir, options):
    den = load_folder(model_dir)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([100, 700])
    with torch.no_grad():
        ref = den(x, t)
        out = accelerate(load_folder(model_dir), options)(x, t)
    return ref, out


def test_channels_last_float32_gives_the_same_eps(tiny_model_dir):
    ref, out = _eps_pair(tiny_model_dir, RunOptions("fp32", True, None))
    assert out.dtype == torch.float32 and out.is_contiguous()
    # NHWC convolutions sum in another order: float32 round-off of eps values ~1.
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_returns_float32_eps_close_to_float32(tiny_model_dir):
    ref, out = _eps_pair(tiny_model_dir, RunOptions("bf16", True, None))
    assert out.dtype == torch.float32
    rel = float((out - ref).norm() / ref.norm())
    assert 0 < rel < 3e-2  # bf16 rounding (8 mantissa bits), not zero: autocast did run


@pytest.mark.slow  # compiling takes 12-120 s on a CPU
def test_compiled_network_gives_the_same_eps(tiny_model_dir):
    if not (shutil.which("c++") or shutil.which("g++")):
        pytest.skip("torch.compile on a CPU needs a C++ compiler")
    ref, out = _eps_pair(tiny_model_dir, RunOptions("fp32", False, "default"))
    # Inductor fuses and reorders float32 arithmetic: round-off, amplified by the GroupNorms.
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)


def test_a_failed_compilation_falls_back_to_eager_with_a_warning(tiny_model_dir, monkeypatch):
    ref, _ = _eps_pair(tiny_model_dir, RunOptions())

    def broken(self, *args):  # what inductor raises on a machine without a C++ compiler
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch._dynamo.eval_frame.OptimizedModule, "__call__", broken)
    fast = accelerate(load_folder(tiny_model_dir), RunOptions("fp32", False, "default"))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*No working C.. compiler found.*eagerly"):
        with torch.no_grad():
            out = fast(x, torch.tensor([100, 700]))
    assert torch.allclose(out, ref, atol=1e-6)
    assert fast.options.compile is None and fast._call is fast.inner


def test_cli_prints_a_compile_fallback_as_one_line(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from shred.cli import main

    def broken(self, *args):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch._dynamo.eval_frame.OptimizedModule, "__call__", broken)
    y = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    shred.write_image(tmp_path / "y.png", y)
    code = main(["restore", str(tmp_path / "y.png"), "--task", "sr", "--scale", "2", "--model", str(tiny_model_dir),
                 "--iterations", "1", "--compile", "default", "--quiet", "--out", str(tmp_path / "r.png")])
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "r.png").is_file()
    warning = [line for line in err.splitlines() if line.startswith("shred-ir: warning: torch.compile failed")]
    assert len(warning) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def fmnist_problem():
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    y, op = shred.degrade(x, "sr", shred.TaskOptions(scale=4), seed=0)
    return y, op


@pytest.mark.slow
@pytest.mark.parametrize("run, min_db", [(RunOptions("fp32", True, None), 80.0), (RunOptions("bf16", True, None), 35.0)])
def test_restorations_match_the_float32_path(fmnist_problem, run, min_db):
    """The tolerance the fast path is held to: PSNR of its restorations against float32 NCHW eager
    (measured: > 105 dB for channels-last float32, 46-54 dB for bf16 after 5 iterations)."""
    y, op = fmnist_problem
    ref = shred.restore(y, op, shred.load_model("fashion-mnist-28"), task="sr", seeds=[0, 1], run="plain",
                        iterations=4).x0
    out = shred.restore(y, op, shred.load_model("fashion-mnist-28"), task="sr", seeds=[0, 1], run=run,
                        iterations=4).x0
    assert float(psnr(out, ref).min()) > min_db


def test_restore_accepts_run_options_for_any_denoiser(gaussian_prior):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y, op = shred.degrade(x, "inpaint", seed=0)
    a = shred.restore(y, op, gaussian_prior, seeds=[0], run="plain", iterations=3).x0
    b = shred.restore(y, op, gaussian_prior, seeds=[0], run={"precision": "fp32"}, iterations=3).x0
    assert torch.equal(a, b)  # on a CPU both resolve to float32 NCHW eager: the very same computation


def test_loss_is_read_every_iteration_on_cpu_and_every_ten_on_gpu():
    assert check_interval(None, torch.device("cpu")) == 1
    assert check_interval(None, torch.device("cuda")) == 10
    assert check_interval(3, torch.device("cuda")) == 3
    assert ShredConfig().check_every is None
    with pytest.raises(ShredError, match="check_every"):
        ShredConfig(check_every=0)


def test_config_classes_share_one_replace():
    # TaskOptions, TrainConfig and RunOptions: replace sets the fields named (None included),
    # validates again, and refuses unknown names, like from_dict.
    from shred.operators import TaskOptions
    from shred.train import TrainConfig

    opts = TaskOptions(scale=2, box_size=8)
    assert opts.replace(box_size=None) == TaskOptions(scale=2)
    assert TaskOptions.from_dict(opts.to_dict()) == opts
    cfg = TrainConfig(data="d", out="o", steps=10)
    assert cfg.replace(minutes=1.0, steps=None) == TrainConfig(data="d", out="o", minutes=1.0)
    with pytest.raises(ShredError, match="give a budget"):  # validated again
        cfg.replace(steps=None)
    run = RunOptions()
    assert run.replace(precision="bf16").precision == "bf16"
    with pytest.raises(ShredError, match="precision must be one of"):
        run.replace(precision="int8")
    for obj, what in ((opts, "task options"), (cfg, "training settings"), (run, "run options")):
        with pytest.raises(ShredError, match=f"unknown {what}: nope; known: "):
            obj.replace(nope=1)
        with pytest.raises(ShredError, match=f"unknown {what}: nope"):
            type(obj).from_dict({**obj.to_dict(), "nope": 1})
