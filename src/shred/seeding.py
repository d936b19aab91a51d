"""Per-image random generators: restoration i depends only on seed i, never on a global seed."""
from __future__ import annotations

import torch


MAX_SEED = 2 ** 63 - 1


def check_seed(seed) -> int:
    """A seed is an integer in [0, 2^63 - 1] (what ``torch.Generator.manual_seed`` accepts);
    anything else raises :class:`shred.errors.ShredError`."""
    from .errors import ShredError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ShredError(f"seeds are integers from 0 to 2^63 - 1, got {seed!r}")
    return int(seed)


def generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded with ``seed`` (:func:`check_seed`), or with fresh entropy when
    ``seed is None``."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(check_seed(seed))
    return g


MAX_SEEDS = 256


def parse_seeds(text: str) -> list[int]:
    """Seeds written as ``0``, ``0-7``, ``0,3,5`` or ``0-3,9``: a list of 1 to 256 integers.

    Raises :class:`shred.errors.ShredError` for anything else."""
    from .config import decimal_int
    from .errors import ShredError

    out: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            head, dash, tail = part[1:].partition("-")  # part[0] may be the sign of a negative seed
            if dash:
                lo, hi = decimal_int(part[0] + head), decimal_int(tail)
                if hi < lo:
                    raise ValueError
                if hi - lo >= MAX_SEEDS:  # before the range is built: 0-10^18 is not a list to make
                    raise ShredError(f"give between 1 and {MAX_SEEDS} seeds, got {hi - lo + 1} in {part!r}")
                out.extend(range(lo, hi + 1))
            else:
                out.append(decimal_int(part))
    except ValueError:
        raise ShredError(f"seeds look like 0, 0-7 or 0,3,5; got {text!r}") from None
    if not 1 <= len(out) <= MAX_SEEDS:
        raise ShredError(f"give between 1 and {MAX_SEEDS} seeds, got {len(out)}")
    for s in out:
        check_seed(s)
    return out
