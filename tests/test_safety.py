"""What shred guarantees about files (docs/GUARANTEES.md): nothing it reads runs code, no output
names an input or another output, several outputs are written all or none, and a run that cannot
write or has no device stops before any work."""
import json
import os
import pickle
import re
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from shred.cli import main
from shred.errors import ShredError

# --- helpers --------------------------------------------------------------------------------------


class Payload:
    """Unpickling this touches ``marker``: what a planted file would do if shred ran it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _pickle(marker) -> bytes:
    return pickle.dumps({"weights": Payload(marker)}, protocol=2)


def _one_error_line(err: str, code: int) -> str:
    """The refusal: exit status 2 and one error line, the last on stderr (progress lines such as
    'using the spec y.json' may come before it; a traceback may not)."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"shred-ir( \w+)?: error: ", line)]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, (code, err)
    return errors[0]


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own checks exit
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def clean_png(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "clean.png"
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(p)
    return p


@pytest.fixture
def measured(tmp_path, clean_png, capsys):
    """y.png + y.json: clean.png degraded by x2 super-resolution (8x8)."""
    code, _, err = run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", tmp_path / "y.png"], capsys)
    assert code == 0, err
    return tmp_path / "y.png", tmp_path / "y.json"


def _no_work(monkeypatch):
    """Make any loading fail the test: the checks under test must come before it."""
    import shred.models
    import shred.restoration

    def forbidden(*a, **k):
        pytest.fail("work started before the run's files and device were checked")

    monkeypatch.setattr(shred.restoration, "load_measurement", forbidden)
    monkeypatch.setattr(shred.models, "load_model", forbidden)


# --- 1. no code runs from any file shred reads ------------------------------------------------------


def _payload_cases(tmp, marker, clean_png, tiny_model_dir):
    """(kind, argv or a callable) for every kind of file shred reads, each holding a payload."""
    pk = _pickle(marker)
    obj_npy = tmp / "obj.npy"
    np.save(obj_npy, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    as_png = tmp / "pickle.png"
    as_png.write_bytes(pk)
    as_json = tmp / "spec.json"
    as_json.write_bytes(pk)
    as_mat = tmp / "k.mat"
    as_mat.write_bytes(pk)
    y = tmp / "y8.png"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(y)
    zip_pt = tmp / "zip.pt"
    torch.save({"weights": Payload(marker)}, zip_pt)
    legacy_pt = tmp / "legacy.ckpt"
    torch.save({"weights": Payload(marker)}, legacy_pt, _use_new_zipfile_serialization=False)
    raw_bin = tmp / "raw.bin"
    raw_bin.write_bytes(pk)
    diffusers = tmp / "diffusers"
    diffusers.mkdir()
    (diffusers / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 16}))
    torch.save({"weights": Payload(marker)}, diffusers / "diffusion_pytorch_model.bin")
    shred_folder = tmp / "shredfolder"
    shred_folder.mkdir()
    (shred_folder / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    (shred_folder / "model.safetensors").write_bytes(pk)
    restore = ["restore", y, "--task", "sr", "--scale", "2", "--iterations", "1", "--out", tmp / "r.png"]
    degrade = ["degrade", clean_png, "--out", tmp / "d.png"]
    return {
        "measurement .npy": ["restore", obj_npy, "--task", "sr", "--model", tiny_model_dir, "--out", tmp / "r.png"],
        "measurement image": ["restore", as_png, "--task", "sr", "--model", tiny_model_dir, "--out", tmp / "r.png"],
        "clean image .npy": ["degrade", obj_npy, "--task", "sr", "--out", tmp / "d.png"],
        "--clean image": [*restore, "--model", tiny_model_dir, "--clean", obj_npy],
        "spec": ["restore", y, "--spec", as_json, "--model", tiny_model_dir, "--out", tmp / "r.png"],
        "mask .npy": [*degrade, "--task", "inpaint-mask", "--mask", obj_npy],
        "mask image": [*degrade, "--task", "inpaint-mask", "--mask", as_png],
        "kernel .npy": [*degrade, "--task", "deblur", "--kernel", obj_npy],
        "kernel .mat": [*degrade, "--task", "deblur", "--kernel", as_mat],
        "kernel image": [*degrade, "--task", "deblur", "--kernel", as_png],
        "checkpoint (zip)": [*restore, "--model", zip_pt],
        "checkpoint (legacy torch)": [*restore, "--model", legacy_pt],
        "checkpoint (raw pickle)": [*restore, "--model", raw_bin],
        "diffusers folder .bin": [*restore, "--model", diffusers],
        "shred folder safetensors": [*restore, "--model", shred_folder],
        "degrade --model": [*degrade, "--task", "sr", "--model", zip_pt],
    }


PAYLOAD_KINDS = ["measurement .npy", "measurement image", "clean image .npy", "--clean image", "spec", "mask .npy",
                 "mask image", "kernel .npy", "kernel .mat", "kernel image", "checkpoint (zip)",
                 "checkpoint (legacy torch)", "checkpoint (raw pickle)", "diffusers folder .bin",
                 "shred folder safetensors", "degrade --model"]


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_a_planted_payload_never_runs_and_is_refused_in_one_line(kind, tmp_path, clean_png, tiny_model_dir, capsys):
    marker = tmp_path / "RAN"
    argv = _payload_cases(tmp_path, marker, clean_png, tiny_model_dir)[kind]
    code, out, err = run(argv, capsys)
    assert not marker.exists(), f"{kind}: the payload ran"
    _one_error_line(err, code)
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "d.png").exists()


