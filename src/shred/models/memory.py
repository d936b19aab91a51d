"""How much memory a batch of restorations needs, checked before a run and named when it runs out.

A restoration batch holds, per image, the network's activations for one call (surrogate gradient:
the network runs under no_grad) or for all K calls of the trajectory (exact gradient: autograd
keeps them for the backward pass). For a diffusers-layout UNet the activations are estimated from
its configuration: the skip connections kept for the up-sampling path (every res block's and
down-sampler's output), four working tensors of the widest level (a res block's normalised,
activated and convolved copies) and the attention matrices. The estimate is a floor, not a
measurement: a run that passes the check can still run out, and is then stopped with the same
one-line message (:func:`out_of_memory_as_error`) instead of a traceback.
"""
from __future__ import annotations

import contextlib
import resource
from typing import Iterator

import torch

from ..errors import ShredError

WORKING_TENSORS = 4  # a res block holds its input, the normalised + activated copy and the convolution
EXACT_GRAD_FACTOR = 3  # autograd keeps about every intermediate of a call: input, norm, activation, conv


def activation_bytes(denoiser, *, precision: str = "fp32", grad: str = "surrogate", calls: int = 10) -> int | None:
    """Estimated bytes of the network's activations for one image (a floor, see the module
    docstring), or None for a network whose layout is not a diffusers-style UNet."""
    config = getattr(getattr(denoiser, "unet", None), "config", None)
    widths = list(getattr(config, "block_out_channels", None) or ())
    layers = getattr(config, "layers_per_block", None)
    if not widths or not isinstance(layers, int):
        return None
    h, w = denoiser.image_size
    head_dim = getattr(config, "attention_head_dim", None)
    skip, widest, attention = widths[0] * h * w, 0, 0
    for level, width in enumerate(widths):
        pixels = (h >> level) * (w >> level)
        skip += layers * width * pixels
        if level < len(widths) - 1:
            skip += width * pixels // 4  # the down-sampler's output
        widest = max(widest, 2 * width * pixels)  # the up path concatenates the skip: twice the width
        types = list(getattr(config, "down_block_types", ()) or ())
        if level < len(types) and "Attn" in str(types[level]):
            heads = max(1, width // head_dim) if isinstance(head_dim, int) and head_dim > 0 else 1
            attention = max(attention, heads * pixels * pixels)
    elements = skip + WORKING_TENSORS * widest + attention
    size = 2 if precision in ("bf16", "fp16") else 4
    per_call = elements * size
    return per_call * (EXACT_GRAD_FACTOR * calls if grad == "exact" else 1)


def available_bytes(device: str | torch.device) -> int | None:
    """Free memory for tensors on ``device``: the GPU's free memory, or on the CPU the smaller of
    the kernel's MemAvailable and what the address-space limit (``ulimit -v``) leaves; None when
    unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no driver, a device being reset
            return None
    if device.type != "cpu":
        return None
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/status") as f:
                used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            found.append(max(0, limit - used))
        except (OSError, ValueError, StopIteration):
            found.append(limit)
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GB" if n >= 2 ** 30 / 10 else f"{n / 2 ** 20:.0f} MB"


def _advice(images: int, per_image: int | None, free: int | None) -> str:
    if per_image and free is not None and images > 1:
        fit = max(1, int(free // per_image))
        if fit < images:
            return f"use at most {fit} seed{'s' if fit > 1 else ''} at a time (e.g. --seeds 0-{fit - 1}), a smaller model or more memory"
    return "use fewer seeds at a time, a smaller model, or a device with more memory"


def check_memory(denoiser, images: int, device: str | torch.device, *, precision: str = "fp32",
                 grad: str = "surrogate", calls: int = 10) -> None:
    """Raise :class:`ShredError` before a run when ``images`` restorations at once clearly do
    not fit in the free memory of ``device`` (:func:`activation_bytes` x images against
    :func:`available_bytes`), saying how much is needed and how many would fit."""
    per_image = activation_bytes(denoiser, precision=precision, grad=grad, calls=calls)
    free = available_bytes(device)
    if per_image is None or free is None or per_image * images <= free:
        return
    c, (h, w) = denoiser.channels, denoiser.image_size
    raise ShredError(f"not enough memory: {images} restoration{'s' if images > 1 else ''} of {c}x{h}x{w} at once "
                     f"need about {_gb(per_image * images)} for {denoiser.name}'s activations "
                     f"({grad} gradient), and {torch.device(device).type} has {_gb(free)} free; "
                     + _advice(images, per_image, free))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA, the CPU allocator, or Python's)."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


@contextlib.contextmanager
def out_of_memory_as_error(denoiser, images: int, device: str | torch.device, *, precision: str = "fp32",
                           grad: str = "surrogate", calls: int = 10,
                           size: tuple[int, int] | None = None) -> Iterator[None]:
    """Within the block, an allocation failure becomes a one-line :class:`ShredError` with the
    estimate of :func:`check_memory` and what to change (the memory is freed by then). ``size``:
    the (H, W) of the images restored when it is not the network's training size; the estimate
    (made at the training size) is then left out and smaller tiles (``--tile``) are suggested."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only allocation failures are translated
        if not is_out_of_memory(exc):
            raise
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
        c, (h, w) = denoiser.channels, denoiser.image_size
        other = size is not None and tuple(size) != (h, w)
        per_image = None if other else activation_bytes(denoiser, precision=precision, grad=grad, calls=calls)
        if other:
            h, w = size
        need = f" (about {_gb(per_image * images)} for the network's activations)" if per_image else ""
        advice = ("use smaller tiles (--tile N, e.g. the model's training size), fewer seeds at a time or a device "
                  "with more memory" if other else _advice(images, per_image, available_bytes(device)))
        raise ShredError(f"out of memory running {images} restoration{'s' if images > 1 else ''} of {c}x{h}x{w} "
                         f"with {denoiser.name} on {torch.device(device).type}{need}; " + advice) from None


__all__ = ["activation_bytes", "available_bytes", "check_memory", "is_out_of_memory", "out_of_memory_as_error"]
