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

from ..config import FrozenConfig, _Invalid, odd_positive_int, optional, positive, positive_int, setting
from ..errors import ShredError
from .base import Operator, noise_level
from .kernels import _count, check_kernel_size, gaussian_kernel, load_kernel, random_anisotropic_gaussian_kernel
from .linear import AvgPoolSR, BicubicSR, Blur, Colorize, Compose, Identity, Mask, Noisy
from .masks import box_mask, describe_mask, load_mask, random_pixel_mask


def _fraction(v):
    v = positive(v)
    if v > 1:
        raise _Invalid("in (0, 1] (0.05 keeps 5 % of the pixels)")
    return v


def _text(v):
    if not isinstance(v, str) or not v:
        raise _Invalid("a non-empty string")
    return v


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

    scale: int = setting(4, positive_int)
    fraction: float = setting(0.05, _fraction)
    box_size: int | None = setting(None, optional(positive_int))
    mask: str | None = setting(None, optional(_text))
    kernel: str = setting("gaussian", _text)
    kernel_size: int | None = setting(None, optional(odd_positive_int))
    kernel_sigma: float = setting(3.0, positive)
    sigma_y: float = setting(0.0, noise_level)

    label = "task option"  # "task option sigma_y must be ..."
    what = "task options"  # names them in errors (a class attribute, not a field)


def gaussian_size(sigma: float) -> int:
    """The default side of a Gaussian kernel: 2 ceil(3 sigma) + 1 (three standard deviations)."""
    return 2 * math.ceil(3 * sigma) + 1


def _kernel(opts: TaskOptions, generator, shape) -> tuple[torch.Tensor, str]:
    if opts.kernel == "gaussian":
        if opts.kernel_size is None:
            check_kernel_size(gaussian_size(opts.kernel_sigma), shape,
                              f"kernel sigma {opts.kernel_sigma:g} implies a kernel side of "
                              f"{_count(gaussian_size(opts.kernel_sigma))} (2 ceil(3 sigma) + 1), which",
                              "a smaller --kernel-sigma, or give --kernel-size")
        size = opts.kernel_size or gaussian_size(opts.kernel_sigma)
        check_kernel_size(size, shape)
        return gaussian_kernel(size, opts.kernel_sigma), f"gaussian(sigma={opts.kernel_sigma:g})"
    if opts.kernel == "random":
        size = opts.kernel_size or 41
        check_kernel_size(size, shape)
        # The paper's 41x41 kernels have standard deviations of 2-8 pixels; smaller kernels (for
        # smaller images) keep the same proportions.
        return (random_anisotropic_gaussian_kernel(size, generator, sigma_range=(2 * size / 41, 8 * size / 41)),
                "random-anisotropic-gaussian")
    k = load_kernel(opts.kernel)
    check_kernel_size(max(k.shape), shape, f"the kernel in {opts.kernel} is {k.shape[0]}x{k.shape[1]}, which",
                      "a smaller kernel")
    return k, f"file:{opts.kernel}"


def _draws_nothing(opts: TaskOptions) -> None:
    return None


@dataclass(frozen=True)
class Task:
    """A registered recipe.

    Attributes:
        options: the :class:`TaskOptions` fields the recipe reads (``sigma_y`` applies to every
            task and is not listed); front ends show only these.
        draws: what the recipe draws from the generator with these options and a restoration
            needs back (``"mask"``, ``"kernel"``, ``"kernels"``), or None: such an operator can
            only be rebuilt from the spec or the seed that made it, never re-drawn.
    """

    name: str
    build: Callable[[tuple, TaskOptions, torch.Generator | None], Operator]
    preset_key: str
    help: str
    options: tuple[str, ...] = ()
    draws: Callable[[TaskOptions], str | None] = _draws_nothing


TASKS: dict[str, Task] = {}
_KERNEL_OPTIONS = ("kernel", "kernel_size", "kernel_sigma")


def _task(name: str, preset_key: str, help: str, options: tuple[str, ...] = (), draws=_draws_nothing):
    def deco(fn):
        TASKS[name] = Task(name, fn, preset_key, help, options, draws)
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
    op = Mask(shape, load_mask(opts.mask), kind="file")  # a mask of the wrong size is refused first
    if bool((op.mask == 1).all()):
        raise ShredError(f"{opts.mask}: the mask hides no pixel, so there is nothing to inpaint; paint the hole "
                         "black (or transparent), white = kept")
    return op


@_task("cs", "cs", "compressed sensing: keep a random --fraction of the pixels (0.05 = 5%)", ("fraction",),
       draws=lambda opts: "mask")
def _cs(shape, opts, gen):
    return Mask(shape, random_pixel_mask(shape[1], shape[2], opts.fraction, gen), kind="random")


@_task("sr", "sr", "super-resolution by average pooling x --scale (the paper's)", ("scale",))
def _sr(shape, opts, gen):
    return AvgPoolSR(shape, opts.scale)


@_task("sr-bicubic", "sr", "super-resolution by bicubic down-sampling x --scale", ("scale",))
def _sr_bicubic(shape, opts, gen):
    return BicubicSR(shape, opts.scale)


@_task("deblur", "deblur", "deblurring with a known --kernel (gaussian, random or FILE[:INDEX])", _KERNEL_OPTIONS,
       draws=lambda opts: "kernel" if opts.kernel == "random" else None)
def _deblur(shape, opts, gen):
    kernel, kind = _kernel(opts, gen, shape)
    return Blur(shape, kernel, kind=kind)


@_task("colorize", "colorize", "colorization: the input is the channel mean")
def _colorize(shape, opts, gen):
    return Colorize(shape)


