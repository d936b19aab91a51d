"""What a blur without an SVD costs SHRED+ under noise (docs/PERFORMANCE.md): the 'same'
convolution of a 3 x S x S image by a K x K kernel, direct (``F.conv2d``) against the FFT
(:func:`shred.operators.linear.convolve_same`, what :class:`shred.operators.Blur` uses above
:data:`shred.operators.linear.FFT_TAPS` taps), and one 40-step Golub-Kahan subspace with its
Tikhonov solve (:class:`shred.operators.krylov.KrylovTikhonov`, float64, as the finish builds it),
of which a SHRED+ restoration builds 16. Medians of ``--repeat`` runs, milliseconds / seconds.

    python bench/krylov_cost.py --out bench/results/krylov-cost-cpu.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from shred.cli.options import int_at_least  # noqa: E402
from shred.io import strict_json  # noqa: E402
from shred.operators.kernels import random_anisotropic_gaussian_kernel  # noqa: E402
from shred.operators.krylov import KrylovTikhonov  # noqa: E402
from shred.operators.linear import Blur, convolve_same  # noqa: E402


def median_seconds(fn, repeat: int) -> float:
    fn()                                                     # warm up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int_at_least(8, "an image side >= 8"), default=256)
    p.add_argument("--kernels", default="13,21,41", help="comma-separated odd kernel sides")
    p.add_argument("--repeat", type=int_at_least(1, "a count >= 1"), default=5)
    p.add_argument("--out", required=True, help="a .json file")
    args = p.parse_args(argv)
    sides = [int(k) for k in args.kernels.split(",") if k]
    if any(k % 2 == 0 or k < 1 or k > args.size for k in sides):
        p.error(f"--kernels: odd sides up to --size, got {args.kernels}")
    if not args.out.endswith(".json"):
        p.error(f"--out: a .json file, got {args.out}")
    shape = (3, args.size, args.size)
    rows = []
    for side in sides:
        k = random_anisotropic_gaussian_kernel(side, generator=torch.Generator().manual_seed(0))
        for dtype in (torch.float32, torch.float64):
            x = torch.rand(1, *shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
            w = k.flip(0, 1).to(dtype).expand(3, 1, side, side)
            kk = k.to(dtype)
            rows.append({"kernel": side, "dtype": str(dtype).removeprefix("torch."),
                         "direct_ms": 1e3 * median_seconds(lambda: F.conv2d(x, w, padding=side // 2, groups=3), args.repeat),
                         "fft_ms": 1e3 * median_seconds(lambda: convolve_same(x, kk), args.repeat)})
            print(rows[-1], flush=True)
    side = max(sides)
    op = Blur(shape, random_anisotropic_gaussian_kernel(side, generator=torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, *shape, dtype=torch.float64, generator=g)
    r = op.A(x) + 0.05 * torch.randn(1, *shape, dtype=torch.float64, generator=g) - op.A(torch.full_like(x, 0.5))
    mu = torch.tensor([1e-2], dtype=torch.float64)
    subspace = median_seconds(lambda: KrylovTikhonov(op.A, op.AT, r, 40).solve(mu), max(1, args.repeat // 2))
    print({"subspace_s": subspace}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(strict_json({"size": args.size, "threads": torch.get_num_threads(), "repeat": args.repeat,
                                "convolutions": rows, "subspace_kernel": side, "subspace_steps": 40,
                                "subspace_s": subspace, "subspaces_per_restoration": 16,
                                "torch": torch.__version__}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
