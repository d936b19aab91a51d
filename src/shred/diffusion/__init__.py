"""Noise schedules, timestep plans and the differentiable deterministic DDIM sampler."""
from .ddim import GRAD_MODES, ddim_invert, ddim_sample, ddim_step, predict_x0
from .schedule import NoiseSchedule
from .timesteps import SPACINGS, time_pairs

__all__ = ["GRAD_MODES", "NoiseSchedule", "SPACINGS", "ddim_invert", "ddim_sample", "ddim_step",
           "predict_x0", "time_pairs"]
