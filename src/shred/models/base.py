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
from ..errors import CheckpointError, ShredError


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
        size_multiple: the network runs at any H x W that are multiples of this (a fully
            convolutional UNet: 2 ** its number of down-samplings); None when it runs at
            ``image_size`` only (the analytic prior). :func:`accepts`, :func:`canvas_size`.
        schedule: the :class:`NoiseSchedule` it was trained with.
        name: a short human-readable name.
    """

    channels: int
    image_size: tuple[int, int]
    size_multiple: int | None = None
    schedule: NoiseSchedule
    name: str = "denoiser"

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        h, w = self.image_size
        return f"{self.name} ({self.channels}x{h}x{w}, T={self.schedule.T})"


def accepts(denoiser: Denoiser, height: int, width: int) -> bool:
    """Whether ``denoiser`` runs on [B, C, height, width] inputs as they are."""
    m = denoiser.size_multiple
    if m is None:
        return (height, width) == tuple(denoiser.image_size)
    return height % m == 0 and width % m == 0 and height >= m and width >= m


def canvas_size(denoiser: Denoiser, height: int, width: int) -> tuple[int, int]:
    """The smallest size >= (height, width) that ``denoiser`` runs at: each side rounded up to its
    :attr:`Denoiser.size_multiple`. Raises :class:`ShredError` for a fixed-size network and
    another size."""
    m = denoiser.size_multiple
    if m is None:
        if (height, width) != tuple(denoiser.image_size):
            h, w = denoiser.image_size
            raise ShredError(f"{denoiser.name} runs at {h}x{w} only, not {height}x{width}; pass --resize "
                             "or pick a fully convolutional model")
        return height, width
    return -(-height // m) * m, -(-width // m) * m


def check_image_shape(denoiser: Denoiser, shape) -> tuple[int, int, int]:
    """``shape`` (C, H, W) as a tuple, after checking that ``denoiser`` makes images of that shape
    (its channels, a size it :func:`accepts`); raises :class:`ShredError` naming both otherwise."""
    shape = tuple(int(s) for s in shape)
    c, h, w = shape
    if c != denoiser.channels or not accepts(denoiser, h, w):
        m = denoiser.size_multiple
        sizes = (f"{denoiser.image_size[0]}x{denoiser.image_size[1]}" if m is None
                 else f"sides that are multiples of {m}")
        raise ShredError(f"the operator works on {shape} images but the model {denoiser.name} makes "
                         f"{denoiser.channels}-channel images with {sizes}")
    return shape


class UNetDenoiser(Denoiser):
    """Adapter for a diffusers ``UNet2DModel`` predicting eps (or eps and a learned variance).

    Networks trained to predict something else are wrapped by a subclass that converts their
    output to eps exactly (k-diffusion's ``DiscreteVDDPMDenoiser`` does the same for v):
    :class:`VPredictionDenoiser`, :class:`SamplePredictionDenoiser`; :func:`unet_denoiser` picks
    the class for diffusers' ``prediction_type``.

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
        # Every block but the last halves the side (diffusers' UNet2DModel, shred's LeanUNet and the
        # converted ADM / ermongroup networks alike); the up-sampling path doubles it back and
        # concatenates the skips, so each side must divide by 2 ** (levels - 1).
        self.size_multiple = 2 ** (len(cfg.block_out_channels) - 1)
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
        return self.to_eps(x_t, t, out.to(x_t.dtype))

    prediction_type = "epsilon"

    def to_eps(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The network's output ``out`` (shape and dtype of ``x_t``) as eps: itself here."""
        return out


def _sqrt_abar(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sqrt(abar_t), sqrt(1 - abar_t)) as [B, 1, 1, 1] in ``like``'s dtype, computed in float64
    (1 - abar_t is 1e-4 at t = 0: float32 would keep 3 digits of it)."""
    abar = schedule.abar_of(t.to(like.device)).view(-1, 1, 1, 1)
    return abar.sqrt().to(like.dtype), (1 - abar).sqrt().to(like.dtype)


class VPredictionDenoiser(UNetDenoiser):
    """A network trained to predict v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022;
    diffusers ``prediction_type="v_prediction"``). With x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
    eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t exactly; at t = -1 (abar = 1) eps = v."""

    prediction_type = "v_prediction"

    def to_eps(self, x_t, t, out):
        a, s = _sqrt_abar(self.schedule, t, x_t)
        return a * out + s * x_t


class SamplePredictionDenoiser(UNetDenoiser):
    """A network trained to predict x_0 itself (diffusers ``prediction_type="sample"``):
    eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t). At t = -1 (abar = 1, x_t = x_0) eps is not
    determined by x_t; it is 0 there, its expectation and the analytic prior's exact value."""

    prediction_type = "sample"

    def to_eps(self, x_t, t, out):
        a, s = _sqrt_abar(self.schedule, t, x_t)
        return torch.where(s > 0, (x_t - a * out) / s.clamp_min(torch.finfo(s.dtype).tiny), 0.0)


PREDICTION_TYPES: dict[str, type[UNetDenoiser]] = {
    cls.prediction_type: cls for cls in (UNetDenoiser, VPredictionDenoiser, SamplePredictionDenoiser)}


def prediction_class(prediction_type: str, source: str = "model") -> type[UNetDenoiser]:
    """The :class:`UNetDenoiser` (sub)class for a network's ``prediction_type`` (diffusers' names:
    ``epsilon``, ``v_prediction``, ``sample``). Raises :class:`shred.errors.CheckpointError` for
    any other type, naming it, ``source`` and the supported ones."""
    cls = PREDICTION_TYPES.get(prediction_type)
    if cls is None:
        raise CheckpointError(f"{source}: prediction_type {prediction_type!r} is not supported; shred converts "
                              f"{', '.join(PREDICTION_TYPES)} to eps")
    return cls


def unet_denoiser(unet: nn.Module, schedule: NoiseSchedule, *, prediction_type: str = "epsilon",
                  source: str = "model", **kwargs) -> UNetDenoiser:
    """Wrap ``unet`` in the class for its ``prediction_type`` (:func:`prediction_class`);
    ``kwargs`` go to :class:`UNetDenoiser`."""
    return prediction_class(prediction_type, source)(unet, schedule, **kwargs)