@_task("blind-deblur", "blind-deblur", "blind deconvolution: the kernel (--kernel, e.g. random: the paper's "
       "41x41) makes the measurement, the restoration estimates it", _KERNEL_OPTIONS)
def _blind_deblur(shape, opts, gen):
    kernel, kind = _kernel(opts, gen, shape)
    return Blur(shape, kernel, kind=kind)


SV_GRID = (3, 3)  # cells of the synthetic spatially varying blur


def _sv_kernels(opts, gen, shape) -> torch.Tensor:
    # Random anisotropic Gaussians whose widths scale with the kernel side: for 41x41 the
    # standard deviations span the paper's 2-8 pixels.
    size = opts.kernel_size or 15
    check_kernel_size(size, shape)
    rng = (size / 20, size / 5)
    return torch.stack([torch.stack([random_anisotropic_gaussian_kernel(size, gen, rng) for _ in range(SV_GRID[1])])
                        for _ in range(SV_GRID[0])])


@_task("deblur-sv", "deblur", "non-uniform blur: a 3x3 grid of random Gaussian kernels (--kernel-size, "
       "default 15) blended bilinearly", ("kernel_size",), draws=lambda opts: "kernels")
def _deblur_sv(shape, opts, gen):
    from .blind import SpatiallyVaryingBlur
    return SpatiallyVaryingBlur(shape, _sv_kernels(opts, gen, shape), kind="random-anisotropic-gaussian")


@_task("blind-deblur-sv", "blind-deblur", "blind non-uniform deblurring: estimates a 3x3 grid of local "
       "kernels (--kernel-size) with the image", ("kernel_size",))
def _blind_deblur_sv(shape, opts, gen):
    from .blind import SpatiallyVaryingBlur
    return SpatiallyVaryingBlur(shape, _sv_kernels(opts, gen, shape), kind="random-anisotropic-gaussian")


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
    if opts.sigma_y > 0:
        op = Noisy(in_shape, op, opts.sigma_y)
    return op


def _parts(task: str) -> list[str]:
    return [p.strip() for p in task.split("+")]


def random_parts(task: str, options: TaskOptions | None = None) -> list[str]:
    """What ``task`` (or chain) draws at random with ``options`` and a restoration needs back
    (:attr:`Task.draws`), e.g. ``["mask"]`` for ``cs``; empty when the operator is determined by
    the options alone. Blind tasks draw a kernel too, but estimate it, so they list nothing."""
    opts = options or TaskOptions()
    return [d for p in _parts(task) if p in TASKS and (d := TASKS[p].draws(opts))]


def assumed_defaults(task: str, options: TaskOptions, given: set[str], shape) -> list[str]:
    """What a restoration of ``task`` takes on trust when only the options named in ``given``
    were given: a phrase per default that shapes the operator (the Gaussian kernel of ``deblur``,
    the centred hole of ``inpaint``), for images of ``shape`` (C, H, W). Defaults that the size
    policy checks anyway (``--scale``: a wrong one gives a measurement of the wrong size), random
    parts (:func:`random_parts`) and blind tasks (they estimate the kernel) are not listed."""
    notes = []
    for part in _parts(task):
        if part == "deblur" and options.kernel == "gaussian" and not {"kernel", "kernel_sigma"} <= given:
            notes.append(f"a Gaussian blur kernel of sigma {options.kernel_sigma:g} px "
                         f"({gaussian_size(options.kernel_sigma) if options.kernel_size is None else options.kernel_size}"
                         " px wide); give --kernel FILE, or --kernel gaussian --kernel-sigma S, for the true one")
        if part == "inpaint" and "box_size" not in given:
            side = min(shape[1:]) // 2
            notes.append(f"a centred {side}x{side} hole (half the shorter side); give --box-size for the true one")
    return notes


def describe_operator(op: Operator, blind: bool = False) -> str | None:
    """A phrase on what an operator holds that the user should see when it is read or made: the
    kept fraction of its mask (``the mask keeps 768 of 1024 pixels (75.0 %)``), its blur kernel
    (``kernel gaussian(sigma=3), 19x19``), its noise (``noise sigma_y 0.00113, the file's
    rounding``: :func:`shred.operators.with_rounding`); None when there is nothing to say. ``blind``:
    the kernel is unknown to the solver, which estimates one of its size (``kernel estimated at
    19x19; the spec's gaussian(sigma=3) only scores the estimate``)."""
    from .linear import unwrap

    noise, rounding, declared = op.sigma_y, op.rounding, op.declared_sigma_y
    op = unwrap(op)
    phrases = []
    for stage in op.ops if isinstance(op, Compose) else (op,):
        stage = unwrap(stage)
        if isinstance(stage, Mask):
            phrases.append(f"the mask {describe_mask(stage.mask)}")
        elif isinstance(stage, Blur):
            size = f"{stage.kernel.shape[0]}x{stage.kernel.shape[1]}"
            phrases.append(f"kernel estimated at {size}; the spec's {stage.kind} only scores the estimate" if blind
                           else f"kernel {stage.kind}, {size}")
    if rounding > 0 and declared > 0:
        phrases.append(f"noise sigma_y {declared:g}, {noise:.4g} with the file's rounding")
    elif rounding > 0:
        phrases.append(f"noise sigma_y {noise:.3g}, the file's rounding")
    elif noise > 0:
        phrases.append(f"noise sigma_y {noise:g}")
    return "; ".join(phrases) or None


def preset_key(task: str) -> str:
    """The per-task settings group of a task (the last part of a chain decides)."""
    last = task.split("+")[-1].strip()
    return TASKS[last].preset_key if last in TASKS else "default"
