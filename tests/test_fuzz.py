"""Property-based tests of every reader a user's file reaches: random bytes, truncated and bit-flipped
files, and random JSON. Each outcome is a correct result or shred's one-line ShredError; never
another exception (issue 15). Examples are few (the readers are quick, the CI machine is small)
and without deadline (a loaded machine is slow at times)."""
import io
import json
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from shred.errors import ShredError  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_line(exc: ShredError) -> None:
    assert str(exc) and "\n" not in str(exc), repr(str(exc))


def _valid_files() -> dict[str, bytes]:
    """Small valid files of every format the readers take, to truncate and flip bits in."""
    rng = np.random.default_rng(0)
    files = {}
    rgb = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    for suffix, fmt, kw in ((".png", "PNG", {}), (".jpg", "JPEG", {"quality": 90}), (".tif", "TIFF", {})):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt, **kw)
        files[suffix] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rng.random((8, 8)).astype(np.float32)).save(buf, format="TIFF")
    files[".float.tif"] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, rng.random((8, 8, 3)).astype(np.float32))
    files[".npy"] = buf.getvalue()
    return files


VALID = _valid_files()
SUFFIXES = [".png", ".jpg", ".tif", ".npy"]


def damaged_files():
    """(suffix, bytes): random bytes, or a valid file truncated or with bytes overwritten."""
    random = st.tuples(st.sampled_from(SUFFIXES), st.binary(max_size=400))

    @st.composite
    def damaged(draw):
        kind = draw(st.sampled_from(sorted(VALID)))
        data = bytearray(VALID[kind])
        suffix = ".tif" if kind == ".float.tif" else kind
        if draw(st.booleans()):
            return suffix, bytes(data[:draw(st.integers(0, len(data)))])
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return suffix, bytes(data)

    return st.one_of(random, damaged())


def _write(folder: Path, suffix: str, data: bytes) -> Path:
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(damaged_files())
def test_the_image_reader_reads_or_refuses_in_one_line(case):
    from shred.io import read_image

    with tempfile.TemporaryDirectory() as folder:
        try:
            x = read_image(_write(Path(folder), *case))
        except ShredError as exc:
            one_line(exc)
            return
    assert x.dim() == 4 and x.shape[0] == 1 and x.shape[1] in (1, 3) and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all()) and 0 <= float(x.min()) and float(x.max()) <= 1


@FUZZ
@given(damaged_files())
def test_the_mask_reader_reads_or_refuses_in_one_line(case):
    from shred.operators import load_mask

    with tempfile.TemporaryDirectory() as folder:
        try:
            m = load_mask(_write(Path(folder), *case))
        except ShredError as exc:
            one_line(exc)
            return
    assert m.dim() == 2 and bool(((m == 0) | (m == 1)).all()) and float(m.sum()) > 0


@FUZZ
@given(st.one_of(damaged_files(), st.tuples(st.just(".mat"), st.binary(max_size=400))))
def test_the_kernel_reader_reads_or_refuses_in_one_line(case):
    from shred.operators import load_kernel

    with tempfile.TemporaryDirectory() as folder:
        try:
            k = load_kernel(str(_write(Path(folder), *case)))
        except ShredError as exc:
            one_line(exc)
            return
    assert k.dim() == 2 and k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1
    assert bool((k >= 0).all()) and abs(float(k.sum()) - 1) < 1e-9


# --- JSON ---------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(string.ascii_letters + "-+_", max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12),
                                                                inner, max_size=4),
    max_leaves=20)

VALID_SPEC = {"shred_spec": 1, "task": "colorize+sr", "task_options": {"scale": 2}, "seed": 0,
              "image_shape": [3, 16, 16], "measurement_shape": [1, 8, 8],
              "operator": {"name": "noisy", "in_shape": [3, 16, 16], "sigma_y": 0.01,
                           "op": {"name": "compose", "in_shape": [3, 16, 16],
                                  "ops": [{"name": "colorize", "in_shape": [3, 16, 16]},
                                          {"name": "sr-avg", "in_shape": [1, 16, 16], "scale": 2}]}}}


def _paths(obj, prefix=()):
    """Every (path of keys/indices) inside a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


SPEC_PATHS = [p for p in _paths(VALID_SPEC) if p]


@st.composite
def specs(draw):
    """A random JSON value, or the valid spec with one field replaced or removed."""
    if draw(st.booleans()):
        return draw(json_values)
    spec = json.loads(json.dumps(VALID_SPEC))
    path = draw(st.sampled_from(SPEC_PATHS))
    parent = spec
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = draw(json_values)
    return spec


@FUZZ
@given(specs())
def test_the_spec_reader_rebuilds_or_refuses_in_one_line(spec):
    from shred import read_spec
    from shred.operators import Operator

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "y.json"
        path.write_text(json.dumps(spec))
        try:
            op, record = read_spec(path)
        except ShredError as exc:
            one_line(exc)
            return
    assert isinstance(op, Operator) and isinstance(record, dict)
    y = op.A(torch.rand(1, *op.in_shape, dtype=torch.float64))
    assert tuple(y.shape[1:]) == tuple(op.out_shape)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_the_spec_reader_takes_any_bytes(data):
    from shred import read_spec

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "y.json"
        path.write_bytes(data)
        with pytest.raises(ShredError) as info:
            read_spec(path)
        one_line(info.value)


# --- checkpoints and model folders ---------------------------------------------------------------------------
def _torch_file(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


CHECKPOINT = _torch_file({"conv_in.weight": torch.zeros(4, 3, 3, 3), "conv_in.bias": torch.zeros(4)})


@st.composite
def checkpoints(draw):
    kind = draw(st.sampled_from(["bytes", "truncated", "flipped"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    data = bytearray(CHECKPOINT)
    if kind == "truncated":
        return bytes(data[:draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(st.one_of(checkpoints(), json_values.map(_torch_file)))
def test_the_checkpoint_loader_refuses_damage_in_one_line(data):
    from shred.models import load_checkpoint_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        path.write_bytes(data)
        try:
            load_checkpoint_file(path)
        except ShredError as exc:
            one_line(exc)
            return
    pytest.fail("a damaged checkpoint loaded")  # none of these is a whole network


UNET_KEYS = ["sample_size", "in_channels", "out_channels", "block_out_channels", "down_block_types",
             "up_block_types", "layers_per_block", "norm_num_groups", "attention_head_dim", "dropout"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(UNET_KEYS + ["schedule", "shred_format", "unet"]), json_values)
def test_a_model_config_with_any_field_replaced_loads_or_refuses_in_one_line(key, value):
    import shutil

    import shred

    src = Path(shred.__file__).parent / "bundled" / "fashion-mnist-28"
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "m"
        shutil.copytree(src, model)
        cfg = json.loads((model / "config.json").read_text())
        (cfg if key in ("schedule", "shred_format", "unet") else cfg["unet"])[key] = value
        (model / "config.json").write_text(json.dumps(cfg))
        try:
            den = shred.load_model(model)
        except ShredError as exc:
            one_line(exc)
            return
    assert den.channels == 1  # a value that still describes the same network (dropout, head size) loads
