"""Speed of SHRED: time per image, peak memory and achieved TFLOP/s, fast path against reference.

    python bench/speed.py --device cuda --out bench/results/speed-gpu.json     # the GPU table
    python bench/speed.py --device cpu --out bench/results/speed-cpu.json      # bundled models
    python bench/speed.py --device cpu --quick                                  # a smoke test
    python bench/speed.py --plan presets --repeat 3 --out bench/results/speed-presets-cpu.json

``--plan presets`` times whole restorations instead: each named preset (``shred@plus`` by default,
``--presets``) restoring the shipped sample image with the bundled cifar10-32 model, end to end
(warm start, iterations, finish), at batch 1 and 8, with the network calls counted at the network;
the median of ``--repeat`` runs. The load average is recorded next to each row: on a shared machine
the times mean little without it.

Each configuration runs SHRED (x4 average-pooling super-resolution, delta_t = 100, i.e. 10 DDIM
steps per iteration) on random-weight networks of the paper's architectures, built from the
configurations shred's own checkpoint loader produces for the released layouts (the reference
files in ../shared/data/reference-checkpoints, widths as released: 113.7M and 552.8M parameters).
It times ``--iterations`` iterations after a warm-up (which absorbs compilation) and reports
per-image time extrapolated to 100 iterations. The reference-style configuration (fp32, eager,
batch 1) runs in the same process, so speed-ups are ratios measured side by side. Floating-point
operations come from ``torch.utils.flop_counter`` on one eager iteration.

Results go to JSON after every configuration, so a run stopped by ``--deadline`` keeps what it
measured.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.io import strict_json  # noqa: E402
from shred.diffusion import NoiseSchedule  # noqa: E402
from shred.metrics import psnr  # noqa: E402
from shred.models import UNetDenoiser, build_unet  # noqa: E402
from shred.models.fast import RunOptions, accelerate  # noqa: E402
from shred.operators import TaskOptions, build_task  # noqa: E402
from shred.solvers import Shred, ShredConfig  # noqa: E402
from shred.cli.bench import setting  # noqa: E402

_DDPM_LEVELS = dict(down_block_types=["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
                    up_block_types=["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4)
_ADM_LEVELS = dict(down_block_types=["ResnetDownsampleBlock2D"] * 3 + ["AttnDownBlock2D"] * 3,
                   up_block_types=["AttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"] * 3)

# What shred's loader (models/convert.py) builds for celeba_hq.ckpt and 256x256_diffusion_uncond.pt
# (checked against the reference files by tests/test_speed_bench.py).
ARCHS = {
    "celeba-ddpm": dict(sample_size=256, in_channels=3, out_channels=3, block_out_channels=[128, 128, 256, 256, 512, 512],
                        layers_per_block=2, **_DDPM_LEVELS, freq_shift=1, flip_sin_to_cos=False, downsample_padding=0,
                        attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6),
    "adm-imagenet": dict(sample_size=256, in_channels=3, out_channels=6, block_out_channels=[256, 256, 512, 512, 1024, 1024],
                         layers_per_block=2, **_ADM_LEVELS, freq_shift=0, flip_sin_to_cos=True,
                         resnet_time_scale_shift="scale_shift", downsample_type="resnet", upsample_type="resnet",
                         attention_head_dim=64, norm_num_groups=32, attn_norm_num_groups=32, norm_eps=1e-5),
}


def scaled(cfg: dict, width_divisor: int, size: int) -> dict:
    """A narrower, smaller copy of an architecture for smoke tests on a CPU."""
    out = dict(cfg, sample_size=size, block_out_channels=[max(32, c // width_divisor) for c in cfg["block_out_channels"]])
    if out.get("attention_head_dim"):
        out["attention_head_dim"] = 16
    return out


def make_denoiser(cfg: dict, device) -> UNetDenoiser:
    torch.manual_seed(0)
    with torch.device(device):
        unet = build_unet(cfg)
    return UNetDenoiser(unet, NoiseSchedule.linear(), name="random")


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def problem(size: int, batch: int, device, channels: int = 3):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, size, size, generator=g)
    op = build_task("sr", (channels, size, size), TaskOptions(scale=4))
    return op.A(x).expand(batch, -1, -1, -1).contiguous(), op


def flops_per_iteration(den, y, op, grad: str, delta_t: int = 100) -> float:
    """Floating-point operations of one SHRED iteration for the batch in y (eager)."""
    from torch.utils.flop_counter import FlopCounterMode

    solver = Shred(den, ShredConfig(iterations=1, grad=grad, delta_t=delta_t))
    with FlopCounterMode(display=False) as counter:
        solver(y, op, seeds=list(range(y.shape[0])))
    return float(counter.get_total_flops())


def prepare(plan: dict, args, device, quick: dict, gflops: dict) -> dict:
    """Build one configuration, count its operations (reference rows) and warm it up (compilation
    happens here). Returns its state for :func:`time_once` and :func:`finish`."""
    row = dict(plan["row"])
    den = plan["denoiser"]()
    y, op = problem(den.image_size[0], row["batch"], device, den.channels)
    if args.no_compile:
        row["compile"] = None
    fast = accelerate(den, RunOptions(row["precision"], row["channels_last"], row["compile"]))
    key = f"{row['model']}/{row['grad']}"
    delta_t = quick.get("delta_t", 100)
    if row.pop("count_flops", False):
        gflops[key] = flops_per_iteration(den, y[:1], op, row["grad"], delta_t) / 1e9
    seeds = list(range(y.shape[0]))
    warmup = quick.get("warmup", 2)
    t0 = time.perf_counter()
    Shred(fast, ShredConfig(iterations=warmup, grad=row["grad"], check_every=warmup, delta_t=delta_t))(y, op, seeds=seeds)
    sync(device)
    row["warmup_s"] = time.perf_counter() - t0
    solver = Shred(fast, ShredConfig(iterations=row["iterations"], grad=row["grad"], check_every=row["iterations"],
                                     delta_t=delta_t))
    return {"row": row, "key": key, "fast": fast, "y": y, "op": op, "seeds": seeds, "solver": solver,
            "delta_t": delta_t, "walls": []}


def time_once(state: dict, device) -> None:
    """One timed run of the configuration's iterations."""
    t0 = time.perf_counter()
    state["solver"](state["y"], state["op"], seeds=state["seeds"])
    sync(device)
    state["walls"].append(time.perf_counter() - t0)


