"""Building, saving and loading diffusers ``UNet2DModel`` networks in folders.

Two folder layouts are read:

* shred's own: ``config.json`` with ``"shred_format": 1``, an ``"unet"`` section (the diffusers
  constructor arguments), ``"schedule"``, ``"data_range"`` and a free-form ``"training"`` record,
  next to ``model.safetensors``. Written by :func:`save_folder` and ``shred-ir train``.
* a diffusers model folder (``config.json`` naming ``UNet2DModel``, or a pipeline folder with a
  ``unet/`` sub-folder), with the schedule from ``scheduler_config.json`` when there is one.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..diffusion import NoiseSchedule
from ..errors import CheckpointError, ShredError
from .base import UNetDenoiser, prediction_class

SHRED_FORMAT = 1
WEIGHTS = "model.safetensors"


# Limits of a network configuration read from a file (the largest released models: 256 pixels,
# 6 levels, 1024 channels); a config beyond them is a typo or a corrupt file, refused before building.
MAX_SAMPLE_SIZE = 4096
MAX_LEVELS = 10
MAX_WIDTH = 8192
MAX_T = 100_000


def _int_in(lo: int, hi: int):
    def check(v):
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
    return check, f"an integer in {lo}..{hi}"


def _list_of(check_item, what: str, max_len: int = MAX_LEVELS):
    def check(v):
        return isinstance(v, (list, tuple)) and 0 < len(v) <= max_len and all(check_item(x) for x in v)
    return check, f"a list of 1 to {max_len} {what}"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_UNET_FIELDS = {
    "sample_size": ((lambda v: _int_in(1, MAX_SAMPLE_SIZE)[0](v)
                     or (isinstance(v, (list, tuple)) and len(v) == 2 and all(_int_in(1, MAX_SAMPLE_SIZE)[0](s) for s in v))),
                    f"an integer (or [H, W]) in 1..{MAX_SAMPLE_SIZE}"),
    "in_channels": _int_in(1, 16),
    "out_channels": _int_in(1, 32),
    "block_out_channels": _list_of(_int_in(1, MAX_WIDTH)[0], f"integers in 1..{MAX_WIDTH}"),
    "down_block_types": _list_of(lambda v: isinstance(v, str), "block type names"),
    "up_block_types": _list_of(lambda v: isinstance(v, str), "block type names"),
    "layers_per_block": _int_in(1, 64),
    "norm_num_groups": ((lambda v: v is None or _int_in(1, MAX_WIDTH)[0](v)), f"null or an integer in 1..{MAX_WIDTH}"),
    "attention_head_dim": ((lambda v: v is None or _int_in(1, MAX_WIDTH)[0](v)), f"null or an integer in 1..{MAX_WIDTH}"),
    "num_class_embeds": ((lambda v: v is None or _int_in(1, 100_000)[0](v)), "null or an integer in 1..100000"),
    "dropout": ((lambda v: _number(v) and 0 <= v < 1), "a number in [0, 1)"),
    "norm_eps": ((lambda v: _number(v) and v > 0), "a positive number"),
}


def check_unet_config(config: Any, source: str) -> dict[str, Any]:
    """Check the ``UNet2DModel`` arguments of a config file field by field (types and limits)
    before anything is built; raises :class:`CheckpointError` naming ``source`` and the field."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: the network configuration must be a JSON object, got {type(config).__name__}")
    for key, (ok, what) in _UNET_FIELDS.items():
        if key in config and not ok(config[key]):
            shown = repr(config[key])
            raise CheckpointError(f"{source}: {key} must be {what}, got {shown if len(shown) <= 40 else shown[:37] + '...'}")
    n = len(config.get("block_out_channels", ()))
    for key in ("down_block_types", "up_block_types"):
        if key in config and n and len(config[key]) != n:
            raise CheckpointError(f"{source}: {key} lists {len(config[key])} blocks but block_out_channels {n}")
    return config


