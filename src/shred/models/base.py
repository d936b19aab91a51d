"""One denoiser interface: ``eps = denoiser(x_t, t)``.

Every backend (a diffusers ``UNet2DModel``, converted ermongroup / OpenAI checkpoints, the analytic
Gaussian prior) is wrapped here so that nothing downstream branches on where a model came from.

Conventions: ``x_t`` is [B, C, H, W] in the model's space (data in [-1, 1]), ``t`` an int64 tensor
[B] of 0-based timesteps, and the result is eps with the shape of ``x_t`` and its dtype.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

from ..diffusion import NoiseSchedule
from ..errors import ShredError


def module_device(module: nn.Module) -> torch.device:
    """Where a module's first parameter (or buffer) lives; the CPU for a module without tensors."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


class Denoiser(nn.Module):
    """Base class of all noise predictors.

    Attributes:
        channels: image channels C (1 or 3).
        image_size: (H, W) the network was trained at.
        schedule: the :class:`NoiseSchedule` it was trained with.
        name: a short human-readable name.
    """

    channels: int
    image_size: tuple[int, int]
    schedule: NoiseSchedule
    name: str = "denoiser"

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        h, w = self.image_size
        return f"{self.name} ({self.channels}x{h}x{w}, T={self.schedule.T})"


class UNetDenoiser(Denoiser):
    """Adapter for a diffusers ``UNet2DModel`` predicting eps (or eps and a learned variance).

    Args:
        unet: the network; put in eval mode with frozen weights.
        schedule: its training noise schedule.
        learned_sigma: the network outputs 2C channels (eps, variance); eps is the first C.
            ``None`` infers it from the channel counts.
        class_label: default class for a class-conditional network (``num_class_embeds`` set).

    The network computes in its weights' dtype (``load_model(..., dtype=torch.bfloat16)`` makes
    them bf16): inputs are cast to it and eps is cast back to the input's dtype, so the sampler can
    stay in float32/64.
    """

    def __init__(self, unet: nn.Module, schedule: NoiseSchedule, *, learned_sigma: bool | None = None,
                 class_label: int | None = None, name: str = "unet"):
        super().__init__()
        cfg = unet.config
        self.unet = unet.eval().requires_grad_(False)
        self.schedule = schedule
        self.channels = int(cfg.in_channels)
        size = cfg.sample_size
        self.image_size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        out = int(cfg.out_channels)
        if learned_sigma is None:
            learned_sigma = out == 2 * self.channels
        if out != (2 if learned_sigma else 1) * self.channels:
            raise ShredError(f"network has {out} output channels for {self.channels} input channels; "
                             "expected eps (C) or eps and a variance (2C)")
        self.learned_sigma = learned_sigma
        self.num_classes = getattr(cfg, "num_class_embeds", None)
        self.class_label = class_label
        self.name = name

    def train(self, mode: bool = True):
        # A denoiser inside a solver is always an inference network.
        return super().train(False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if class_labels is None:
                if self.class_label is None:
                    raise ShredError(f"{self.name} is class-conditional ({self.num_classes} classes): "
                                     "give a class label (--class-label N)")
                class_labels = torch.full((x_t.shape[0],), int(self.class_label), dtype=torch.long,
                                          device=x_t.device)
        dtype = self.unet.dtype
        out = self.unet(x_t.to(dtype), t, class_labels=class_labels).sample
        if self.learned_sigma:
            out = out[:, : self.channels]
        return out.to(x_t.dtype)
