"""The run folder's files: safetensors for tensors, JSON for the rest, nothing ever unpickled.

A file shred did not write (or that a crash or a full disk cut short) is refused in one line that
names it; a damaged chunk is left out and computed again (:mod:`.run`).
"""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

from ..errors import ShredError

FORMAT = 2  # of the run folder; a folder of another format is refused


def hardware() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    from ..io import write_bytes

    write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file of the run folder (never a pickle). Raises ShredError naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ShredError(f"{path}: damaged ({exc}); delete it to compute it again") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShredError(f"{path}: damaged ({exc}); delete it to compute it again") from None


def chunk_problem(meta: Path, images: int) -> str | None:
    """What is wrong with a chunk's pair of files (None when both read back with ``images`` rows)."""
    from safetensors import SafetensorError, safe_open

    try:
        record = json.loads(meta.read_text())
        with safe_open(str(meta.with_suffix(".safetensors")), "pt") as f:
            rows = f.get_slice("x0").get_shape()[0]
    except (OSError, ValueError, SafetensorError, KeyError) as exc:
        return f"damaged chunk ({type(exc).__name__})"
    if rows != images or not isinstance(record, dict) or len(record.get("psnr", [])) != images:
        return "damaged chunk (wrong number of images)"
    return None