def schedule_from_config(d: Any, source: str) -> NoiseSchedule:
    """The :class:`NoiseSchedule` of a config's ``schedule`` record, checked (T at most
    :data:`MAX_T`); a CheckpointError names ``source`` for anything it cannot use."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{source}: schedule must be a JSON object, got {d!r}")
    T = d.get("T", 1000)
    if not _int_in(1, MAX_T)[0](T):
        raise CheckpointError(f"{source}: schedule.T must be an integer in 1..{MAX_T}, got {T!r}")
    if isinstance(d.get("betas"), list) and len(d["betas"]) > MAX_T:
        raise CheckpointError(f"{source}: schedule.betas holds more than {MAX_T} values")
    try:
        return NoiseSchedule.from_dict(d)
    except (TypeError, ValueError, KeyError, ShredError) as exc:
        raise CheckpointError(f"{source}: not a usable schedule ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def build_unet(config: dict[str, Any], *, empty: bool = False, source: str = "this configuration"):
    """A diffusers ``UNet2DModel`` from its constructor arguments.

    ``empty=True`` builds it on the meta device: no memory and no random initialisation, for
    weights that :func:`load_state_strict` then assigns (a 2 GB checkpoint is not held twice).
    Arguments diffusers cannot build from raise :class:`CheckpointError` naming ``source``.
    """
    from diffusers import UNet2DModel

    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    for key in ("block_out_channels", "down_block_types", "up_block_types"):
        if key in cfg and isinstance(cfg[key], list):
            cfg[key] = tuple(cfg[key])
    try:
        if empty:
            with torch.device("meta"):
                return UNet2DModel(**cfg)
        return UNet2DModel(**cfg)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError, AssertionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{source}: cannot build a UNet2DModel from this configuration ({first[:160]})") from None


def _known_unet_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """The entries of a diffusers config.json that this diffusers' ``UNet2DModel`` accepts.

    Configs written by other diffusers versions carry keys this one does not know (or no longer
    uses); diffusers itself ignores them with a warning, and so do we.
    """
    import inspect

    from diffusers import UNet2DModel

    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    return {k: v for k, v in config.items() if k in accepted}


def unet_config(unet) -> dict[str, Any]:
    """The JSON-safe constructor arguments of a diffusers network."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items()
            if not k.startswith("_")}


def save_folder(unet, schedule: NoiseSchedule, folder: str | os.PathLike, *, name: str,
                data_range=(-1.0, 1.0), training: dict[str, Any] | None = None,
                dtype: torch.dtype = torch.float16) -> Path:
    """Write ``model.safetensors`` (in ``dtype``) and ``config.json`` into ``folder``, both or
    neither (:func:`shred.io.write_all`)."""
    from safetensors.torch import save

    from ..io import json_bytes, write_all

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    config = {"shred_format": SHRED_FORMAT, "name": name, "unet": unet_config(unet),
              "schedule": schedule.to_dict(), "data_range": list(data_range),
              "weights_dtype": str(dtype).replace("torch.", ""), "training": training or {}}
    write_all([(folder / WEIGHTS, save(state)), (folder / "config.json", json_bytes(config))])
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON file ({str(exc)[:160] or type(exc).__name__})") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is truncated or "
                              "corrupt, download it again") from None


def check_weights(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights a network cannot compute with, before it is used: integer or boolean tensors
    (a quantised or mangled file; casting them to float gives a network that outputs garbage)
    and NaN or infinite values (any one of them turns every image black). Raises
    :class:`CheckpointError` naming ``source``, how many tensors, and the first one."""
    kinds = {}
    for k, v in state.items():
        if not v.is_floating_point():
            kinds.setdefault(str(v.dtype).replace("torch.", ""), []).append(k)
    if kinds:
        dtype, keys = next(iter(kinds.items()))
        raise CheckpointError(f"{source}: weights are {dtype} ({len(keys)} tensors, e.g. {keys[0]}); a network "
                              "needs floating-point weights (float32, float16 or bfloat16): save the float model")
    bad = []
    for k, v in state.items():
        finite = torch.isfinite(v)
        if not bool(finite.all()):
            bad.append((k, int(finite.numel() - finite.sum())))
    if bad:
        n = sum(c for _, c in bad)
        raise CheckpointError(f"{source}: {n} weight{'s are' if n != 1 else ' is'} NaN or infinite "
                              f"(in {len(bad)} tensor{'s' if len(bad) != 1 else ''}, e.g. {bad[0][0]}); the model "
                              "is broken: train or download it again")


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, *,
                      assign: bool = False) -> None:
    """Load a state_dict with every key accounted for, or raise a CheckpointError that says which.

    ``assign=True`` makes the module's parameters *be* the given tensors (cast to the module's dtype
    only where they differ) instead of copying into them: use it with a module from
    ``build_unet(..., empty=True)`` and memory-mapped tensors.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{source}: the weights do not match the architecture "
                              f"({len(missing)} missing keys, e.g. {missing[:2]}; {len(unexpected)} "
                              f"unexpected, e.g. {unexpected[:2]})")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        k = bad[0]
        raise CheckpointError(f"{source}: {len(bad)} weights have the wrong shape, e.g. {k} is "
                              f"{tuple(state[k].shape)} but the architecture needs {tuple(own[k].shape)}")
    check_weights({k: v for k, v in state.items() if own[k].is_floating_point()}, source)
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True, assign=assign)
    if assign:
        left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
        if left:
            raise CheckpointError(f"{source}: {len(left)} tensors of the network were not in the file, "
                                  f"e.g. {left[0]}")


