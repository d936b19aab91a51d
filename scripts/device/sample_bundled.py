"""Draw DDIM samples from trained model folders for the sample-quality table (run on the GPU).

    python scripts/device/sample_bundled.py OUT_NPZ MODEL_FOLDER [N] [STEPS...]

Writes uint8 samples [N, C, H, W] per step count (keys ``steps10`` ...) from seeds 0..N-1,
deterministic DDIM (eta = 0), the authors' leading timesteps; x0 clipping (as SHRED's default
presets do) when the environment variable SHRED_CLIP_X0=1 is set, none otherwise. Runs on the GPU
when there is one, else on the CPU.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

from shred.diffusion import ddim_sample, time_pairs
from shred.models import load_model
from shred.solvers import seeded_noise, to_image_space

CLIP = os.environ.get("SHRED_CLIP_X0") == "1"


def den_device(den) -> torch.device:
    return next(den.parameters()).device


@torch.no_grad()
def sample(den, n: int, steps: int, batch: int = 1000) -> np.ndarray:
    pairs = time_pairs(den.schedule.T, steps=steps)
    shape = (den.channels, *den.image_size)
    out = []
    for i in range(0, n, batch):
        x_T = seeded_noise(shape, range(i, min(n, i + batch)), den_device(den))
        x0 = to_image_space(ddim_sample(den, x_T, pairs, clip_x0=CLIP)).clamp(0, 1)
        out.append((x0 * 255).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def main(out: str, folder: str, n: str = "2000", *steps: str) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    den = load_model(folder, device=device)
    arrays = {}
    for s in [int(v) for v in steps] or [10, 50, 100]:
        t0 = time.perf_counter()
        arrays[f"steps{s}"] = sample(den, int(n), s)
        print(f"{folder}: {n} samples with {s} steps in {time.perf_counter() - t0:.1f} s", flush=True)
        np.savez(out, **arrays)  # after each step count, in case the run is cut short
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
