"""Execution options for a denoiser: reduced precision, channels-last memory, ``torch.compile``.

``fast = accelerate(denoiser, RunOptions.for_device("cuda"))`` returns a denoiser with the same
``eps(x_t, t)`` contract (input and output in the caller's dtype, float32 for SHRED), computed:

* in bf16 (or fp16) under autocast: the network's matrix products run in reduced precision while
  x_T, the DDIM update, the loss and Adam stay float32 in the solver;
* in channels-last memory format (NHWC), which cuDNN's fastest convolution kernels use;
* through ``torch.compile`` (fused elementwise kernels; ``"reduce-overhead"`` also replays CUDA
  graphs, which pays when shapes are static and kernels are small).

Attention already goes through ``scaled_dot_product_attention`` (flash / memory-efficient kernels)
in diffusers' attention processors. The results differ from float32 by rounding only; the speed
benchmark (``bench/speed.py``) reports the PSNR between fast and float32 restorations.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..config import FrozenConfig
from ..errors import ShredError
from .base import Denoiser

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_MIN_WORK = 800  # images x iterations from which the GPU default compiles the network


@dataclass(frozen=True)
class RunOptions(FrozenConfig):
    """How to execute the network (not what to compute).

    Attributes:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast of the network only).
        channels_last: feed the network NHWC tensors.
        compile: ``torch.compile`` mode, or None for eager execution.
    """

    precision: str = "fp32"
    channels_last: bool = False
    compile: str | None = None

    what = "run options"  # names them in errors (a class attribute, not a field)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ShredError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE_MODES:
            raise ShredError(f"compile must be one of {COMPILE_MODES}, got {self.compile!r}")

    @classmethod
    def for_device(cls, device: str | torch.device, grad: str = "surrogate", images: int = 1,
                   iterations: int = 100) -> "RunOptions":
        """The fast defaults for a run of ``images`` images (or seeds) x ``iterations`` iterations.

        * GPU: bf16 + channels-last; ``torch.compile`` (``"default"``) as well when the gradient is
          the surrogate one and the run has at least :data:`COMPILE_MIN_WORK` image-iterations,
          because compiling takes about 39 s on an H200 (CelebA-HQ DDPM) and pays off only from
          about 8 images of 100 iterations. Exact-gradient runs stay eager (measured that way).
        * CPU: float32, NCHW, eager. bf16 is slower on AVX2; channels-last measured 7-15 % faster
          for cifar10-32 but 10-15 % slower for fashion-mnist-28 (medians of interleaved runs,
          ``bench/speed.py --interleave`` and ``bench/cpu_floor.py``); compiling saves 20-23 % per
          iteration at batch 1 but costs 12-120 s per process (depending on torch's compilation
          cache), more than it saves on one restoration (ask for it with ``compile="default"``).
        """
        if torch.device(device).type == "cuda":
            big = grad == "surrogate" and images * iterations >= COMPILE_MIN_WORK
            return cls("bf16", True, "default" if big else None)
        return cls()

    def describe(self) -> str:
        """One line for logs: ``bf16, channels-last, compiled (default)``."""
        return ", ".join([self.precision, "channels-last" if self.channels_last else "NCHW",
                          f"compiled ({self.compile})" if self.compile else "eager"])



class FastDenoiser(Denoiser):
    """A denoiser run with :class:`RunOptions`; same call contract as the one it wraps."""

    def __init__(self, inner: Denoiser, options: RunOptions):
        super().__init__()
        self.inner = inner
        self.options = options
        self.schedule = inner.schedule
        self.channels = inner.channels
        self.image_size = inner.image_size
        self.size_multiple = inner.size_multiple
        self.name = inner.name
        for attr in ("info", "num_classes", "class_label", "learned_sigma"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))
        if options.channels_last:
            inner.to(memory_format=torch.channels_last)
        self._call = torch.compile(inner, mode=options.compile) if options.compile else inner

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        o = self.options
        x = x_t.contiguous(memory_format=torch.channels_last) if o.channels_last else x_t
        dtype = PRECISIONS[o.precision]
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            try:
                eps = self._call(x, t)
            except Exception as exc:  # compilation failed (no C++ compiler, unsupported op, ...)
                if self._call is self.inner:
                    raise
                self._fall_back(exc)
                eps = self.inner(x, t)
        return eps.to(x_t.dtype).contiguous()

    def _fall_back(self, exc: Exception) -> None:
        """Run eagerly from now on: same results, only slower. Errors that are not about
        compilation happen again in the eager call and surface there."""
        first = str(exc).splitlines()[0] if str(exc) else ""
        warnings.warn(f"torch.compile failed ({type(exc).__name__}: {first[:160]}); running the network "
                      "eagerly instead (same results, slower; --compile none skips the attempt)",
                      RuntimeWarning, stacklevel=3)
        self._call = self.inner
        self.options = RunOptions(self.options.precision, self.options.channels_last, None)


def resolve_device(name: str | None = None, local_rank: int = 0) -> str:
    """Check a device name before any work: ``None`` is ``cuda:<local_rank>`` when a GPU is
    available (one per torchrun process) and ``cpu`` otherwise; ``cpu``, ``cuda`` and ``cuda:N``
    are checked against what this machine has (``cuda`` under torchrun is the process's own GPU,
    ``cuda:<local_rank>``). Raises ShredError (one line) otherwise."""
    if name is None:
        return f"cuda:{local_rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ShredError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ShredError(f"--device {name}: no CUDA GPU is available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ShredError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s) "
                             f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
        if device.index is None and local_rank:
            return f"cuda:{local_rank % torch.cuda.device_count()}"
        return str(device)
    raise ShredError(f"--device {name}: shred runs on cpu or cuda, not {device.type}")


def run_options(run: "RunOptions | str | dict | None" = "auto", device: str | torch.device = "cpu", *,
                grad: str = "surrogate", images: int = 1, iterations: int = 100) -> RunOptions:
    """Resolve what a caller asked for into :class:`RunOptions`.

    ``run`` is ``"auto"`` (:meth:`RunOptions.for_device`), ``None`` or ``"plain"`` (float32, NCHW,
    eager: the reference path), a :class:`RunOptions`, or a dict of :class:`RunOptions` fields that
    override the automatic choice (``{"precision": "fp32"}``; ``"compile": "none"`` means eager).
    """
    if isinstance(run, RunOptions):
        return run
    if run is None or run == "plain":
        return RunOptions()
    auto = RunOptions.for_device(device, grad, images, iterations)
    if run == "auto":
        return auto
    if isinstance(run, dict):
        # Here None and "auto" mean "the automatic choice", and compile "none" means eager.
        fields = {k: v for k, v in run.items() if v is not None and v != "auto"}
        if fields.get("compile") == "none":
            fields["compile"] = None
        RunOptions.check_names(run)
        return auto.replace(**fields)
    raise ShredError(f"run options must be 'auto', 'plain', a RunOptions or a dict, got {run!r}")


def accelerate(denoiser: Denoiser, options: RunOptions | None = None) -> Denoiser:
    """Wrap ``denoiser`` with ``options`` (returned unchanged when they are the plain defaults).

    An already wrapped denoiser is unwrapped first, so options never stack."""
    if isinstance(denoiser, FastDenoiser):
        denoiser = denoiser.inner
    if options is None or options == RunOptions():
        return denoiser
    return FastDenoiser(denoiser, options)
