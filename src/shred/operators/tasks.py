"""Restoration tasks: named recipes that build an operator for an image shape.

``build_task("sr", (3, 32, 32), TaskOptions(scale=4))`` gives the x4 average-pooling operator;
``"colorize+sr"`` chains tasks left to right; ``sigma_y > 0`` adds measurement noise. The CLI's
``--task`` choices and the parametrised tests come from :data:`TASKS`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..config import FrozenConfig
from ..errors import ShredError
from .base import Operator
from .kernels import gaussian_kernel, load_kernel, random_anisotropic_gaussian_kernel
from .linear import AvgPoolSR, BicubicSR, Blur, Colorize, Compose, Identity, Mask, Noisy
from .masks import box_mask, load_mask, random_pixel_mask


@dataclass(frozen=True)
class TaskOptions(FrozenConfig):
    """Parameters of the task recipes (each recipe reads the ones it needs).

    Attributes:
        scale: super-resolution factor (must divide the image size).
        fraction: kept fraction of pixels for compressed sensing (0.05 = 5%).
        box_size: side of the centred inpainting square (default: half the image side).
        mask: mask file for ``inpaint-mask`` (PNG/JPEG white = kept, or .npy non-zero = kept).
        kernel: ``"gaussian"`` (isotropic, ``kernel_sigma``), ``"random"`` (random anisotropic
            Gaussian, as in the paper's blind deconvolution), or ``FILE[:INDEX]`` (.npy/.mat/image).
        kernel_size: odd kernel side (default ``2 * ceil(3 * kernel_sigma) + 1``; 41 for random).
        kernel_sigma: standard deviation in pixels of the Gaussian kernel.
        sigma_y: standard deviation of additive Gaussian measurement noise, in [0, 1] units.
    """

    scale: int = 4
    fraction: float = 0.05
    box_size: int | None = None
    mask: str | None = None
    kernel: str = "gaussian"
    kernel_size: int | None = None
    kernel_sigma: float = 3.0
    sigma_y: float = 0.0

    what = "task options"  # names them in errors (a class attribute, not a field)


def _kernel(opts: TaskOptions, generator) -> tuple[torch.Tensor, str]:
    if opts.kernel == "gaussian":
        size = opts.kernel_size or 2 * math.ceil(3 * opts.kernel_sigma) + 1
        return gaussian_kernel(size, opts.kernel_sigma), f"gaussian(sigma={opts.kernel_sigma:g})"
    if opts.kernel == "random":
        size = opts.kernel_size or 41
        # The paper's 41x41 kernels have standard deviations of 2-8 pixels; smaller kernels (for
        # smaller images) keep the same proportions.
        return (random_anisotropic_gaussian_kernel(size, generator, sigma_range=(2 * size / 41, 8 * size / 41)),
                "random-anisotropic-gaussian")
    return load_kernel(opts.kernel), f"file:{opts.kernel}"


@dataclass(frozen=True)
class Task:
    """A registered recipe.

    Attributes:
        options: the :class:`TaskOptions` fields the recipe reads (``sigma_y`` applies to every
            task and is not listed); front ends show only these.
    """

    name: str
    build: Callable[[tuple, TaskOptions, torch.Generator | None], Operator]
    preset_key: str
    help: str
    options: tuple[str, ...] = ()


TASKS: dict[str, Task] = {}
_KERNEL_OPTIONS = ("kernel", "kernel_size", "kernel_sigma")


def _task(name: str, preset_key: str, help: str, options: tuple[str, ...] = ()):
    def deco(fn):
        TASKS[name] = Task(name, fn, preset_key, help, options)
        return fn
    return deco


@_task("denoise", "denoise", "H = identity: denoising / the inversion test of Fig. 2")
def _denoise(shape, opts, gen):
    return Identity(shape)


@_task("inpaint", "inpaint", "centred square hole (--box-size, default half the side)", ("box_size",))
def _inpaint(shape, opts, gen):
    return Mask(shape, box_mask(shape[1], shape[2], opts.box_size), kind="box")


@_task("inpaint-mask", "inpaint", "hole from a mask file (--mask, white/non-zero = kept)", ("mask",))
def _inpaint_mask(shape, opts, gen):
    if not opts.mask:
        raise ShredError("task inpaint-mask needs --mask FILE (PNG or .npy, 1/white = kept)")
    return Mask(shape, load_mask(opts.mask), kind="file")


@_task("cs", "cs", "compressed sensing: keep a random --fraction of the pixels (0.05 = 5%)", ("fraction",))
def _cs(shape, opts, gen):
    return Mask(shape, random_pixel_mask(shape[1], shape[2], opts.fraction, gen), kind="random")


@_task("sr", "sr", "super-resolution by average pooling x --scale (the paper's)", ("scale",))
def _sr(shape, opts, gen):
    return AvgPoolSR(shape, opts.scale)


@_task("sr-bicubic", "sr", "super-resolution by bicubic down-sampling x --scale", ("scale",))
def _sr_bicubic(shape, opts, gen):
    return BicubicSR(shape, opts.scale)


@_task("deblur", "deblur", "deblurring with a known --kernel (gaussian, random or FILE[:INDEX])", _KERNEL_OPTIONS)
def _deblur(shape, opts, gen):
    kernel, kind = _kernel(opts, gen)
    return Blur(shape, kernel, kind=kind)


@_task("colorize", "colorize", "colorization: the input is the channel mean")
def _colorize(shape, opts, gen):
    return Colorize(shape)


@_task("blind-deblur", "blind-deblur", "blind deconvolution: the kernel (--kernel, e.g. random: the paper's "
       "41x41) makes the measurement, the restoration estimates it", _KERNEL_OPTIONS)
def _blind_deblur(shape, opts, gen):
    kernel, kind = _kernel(opts, gen)
    return Blur(shape, kernel, kind=kind)


SV_GRID = (3, 3)  # cells of the synthetic spatially varying blur


def _sv_kernels(opts, gen) -> torch.Tensor:
    # Random anisotropic Gaussians whose widths scale with the kernel side: for 41x41 the
    # standard deviations span the paper's 2-8 pixels.
    size = opts.kernel_size or 15
    rng = (size / 20, size / 5)
    return torch.stack([torch.stack([random_anisotropic_gaussian_kernel(size, gen, rng) for _ in range(SV_GRID[1])])
                        for _ in range(SV_GRID[0])])


@_task("deblur-sv", "deblur", "non-uniform blur: a 3x3 grid of random Gaussian kernels (--kernel-size, "
       "default 15) blended bilinearly", ("kernel_size",))
def _deblur_sv(shape, opts, gen):
    from .blind import SpatiallyVaryingBlur
    return SpatiallyVaryingBlur(shape, _sv_kernels(opts, gen), kind="random-anisotropic-gaussian")


@_task("blind-deblur-sv", "blind-deblur", "blind non-uniform deblurring: estimates a 3x3 grid of local "
       "kernels (--kernel-size) with the image", ("kernel_size",))
def _blind_deblur_sv(shape, opts, gen):
    from .blind import SpatiallyVaryingBlur
    return SpatiallyVaryingBlur(shape, _sv_kernels(opts, gen), kind="random-anisotropic-gaussian")


@_task("nonuniform-deblur", "nonuniform-deblur", "non-uniform deblurring as in the authors' code: H = "
       "identity, stopped early (Fig. 8)")
def _nonuniform_deblur(shape, opts, gen):
    return Identity(shape)


@_task("old-photo", "old-photo", "old-photo enhancement (Fig. 7): colorization + super-resolution x --scale, "
       "unknown noise (stop auto)", ("scale",))
def _old_photo(shape, opts, gen):
    col = Colorize(shape)
    return Compose(shape, [col, AvgPoolSR(col.out_shape, opts.scale)]) if opts.scale > 1 else col


def build_task(task: str, in_shape, options: TaskOptions | None = None,
               generator: torch.Generator | None = None) -> Operator:
    """The operator of ``task`` (``"a+b"`` applies a, then b) for clean images of ``in_shape``."""
    opts = options or TaskOptions()
    parts = [p.strip() for p in task.split("+")]
    ops: list[Operator] = []
    shape = tuple(in_shape)
    for part in parts:
        if part not in TASKS:
            raise ShredError(f"unknown task {part!r}; choose from {', '.join(TASKS)} (join with + to chain)")
        op = TASKS[part].build(shape, opts, generator)
        ops.append(op)
        shape = op.out_shape
    op = ops[0] if len(ops) == 1 else Compose(in_shape, ops)
    if opts.sigma_y < 0 or not math.isfinite(opts.sigma_y):
        raise ShredError(f"--sigma-y must be >= 0, got {opts.sigma_y}")
    if opts.sigma_y > 0:
        op = Noisy(in_shape, op, opts.sigma_y)
    return op


def preset_key(task: str) -> str:
    """The per-task settings group of a task (the last part of a chain decides)."""
    last = task.split("+")[-1].strip()
    return TASKS[last].preset_key if last in TASKS else "default"
