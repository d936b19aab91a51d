"""Per-image random generators: restoration i depends only on seed i, never on a global seed."""
from __future__ import annotations

import torch


def generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded with ``seed``, or with fresh entropy when ``seed is None``."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
