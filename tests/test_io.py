"""Atomic, all-or-nothing writes (shred.io.atomic_write / write_all)."""
import os
import stat

import numpy as np
import pytest
from PIL import Image

from shred.cli import main
from shred.errors import ShredError
from shred.io import atomic_write, write_all


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_write_gives_a_normal_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    # The temporary file is created 0o600; the result has the mode open() would have given it.
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    link = tmp_path / "out.png"
    link.symlink_to(victim)
    atomic_write(link, b"restored")
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink() and link.read_bytes() == b"restored"


def test_temporary_names_cannot_be_predicted(tmp_path, monkeypatch):
    # The old scheme wrote to .<name>.part<pid><suffix>: plant a symlink there; it must stay unused.
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (tmp_path / f".y.png.part{os.getpid()}.png").symlink_to(victim)
    (tmp_path / f".y.png.tmp{os.getpid()}").symlink_to(victim)
    atomic_write(tmp_path / "y.png", b"data")
    assert victim.read_bytes() == b"precious" and (tmp_path / "y.png").read_bytes() == b"data"


def test_write_all_renames_nothing_when_one_file_fails(tmp_path):
    first, second = tmp_path / "y.png", tmp_path / "y.json"
    first.write_bytes(b"old y")

    def broken(f):
        f.write(b"half")
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        write_all([(first, b"new y"), (second, broken)])
    assert first.read_bytes() == b"old y" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.png"]  # no temporary file left


def test_write_all_reports_an_os_error_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import shred.io as sio

    real_fdopen = os.fdopen
    calls = []

    def full_disk_on_the_second(fd, *a, **k):
        calls.append(fd)
        f = real_fdopen(fd, *a, **k)
        if len(calls) == 2:
            f.close()
            raise OSError(28, "No space left on device")
        return f

    monkeypatch.setattr(sio.os, "fdopen", full_disk_on_the_second)
    with pytest.raises(ShredError, match="No space left on device"):
        write_all([(tmp_path / "a.png", b"a"), (tmp_path / "b.json", b"b")])
    assert list(tmp_path.iterdir()) == []


def test_write_all_refuses_a_path_named_twice(tmp_path):
    with pytest.raises(ShredError, match="named twice"):
        write_all([(tmp_path / "a", b"1"), (tmp_path / "." / "a", b"2")])
    assert list(tmp_path.iterdir()) == []


def test_degrade_writes_the_measurement_and_its_spec_or_neither(tmp_path, capsys):
    clean = tmp_path / "clean.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(clean)
    # The spec's folder does not exist: y.png must not be left without its y.json.
    code = main(["degrade", str(clean), "--task", "sr", "--scale", "2", "--out", str(tmp_path / "y.png"),
                 "--spec", str(tmp_path / "missing" / "y.json")])
    err = capsys.readouterr().err
    assert code == 2 and "folder" in err and "does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.png"]
