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
import os
from pathlib import Path
from typing import Any

import torch

from ..diffusion import NoiseSchedule
from ..errors import CheckpointError
from .base import UNetDenoiser, prediction_class

SHRED_FORMAT = 1
WEIGHTS = "model.safetensors"


def build_unet(config: dict[str, Any], *, empty: bool = False):
    """A diffusers ``UNet2DModel`` from its constructor arguments.

    ``empty=True`` builds it on the meta device: no memory and no random initialisation, for
    weights that :func:`load_state_strict` then assigns (a 2 GB checkpoint is not held twice).
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
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot build a UNet2DModel from this configuration: {exc}") from None


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
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON file ({exc})") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise CheckpointError(f"{path}: cannot read the weights ({exc}); the file is truncated or "
                              "corrupt, download it again") from None


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
            T = int(cfg.get("num_train_timesteps", 1000))
            prediction = cfg.get("prediction_type", "epsilon")
            if kind == "linear":
                betas = NoiseSchedule.linear(T, float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02)))
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
    name = name or cfg.get("name") or folder.name
    if cfg.get("shred_format") is not None:
        if cfg["shred_format"] != SHRED_FORMAT:
            raise CheckpointError(f"{cfg_path}: shred_format {cfg['shred_format']} is newer than this "
                                  "shred understands; upgrade shred")
        from . import lean_unet

        if lean is not False and lean_unet.supports(cfg["unet"]):
            with torch.device("meta"):
                unet = lean_unet.LeanUNet(**cfg["unet"])
        else:
            unet = build_unet(cfg["unet"], empty=True)
        load_state_strict(unet, _load_safetensors(folder / WEIGHTS), str(folder / WEIGHTS), assign=True)
        den = UNetDenoiser(unet.float(), NoiseSchedule.from_dict(cfg["schedule"]), name=name)
        den.info = cfg
        return den
    if cfg.get("_class_name") == "UNet2DModel":
        schedule, prediction, source = _diffusers_scheduler(folder)
        denoiser_class = prediction_class(prediction, source)  # refuse an unknown type before loading
        unet = build_unet(_known_unet_arguments(cfg), empty=True)
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
