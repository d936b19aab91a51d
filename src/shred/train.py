"""Training unconditional eps-prediction diffusion models (``shred-ir train``).

The objective is DDPM's (eq. 3 of the SHRED paper): ``|| eps - eps_theta(sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps, t) ||^2`` with t uniform, on images scaled to [-1, 1], linear betas 1e-4 .. 0.02
and T = 1000 (the schedule of every model the paper uses). The network is a diffusers
``UNet2DModel``; an exponential moving average (EMA) of its weights is what gets saved.

A run is budgeted in steps and/or minutes; the learning rate warms up, then follows a cosine to zero
over the budget. ``checkpoint.pt`` (written atomically every few minutes and at the end) holds the
weights, the EMA, Adam's state, the step, the elapsed time and every random generator's state, so a
resumed run continues exactly where it stopped. The output folder then gets ``model.safetensors``
(EMA weights, fp16) and ``config.json`` (architecture, schedule, data range, training record).
"""
from __future__ import annotations

import copy
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .config import (FrozenConfig, _Invalid, at_most, boolean, non_negative_int, optional, positive, positive_int,
                     setting)
from .diffusion import NoiseSchedule
from .errors import ShredError
from .io import make_folder
from .seeding import MAX_SEED


def _decay(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise _Invalid("a number in [0, 1)")
    return float(v)


def _train_seed(v):
    # seed and seed + 1 seed the data and noise generators
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MAX_SEED:
        raise _Invalid("an integer from 0 to 2^63 - 2")
    return v


def _unet(size: int, channels: int, widths: list[int], attn_levels: tuple[int, ...], layers: int,
          groups: int = 32) -> dict[str, Any]:
    n = len(widths)
    return dict(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=list(widths),
                down_block_types=["AttnDownBlock2D" if i in attn_levels else "DownBlock2D" for i in range(n)],
                up_block_types=["AttnUpBlock2D" if n - 1 - i in attn_levels else "UpBlock2D" for i in range(n)],
                layers_per_block=layers, norm_num_groups=groups, attention_head_dim=None, dropout=0.0)


# Architectures by name. The bundled models must stay under 16 MB as fp16 (8M parameters) and run
# SHRED (1000 network calls per image) on two CPU cores, which favours few, narrow levels: the
# CIFAR-10 net costs 2.05 GFLOP per call (one res block per level; two would cost 3.0).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "cifar10-32": _unet(32, 3, [64, 128, 128], (1,), 1),
    "fashion-mnist-28": _unet(28, 1, [32, 64, 64], (1,), 2),
    "tiny": _unet(16, 3, [8, 16], (1,), 1, groups=4),
}


