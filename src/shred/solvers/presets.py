"""Named SHRED settings: the paper's (Appendix A, eqs. 13-16), the authors' released code's, and
``bundled`` (the authors' method with learning rates tuned for the bundled 32x32 models) and
``plus`` (SHRED+: warm start, annealed lr, coarse-to-fine, DDNM's finish; 135 network calls per
image).
``auto``, the default, is ``plus`` for the bundled models and ``authors-code`` otherwise.

``preset_config("authors-code", "sr")`` gives the authors' super-resolution settings. Task groups
come from :func:`shred.operators.preset_key` (sr, inpaint, cs, denoise, deblur, colorize,
blind-deblur, default).

=========================  ============================  ==================================
setting                    ``paper``                     ``authors-code``
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
from .shred_config import ShredConfig

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
# The bundled 32x32 models need larger steps than the authors' 256x256 settings: with lr 0.001 and
# 100 iterations x_T barely moves. Learning rates chosen among {0.03, 0.1} on 4 CIFAR-10 *training*
# images (the benchmarks use the test split), 100 iterations each.
PRESETS["bundled"] = {
    "default": dict(lr=0.03, iterations=100),
    "sr": dict(lr=0.03, iterations=100),
    "inpaint": dict(lr=0.1, iterations=100),
    "cs": dict(lr=0.1, iterations=100),
    "deblur": dict(lr=0.03, iterations=100),
    "colorize": dict(lr=0.03, iterations=100),
    # Not tuned: the authors' values.
    "blind-deblur": dict(lr=0.003, iterations=100),
    # Denoising (sigma_y 0.05, 10 cifar10-train images; the noisy input is at 26.15 dB): the
    # authors' lr 0.002 x 25 gave 13.32 dB and lr 0.03 x 25 23.17 dB; lr 0.03 for up to 100
    # iterations stopped by the discrepancy principle gives 29.65 dB (bench/check_defaults.sh,
    # PART=denoise).
    "denoise": dict(lr=0.03, iterations=100, stop="discrepancy"),
    "nonuniform-deblur": dict(lr=0.002, iterations=25),
    "old-photo": dict(lr=0.03, iterations=100, stop="auto"),
}
# SHRED+ (issue #13), tuned on cifar10-train (runs: bench/tune_plus.sh): x_T warm-started from the
# DDIM inversion of DDRM's 20-step restoration (a = 0.5), 15 Adam iterations with a cosine-annealed
# lr, the first 12 through every other DDIM step (coarse-to-fine), then DDNM's finish from t = 300
# (15 steps): 20 + 10 + 12 x 5 + 3 x 10 + 15 = 135 network calls per image against the authors'
# code's 1,000. Coarse-to-fine against all 15 iterations at 10 steps (195 calls), 20 training images
# per task, with 8 coarse iterations (155 calls): KID-C10 x1e3 31.4 / 31.9 (x4 SR), -9.8 / -8.6
# (inpainting), 83.8 / 84.9 (x8 SR), 21.1 / 26.3 (CS 5 %), -7.4 / -7.4 (deblurring), 3.9 / 2.8
# (colorization), PSNR within 0.1 dB. 12 coarse iterations against 8 (PART=c12 and cs-speed): 30.9
# / 31.4 (x4 SR), -10.0 / -9.8 (inpainting), 82.1 / 83.8 (x8 SR), -7.3 / -7.4 (deblurring), -10.8
# / -12.2 (colorization, its entry), 2.5 / 2.3 (CS, its entry), PSNR within 0.05 dB, 20 fewer calls.
# Blind deblurring starts from the blurred y itself (the kernel is unknown), without finish or
# coarse iterations; nonlinear operators start from A^+ y.
# With measurement noise (sigma_y > 0, an 8-bit file's rounding on a blur included), a last Tikhonov
# correction at the noise level (finish_noise="tikhonov"; nothing changes without noise, so the
# comparison's noiseless tasks are unaffected). On 16 cifar10-train images (bench/quantized_y.py
# --rows declared,noise --noise 0.05 --tikhonov, bench/results/quantized-y-noisy-finish-train.json)
# it never lost: 8-bit y with its rounding declared, deblurring 26.24 -> 26.53 dB (float32 y: 26.57),
# bicubic SR x4 21.73 -> 21.79, SR x4 21.07 -> 21.10, inpainting 20.04 -> 20.12, SR x8 and
# colorization unchanged; with noise 0.05 the same PSNR on all six tasks. Denoising (PART=
# denoise-finish bench/check_defaults.sh): 33.22 dB either way.
_PLUS_COMMON = dict(_CODE_COMMON, init="warm", warm_from="ddrm", warm_strength=0.5, lr_decay="cosine",
                    finish="ddnm", coarse_iterations=12, finish_noise="tikhonov")
PRESETS["plus"] = {
    "default": dict(lr=0.05, iterations=15),
    # Compressed sensing: DDNM's finish from t = 200 in 45 steps instead of t = 300 in 15 (20 + 10 +
    # 12 x 5 + 3 x 10 + 45 = 165 calls). On 20 cifar10-train images at 5 % (bench/tune_plus.sh,
    # PART=cs-finish): 14.69 dB and KID-C10 x1e3 2.3, against 13.99 dB and 21.1 (t = 300 in 30
    # steps: 14.67 dB, 14.1; t = 200 in 30: 14.33 dB, -2.0; DPS 13.75 dB, 4.1; RePaint 13.74 dB,
    # 9.0). Smaller finish steps help CS; on x8 SR a 30-step finish cost realism (KID 119.8 against
    # 83.8), so SR keeps 15 (PART=ill-posed). (These with 8 coarse iterations; 12, PART=cs-speed:
    # 14.68 dB and 2.5; all 15: 14.99 dB and 8.4.)
    "cs": dict(lr=0.05, iterations=15, finish_t=200, finish_steps=45),
    # Not taken for x8 SR (PART=noise-cons): a start from noise, 25 iterations of which 22 coarse
    # and the consistency finish (140 calls) is more realistic than DPS with y explained (KID-C10
    # x1e3 20.5 against 29.9 on 20 cifar10-train images, 35.1 against 58.2 on the test split), but
    # below the input's PSNR (15.03 against 15.99 dB on the training images), which a default
    # must not be; on x4 SR it costs 1.5 dB against the entry (18.18 against 19.66).
    # docs/RESULTS.md, the fifth tuning round.
    # Blind, with the kernel network (kernel_estimate="network"; SHRED+ searches a uniform blur
    # instead and restores under it with the deblurring entry, BLIND_KERNEL_ESTIMATE below): the
    # start inverts the blurred image itself, exactly: the DDIM inversion solved by 3
    # fixed-point iterations per step, with x0 clipping off (the one-pass inversion, as first set,
    # gave back an image 10 dB from y: bench/blind_probe.py). a = 1 (no noise), 17 iterations,
    # kernel lr 2e-3: 30 + 170 = 200 calls. On 10 cifar10-train images 21.96 dB and KID-C10 x1e3
    # 24.1, against 18.77 dB and 44.4 with the one-pass start (a = 0.9, 19 iterations), yet still
    # below the blurred input (25.73 dB): bench/check_defaults.sh, PART=blind.
    "blind-deblur": dict(lr=0.003, iterations=17, warm_from="pinv", warm_strength=1.0, finish="none",
                         coarse_iterations=0, invert_fixed_point=3, clip_x0=False),
    # Colorization: the whole inverted DDRM image (a = 1) and the consistency finish (120 calls).
    # On 20 cifar10-train images (bench/tune_plus.sh, PART=colorize): 24.35 dB and KID-C10 x1e3
    # -12.2, against 23.28 dB and 3.9 for the entry before (a = 0.8, DDNM's finish); DDRM 23.79 dB
    # and -12.0; the grey input A^+ y 23.68 dB. a = 1 with DDNM's finish: 24.23 dB, -5.9. (These
    # with 8 coarse iterations; 12, PART=c12: 24.39 dB, -10.8.)
    "colorize": dict(lr=0.05, iterations=15, warm_strength=1.0, finish="consistency"),
    # Not measured with coarse-to-fine: all iterations at 10 steps.
    "denoise": dict(lr=0.03, iterations=15, coarse_iterations=0),
    "nonuniform-deblur": dict(lr=0.03, iterations=15, coarse_iterations=0),
    "old-photo": dict(lr=0.03, iterations=15, stop="auto", coarse_iterations=0),
}
_COMMON = {"paper": _PAPER_COMMON, "authors-code": _CODE_COMMON, "bundled": _CODE_COMMON, "plus": _PLUS_COMMON}
# "auto": "plus" (SHRED+) for the models that ship with shred, whose settings were tuned on them;
# "authors-code" for every other model (the released checkpoints the authors' settings were made for).
DEFAULT_PRESET = "auto"

# Settings of the blind variant that are not ShredConfig fields (learning rate of H_theta). No
# preset takes BlindConfig.kernel_steps: for SHRED+'s blind entry, 20 kernel-only steps per
# iteration cost realism on both training checks (bench/check_defaults.sh PART=blind and
# PART=blind-ks; KID-C10 x1e3 46.7 against 24.1 on 10 images, 233.0 against 193.0 on 20) for
# +2.8 and +0.1 dB and a smaller residual under the true blur (0.074 / 0.146, 0.096 / 0.119):
# the kernel narrows towards a point and x0 stays close to y.
BLIND_KERNEL_LR = {"paper": 0.003, "authors-code": 2e-4, "bundled": 2e-4, "plus": 2e-3}
# How the blind variant estimates the blur (BlindConfig.kernel_estimate): the paper's kernel network
# (eqs. 17-19) everywhere but SHRED+, which searches a uniform blur (BlindShred.search_kernels) and
# then runs its deblurring entry under it ("auto": a grid of kernels keeps the network). On 20
# cifar10-train images under each of two random Gaussians (bench/check_defaults.sh,
# PART=blind-search, SEED=2 and 6): 24.13 / 25.60 dB and KID-C10 x1e3 79.4 / 62.6 in 315 calls,
# against the network's 21.23 / 20.65 dB and 193.0 / 250.7 in 200 (inputs 21.35 / 19.32 dB).
BLIND_KERNEL_ESTIMATE = {"plus": "auto"}


def uses_coarse_to_fine(preset: str) -> bool:
    """Whether some task group of ``preset`` runs coarse iterations (``"auto"``: as ``plus``, the
    bundled models' preset), i.e. whether a coarse stride can matter under it."""
    preset = "plus" if preset == "auto" else preset
    return any({**_COMMON[preset], **entry}.get("coarse_iterations", 0) > 0 for entry in PRESETS[preset].values())


def resolve_preset(preset: str, denoiser=None) -> str:
    """The preset ``"auto"`` stands for with this denoiser (other names are returned unchanged)."""
    if preset != "auto":
        return preset
    from ..models.registry import MODELS

    entry = MODELS.get(getattr(denoiser, "name", None))
    return "plus" if entry is not None and entry.kind == "bundled" else "authors-code"


def preset_config(preset: str = DEFAULT_PRESET, task_group: str = "default", **overrides) -> ShredConfig:
    """The :class:`ShredConfig` of a preset for a task group, with ``overrides``.

    Overrides that are None are skipped (the CLI passes None for every option left unset)."""
    if preset == "auto":
        raise ShredError("resolve preset 'auto' for a model first (solvers.presets.resolve_preset)")
    if preset not in PRESETS:
        raise ShredError(f"unknown preset {preset!r}; choose from auto, {', '.join(PRESETS)}")
    table = PRESETS[preset]
    settings = {**_COMMON[preset], **table.get(task_group, table["default"])}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return ShredConfig.from_dict(settings)


def task_config(preset: str, task: str | None, denoiser=None) -> tuple[ShredConfig, str]:
    """(the config, the resolved preset name) for ``task`` (a task name, e.g. ``"sr"`` or
    ``"colorize+sr"``; None takes the preset's default group) under ``preset`` (``"auto"`` is
    resolved with ``denoiser``)."""
    from ..operators import preset_key

    preset = resolve_preset(preset, denoiser)
    group = preset_key(task) if task else "default"
    return preset_config(preset, group), preset


def shred_method(task: str | None) -> str:
    """The SHRED method a task needs: ``"shred-blind"`` for the blind tasks (group
    ``blind-deblur``: the blur is estimated too), ``"shred"`` otherwise."""
    from ..operators import preset_key

    return "shred-blind" if task and preset_key(task) == "blind-deblur" else "shred"
