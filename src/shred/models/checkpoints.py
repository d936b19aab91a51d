"""Reading released checkpoint files (``torch.save`` state_dicts) safely and without copies."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError


def read_torch_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A ``torch.save``-d state_dict, memory-mapped so a 2 GB file does not need 2 GB twice.

    Only tensors and plain containers are unpickled (``weights_only=True``). A ``{"state_dict": ...}``
    or ``{"model": ...}`` wrapper is unwrapped. Raises :class:`CheckpointError` for a truncated,
    corrupt or non-checkpoint file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first[:160]}); the file is "
                              "truncated or corrupt, download it again") from None
    for key in ("state_dict", "model", "ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not isinstance(obj.get(key), torch.Tensor):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# diffusers < 0.15 named the attention projections query/key/value/proj_attn.
_OLD_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def rename_old_diffusers_attention(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the old diffusers attention key names onto the current ones (other keys unchanged)."""
    out = {}
    for k, v in state.items():
        for old, new in _OLD_ATTENTION.items():
            if old in k and "attentions" in k:
                k = k.replace(old, new)
        out[k] = v
    return out
