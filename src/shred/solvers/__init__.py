"""SHRED and the peer methods behind one call: ``result = solver(y, operator, seeds=...)``.

Build every method with :func:`build_solver` (``build_solver("ddrm", den, steps=20)``,
``build_solver("shred@paper", den, task="sr")``); :data:`SOLVERS` lists them.
"""
from .base import Result, Solver, prepare_batch, seeded_noise, to_image_space, to_model_space
from .presets import DEFAULT_PRESET, PRESETS, preset_config, resolve_preset, shred_method, task_config
from .registry import (SOLVERS, build_solver, check_settings, is_blind, method_settings, register_solver,
                       split_method, why_not)
from .shred import Shred, ShredConfig, measurement_loss
# The peer methods register themselves on import.
from .blind import BlindConfig, BlindShred
from .ddnm import Ddnm, DdnmConfig, DdnmPlus
from .ddrm import Ddrm, DdrmConfig
from .dip import DIP, DIPConfig, SelfDeblur, SelfDeblurConfig
from .dps import DPS_SCALES, Dps, DpsConfig
from .naive import NaiveInversion
from .pinv import PseudoInverse
from .repaint import Repaint, RepaintConfig

__all__ = ["Result", "Solver", "prepare_batch", "seeded_noise", "to_image_space", "to_model_space",
           "DEFAULT_PRESET", "PRESETS", "preset_config", "resolve_preset", "shred_method", "task_config",
           "SOLVERS", "build_solver", "check_settings", "is_blind", "method_settings", "register_solver",
           "split_method", "why_not", "Shred", "ShredConfig", "measurement_loss", "BlindConfig", "BlindShred",
           "Ddnm", "DdnmConfig", "DdnmPlus", "Ddrm", "DdrmConfig", "DIP", "DIPConfig", "DPS_SCALES", "Dps",
           "DpsConfig", "NaiveInversion", "PseudoInverse", "Repaint", "RepaintConfig", "SelfDeblur",
           "SelfDeblurConfig"]
