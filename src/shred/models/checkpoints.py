"""Reading released checkpoint files (``torch.save`` state_dicts) safely and without copies."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError


def read_torch_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A ``torch.save``-d state_dict, memory-mapped so a 2 GB file does not need 2 GB twice.

    Only tensors and plain containers are unpickled (``weights_only=True``). A ``{"state_dict": ...}``
    or ``{"model": ...}`` wrapper is unwrapped, and an ermongroup/ddim training checkpoint
    ``[model, optimizer, epoch, step, ema]`` gives its EMA weights. Raises :class:`CheckpointError`
    for a truncated, corrupt or non-checkpoint file, saying what to save instead.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - torch.load on a damaged file raises many types
        if isinstance(exc, MemoryError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first[:160]}); the file is "
                              "truncated or corrupt, download it again") from None
    if isinstance(obj, (list, tuple)):
        return _training_list(obj, path)
    for key in ("state_dict", "model", "ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and not isinstance(obj.get(key), torch.Tensor):
            obj = obj[key]
            break
    if not _is_state(obj):
        raise CheckpointError(f"{path}: not a state_dict of tensors ({_what(obj)}); save the network's weights "
                              "alone: torch.save(model.state_dict(), path)")
    return _strip(obj)


def _is_state(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items())


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``module.`` prefix of ``torch.nn.DataParallel``."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def _what(obj) -> str:
    if isinstance(obj, dict):
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a dict of {len(obj)} entries of types {', '.join(kinds[:4]) or 'none'}"
    return f"a {type(obj).__name__}"


def _training_list(obj: list | tuple, path: Path) -> dict[str, torch.Tensor]:
    """The weights of an ermongroup/ddim training checkpoint, ``ckpt.pth`` = ``[model.state_dict(),
    optimizer.state_dict(), epoch, step]`` plus ``ema_helper.state_dict()`` when the config has
    ``model.ema``: the EMA weights (what ddim samples with and releases) over the model's, as its
    ``runners/diffusion.py`` loads them; the training weights alone, with a warning, without EMA."""
    import warnings

    from ..errors import ShredWarning

    if len(obj) >= 4 and _is_state(obj[0]) and isinstance(obj[2], int) and isinstance(obj[3], int):
        model = _strip(obj[0])
        if len(obj) >= 5 and _is_state(obj[-1]):
            ema = _strip(obj[-1])
            unknown = sorted(set(ema) - set(model))
            if unknown:
                raise CheckpointError(f"{path}: an ermongroup training checkpoint whose EMA weights name tensors "
                                      f"the model does not have (e.g. {unknown[0]})")
            return {**model, **ema}
        warnings.warn(f"{path.name}: an ermongroup training checkpoint without EMA weights (its config had "
                      "model.ema: false); using the training weights, which sample worse than an EMA",
                      ShredWarning, stacklevel=3)
        return model
    raise CheckpointError(f"{path}: a list of {len(obj)} entries, not a state_dict (nor the ermongroup training "
                          "layout [model, optimizer, epoch, step, ema]); save the weights alone: "
                          "torch.save(model.state_dict(), path), or the EMA weights if you keep them")


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
