"""shred: zero-shot image restoration by diffusion inversion (SHRED).

Value ranges: images and measurements in [0, 1]; the diffusion models work in [-1, 1].
"""
from ._version import __version__
from .errors import CheckpointError, DownloadError, ShredError
from .io import read_image, write_image
from .models import Denoiser, GaussianPrior, load_model
from .operators import TASKS, Operator, TaskOptions, build_task
from .solvers import Result, Shred, ShredConfig, preset_config
from .api import degrade, make_spec, read_spec, restore

__all__ = ["__version__", "CheckpointError", "DownloadError", "ShredError", "read_image", "write_image",
           "Denoiser", "GaussianPrior", "load_model", "TASKS", "Operator", "TaskOptions", "build_task",
           "Result", "Shred", "ShredConfig", "preset_config", "degrade", "make_spec", "read_spec", "restore"]