def _diffusers_scheduler(folder: Path) -> tuple[NoiseSchedule, str, str]:
    """(schedule, prediction_type, where they were read) from the folder's diffusers scheduler
    config; linear betas 1e-4 .. 0.02, T = 1000, eps-prediction when there is none."""
    for cand in (folder / "scheduler_config.json", folder.parent / "scheduler" / "scheduler_config.json",
                 folder.parent / "scheduler_config.json"):
        if cand.is_file():
            cfg = _read_json(cand)
            kind = cfg.get("beta_schedule", "linear")
            T = cfg.get("num_train_timesteps", 1000)
            prediction = cfg.get("prediction_type", "epsilon")
            start, end = cfg.get("beta_start", 1e-4), cfg.get("beta_end", 0.02)
            if not _int_in(1, MAX_T)[0](T) or not (_number(start) and _number(end)) or not isinstance(prediction, str):
                raise CheckpointError(f"{cand}: num_train_timesteps must be an integer in 1..{MAX_T}, beta_start and "
                                      "beta_end numbers, prediction_type a string")
            if kind == "linear":
                try:
                    betas = NoiseSchedule.linear(T, float(start), float(end))
                except ShredError as exc:
                    raise CheckpointError(f"{cand}: {exc}") from None
                return betas, prediction, str(cand)
            if kind == "squaredcos_cap_v2":
                return NoiseSchedule.cosine(T), prediction, str(cand)
            raise CheckpointError(f"{cand}: beta_schedule {kind!r} is not supported")
    return NoiseSchedule.linear(), "epsilon", str(folder)


def load_folder(folder: str | os.PathLike, name: str | None = None, *, lean: bool | None = None) -> UNetDenoiser:
    """Load a shred or diffusers model folder as a float32 :class:`UNetDenoiser` on the CPU.

    A shred folder whose architecture :mod:`shred.models.lean_unet` covers (the bundled models and
    what ``shred-ir train`` makes) is built without importing diffusers (``lean=None``, the default;
    ``lean=False`` forces diffusers; both give the same eps to float32 round-off).
    """
    folder = Path(folder)
    if (folder / "unet" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "unet"
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: no config.json; a model folder holds config.json and its weights")
    cfg = _read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path}: a model config is a JSON object, got {type(cfg).__name__}")
    name = name or (cfg.get("name") if isinstance(cfg.get("name"), str) else None) or folder.name
    if cfg.get("shred_format") is not None:
        version = cfg["shred_format"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CheckpointError(f"{cfg_path}: shred_format must be a positive integer, got {version!r}")
        if version != SHRED_FORMAT:
            raise CheckpointError(f"{cfg_path}: shred_format {version} is newer than this "
                                  "shred understands; upgrade shred")
        for key in ("unet", "schedule"):
            if key not in cfg:
                raise CheckpointError(f"{cfg_path}: {key} is missing")
        check_unet_config(cfg["unet"], str(cfg_path))
        schedule = schedule_from_config(cfg["schedule"], str(cfg_path))
        from . import lean_unet

        if lean is not False and lean_unet.supports(cfg["unet"]):
            try:
                with torch.device("meta"):
                    unet = lean_unet.LeanUNet(**cfg["unet"])
            except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise CheckpointError(f"{cfg_path}: cannot build a UNet2DModel from this configuration "
                                      f"({first[:160]})") from None
        else:
            unet = build_unet(cfg["unet"], empty=True, source=str(cfg_path))
        load_state_strict(unet, _load_safetensors(folder / WEIGHTS), str(folder / WEIGHTS), assign=True)
        den = UNetDenoiser(unet.float(), schedule, name=name)
        den.info = cfg
        return den
    if cfg.get("_class_name") == "UNet2DModel":
        schedule, prediction, source = _diffusers_scheduler(folder)
        denoiser_class = prediction_class(prediction, source)  # refuse an unknown type before loading
        unet = build_unet(check_unet_config(_known_unet_arguments(cfg), str(cfg_path)), empty=True,
                          source=str(cfg_path))
        candidates = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"]
        weights = next((folder / c for c in candidates if (folder / c).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{folder}: no diffusion_pytorch_model.safetensors or .bin next to config.json")
        if weights.suffix == ".safetensors":
            state = _load_safetensors(weights)
        else:
            from .checkpoints import read_torch_file
            state = read_torch_file(weights)
        from .checkpoints import rename_old_diffusers_attention
        load_state_strict(unet, rename_old_diffusers_attention(state), str(weights), assign=True)
        den = denoiser_class(unet.float(), schedule, name=name)
        den.info = {"name": name, "source": str(folder), "data_range": [-1.0, 1.0], "prediction_type": prediction}
        return den
    raise CheckpointError(f"{cfg_path}: neither a shred model (shred_format) nor a diffusers UNet2DModel "
                          f"(_class_name is {cfg.get('_class_name')!r})")
