"""SHRED+'s seed-mean image against DDNM (issue #13: "the seed-mean image at least DDNM's PSNR").

    python bench/seed_mean.py --data cifar10-test --n 10 --seeds 4 --tasks sr4,inpaint \
        --out bench/results/seed-mean-cifar10-test.json

On the first N images of the data set's seeded permutation (``--seed``, the comparison's choice),
each task's measurement (the comparison's operators, :func:`shred.benchmark.tasks.bench_tasks`) is
restored by DDNM (one seed per image, as in the comparison) and by SHRED+ (``shred@plus``) from K
seeds in one batch. Reported per task: DDNM's mean PSNR, the mean PSNR of SHRED+'s single samples,
and the mean PSNR of SHRED+'s seed-mean images (Result.spread), with network calls and seconds per
image. PSNR is the mean over images of the per-image PSNR (images in [0, 1]). Nothing is selected
by its distance to the ground truth: every seed and every image counts.

Also per task: the input A^+ y (``input``: its PSNR, images it restores exactly counted apart, and
its mean MSE), and SHRED+'s error split into the distance of the sampler's own mean to the image
and the spread of its samples (``mean_mse``, ``psnr_of_mean_mse``, ``dispersion``: see
:func:`_spread_row`), which says how far the samples are from the posterior's spread and what a
sample of the exact posterior would score (3.01 dB below the best PSNR).

``--set shred@plus.NAME=VALUE`` (or ``ddnm.NAME=VALUE``, repeatable) changes one setting of that
method, as ``shred-ir bench --set`` does; the JSON records them under ``settings``:

    python bench/seed_mean.py --data cifar10-test --n 8 --seeds 4 --tasks sr8 \
        --set shred@plus.init=noise --set shred@plus.finish=consistency \
        --set shred@plus.iterations=25 --set shred@plus.coarse_iterations=22 \
        --out bench/results/seed-mean-sr8-noise-start-test.json
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.api import unused_settings  # noqa: E402
from shred.benchmark.tasks import bench_tasks  # noqa: E402
from shred.cli.bench import setting  # noqa: E402
from shred.cli.options import int_at_least  # noqa: E402
from shred.data import load_images  # noqa: E402
from shred.errors import ShredError  # noqa: E402
from shred.io import check_writable, write_json  # noqa: E402
from shred.metrics import psnr  # noqa: E402
from shred.models import load_model  # noqa: E402
from shred.models.counting import CountingDenoiser  # noqa: E402
from shred.operators import build_task  # noqa: E402
from shred.solvers import build_solver  # noqa: E402


def _db(mse: float) -> float | None:
    """PSNR (dB, images in [0, 1]) of a mean squared error; None when it is not positive."""
    return -10 * math.log10(mse) if mse > 0 else None


def _input_row(shown: torch.Tensor, x: torch.Tensor) -> dict:
    """A^+ y against the clean images: the mean per-image PSNR over the images it does not restore
    exactly (``exact`` counts those: a grey image under colorization), and the PSNR of the mean MSE."""
    mse = ((shown.double() - x.double()) ** 2).flatten(1).mean(1)
    finite = [float(psnr(shown[i:i + 1], x[i:i + 1])) for i in range(x.shape[0]) if mse[i] > 0]
    return {"psnr": sum(finite) / len(finite) if finite else None, "exact": int((mse == 0).sum()),
            "mean_mse": float(mse.mean()), "psnr_of_mean_mse": _db(float(mse.mean()))}


def _spread_row(mse_sample: list[float], mse_mean: list[float], spread: list[float], k: int) -> dict:
    """The sampler's error split into bias and spread, averaged over images (MSE per pixel).

    For K samples s_k of one image x with mean s (exact algebra): mean_k ||s_k - x||^2 =
    ||s - x||^2 + (K - 1) / K v, v the unbiased per-pixel variance over the seeds. So the squared
    distance of the sampler's own mean (K -> infinity) to x is estimated without bias by
    ``bias2 = ||s - x||^2 - v / K``, and a single sample's MSE is ``bias2 + v``. For samples of
    the exact posterior p(x | y), averaged over images, bias2 = v = the MMSE (``dispersion`` v /
    bias2 = 1) and a sample's MSE is twice the MMSE: 3.01 dB below the best PSNR (Blau and
    Michaeli, "The perception-distortion tradeoff", CVPR 2018). ``dispersion`` < 1: samples closer
    together than the posterior's."""
    n = len(mse_sample)
    sample, mean_k, v = sum(mse_sample) / n, sum(mse_mean) / n, sum(spread) / n
    bias2 = mean_k - v / k
    return {"mean_mse": {"sample": sample, "seed_mean": mean_k, "sampler_mean": bias2, "spread": v},
            "psnr_of_mean_mse": {"sample": _db(sample), "seed_mean": _db(mean_k), "sampler_mean": _db(bias2)},
            "dispersion": v / bias2 if bias2 > 0 else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="cifar10-test")
    p.add_argument("--model", default="cifar10-32")
    p.add_argument("--n", type=int_at_least(1, "a number of images >= 1"), default=10)
    p.add_argument("--seeds", type=int_at_least(2, "a number of seeds >= 2 (a mean needs two)"), default=4,
                   help="SHRED+ samples per image (K >= 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image choice and the operators")
    p.add_argument("--tasks", default="sr4,inpaint")
    p.add_argument("--set", type=setting, action="append", metavar="METHOD.NAME=VALUE",
                   help="a setting of shred@plus or ddnm (repeatable)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    settings: dict[str, dict] = {"shred@plus": {}, "ddnm": {}}
    for method, name, value in args.set or []:
        if method not in settings:
            p.error(f"--set takes shred@plus.NAME=VALUE or ddnm.NAME=VALUE, got {method}.{name}")
        if name in ("task", "preset"):
            p.error(f"--set {method}.{name}: this script sets the {name} itself")
        settings[method][name] = value

    names = args.tasks.split(",")
    try:  # every input checked before any work
        check_writable(args.out, (".json",))
        den = CountingDenoiser(load_model(args.model))
        tasks = bench_tasks(den.image_size[0])
        unknown = [name for name in names if name not in tasks]
        if unknown:
            raise ShredError(f"unknown task {', '.join(unknown)}; choose from {', '.join(tasks)}")
        blind = [name for name in names if tasks[name].blind]
        if blind:
            raise ShredError(f"{', '.join(blind)}: a blind task, where DDNM (the reference) would need the blur")
        build_solver("ddnm", den, **settings["ddnm"])
        for name in names:
            for note in unused_settings(build_solver("shred@plus", den, task=tasks[name].task,
                                                     **settings["shred@plus"]), settings["shred@plus"]):
                print(f"seed_mean.py: warning: {name}: {note}", file=sys.stderr)
        images = load_images(args.data)
        if args.n > len(images):
            raise ShredError(f"{args.data} has {len(images)} images, fewer than --n {args.n}")
    except ShredError as exc:
        p.error(str(exc))
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    x = images.float01(idx)
    out = {"data": args.data, "model": args.model, "n": args.n, "seeds": args.seeds, "seed": args.seed,
           "device": f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "torch": torch.__version__, "settings": settings, "tasks": {}}
    for name in names:
        t = tasks[name]
        op = build_task(t.task, tuple(x.shape[1:]), t.options, torch.Generator().manual_seed(args.seed))
        y = op.A(x.double()).float()
        row = {"label": t.label}
        den.reset()
        t0 = time.perf_counter()
        r = build_solver("ddnm", den, **settings["ddnm"])(y, op, seeds=list(range(args.n)))
        row["ddnm"] = {"psnr": float(psnr(r.x0.float(), x).mean()), "calls_per_image": den.image_calls / args.n,
                       "seconds_per_image": (time.perf_counter() - t0) / args.n}
        # The input as a method would start from it (A^+ y), per image: PSNR and MSE.
        shown = op.pinv(y.double()).float().clamp(0, 1)
        row["input"] = _input_row(shown, x)
        plus = build_solver("shred@plus", den, task=t.task, **settings["shred@plus"])
        single, mean_img, secs, calls = [], [], 0.0, 0.0
        mse_sample, mse_mean, spread = [], [], []
        for i in range(args.n):
            seeds = [i * 1000 + k for k in range(args.seeds)]
            den.reset()
            t0 = time.perf_counter()
            res = plus(y[i:i + 1].expand(args.seeds, *y.shape[1:]), op, seeds=seeds)
            secs += time.perf_counter() - t0
            calls += den.image_calls / args.seeds
            single += psnr(res.x0.float(), x[i:i + 1].expand_as(res.x0)).tolist()
            mean_img.append(float(psnr(res.spread()[0].float(), x[i:i + 1])))
            s_k = res.x0.double().clamp(0, 1)
            xi = x[i:i + 1].double()
            mse_sample.append(float(((s_k - xi) ** 2).mean()))
            mse_mean.append(float(((s_k.mean(0, keepdim=True) - xi) ** 2).mean()))
            spread.append(float(s_k.var(0, correction=1).mean()))  # unbiased, per pixel
        row["plus"] = {"sample_psnr": sum(single) / len(single), "seed_mean_psnr": sum(mean_img) / len(mean_img),
                       "calls_per_sample": calls / args.n, "seconds_per_sample": secs / (args.n * args.seeds),
                       "config": plus.config.to_dict(), **_spread_row(mse_sample, mse_mean, spread, args.seeds)}
        row["seed_mean_at_least_ddnm"] = row["plus"]["seed_mean_psnr"] >= row["ddnm"]["psnr"]
        out["tasks"][name] = row
        q = row["plus"]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, out)  # before the line: nothing measured is lost to a formatting slip

        def f2(v):
            return "n/a" if v is None else f"{v:.2f}"
        print(f"{name:9s} DDNM {row['ddnm']['psnr']:.2f} dB | SHRED+ samples {q['sample_psnr']:.2f} dB, "
              f"mean of {args.seeds} {q['seed_mean_psnr']:.2f} dB "
              f"({q['calls_per_sample']:.0f} calls, {q['seconds_per_sample']:.1f} s per sample) | "
              f"PSNR of the mean MSE: input {f2(row['input']['psnr_of_mean_mse'])}, samples "
              f"{f2(q['psnr_of_mean_mse']['sample'])}, sampler mean {f2(q['psnr_of_mean_mse']['sampler_mean'])}; "
              f"dispersion {f2(q['dispersion'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
