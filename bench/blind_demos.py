"""The figures and numbers of docs/BLIND.md. Every run is seeded; CPU is enough.

    python bench/blind_demos.py kernels            # blind SHRED on the analytic prior (seconds)
    python bench/blind_demos.py stopping           # noise-aware stopping on the analytic prior (seconds)
    python bench/blind_demos.py selfdeblur         # SelfDeblur on a synthetic blur, both boundaries (~8 min)
    python bench/blind_demos.py motion --size 64   # the Fig. 8 pair with DIP's untrained prior (~30 min)
    python bench/blind_demos.py old-photo --model NAME   # Fig. 7 with a diffusion model of your choice
    python bench/blind_demos.py seeds --model NAME       # Fig. 6: several solutions of one measurement

Images go to docs/img/ (``--out`` to change); numbers are printed as Markdown table rows. Which
prior each figure uses is printed in its labels and the table: no result here uses a 256 x 256
diffusion model, because none is available offline.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def analytic_prior(size: int = 16, seed: int = 0):
    """The test suite's analytic prior: pixel means in [-0.5, 0.5], stds in [0.1, 0.3] (model space)."""
    from shred.models import GaussianPrior
    g = torch.Generator().manual_seed(seed)
    mu = torch.rand(3, size, size, generator=g, dtype=torch.float64) - 0.5
    sigma = 0.1 + 0.2 * torch.rand(3, size, size, generator=g, dtype=torch.float64)
    return GaussianPrior(mu, sigma)


