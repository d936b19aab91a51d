"""Sharding with torchrun (two CPU processes, gloo): a folder restore and a bench split between
the ranks give what one process gives, and after a rank is killed midway the same command
finishes only what is missing.

Three launches of ``torchrun --nproc_per_node=2`` (tests/launch_helper.py runs the commands and
kills rank 1 when asked); the single-process references run in this process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shred.cli import main

pytestmark = pytest.mark.slow  # subprocesses: three torchrun launches of two processes each

HELPER = Path(__file__).with_name("launch_helper.py")


def _torchrun(argv, timeout=600, **env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(HELPER), *map(str, argv)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)


def _stamps(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def _images(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8))
        small.resize((16, 16), Image.BILINEAR).save(folder / f"{i}.png")
    return folder


def test_two_ranks_equal_one_process_and_a_rerun_finishes_after_a_crash(tmp_path, tiny_model_dir):
    clean = _images(tmp_path / "clean", 6, 0)
    assert main(["degrade", str(clean), "--task", "sr", "--scale", "2", "--out", str(tmp_path / "y"), "--quiet"]) == 0
    bench_data = _images(tmp_path / "bench-data", 4, 1)

    def restore(out):
        return ["restore", tmp_path / "y", "--out", out, "--model", tiny_model_dir, "--iterations", "1",
                "--batch", "1", "--device", "cpu", "--quiet"]

    def bench(out):
        return ["bench", "--data", bench_data, "--model", tiny_model_dir, "--n", "4", "--tasks", "sr4",
                "--methods", "ddrm,shred@bundled", "--set", "ddrm.steps=2", "--set", "shred@bundled.iterations=1",
                "--batch", "1", "--features", "none", "--device", "cpu", "--out", out, "--quiet"]

    # One process: the references.
    assert main([str(a) for a in restore(tmp_path / "ref-r")]) == 0
    assert main([str(a) for a in bench(tmp_path / "ref-b")]) == 0

    # Launch 1: rank 1 is killed after its first image; the launch fails, part of the folder is done.
    out, bout = tmp_path / "r", tmp_path / "b"
    first = _torchrun(restore(out), SHRED_TEST_KILL="restore", SHRED_TEST_KILL_RANK="1")
    assert first.returncode != 0
    stamps = _stamps(out)
    done = [k for k in stamps if k.endswith(".report.json")]
    assert 1 <= len(done) < 6, first.stderr[-3000:]

    # Launch 2: the same restore finishes what is missing (nothing done is redone); then the bench,
    # whose rank 1 is killed after its first chunk.
    second = _torchrun([*restore(out), "--", *bench(bout)], SHRED_TEST_KILL="bench", SHRED_TEST_KILL_RANK="1")
    assert second.returncode != 0
    assert "6 of 6 usable images complete across all processes" in second.stderr, second.stderr[-3000:]
    after = _stamps(out)
    assert {k: after[k] for k in stamps} == stamps
    assert sorted(after) == sorted(_stamps(tmp_path / "ref-r"))
    for name in after:
        if name.endswith(".png"):  # the same batches, seeds and float32 operations: the same bytes
            assert (out / name).read_bytes() == (tmp_path / "ref-r" / name).read_bytes(), name
    chunks = sorted(p.relative_to(bout).as_posix() for p in (bout / "raw").rglob("*.safetensors"))
    assert 1 <= len(chunks) < 8 and not (bout / "results.json").exists()
    chunk_stamps = {c: (bout / c).stat().st_mtime_ns for c in chunks}

    # Launch 3: the bench finishes the missing chunks; rank 0 writes the report after the barrier.
    third = _torchrun([*restore(out), "--", *bench(bout)])
    assert third.returncode == 0, third.stderr[-3000:]
    assert all((bout / c).stat().st_mtime_ns == t for c, t in chunk_stamps.items())
    ref = sorted(p.relative_to(tmp_path / "ref-b").as_posix() for p in (tmp_path / "ref-b" / "raw").rglob("*.safetensors"))
    assert sorted(p.relative_to(bout).as_posix() for p in (bout / "raw").rglob("*.safetensors")) == ref
    for c in ref:
        assert (bout / c).read_bytes() == (tmp_path / "ref-b" / c).read_bytes(), c
    rows = json.loads((bout / "results.json").read_text())["tasks"]["sr4"]["rows"]
    ref_rows = json.loads((tmp_path / "ref-b" / "results.json").read_text())["tasks"]["sr4"]["rows"]
    for m in ("ddrm", "shred@bundled"):
        assert rows[m]["psnr"] == ref_rows[m]["psnr"] and rows[m]["n"] == 4
