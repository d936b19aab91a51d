"""How fast can the bundled CIFAR-10 model run on this CPU? The arithmetic floor, measured.

    python bench/cpu_floor.py --out bench/results/cpu-floor.json

Three measurements, each a table row and a JSON entry:

1. **matrix product**: GFLOP/s of a large float32 matrix product (MKL), the most this CPU's
   cores deliver to dense arithmetic in PyTorch;
2. **convolution floor**: every convolution of one ``cifar10-32`` forward pass timed alone
   (channels-last, best of several rounds, caches warm), summed: the time one forward pass would
   take if everything else (group norms, SiLU, attention, concatenations, Python) were free;
3. **forward pass**: one whole forward pass, float32 NCHW eager (the reference), channels-last eager
   (shred's CPU default) and channels-last compiled, timed in interleaved rounds so that a machine
   whose speed drifts affects all three alike (median and minimum of the rounds).

A SHRED restoration with the surrogate gradient is 100 iterations x 10 forward passes plus a small
amount of other work, so seconds per image ~= milliseconds per forward pass.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.io import strict_json  # noqa: E402
from shred.models import load_model  # noqa: E402


def best_time(fn, rounds: int = 5, per_round: int = 20) -> float:
    """Seconds per call: the best round's mean."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = min(best, (time.perf_counter() - t0) / per_round)
    return best


def matmul_rate(n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / best_time(lambda: a @ b, rounds=3, per_round=10) / 1e9


def conv_floor(model: str) -> dict:
    den = load_model(model)
    x = torch.randn(1, den.channels, *den.image_size)
    t = torch.full((1,), 500)
    seen: list[tuple[torch.nn.Conv2d, torch.Size, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape, o.shape)))
             for m in den.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        den(x, t)
    for h in hooks:
        h.remove()
    layers, total_s, total_flop = [], 0.0, 0
    with torch.no_grad():
        for conv, shape_in, shape_out in seen:
            k = conv.kernel_size[0]
            flop = 2 * conv.in_channels * conv.out_channels * k * k * shape_out[2] * shape_out[3]
            xi = torch.randn(shape_in).contiguous(memory_format=torch.channels_last)
            w = conv.weight.detach().contiguous(memory_format=torch.channels_last)
            b = conv.bias.detach()
            s = best_time(lambda: F.conv2d(xi, w, b, conv.stride, conv.padding))
            layers.append({"cin": conv.in_channels, "cout": conv.out_channels, "kernel": k, "stride": conv.stride[0],
                           "size_in": shape_in[-1], "mflop": flop / 1e6, "us": s * 1e6, "gflops": flop / s / 1e9})
            total_s += s
            total_flop += flop
    return {"convolutions": len(layers), "gflop": total_flop / 1e9, "ms": total_s * 1e3,
            "gflops": total_flop / total_s / 1e9, "layers": layers}


def forward_passes(model: str, rounds: int, compile_: bool) -> dict:
    cl = lambda z: z.contiguous(memory_format=torch.channels_last)  # noqa: E731
    ref = load_model(model)
    x = torch.randn(1, ref.channels, *ref.image_size)
    t = torch.full((1,), 500)
    nhwc = load_model(model).to(memory_format=torch.channels_last)
    variants = {"fp32 NCHW eager (reference)": lambda: ref(x, t), "fp32 channels-last eager (default)": lambda: nhwc(cl(x), t)}
    if compile_:
        comp = torch.compile(load_model(model).to(memory_format=torch.channels_last))
        t0 = time.perf_counter()
        with torch.no_grad():
            comp(cl(x), t)
        compile_s = time.perf_counter() - t0
        variants["fp32 channels-last compiled"] = lambda: comp(cl(x), t)
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.no_grad():
        for fn in variants.values():
            for _ in range(3):
                fn()
        for _ in range(rounds):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                for _ in range(10):
                    fn()
                times[k].append((time.perf_counter() - t0) / 10 * 1e3)
    out = {k: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v)} for k, v in times.items()}
    if compile_:
        out["fp32 channels-last compiled"]["compile_s"] = compile_s
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cifar10-32")
    p.add_argument("--rounds", type=int, default=12, help="interleaved rounds of 10 forward passes")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled forward pass")
    p.add_argument("--out", help="JSON results file")
    args = p.parse_args(argv)
    res = {"model": args.model, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": os.uname().machine}
    res["matmul_gflops"] = matmul_rate()
    print(f"matrix product 1024^3, float32: {res['matmul_gflops']:.0f} GFLOP/s on {res['threads']} threads")
    res["conv_floor"] = floor = conv_floor(args.model)
    print(f"convolution floor: {floor['convolutions']} convolutions, {floor['gflop']:.3f} GFLOP, "
          f"{floor['ms']:.2f} ms per forward pass when timed alone ({floor['gflops']:.0f} GFLOP/s)")
    res["forward"] = fw = forward_passes(args.model, args.rounds, not args.no_compile)
    print(f"{'forward pass (batch 1)':38s} {'median ms':>10s} {'min ms':>8s} {'~s / image':>11s}")
    for k, v in fw.items():
        extra = f"  (compile {v['compile_s']:.0f} s)" if "compile_s" in v else ""
        print(f"{k:38s} {v['median_ms']:10.2f} {v['min_ms']:8.2f} {v['median_ms']:11.1f}{extra}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(strict_json(res, indent=2) + "\n")
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
