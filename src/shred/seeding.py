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


MAX_SEEDS = 256


def parse_seeds(text: str) -> list[int]:
    """Seeds written as ``0``, ``0-7``, ``0,3,5`` or ``0-3,9``: a list of 1 to 256 integers.

    Raises :class:`shred.errors.ShredError` for anything else."""
    from .errors import ShredError

    out: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            head, dash, tail = part[1:].partition("-")  # part[0] may be the sign of a negative seed
            if dash:
                lo, hi = int(part[0] + head), int(tail)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ShredError(f"seeds look like 0, 0-7 or 0,3,5; got {text!r}") from None
    if not 1 <= len(out) <= MAX_SEEDS:
        raise ShredError(f"give between 1 and {MAX_SEEDS} seeds, got {len(out)}")
    return out
