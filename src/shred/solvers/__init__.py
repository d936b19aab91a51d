"""SHRED and the peer methods behind one call: ``result = solver(y, operator, seeds=...)``."""
from .base import Result, Solver, prepare_batch, seeded_noise, to_image_space, to_model_space
from .presets import DEFAULT_PRESET, PRESETS, preset_config, resolve_preset
from .registry import SOLVERS, build_solver, register_solver
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
           "DEFAULT_PRESET", "PRESETS", "preset_config", "resolve_preset", "SOLVERS", "build_solver", "register_solver", "Shred",
           "ShredConfig", "measurement_loss", "BlindConfig", "BlindShred", "Ddnm", "DdnmConfig", "DdnmPlus", "Ddrm",
           "DdrmConfig", "DIP", "DIPConfig", "DPS_SCALES", "Dps", "DpsConfig", "NaiveInversion", "PseudoInverse", "Repaint",
           "RepaintConfig", "SelfDeblur", "SelfDeblurConfig"]