def test_a_payload_in_a_training_checkpoint_is_refused(tmp_path, capsys):
    marker = tmp_path / "RAN"
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"config": {"arch": "tiny"}, "state": Payload(marker)}, out / "checkpoint.pt")
    code, _, err = run(["train", data, "--arch", "tiny", "--steps", "1", "--batch", "2", "--out", out, "--quiet"],
                       capsys)
    line = _one_error_line(err, code)
    assert not marker.exists()
    assert "checkpoint.pt" in line and "--restart" in line
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # nothing written over it


def test_payloads_in_caches_and_feature_networks_never_run(tmp_path):
    from shred.metrics.features import load_feature_net
    from shred.metrics.realism import reference_features

    marker = tmp_path / "RAN"
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(data / f"{i}.png")
    cache = tmp_path / "cache"

    def extractor(x):
        return x.flatten(1)[:, :4]

    first = reference_features(extractor, "t", str(data), 4, cache_dir=cache)
    (cached,) = cache.iterdir()
    cached.write_bytes(_pickle(marker))  # a planted feature cache: computed again, never unpickled
    assert torch.equal(reference_features(extractor, "t", str(data), 4, cache_dir=cache), first)
    assert not marker.exists()

    classifier = tmp_path / "classifier"  # a classifier folder given to --features
    classifier.mkdir()
    (classifier / "config.json").write_text(json.dumps({"network": {}}))
    (classifier / "model.safetensors").write_bytes(_pickle(marker))
    with pytest.raises(ShredError) as err:
        load_feature_net(str(classifier))
    assert "\n" not in str(err.value) and not marker.exists()


def test_payloads_in_a_bench_run_folder_never_run(tmp_path):
    # The run folder's readers (shred.benchmark.files): safetensors and JSON only.
    from shred.benchmark.files import chunk_problem, read_json, read_tensors

    marker = tmp_path / "RAN"
    (tmp_path / "chunk.safetensors").write_bytes(_pickle(marker))
    (tmp_path / "chunk.json").write_bytes(_pickle(marker))
    with pytest.raises(ShredError) as err:
        read_tensors(tmp_path / "chunk.safetensors")
    assert "\n" not in str(err.value)
    with pytest.raises(ShredError):
        read_json(tmp_path / "chunk.json")
    assert chunk_problem(tmp_path / "chunk.json", 1) is not None
    assert not marker.exists()