def finish(state: dict, refs: dict, gflops: dict, quick: bool) -> dict:
    """The row: median (and minimum) time per iteration, throughput, fidelity against float32."""
    row, walls, y = state["row"], state["walls"], state["y"]
    per_iter = statistics.median(walls) / row["iterations"]
    row.update({"iteration_s": per_iter, "per_image_100it_s": per_iter * 100 / y.shape[0],
                "timed_iterations": row["iterations"], "repeats": len(walls),
                "iteration_s_min": min(walls) / row["iterations"]})
    # Fidelity: the same 3 iterations from seed 0 in this configuration and in fp32 eager;
    # rounding is the only difference.
    n_check = 1 if quick else 3
    check = Shred(state["fast"], ShredConfig(iterations=n_check, grad=row["grad"], check_every=n_check,
                                             delta_t=state["delta_t"]))(
        y, state["op"], seeds=state["seeds"]).x0[:1].float().cpu().clamp(0, 1)
    key = state["key"]
    if row.get("reference"):
        refs[key] = check
    elif key in refs:
        row["psnr_vs_fp32_db"] = float(psnr(check, refs[key]))
    if key in gflops:
        row["gflop_per_image_iteration"] = gflops[key]
        row["tflops"] = gflops[key] * row["batch"] / row["iteration_s"] / 1e3
    return row


