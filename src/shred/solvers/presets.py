"""Named SHRED settings: the paper's (Appendix A, eqs. 13-16) and the authors' released code's.

``preset_config("authors-code", "sr")`` gives the authors' super-resolution settings. Task groups
come from :func:`shred.operators.preset_key` (sr, inpaint, cs, denoise, deblur, colorize,
blind-deblur, default).

=========================  ============================  ==================================
setting                    ``paper``                     ``authors-code`` (default)
=========================  ============================  ==================================
timesteps                  trailing, from t = T-1         leading, t = 900 ... 0
gradient                   exact (eq. 16)                 surrogate (network under no_grad)
loss                       ||y - H(x)|| (eq. 15)          mean squared error
x0 clipping                off                            on
sphere projection of x_T   off                            on
sr                         lr 0.003, 50 iterations        lr 0.001, 100 iterations
inpaint                    lr 0.01, 200                   lr 0.01, 200
cs                         lr 0.01, 150                   (no script) lr 0.01, 150
blind-deblur               lr 0.003, 150                  lr 0.003 (kernel 2e-4), 100
denoise (H = I)            lr 0.003, 100                  lr 0.002, 25 (early stop by count)
nonuniform-deblur (H = I)  (as others)                    lr 0.002, 25 (early stop by count)
old-photo                  lr 0.003, 100, stop auto       lr 0.003, 100, stop auto
others                     lr 0.003, 100 (section 6.1)    lr 0.003, 100
=========================  ============================  ==================================
"""
from __future__ import annotations

from ..errors import ShredError
from .shred import ShredConfig

_PAPER_COMMON = dict(spacing="trailing", grad="exact", loss="norm", clip_x0=False, sphere=False)
_CODE_COMMON = dict(spacing="leading", grad="surrogate", loss="mse", clip_x0=True, sphere=True)

PRESETS: dict[str, dict[str, dict]] = {
    "paper": {
        "default": dict(lr=0.003, iterations=100),
        "sr": dict(lr=0.003, iterations=50),
        "inpaint": dict(lr=0.01, iterations=200),
        "cs": dict(lr=0.01, iterations=150),
        "blind-deblur": dict(lr=0.003, iterations=150),
        # Fig. 7 gives no settings; the noise is unknown, so stop by the discrepancy principle
        # with sigma_y estimated from the photo (solvers/stopping.py).
        "old-photo": dict(lr=0.003, iterations=100, stop="auto"),
    },
    "authors-code": {
        "default": dict(lr=0.003, iterations=100),
        "sr": dict(lr=0.001, iterations=100),
        "inpaint": dict(lr=0.01, iterations=200),
        "cs": dict(lr=0.01, iterations=150),
        "blind-deblur": dict(lr=0.003, iterations=100),
        "denoise": dict(lr=0.002, iterations=25),
        # blind_non_uniform_deblurring.py: H = identity, 25 iterations at lr 0.002.
        "nonuniform-deblur": dict(lr=0.002, iterations=25),
        "old-photo": dict(lr=0.003, iterations=100, stop="auto"),
    },
}
_COMMON = {"paper": _PAPER_COMMON, "authors-code": _CODE_COMMON}
DEFAULT_PRESET = "authors-code"

# Settings of the blind variant that are not ShredConfig fields (learning rate of H_theta).
BLIND_KERNEL_LR = {"paper": 0.003, "authors-code": 2e-4}


def preset_config(preset: str = DEFAULT_PRESET, task_group: str = "default", **overrides) -> ShredConfig:
    """The :class:`ShredConfig` of a preset for a task group, with ``overrides`` (None ignored)."""
    if preset not in PRESETS:
        raise ShredError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    table = PRESETS[preset]
    settings = {**_COMMON[preset], **table.get(task_group, table["default"])}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return ShredConfig.from_dict(settings)
