"""Degradation operators (A, A^T, A^+, JSON specs) and the task recipes that build them."""
from .base import OPERATORS, Operator, cgls, operator_from_spec, register_operator
from .blind import SpatiallyVaryingBlur
from .canvas import Canvas, Crop, crop_to_image, on_canvas
from .kernels import (anisotropic_gaussian_kernel, gaussian_kernel, load_kernel,
                      random_anisotropic_gaussian_kernel)
from .linear import (AvgPoolSR, BicubicSR, Blur, Colorize, Compose, Identity, Mask, Noisy, counted_rounding,
                     rounding_std, unwrap, with_rounding)
from .masks import box_mask, load_mask, random_pixel_mask
from .tasks import TASKS, TaskOptions, build_task, preset_key

__all__ = ["OPERATORS", "Operator", "cgls", "operator_from_spec", "register_operator",
           "anisotropic_gaussian_kernel", "gaussian_kernel", "load_kernel",
           "random_anisotropic_gaussian_kernel", "AvgPoolSR", "BicubicSR", "Blur", "Colorize",
           "Compose", "Identity", "Mask", "Noisy", "counted_rounding", "rounding_std", "with_rounding", "box_mask", "load_mask", "random_pixel_mask",
           "TASKS", "TaskOptions", "build_task", "preset_key", "SpatiallyVaryingBlur", "unwrap", "Canvas", "Crop",
           "crop_to_image", "on_canvas"]
