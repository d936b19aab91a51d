import importlib.util
import json

import pytest
import torch

from conftest import ROOT, shared


def _speed_module():
    spec = importlib.util.spec_from_file_location("speed", ROOT / "bench" / "speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("arch,ref,factor,params", [("celeba-ddpm", "celeba_hq_small.pt", 4, 113.67e6),
                                                    ("adm-imagenet", "adm_imagenet256_uncond_small.pt", 8, 552.81e6)])
def test_benchmark_architectures_are_what_the_loader_builds(arch, ref, factor, params):
    """bench/speed.py's full-width networks = the loader's configuration of the released layout
    (from the reduced-width reference file) with the released widths."""
    from shred.models import build_unet
    from shred.models.checkpoints import read_torch_file
    from shred.models.convert import unet_from_state

    speed = _speed_module()
    _, conv = unet_from_state(read_torch_file(shared("reference-checkpoints", ref)), ref)
    expected = dict(conv.config, sample_size=256, block_out_channels=[c * factor for c in conv.config["block_out_channels"]])
    got = json.loads(json.dumps(speed.ARCHS[arch]))
    expected = json.loads(json.dumps(expected))  # tuples and lists alike
    assert {k: v for k, v in expected.items() if v is not None and k in got} == \
        {k: v for k, v in got.items() if k in expected and expected[k] is not None}
    with torch.device("meta"):
        n = sum(p.numel() for p in build_unet(got).parameters())
    assert n == pytest.approx(params, rel=1e-4)  # FACTS.md: 113.7M and 552.8M


@pytest.mark.parametrize("extra", [[], ["--interleave", "--repeat", "2"]])
def test_speed_benchmark_runs_at_small_size(tmp_path, extra):
    speed = _speed_module()
    out = tmp_path / "speed.json"
    assert speed.main(["--device", "cpu", "--plan", "cpu", "--quick", "--iterations", "1", "--out", str(out),
                       *extra]) == 0
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert rows and all("error" not in r for r in rows)
    assert rows[0]["per_image_100it_s"] > 0 and rows[0]["gflop_per_image_iteration"] > 0
    assert rows[0]["repeats"] == (2 if extra else 1) and rows[0]["iteration_s_min"] <= rows[0]["iteration_s"]
    assert data["interleaved"] == bool(extra)


def test_gpu_plan_is_one_ready_command_smoke_tested_on_cpu(tmp_path):
    """The GPU benchmark's plan, at reduced size with --quick, runs through the same code on a CPU:
    the reference configurations measure, and the rest are measured or cut by the deadline."""
    speed = _speed_module()
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--plan", "gpu", "--quick", "--no-compile", "--iterations", "1", "--deadline", "8",
            "--out", str(out)]
    assert speed.main(args) == 0
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert "quick" in data
    assert len(rows) == len(speed.gpu_plan(speed.parse_args(args)))
    assert all("error" not in r for r in rows)
    refs = [r for r in rows if r.get("reference")]
    assert {(r["model"], r["grad"]) for r in refs} == {(m, g) for m in ("celeba-ddpm", "adm-imagenet")
                                                        for g in ("surrogate", "exact")}
    # The deadline is checked before each configuration, so the first always runs; on a loaded
    # machine the deadline may cut any later one (including other references), never silently.
    assert rows[0]["per_image_100it_s"] > 0 and rows[0]["gflop_per_image_iteration"] > 0
    assert all(r.get("skipped") == "deadline" or r["per_image_100it_s"] > 0 for r in rows)


def test_cpu_plan_measures_what_shred_runs_on_a_cpu():
    """The CPU table has the reference (float32 NCHW eager) and shred's CPU default for each
    bundled model, at batch 1, so the speed-up of the default is a side-by-side ratio."""
    from shred.models import RunOptions
    from shred.models.registry import bundled_models

    speed = _speed_module()
    plans = speed.cpu_plan(speed.parse_args(["--plan", "cpu"]))
    default = RunOptions.for_device("cpu")
    for entry in bundled_models():
        rows = [p["row"] for p in plans if p["row"]["model"] == entry.name]
        assert any(r.get("reference") and r["batch"] == 1 and not r["channels_last"] for r in rows)
        assert any((r["precision"], r["channels_last"], r["compile"], r["batch"], r["grad"]) ==
                   (default.precision, default.channels_last, default.compile, 1, "surrogate") for r in rows)