def run(args) -> dict:
    device = torch.device(args.device)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
               f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "iterations_timed": args.iterations, "repeats": args.repeat,
               "interleaved": bool(args.interleave), "rows": []}
    start = time.perf_counter()
    out_path = Path(args.out) if args.out else None
    # --quick is a smoke test of the code paths, not a measurement: 2 DDIM steps per iteration
    # (delta_t = 500) and a 1-iteration warm-up keep the whole GPU plan within minutes on a CPU.
    quick = {"delta_t": 500, "warmup": 1} if args.quick else {}
    if args.quick:
        results["quick"] = "smoke test: delta_t = 500 (2 steps), reduced networks; times are not comparable"

    def save():
        if out_path:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = out_path.with_suffix(".tmp")
            tmp.write_text(strict_json(results, indent=2) + "\n")
            os.replace(tmp, out_path)

    def emit(row):
        row["elapsed_s"] = round(time.perf_counter() - start, 1)
        results["rows"].append(row)
        print(format_row(row), flush=True)
        save()

    def failed(plan, exc):
        return {**{k: v for k, v in plan["row"].items() if k != "count_flops"},
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}

    which = args.plan if args.plan != "auto" else ("gpu" if device.type == "cuda" else "cpu")
    plans = gpu_plan(args) if which == "gpu" else cpu_plan(args)
    refs: dict[str, torch.Tensor] = {}
    gflops: dict[str, float] = {}
    if args.interleave:
        # Prepare everything, then time the configurations in turn, round after round, so that a
        # machine whose speed drifts (a shared CPU) slows all of them alike.
        states = []
        for plan in plans:
            try:
                states.append(prepare(plan, args, device, quick, gflops))
            except Exception as exc:  # keep measuring the other configurations
                emit(failed(plan, exc))
        for _ in range(args.repeat):
            for state in states:
                time_once(state, device)
        for state in states:
            emit(finish(state, refs, gflops, args.quick))
        save()
        return results
    for plan in plans:
        if args.deadline and time.perf_counter() - start > args.deadline:
            emit({**plan["row"], "skipped": "deadline"})
            continue
        try:
            state = prepare(plan, args, device, quick, gflops)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for _ in range(args.repeat):
                time_once(state, device)
            row = finish(state, refs, gflops, args.quick)
            if device.type == "cuda":
                row["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
            del state
        except Exception as exc:  # keep measuring the other configurations
            row = failed(plan, exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        emit(row)
    save()
    return results


QUICK_BATCH = 2  # --quick caps batches so that the GPU plan can be smoke-tested on a CPU


def _row(model, grad, precision, channels_last, compile_mode, batch, iterations, **extra):
    return {"model": model, "grad": grad, "precision": precision, "channels_last": channels_last,
            "compile": compile_mode, "batch": batch, "iterations": iterations, **extra}


def gpu_plan(args) -> list[dict]:
    archs = {k: (lambda k=k: make_denoiser(ARCHS[k] if not args.quick else scaled(ARCHS[k], 16, 64), args.device))
             for k in ARCHS}
    it = args.iterations
    plans = []
    cap = (lambda b: min(b, QUICK_BATCH)) if args.quick else (lambda b: b)
    for model in ("celeba-ddpm", "adm-imagenet"):
        mk = archs[model]
        plans.append({"denoiser": mk, "row": _row(model, "surrogate", "fp32", False, None, 1, max(2, it // 2),
                                                  reference=True, count_flops=True)})
        plans.append({"denoiser": mk, "row": _row(model, "exact", "fp32", False, None, 1, max(2, it // 4),
                                                  reference=True, count_flops=True)})
    ddpm, adm = archs["celeba-ddpm"], archs["adm-imagenet"]
    # DDPM first (it compiled in about 39 s on an H200), the ADM after it, its compiled row last
    # (compiling the 552.8M-parameter network took longer than the time left in the first GPU run),
    # so that a deadline cuts the rows that cost the most to reach.
    plans += [
        {"denoiser": ddpm, "row": _row("celeba-ddpm", "surrogate", "bf16", True, None, cap(8), it)},
        {"denoiser": ddpm, "row": _row("celeba-ddpm", "exact", "bf16", True, None, cap(8), max(2, it // 2))},
        {"denoiser": ddpm, "row": _row("celeba-ddpm", "surrogate", "bf16", True, "default", cap(16), it)},
        {"denoiser": ddpm, "row": _row("celeba-ddpm", "surrogate", "bf16", True, "default", cap(32), it)},
        {"denoiser": ddpm, "row": _row("celeba-ddpm", "surrogate", "bf16", True, "reduce-overhead", cap(16), it)},
        {"denoiser": adm, "row": _row("adm-imagenet", "surrogate", "bf16", True, None, cap(8), it)},
        {"denoiser": adm, "row": _row("adm-imagenet", "exact", "bf16", True, None, cap(8), max(2, it // 2))},
        {"denoiser": adm, "row": _row("adm-imagenet", "surrogate", "bf16", True, "default", cap(8), it)},
    ]
    return plans


def cpu_plan(args) -> list[dict]:
    from shred.models import load_model
    from shred.models.registry import bundled_models

    plans = []
    names = [e.name for e in bundled_models()]
    if args.quick or not names:
        tiny = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=[32, 64],
                    down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"],
                    layers_per_block=1, norm_num_groups=32, attention_head_dim=None)
        plans.append({"denoiser": lambda: make_denoiser(tiny, "cpu"),
                      "row": _row("tiny-32", "surrogate", "fp32", False, None, 1, args.iterations, reference=True,
                                  count_flops=True)})
        return plans
    for name in names:
        mk = lambda name=name: load_model(name)  # noqa: E731
        it = args.iterations
        plans += [
            # reference, and shred's CPU default (RunOptions.for_device("cpu")): float32, NCHW, eager
            {"denoiser": mk, "row": _row(name, "surrogate", "fp32", False, None, 1, it, reference=True, count_flops=True)},
            {"denoiser": mk, "row": _row(name, "surrogate", "fp32", True, None, 1, it)},
            {"denoiser": mk, "row": _row(name, "surrogate", "fp32", True, "default", 1, it)},
            {"denoiser": mk, "row": _row(name, "exact", "fp32", True, None, 1, max(2, it // 2))},
            {"denoiser": mk, "row": _row(name, "surrogate", "fp32", True, None, 8, it)},
            {"denoiser": mk, "row": _row(name, "surrogate", "fp32", True, "default", 8, it)},
        ]
    return plans


def format_row(r: dict) -> str:
    if "error" in r or "skipped" in r:
        return f"{r['model']:14s} {r['grad']:9s} {r['precision']} bs{r['batch']:<3d} compile={r['compile']}: {r.get('error') or r.get('skipped')}"
    rate = ("" if "tflops" not in r else f"  {r['tflops']:6.1f} TFLOP/s" if r["tflops"] >= 1
            else f"  {1e3 * r['tflops']:6.1f} GFLOP/s")
    extra = "".join([rate,
                     f"  {r['peak_memory_gb']:5.1f} GB" if "peak_memory_gb" in r else "",
                     f"  PSNR vs fp32 {r['psnr_vs_fp32_db']:.1f} dB" if "psnr_vs_fp32_db" in r else "",
                     f"  (warm-up incl. compile {r['warmup_s']:.0f} s)" if r.get("compile") and "warmup_s" in r else ""])
    return (f"{r['model']:14s} {r['grad']:9s} {r['precision']} cl={int(r['channels_last'])} compile={str(r['compile']):15s} "
            f"bs{r['batch']:<3d} {1e3 * r['iteration_s']:8.1f} ms/it  {r['per_image_100it_s']:7.2f} s/img(100 it){extra}")


PRESET_TASKS = {"sr": dict(scale=4), "inpaint": dict(box_size=16), "cs": dict(fraction=0.05)}


def preset_plan(args) -> dict:
    """End-to-end seconds per image of named presets (module docstring, ``--plan presets``)."""
    from shred.io import read_image
    from shred.models import load_model
    from shred.models.counting import CountingDenoiser
    from shred.solvers import build_solver

    sample = Path(__file__).resolve().parents[1] / "src" / "shred" / "samples" / "chelsea-32.png"
    x = read_image(sample)
    den = CountingDenoiser(load_model("cifar10-32"))
    settings: dict = {}
    for method, name, value in args.set or []:
        settings.setdefault(method, {})[name] = value
    results = {"device": f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "repeats": args.repeat, "image": sample.name, "settings": settings,
               "rows": []}
    for method in args.presets.split(","):
        for task, opts in PRESET_TASKS.items():
            for batch in (1, 8):
                op = build_task(task, tuple(x.shape[1:]), TaskOptions(**opts), torch.Generator().manual_seed(0))
                y = op.A(x).expand(batch, -1, -1, -1)
                solver = build_solver(method, den, task=task, **settings.get(method, {}))
                times, load = [], os.getloadavg()[0]
                for _ in range(args.repeat):
                    den.reset()
                    t0 = time.perf_counter()
                    solver(y, op, seeds=list(range(batch)))
                    times.append((time.perf_counter() - t0) / batch)
                row = {"method": method, "task": task, "batch": batch, "seconds_per_image": statistics.median(times),
                       "fastest_s": min(times), "calls_per_image": den.image_calls / batch,
                       "load_average_1min": round(load, 2)}
                results["rows"].append(row)
                print(f"{method:14s} {task:8s} bs{batch:<2d} {row['seconds_per_image']:7.2f} s/img (fastest "
                      f"{row['fastest_s']:.2f})  {row['calls_per_image']:.0f} calls/img  load {load:.1f}", flush=True)
                if args.out:
                    out = Path(args.out)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.with_suffix(".tmp").write_text(strict_json(results, indent=2) + "\n")
                    os.replace(out.with_suffix(".tmp"), out)
    return results


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iterations", type=int, default=10, help="timed iterations per configuration")
    p.add_argument("--out", help="JSON results file")
    p.add_argument("--deadline", type=float, help="skip configurations once this many seconds have passed")
    p.add_argument("--quick", action="store_true", help="small networks at 64x64, 2 DDIM steps (a smoke test, not a measurement)")
    p.add_argument("--plan", choices=["auto", "gpu", "cpu", "presets"], default="auto",
                   help="which table: the GPU architectures or the bundled models (default: by device), or whole "
                   "restorations of named presets")
    p.add_argument("--presets", default="shred@plus", help="--plan presets: comma-separated methods")
    p.add_argument("--set", type=setting, action="append", metavar="METHOD.NAME=VALUE",
                   help="--plan presets: a setting of one method, e.g. shred@plus#c2f.coarse_iterations=8 "
                   "(a label after # names a variant)")
    p.add_argument("--no-compile", action="store_true", help="run every configuration eagerly")
    p.add_argument("--repeat", type=int, default=1,
                   help="time each configuration this many times and report the median (default 1)")
    p.add_argument("--interleave", action="store_true",
                   help="prepare every configuration first, then time them in turn, --repeat rounds (for a "
                   "machine whose speed drifts; all configurations stay in memory, so meant for the CPU plan)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plan == "presets":
        return 0 if preset_plan(args)["rows"] else 1
    res = run(args)
    return 0 if any("iteration_s" in r for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