def kernels(args) -> None:
    """Blind SHRED recovers a uniform kernel and a 2 x 2 grid of kernels (analytic prior, 32 x 32)."""
    from shred.io import write_grid
    from shred.metrics import kernel_ncc, psnr
    from shred.operators import Blur, SpatiallyVaryingBlur, anisotropic_gaussian_kernel as ag
    from shred.operators.blind import KernelNet, kernel_seed
    from shred.report import kernel_image
    from shred.solvers import BlindConfig, BlindShred, ShredConfig, to_image_space

    prior = analytic_prior(32)
    clean = to_image_space(prior.sample(1, torch.Generator().manual_seed(1))).float()
    cfg = ShredConfig(lr=0.05, iterations=args.iterations or 200, clip_x0=False, sphere=True)
    rows, cols = [], []
    cases = {"uniform": Blur((3, 32, 32), ag(9, 1.0, 2.5, 0.6)),
             "grid 2x2": SpatiallyVaryingBlur((3, 32, 32), torch.stack([
                 torch.stack([ag(9, 0.7, 2.0, 0.0), ag(9, 0.7, 2.0, 1.57)]),
                 torch.stack([ag(9, 2.0, 0.7, 0.8), ag(9, 0.9, 0.9, 0.0)])]))}
    for name, op in cases.items():
        y = op.A(clean)
        t = time.time()
        res = BlindShred(prior, cfg, BlindConfig(kernel_lr=3e-3))(y, op, seeds=[0])
        true = op.kernel if isinstance(op, Blur) else op.kernels
        est = res.extras["kernel"][0]
        flat = KernelNet((9, 9), [kernel_seed(0)])()[0].detach()
        ncc = kernel_ncc(est.reshape(-1, 9, 9), true.reshape(-1, 9, 9)).mean()
        ncc0 = kernel_ncc(flat.expand(true.reshape(-1, 9, 9).shape), true.reshape(-1, 9, 9)).mean()
        rows.append(f"| {name} | {float(ncc0):.3f} | {float(ncc):.4f} | {float(psnr(y, clean)):.2f} | "
                    f"{float(psnr(res.x0, clean)):.2f} | {float(res.loss_history[-1, 0]):.2e} | {time.time() - t:.1f} |")
        cols += [(f"{name}: y", y), (f"{name}: x0", res.x0), (f"{name}: true k", kernel_image(true)),
                 (f"{name}: est. k", kernel_image(est))]
    out = Path(args.out) / "blind_analytic.png"
    write_grid(out, [("clean", clean)] + cols, cell=96)
    print("| blur | kernel NCC at start (flat) | kernel NCC estimated | PSNR y | PSNR x0 | final MSE | s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"wrote {out}")


def stopping(args) -> None:
    """Discrepancy stopping vs running on, noisy Gaussian blur (sigma 1 px) on the analytic prior."""
    import math

    from shred.metrics import psnr
    from shred.operators import TaskOptions, build_task
    from shred.solvers import Shred, ShredConfig, to_image_space

    prior = analytic_prior(16)
    clean = to_image_space(prior.sample(2, torch.Generator().manual_seed(1))).float()
    its = args.iterations or 60
    print("| sigma_y | rule | sigma_y used | iterations | residual / (sigma_y sqrt m) | PSNR dB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for sy in (0.02, 0.05, 0.1):
        noisy = build_task("deblur", (3, 16, 16), TaskOptions(kernel_sigma=1.0, sigma_y=sy))
        y = noisy.degrade(clean.double(), torch.Generator().manual_seed(2)).float()
        # "auto" gets the blur without its noise model: the noise level is unknown to it.
        for rule, op in (("none", noisy), ("discrepancy", noisy), ("auto", noisy.op)):
            cfg = ShredConfig(lr=0.2, iterations=its, clip_x0=False, sphere=False, stop=rule)
            res = Shred(prior, cfg)(y, op, seeds=[0, 1])
            ratio = (y - noisy.A(res.x0)).flatten(1).norm(dim=1) / (sy * math.sqrt(noisy.num_measurements()))
            used = res.extras.get("stop", {}).get("sigma_y")
            fmt = lambda v: " / ".join(f"{x:.3f}" for x in v)  # noqa: E731
            print(f"| {sy} | {rule} | {fmt(used) if used else '-'} | {' / '.join(map(str, res.iterations.tolist()))} | "
                  f"{fmt(ratio.tolist())} | {' / '.join(f'{v:.2f}' for v in psnr(res.x0, clean).tolist())} |")


def selfdeblur(args) -> None:
    """SelfDeblur on a known blur (a CelebA-HQ face at 48 x 48, 9 x 9 anisotropic Gaussian,
    'same' zero-padded like every Blur here), with the official 'valid' boundary and with 'same'."""
    from shred.io import read_image, resize, write_grid
    from shred.metrics import kernel_ncc, psnr, ssim
    from shred.operators import Blur, anisotropic_gaussian_kernel as ag
    from shred.report import kernel_image
    from shred.solvers import build_solver

    x = resize(read_image(DATA / "test-images" / "celeba-hq-256" / "ddnm_00234.png"), (48, 48))
    k = ag(9, 1.0, 2.5, 0.6)
    op = Blur((3, 48, 48), k)
    y = op.A(x.double()).float()
    its = args.iterations or 1000
    print("| restoration | PSNR dB | SSIM | kernel NCC | s |\n| --- | --- | --- | --- | --- |")
    print(f"| blurred input | {float(psnr(y, x)):.2f} | {float(ssim(y, x)):.4f} | "
          f"{float(kernel_ncc(torch.ones(9, 9), k)):.3f} (flat kernel) | - |")
    cols = [("clean", x), ("blurred", y), ("true k", kernel_image(k))]
    for boundary in ("valid", "same"):
        t = time.time()
        res = build_solver("selfdeblur", None, iterations=its, boundary=boundary)(y, op, seeds=[0])
        est = res.extras["kernel"][0]
        print(f"| SelfDeblur, {its} steps, boundary {boundary} | {float(psnr(res.x0, x)):.2f} | "
              f"{float(ssim(res.x0, x)):.4f} | {float(kernel_ncc(est, k)):.3f} | {time.time() - t:.0f} |", flush=True)
        cols += [(boundary, res.x0), (f"k {boundary}", kernel_image(est))]
    out = Path(args.out) / "selfdeblur_check48.png"
    write_grid(out, cols, cell=128)
    print(f"wrote {out}")


def _load_pair(size: int):
    from shred.io import read_image, resize
    y = read_image(DATA / "motion-blur" / "00870_input.png")
    gt = read_image(DATA / "motion-blur" / "00870_gt.png")
    if size != y.shape[-1]:
        y, gt = resize(y, (size, size)), resize(gt, (size, size))
    return y, gt


def motion(args) -> None:
    """Fig. 8's pair: H = I (the authors' recipe) vs a blind 3 x 3 grid of kernels, with DIP's
    untrained prior (no 256 x 256 diffusion model is available here), plus blind uniform."""
    from shred.io import write_grid
    from shred.metrics import psnr, ssim
    from shred.operators import TaskOptions, build_task
    from shred.report import kernel_image
    from shred.solvers import build_solver

    size, k = args.size, args.kernel_size
    y, gt = _load_pair(size)
    shape = (3, size, size)
    its = args.iterations or 1500
    runs = {
        "H = I (DIP)": ("dip", build_task("nonuniform-deblur", shape), dict(iterations=its)),
        "blind uniform (SelfDeblur)": ("selfdeblur", build_task("blind-deblur", shape, TaskOptions(kernel="gaussian", kernel_size=k, kernel_sigma=1.0)), dict(iterations=its)),
        "blind 3x3 grid (SelfDeblur-SV)": ("selfdeblur", build_task("blind-deblur-sv", shape, TaskOptions(kernel_size=k), torch.Generator().manual_seed(0)), dict(iterations=its)),
    }
    rows = [f"| input (blurred) | - | {float(psnr(y, gt)):.2f} | {float(ssim(y, gt)):.4f} | - |"]
    cols = [("blurred", y)]
    record = {"size": size, "kernel_size": k, "iterations": its, "input": {"psnr": float(psnr(y, gt)), "ssim": float(ssim(y, gt))}}
    for name, (method, op, settings) in runs.items():
        if args.only and args.only not in name:
            continue
        t = time.time()
        res = build_solver(method, None, **settings)(y, op, seeds=[0], progress=not args.quiet)
        p, s = float(psnr(res.x0, gt)), float(ssim(res.x0, gt))
        rows.append(f"| {name} | {method} | {p:.2f} | {s:.4f} | {time.time() - t:.0f} |")
        record[name] = {"psnr": p, "ssim": s, "seconds": time.time() - t}
        cols.append((name.split(" (")[0], res.x0))
        if "kernel" in res.extras:
            cols.append(("kernel" if "uniform" in name else "kernels", kernel_image(res.extras["kernel"][0])))
        print(rows[-1], flush=True)
    cols.append(("ground truth", gt))
    out = Path(args.out) / f"motion_dip{size}_{its}.png"
    write_grid(out, cols, cell=160)
    from shred.io import strict_json

    out.with_suffix(".json").write_text(strict_json(record, indent=2) + "\n")
    print("| restoration | method | PSNR dB | SSIM | s |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"wrote {out}")


def _model(name):
    from shred.models import load_model
    return load_model(name)


def old_photo(args) -> None:
    """Fig. 7: colorization + super-resolution of real old photos at the model's resolution."""
    from shred import restore
    from shred.io import read_image, resize, write_grid
    from shred.operators import TaskOptions, build_task

    den = _model(args.model)
    side = den.image_size
    cols_in, cols_out = [], []
    for f in sorted((DATA / "test-images" / "old-photos").glob("*.png")):
        photo = resize(read_image(f), side)
        op = build_task("old-photo", (3, *side), TaskOptions(scale=args.scale))
        y = op.A(photo)  # the grey, down-sampled measurement of the photo
        res = restore(y, op, den, task="old-photo", seeds=list(range(args.seeds)))
        stop = res.extras.get("stop", {})
        print(f"{f.name}: iterations {res.iterations.tolist()}, sigma_y estimate {stop.get('sigma_y')}")
        cols_in.append((f.stem[:12], photo))
        cols_out.append((f"{f.stem[:8]} y", y))
        cols_out.append((f"{f.stem[:8]} x0", res.x0))
    out = Path(args.out) / f"old_photo_{den.name}.png"
    write_grid(out, cols_in + cols_out, cell=128)
    print(f"wrote {out}")


def seeds(args) -> None:
    """Fig. 6: eight restorations of one measurement from eight starting noises."""
    from shred import restore
    from shred.io import read_image, resize, write_grid
    from shred.metrics import diversity, psnr
    from shred.operators import TaskOptions, build_task

    den = _model(args.model)
    img = resize(read_image(args.image), den.image_size)
    op = build_task(args.task, (3, *den.image_size), TaskOptions(scale=args.scale))
    y = op.A(img)
    res = restore(y, op, den, task=args.task, seeds=list(range(8)))
    print(f"diversity (mean pairwise RMS) {diversity(res.x0):.4f}; PSNR per seed "
          f"{[round(v, 2) for v in psnr(res.x0, img).tolist()]}")
    out = Path(args.out) / f"seeds_{den.name}.png"
    write_grid(out, [("clean", img), ("y", y)] + [(f"seed {i}", res.x0[i:i + 1]) for i in range(8)], cell=96)
    print(f"wrote {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("demo", choices=["kernels", "stopping", "selfdeblur", "motion", "old-photo", "seeds"])
    p.add_argument("--out", default=str(ROOT / "docs" / "img"))
    p.add_argument("--iterations", type=int)
    p.add_argument("--size", type=int, default=64, help="motion: side the pair is resized to")
    p.add_argument("--kernel-size", type=int, default=13, help="motion: estimated kernel side")
    p.add_argument("--only", help="motion: run only the restorations whose name contains this")
    p.add_argument("--model", help="old-photo / seeds: a diffusion model name or folder")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--image", default=str(DATA / "test-images" / "celeba-hq-256" / "ddnm_00234.png"))
    p.add_argument("--task", default="inpaint")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    {"kernels": kernels, "stopping": stopping, "selfdeblur": selfdeblur, "motion": motion, "old-photo": old_photo, "seeds": seeds}[args.demo](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
