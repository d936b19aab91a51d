"""shred: zero-shot image restoration by diffusion inversion (SHRED).

Value ranges: images and measurements in [0, 1]; the diffusion models work in [-1, 1].
"""
__version__ = "0.1.0"

from .errors import CheckpointError, DownloadError, ShredError  # noqa: E402
from .io import read_image, write_image  # noqa: E402
from .models import Denoiser, GaussianPrior, load_model  # noqa: E402
from .operators import TASKS, Operator, TaskOptions, build_task  # noqa: E402
from .solvers import Result, Shred, ShredConfig, preset_config  # noqa: E402
from .api import degrade, make_spec, read_spec, restore  # noqa: E402

__all__ = ["__version__", "CheckpointError", "DownloadError", "ShredError", "read_image", "write_image",
           "Denoiser", "GaussianPrior", "load_model", "TASKS", "Operator", "TaskOptions", "build_task",
           "Result", "Shred", "ShredConfig", "preset_config", "degrade", "make_spec", "read_spec", "restore"]