@dataclass(frozen=True)
class TrainConfig(FrozenConfig):
    """Settings of a training run (frozen; saved in the checkpoint and in config.json).

    Attributes:
        data: images (folder, zip, IDX file or a known split such as ``cifar10-train``).
        out: output folder (model, checkpoint).
        arch: an :data:`ARCHITECTURES` name (its image size and channels must match the data).
        name: the model's name in config.json.
        steps: optimiser steps budget (None: limited by minutes only).
        minutes: wall-clock budget in minutes (None: limited by steps only).
        batch: images per step.
        lr: peak learning rate (AdamW), reached after ``warmup`` steps, then cosine to 0.
        ema: EMA decay (with the usual ramp min(ema, (1 + step) / (10 + step))).
        flip: random horizontal flips.
        seed: seed of every random choice (data order, flips, t, noise).
        bf16: bf16 autocast on a GPU.
        compile: ``torch.compile`` the network on a GPU.
        checkpoint_minutes: how often to write checkpoint.pt.
        limit: use only the first N images.
        workers: processes decoding the images.
    """

    data: str
    out: str
    arch: str = "cifar10-32"
    name: str | None = None
    steps: int | None = setting(None, optional(at_most(10 ** 9, positive_int)))
    minutes: float | None = setting(None, optional(positive))
    batch: int = setting(128, at_most(65536, positive_int))
    # AdamW moves every weight by about lr per step: beyond 1 a network only diverges.
    lr: float = setting(2e-4, at_most(1.0, positive))
    warmup: int = setting(500, non_negative_int)
    ema: float = setting(0.9995, _decay)
    flip: bool = setting(True, boolean)
    seed: int = setting(0, _train_seed)
    bf16: bool = setting(True, boolean)
    compile: bool = setting(True, boolean)
    checkpoint_minutes: float = setting(2.0, positive)
    limit: int | None = setting(None, optional(positive_int))
    workers: int = setting(0, at_most(256, non_negative_int))

    def __post_init__(self):
        super().__post_init__()  # the per-field checks
        if self.arch not in ARCHITECTURES:
            raise ShredError(f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if self.steps is None and self.minutes is None:
            raise ShredError("give a budget: --steps and/or --minutes")

    label = "training"  # "training lr must be at most 1, got 1e+30"
    what = "training settings"  # names them in errors (a class attribute, not a field)


@dataclass
class TrainState:
    """Everything that changes during training (saved in checkpoint.pt)."""

    step: int = 0
    elapsed: float = 0.0
    images_seen: int = 0
    losses: list[float] = field(default_factory=list)


def _progress(cfg: TrainConfig, state: TrainState) -> float:
    parts = []
    if cfg.steps is not None:
        parts.append(state.step / cfg.steps)
    if cfg.minutes is not None:
        parts.append(state.elapsed / (60 * cfg.minutes))
    return max(parts)


def lr_at(cfg: TrainConfig, state: TrainState) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to 0 over the budget."""
    warm = min(1.0, (state.step + 1) / max(1, cfg.warmup))
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, _progress(cfg, state))))


def _atomic_save(obj, path: Path) -> None:
    from .io import atomic_write

    atomic_write(path, lambda f: torch.save(obj, f))


CHECKPOINT = "checkpoint.pt"
_CHECKPOINT_KEYS = ("config", "state", "model", "ema", "opt", "g_data", "g_noise")
_START_OVER = "delete it, or pass --restart to start over"


def read_train_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A ``checkpoint.pt`` written by :class:`Trainer`, read without running code from it (tensors
    and plain containers only: ``weights_only=True``). Raises :class:`ShredError` in one line for a
    truncated, corrupt or foreign file (a pickle that would run code is refused, never run)."""
    import pickle
    import zipfile

    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, zipfile.BadZipFile,
            AttributeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ShredError(f"{path} is truncated or corrupt, not a readable training checkpoint ({first}); "
                         f"{_START_OVER}") from None
    if not isinstance(ck, dict) or any(k not in ck for k in _CHECKPOINT_KEYS) or not isinstance(ck["config"], dict):
        raise ShredError(f"{path}: not a shred training checkpoint (keys {sorted(ck)[:8] if isinstance(ck, dict) else type(ck).__name__}); "
                         f"{_START_OVER}")
    return ck


def check_train_outputs(cfg: "TrainConfig") -> None:
    """Before any work: ``cfg.out`` is a folder (or can be created) where checkpoint.pt,
    model.safetensors and config.json can be written, and none of them is the data file."""
    from .data import resolve_split
    from .io import check_output_folder, check_outputs
    from .models.unet import WEIGHTS

    out = check_output_folder(cfg.out, "--out")
    data = resolve_split(str(cfg.data))
    check_outputs([("--out", out / name) for name in (CHECKPOINT, WEIGHTS, "config.json")],
                  [("the data", data if data.is_file() else None)], create_folders=True)


class Trainer:
    """One training run; ``Trainer(cfg).run()``. Uses CUDA when available."""

    def __init__(self, cfg: TrainConfig, data=None, device: str | torch.device | None = None):
        from .data import load_images
        from .models import build_unet

        self.cfg = cfg
        if data is None:
            check_train_outputs(cfg)  # before the images are decoded: an unusable --out is found now
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.data = data if data is not None else load_images(cfg.data, limit=cfg.limit, workers=cfg.workers)
        arch = ARCHITECTURES[cfg.arch]
        want = (arch["in_channels"], arch["sample_size"], arch["sample_size"])
        if tuple(self.data.images.shape[1:]) != want:
            raise ShredError(f"{cfg.data}: images are {tuple(self.data.images.shape[1:])} but architecture "
                             f"{cfg.arch} needs {want}")
        self.schedule = NoiseSchedule.linear()
        self.sqrt_abar = self.schedule.abar.sqrt().float().to(self.device)
        self.sqrt_1m_abar = (1 - self.schedule.abar).sqrt().float().to(self.device)
        torch.manual_seed(cfg.seed)  # weight initialisation only; training randomness uses generators
        self.model = build_unet(arch).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0,
                                     fused=self.device.type == "cuda")
        self.state = TrainState()
        self.g_data = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.g_noise = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.images = self.data.images.to(self.device)
        self.out = make_folder(cfg.out)
        self.ckpt_path = self.out / CHECKPOINT
        self._step_fn = self._train_step
        if self.device.type == "cuda" and cfg.compile:
            self._step_fn = torch.compile(self._train_step)

    # -- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write checkpoint.pt atomically; never with NaN or infinite weights (:class:`ShredError`)."""
        self._check_finite("the network")
        _atomic_save({"config": asdict(self.cfg), "state": asdict(self.state), "model": self.model.state_dict(),
                      "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                      "g_data": self.g_data.get_state(), "g_noise": self.g_noise.get_state()}, self.ckpt_path)

    def resume(self) -> bool:
        """Load checkpoint.pt if there is one; returns whether it did. A checkpoint that cannot be
        read or restored (truncated, corrupt, another layout) raises :class:`ShredError` naming the
        file and ``--restart``; one of another architecture says so."""
        if not self.ckpt_path.is_file():
            return False
        ck = read_train_checkpoint(self.ckpt_path, self.device)
        if ck["config"].get("arch") != self.cfg.arch:
            raise ShredError(f"{self.ckpt_path} was trained with arch {ck['config'].get('arch')}, not {self.cfg.arch}; "
                             "give that --arch, or pass --restart to start over")
        try:
            self.model.load_state_dict(ck["model"])
            self.ema.load_state_dict(ck["ema"])
            self.opt.load_state_dict(ck["opt"])
            self.state = TrainState(**ck["state"])
            self.g_data.set_state(ck["g_data"].cpu())
            self.g_noise.set_state(ck["g_noise"].cpu())
        except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ShredError(f"{self.ckpt_path}: does not fit this run ({type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}); {_START_OVER}") from None
        self._check_finite("the resumed checkpoint")
        return True

    def _check_finite(self, what: str) -> None:
        """Raise :class:`ShredError` when a weight of the network or its EMA is NaN or infinite."""
        for net, name in ((self.model, "weights"), (self.ema, "EMA weights")):
            for p in net.parameters():
                if not bool(torch.isfinite(p).all()):
                    raise ShredError(f"training diverged: {what} has NaN or infinite {name} at step "
                                     f"{self.state.step} (lr {self.cfg.lr:g}); nothing was written: lower --lr "
                                     "and pass --restart")

    # -- one step --------------------------------------------------------------------------------------
    def _batch(self):
        # Everything random is drawn on the training device: no host-to-device copy per step.
        n, dev = self.images.shape[0], self.device
        idx = torch.randint(0, n, (self.cfg.batch,), generator=self.g_data, device=dev)
        x = self.images[idx].float() / 127.5 - 1
        if self.cfg.flip:
            flips = torch.rand(self.cfg.batch, generator=self.g_data, device=dev) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        t = torch.randint(0, self.schedule.T, (self.cfg.batch,), generator=self.g_noise, device=self.device)
        eps = torch.randn(x.shape, generator=self.g_noise, device=self.device)
        return x, t, eps

    def _train_step(self, x, t, eps):
        x_t = self.sqrt_abar[t].view(-1, 1, 1, 1) * x + self.sqrt_1m_abar[t].view(-1, 1, 1, 1) * eps
        use_bf16 = self.cfg.bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            pred = self.model(x_t, t).sample
        return F.mse_loss(pred.float(), eps)

    @torch.no_grad()
    def _update_ema(self):
        d = min(self.cfg.ema, (1 + self.state.step) / (10 + self.state.step))
        # One fused kernel series instead of a launch per tensor.
        torch._foreach_lerp_(list(self.ema.parameters()), [p.detach() for p in self.model.parameters()], 1 - d)

    def done(self) -> bool:
        return _progress(self.cfg, self.state) >= 1.0

    def run(self, progress: bool = True, max_steps_this_call: int | None = None) -> Path:
        """Train until the budget is spent (or ``max_steps_this_call`` steps, for tests), then write
        checkpoint.pt and, when the budget is spent, the model folder. Returns the output folder."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        self.model.train()
        bar = tqdm(total=cfg.steps, initial=self.state.step, desc=f"train {cfg.arch}", unit="step",
                   disable=not progress)
        last_ckpt = time.perf_counter()
        pending: list[torch.Tensor] = []
        steps_here = 0
        try:
            while not self.done() and (max_steps_this_call is None or steps_here < max_steps_this_call):
                t0 = time.perf_counter()
                for group in self.opt.param_groups:
                    group["lr"] = lr_at(cfg, self.state)
                x, t, eps = self._batch()
                loss = self._step_fn(x, t, eps)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.opt.step()
                self._update_ema()
                pending.append(loss.detach())
                self.state.step += 1
                steps_here += 1
                self.state.images_seen += cfg.batch
                if self.state.step % 50 == 0 or self.done():
                    # Read the losses back in bulk: one host synchronisation per 50 steps.
                    self._take_losses(pending)
                if self.device.type == "cuda" and self.state.step % 50 == 0:
                    torch.cuda.synchronize()
                self.state.elapsed += time.perf_counter() - t0
                if progress and self.state.step % 10 == 0:
                    recent = self.state.losses[-50:] or [float("nan")]
                    bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}",
                                    img_s=f"{self.state.images_seen / max(self.state.elapsed, 1e-9):.0f}", refresh=False)
                    bar.update(self.state.step - bar.n)
                if time.perf_counter() - last_ckpt > 60 * cfg.checkpoint_minutes:
                    self.save_checkpoint()
                    last_ckpt = time.perf_counter()
        finally:
            bar.close()
        if pending:
            self._take_losses(pending)
        self.save_checkpoint()
        if self.done():
            self.export()
        return self.out

    def _take_losses(self, pending: list[torch.Tensor]) -> None:
        """Move the pending losses into the record; a NaN or infinite one stops the run with a
        :class:`ShredError` before anything is written (the weights that made it are broken)."""
        losses = torch.stack(pending).float().cpu()
        pending.clear()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            step = self.state.step - len(losses) + int(bad[0]) + 1
            raise ShredError(f"training diverged: the loss became {float(losses[bad[0]]):g} at step {step} "
                             f"(lr {self.cfg.lr:g}); nothing was written: lower --lr and pass --restart")
        self.state.losses.extend(losses.tolist())

    def training_record(self) -> dict[str, Any]:
        hw = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        tail = self.state.losses[-500:]
        return {"dataset": str(self.cfg.data), "images": len(self.data), "steps": self.state.step,
                "batch": self.cfg.batch, "images_seen": self.state.images_seen, "lr": self.cfg.lr,
                "ema": self.cfg.ema, "flip": self.cfg.flip, "seed": self.cfg.seed,
                "bf16": self.cfg.bf16 and self.device.type == "cuda", "hardware": hw,
                "wall_time_s": round(self.state.elapsed, 1),
                "final_loss": round(sum(tail) / len(tail), 5) if tail else None,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "torch": torch.__version__}

    def export(self) -> Path:
        """Write the EMA weights (fp16) and config.json into the output folder; never NaN or
        infinite weights, nor weights that overflow fp16 (:class:`ShredError`)."""
        from .models import save_folder

        self._check_finite("the network")
        top = max(float(p.detach().abs().max()) for p in self.ema.parameters())
        if top > torch.finfo(torch.float16).max:
            raise ShredError(f"training diverged: an EMA weight reached {top:.3g}, beyond float16 (65504); nothing "
                             f"was written: lower --lr (now {self.cfg.lr:g}) and pass --restart")

        name = self.cfg.name or self.cfg.arch
        return save_folder(self.ema, self.schedule, self.out, name=name, training=self.training_record())


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> Path:
    """Train (resuming from ``cfg.out/checkpoint.pt`` when present) and export the model."""
    trainer = Trainer(cfg)
    if resume and trainer.resume() and progress:
        print(f"resumed from {trainer.ckpt_path} at step {trainer.state.step}")
    return trainer.run(progress=progress)
