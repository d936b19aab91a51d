"""The degradations of the comparison, named, at any image size."""
from __future__ import annotations

from dataclasses import dataclass

from ..operators import TaskOptions


@dataclass(frozen=True)
class BenchTask:
    """A named degradation of the comparison: a task recipe, its options and a table label."""

    name: str
    task: str
    options: TaskOptions
    label: str

    @property
    def blind(self) -> bool:
        from ..operators import preset_key

        return preset_key(self.task) == "blind-deblur"


def bench_tasks(size: int) -> dict[str, BenchTask]:
    """The comparison's tasks for images of side ``size`` (the paper's, scaled where they have a size)."""
    box = size // 2
    return {t.name: t for t in [
        BenchTask("inpaint", "inpaint", TaskOptions(box_size=box), f"Inpainting ({box}x{box} box)"),
        BenchTask("sr4", "sr", TaskOptions(scale=4), "SR x4"),
        BenchTask("sr8", "sr", TaskOptions(scale=8), "SR x8"),
        BenchTask("cs5", "cs", TaskOptions(fraction=0.05), "CS 5%"),
        BenchTask("cs1", "cs", TaskOptions(fraction=0.01), "CS 1%"),
        BenchTask("deblur", "deblur", TaskOptions(kernel="gaussian", kernel_sigma=2.0), "Deblur (Gaussian, sigma 2)"),
        BenchTask("colorize", "colorize", TaskOptions(), "Colorization"),
        # H = I with noise: the case where a restoration can easily end worse than its input.
        BenchTask("denoise", "denoise", TaskOptions(sigma_y=0.05), "Denoising (sigma 0.05)"),
        # The paper's blind deconvolution: a random anisotropic Gaussian, 41x41 at 256 pixels with
        # standard deviations of 2-8 pixels (the range scales with the side). Scaled exactly to 32
        # pixels that is 5x5 with 0.24-0.98 pixels, a blur that hardly changes the image (input at
        # 48 dB on 10 cifar10-train images); at least 9x9 (0.44-1.76 pixels at 32) keeps it a deblurring task.
        BenchTask("blind", "blind-deblur", TaskOptions(kernel="random", kernel_size=max(9, (size * 41 // 256) | 1)),
                  "Blind deconv"),
    ]}


BENCH_TASK_NAMES = tuple(bench_tasks(32))