def test_only_weights_only_loads_and_no_allow_pickle_in_the_package():
    # A guard for new code: every torch.load passes weights_only=True, np.load never allows pickles,
    # and nothing uses pickle/dill/joblib/yaml.load/eval to read a file. The only code loaded from a
    # file is a TorchScript / exported feature network given explicitly (metrics/features.py).
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "shred"
    offenders = []
    for f in src.rglob("*.py"):
        text = f.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            depth, end = 1, m.end()
            while depth:  # the call's arguments, nested parentheses included
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            if "weights_only=True" not in text[m.end():end]:
                offenders.append(f"{f.name}: {text[m.start():end]}")
        for pattern in (r"allow_pickle\s*=\s*True", r"pickle\.loads?\(", r"yaml\.load\(", r"(?<![.\w])eval\(",
                        r"joblib\.load", r"dill\."):
            offenders += [f"{f.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
        if ("jit.load" in text or "export.load" in text) and f.name != "features.py":
            offenders.append(f"{f.name}: loads code")
    assert not offenders, offenders


# --- 3. no output names an input or another output --------------------------------------------------


def test_degrade_out_equal_to_the_clean_input_is_refused(tmp_path, clean_png, capsys):
    before = clean_png.read_bytes()
    code, _, err = run(["degrade", clean_png, "--task", "sr", "--out", clean_png], capsys)
    line = _one_error_line(err, code)
    assert "both an input (the clean image) and an output (--out)" in line
    assert clean_png.read_bytes() == before and not (tmp_path / "clean.json").exists()


def test_restore_outputs_that_name_an_input_are_refused_before_any_work(tmp_path, measured, clean_png,
                                                                        tiny_model_dir, capsys, monkeypatch):
    y, spec = measured
    link = tmp_path / "link.png"
    link.symlink_to(clean_png)
    hard = tmp_path / "hard.png"
    os.link(clean_png, hard)
    mask = tmp_path / "m.npy"
    np.save(mask, np.ones((16, 16)))
    base = ["restore", y, "--model", tiny_model_dir, "--iterations", "1"]
    cases = {
        "--report is the spec": ([*base, "--spec", spec, "--report", spec, "--out", tmp_path / "r.png"],
                                 "an input (--spec) and an output (--report)"),
        "--report is the spec found next to y": ([*base, "--report", spec, "--out", tmp_path / "r.png"],
                                                 "an input (the spec) and an output (--report)"),
        "--out is --clean": ([*base, "--clean", clean_png, "--out", clean_png], "an input (--clean) and an output (--out)"),
        "--grid is --clean": ([*base, "--clean", clean_png, "--out", tmp_path / "r.png", "--grid", clean_png],
                              "an input (--clean) and an output (--grid)"),
        "--out is the measurement": ([*base, "--out", y], "an input (the measurement) and an output (--out)"),
        "--out is a symlink to --clean": ([*base, "--clean", clean_png, "--out", link], "an input (--clean)"),
        "--out is a hard link to --clean": ([*base, "--clean", clean_png, "--out", hard], "an input (--clean)"),
        "--out and --grid": ([*base, "--out", tmp_path / "r.png", "--grid", tmp_path / "r.png"],
                             "named twice as an output (--out and --grid)"),
        "a seed's file and --grid": ([*base, "--seeds", "0-1", "--out", tmp_path / "r.png",
                                      "--grid", tmp_path / "r_seed1.png"], "named twice"),
        "--report replaces a file of the model": ([*base, "--out", tmp_path / "r.png", "--report",
                                                   tiny_model_dir / "config.json"], "would replace a file of --model"),
        "--out is --mask": (["restore", y, "--model", tiny_model_dir, "--task", "inpaint-mask", "--mask", mask,
                             "--out", tmp_path / "m.npy"], "an input (--mask) and an output (--out)"),
    }
    _no_work(monkeypatch)
    for name, (argv, expect) in cases.items():
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        code, _, err = run(argv, capsys)
        assert expect in _one_error_line(err, code), (name, err)
        after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        assert after == before, name


def test_a_planted_symlink_at_a_temporary_name_is_never_followed(tmp_path, clean_png, capsys):
    # Reliability case 270: the old temporary name was .<name>.part<pid><suffix>.
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data")
    (out / f".d.png.part{os.getpid()}.png").symlink_to(victim)
    code, _, err = run(["degrade", clean_png, "--task", "sr", "--out", out / "d.png"], capsys)
    assert code == 0, err
    assert victim.read_text() == "precious data"
    assert sorted(p.name for p in out.iterdir()) == sorted([f".d.png.part{os.getpid()}.png", "d.png", "d.json"])


def test_check_outputs_is_the_library_helper():
    from pathlib import Path

    from shred.io import check_outputs

    here = Path(__file__)
    with pytest.raises(ShredError, match="both an input"):
        check_outputs([("out", here)], [("input", here)])
    check_outputs([("out", None)], [("input", None)])  # absent options are skipped


# --- 4. all or nothing --------------------------------------------------------------------------------


def _full_disk_on(monkeypatch, nth: int):
    """The nth temporary file of a write fails as a full disk would (ENOSPC while writing)."""
    import shred.io as sio

    real = sio._write_temp
    calls = []

    def write_temp(path, content):
        calls.append(path)
        if len(calls) == nth:
            def fill(f):
                raise OSError(28, "No space left on device")
            return real(path, fill)
        return real(path, content)

    monkeypatch.setattr(sio, "_write_temp", write_temp)
    return calls


def test_degrade_on_a_full_disk_leaves_neither_file(tmp_path, clean_png, capsys, monkeypatch):
    old = tmp_path / "y.png"
    old.write_bytes(b"a previous measurement")
    calls = _full_disk_on(monkeypatch, 2)  # the spec, after the measurement
    code, _, err = run(["degrade", clean_png, "--task", "sr", "--out", old], capsys)
    assert "No space left on device" in _one_error_line(err, code)
    assert len(calls) == 2 and old.read_bytes() == b"a previous measurement"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.png", "y.png"]


def test_restore_on_a_full_disk_writes_no_image_grid_report_or_kernel(tmp_path, measured, tiny_model_dir, capsys,
                                                                      monkeypatch):
    y, _ = measured
    before = sorted(p.name for p in tmp_path.iterdir())
    calls = _full_disk_on(monkeypatch, 4)  # two restorations, the report, then the grid fails
    code, _, err = run(["restore", y, "--model", tiny_model_dir, "--iterations", "1", "--seeds", "0-1", "--quiet",
                        "--out", tmp_path / "r.png", "--grid", tmp_path / "g.png", "--report", tmp_path / "r.json"],
                       capsys)
    assert "No space left on device" in _one_error_line(err, code)
    assert len(calls) == 4 and sorted(p.name for p in tmp_path.iterdir()) == before


def test_blind_restore_on_a_full_disk_writes_no_kernel(tmp_path, clean_png, tiny_model_dir, capsys, monkeypatch):
    code, _, err = run(["degrade", clean_png, "--task", "blind-deblur", "--kernel-size", "5", "--out",
                        tmp_path / "b.png"], capsys)
    assert code == 0, err
    before = sorted(p.name for p in tmp_path.iterdir())
    calls = _full_disk_on(monkeypatch, 2)  # the restoration is written, its kernel fails
    code, _, err = run(["restore", tmp_path / "b.png", "--model", tiny_model_dir, "--iterations", "1", "--quiet",
                        "--out", tmp_path / "r.png", "--kernel-out", tmp_path / "k.npy"], capsys)
    assert "No space left on device" in _one_error_line(err, code)
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == before


def test_demo_writes_its_four_files_or_none(tmp_path, capsys, monkeypatch):
    import shred.api
    from shred.solvers import Result

    def quick_restore(y, op, den, **kw):  # the demo's own restoration is minutes on a CPU
        x = torch.full((1, *op.in_shape), 0.5)
        return Result(x0=x, x_T=x, loss_history=torch.zeros(1, 1), iterations=torch.ones(1, dtype=torch.long),
                      wall_time=0.1, seeds=[0])

    monkeypatch.setattr(shred.api, "restore", quick_restore)
    out = tmp_path / "demo" / "inner"
    calls = _full_disk_on(monkeypatch, 3)
    code, _, err = run(["demo", "--out-dir", out, "--quiet"], capsys)
    assert "No space left on device" in _one_error_line(err, code)
    assert len(calls) == 3 and not any(out.iterdir())
    monkeypatch.undo()
    monkeypatch.setattr(shred.api, "restore", quick_restore)
    code, _, err = run(["demo", "--out-dir", out, "--quiet"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clean.png", "degraded.png", "grid.png", "restored.png"]


def test_a_trained_model_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from shred.diffusion import NoiseSchedule
    from shred.models import build_unet, save_folder
    from shred.train import ARCHITECTURES

    unet = build_unet(ARCHITECTURES["tiny"])
    calls = _full_disk_on(monkeypatch, 2)  # the weights are written, config.json fails
    with pytest.raises(ShredError, match="No space left on device"):
        save_folder(unet, NoiseSchedule.linear(), tmp_path / "model", name="tiny")
    assert len(calls) == 2 and list((tmp_path / "model").iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 4 kB tmpfs (a full disk after one page), when this process may mount one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tiny"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_degrade_onto_a_real_full_disk_leaves_nothing(tiny_tmpfs, clean_png, capsys):
    # Reliability case 242: the 4 kB tmpfs holds the measurement but not its spec too.
    code, _, err = run(["degrade", clean_png, "--task", "sr", "--scale", "2", "--out", tiny_tmpfs / "y.png"], capsys)
    assert "No space left on device" in _one_error_line(err, code)
    assert list(tiny_tmpfs.iterdir()) == []


# --- 5. checked before working ----------------------------------------------------------------------


def test_unusable_output_folders_are_found_before_any_work(tmp_path, measured, tiny_model_dir, capsys, monkeypatch):
    y, _ = measured
    _no_work(monkeypatch)
    base = ["restore", y, "--model", tiny_model_dir, "--iterations", "1"]
    code, _, err = run([*base, "--out", y / "r.png"], capsys)  # case 036: the folder is a file
    assert f"cannot write {y / 'r.png'}: {y} is not a folder" in _one_error_line(err, code)
    code, _, err = run([*base, "--out", tmp_path / "missing" / "r.png"], capsys)
    assert "folder" in _one_error_line(err, code) and "does not exist" in err
    code, _, err = run([*base, "--out", tmp_path / "r.png", "--grid", tmp_path / "nope" / "g.png"], capsys)
    assert "does not exist" in _one_error_line(err, code)
    code, _, err = run(["degrade", y, "--task", "sr", "--out", tmp_path / "nope" / "d.png"], capsys)
    assert "does not exist" in _one_error_line(err, code)


def test_a_read_only_folder_is_found_before_any_work(tmp_path, measured, tiny_model_dir, capsys, monkeypatch):
    # Reliability case 240. Root writes anywhere a mode allows nothing, so as root a read-only
    # tmpfs is used, otherwise a folder without write permission.
    y, _ = measured
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True)
        if done.returncode != 0:
            pytest.skip("root, but cannot mount a read-only tmpfs here")
        mounted = True
    else:
        ro.chmod(0o555)
    try:
        _no_work(monkeypatch)
        code, _, err = run(["restore", y, "--model", tiny_model_dir, "--out", ro / "r.png"], capsys)
        assert f"folder {ro} is not writable" in _one_error_line(err, code)
        code, _, err = run(["demo", "--out-dir", ro / "d"], capsys)
        assert "not writable" in _one_error_line(err, code)
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)
        else:
            ro.chmod(0o755)


def test_demo_and_train_output_folders_that_are_files(tmp_path, clean_png, capsys, monkeypatch):
    import shred.data

    _no_work(monkeypatch)
    monkeypatch.setattr(shred.data, "load_images", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    code, _, err = run(["demo", "--out-dir", clean_png, "--quiet"], capsys)  # case 282
    assert f"--out-dir {clean_png} is a file; give a folder" in _one_error_line(err, code)
    code, _, err = run(["demo", "--out-dir", clean_png / "sub", "--quiet"], capsys)
    assert "is not a folder" in _one_error_line(err, code)
    code, _, err = run(["train", tmp_path, "--arch", "tiny", "--steps", "1", "--out", clean_png], capsys)
    assert "--out" in _one_error_line(err, code) and "is a file" in err
    code, _, err = run(["train", tmp_path, "--arch", "tiny", "--steps", "1", "--out", clean_png / "run"], capsys)
    assert "is not a folder" in _one_error_line(err, code)


@pytest.mark.parametrize("command", ["restore", "ui"])
def test_unknown_or_absent_devices_are_usage_errors(command, measured, capsys, monkeypatch):
    y, _ = measured
    _no_work(monkeypatch)
    argv = ["restore", y, "--task", "sr"] if command == "restore" else ["ui"]
    code, _, err = run([*argv, "--device", "foo"], capsys)
    assert "argument --device: unknown device 'foo'; use cpu, cuda or cuda:N" in _one_error_line(err, code)
    if not torch.cuda.is_available():  # case 074
        code, _, err = run([*argv, "--device", "cuda"], capsys)
        assert "no CUDA GPU is available on this machine; use --device cpu" in _one_error_line(err, code)
    code, _, err = run([*argv, "--device", "cuda:99"], capsys)
    _one_error_line(err, code)


def test_the_python_api_checks_the_device_too(gaussian_prior):
    import shred
    from shred.operators import TaskOptions

    y, op = shred.degrade(torch.rand(1, 3, 16, 16), "sr", TaskOptions(scale=2))
    with pytest.raises(ShredError, match="unknown device 'foo'") as err:
        shred.restore(y, op, gaussian_prior, task="sr", device="foo", iterations=1)
    assert "\n" not in str(err.value)
