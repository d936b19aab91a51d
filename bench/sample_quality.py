"""Sample quality of a bundled model, measured offline: patch SWD and FID-C10.

    python bench/sample_quality.py --samples samples-cifar10-32.npz --train cifar10-train \\
        --test cifar10-test --features cifar10 --out bench/results/sample-quality-cifar10-32.json \\
        --grid docs/img/cifar10-32-samples.png

``--samples`` holds uint8 arrays [N, C, H, W] per DDIM step count (keys ``steps10``...), as written
by scripts/device/sample_bundled.py. Every row compares N images with the training split:

* SWD: sliced Wasserstein distance on 7x7 Laplacian-pyramid patches (Karras et al. 2018), x1e3,
  mean over levels, against N random training images;
* FID-C10: Frechet distance between the features of shred's own CIFAR-10 classifier for the N
  images and for the whole training split (Inception weights are not available offline, so this is
  not FID and its values are not comparable with published FIDs).

Two reference rows bracket the scale: the test split (real images the model never saw) and
Gaussian noise (N(0, I) in model space, clipped: what DDIM starts from).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shred.io import strict_json  # noqa: E402
from shred.data import load_images  # noqa: E402
from shred.io import write_grid  # noqa: E402
from shred.metrics import extract_features, frechet_distance, swd  # noqa: E402
from shred.metrics.features import load_feature_net  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", required=True)
    p.add_argument("--train", required=True, help="training split (name or path)")
    p.add_argument("--test", help="test split, for the real-images reference row")
    p.add_argument("--features", help="feature network for the Frechet distance (cifar10 or a folder)")
    p.add_argument("--out", required=True)
    p.add_argument("--grid", help="PNG grid of the first 64 samples of each step count")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    data = np.load(args.samples)
    sets = {f"DDIM {int(k.removeprefix('steps'))} steps": torch.from_numpy(data[k]).float() / 255 for k in data.files}
    n = min(v.shape[0] for v in sets.values())
    train = load_images(args.train, workers=2).float01()
    g = torch.Generator().manual_seed(args.seed)
    train_n = train[torch.randperm(train.shape[0], generator=g)[:n]]
    refs = {}
    if args.test:
        test = load_images(args.test, workers=2).float01()
        refs["test split (real)"] = test[torch.randperm(test.shape[0], generator=g)[:n]]
    noise = torch.randn(n, *train.shape[1:], generator=g).clamp(-1, 1) * 0.5 + 0.5
    refs["Gaussian noise"] = noise
    rows = {**{k: v[:n] for k, v in sets.items()}, **refs}

    fd_label, train_feat, extractor = None, None, None
    if args.features:
        extractor, fd_label = load_feature_net(args.features)
        t0 = time.perf_counter()
        train_feat = extract_features(extractor, train)
        print(f"features of {train.shape[0]} training images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    results = {"samples": args.samples, "n": n, "train": args.train, "train_images": int(train.shape[0]),
               "feature_metric": fd_label, "rows": {}}
    for name, imgs in rows.items():
        r = {"swd_x1e3": swd(imgs, train_n, seed=args.seed)}
        if extractor is not None:
            r[fd_label] = frechet_distance(extract_features(extractor, imgs), train_feat)
        results["rows"][name] = r
        fd = f"  {fd_label} {r[fd_label]:8.2f}" if fd_label else ""
        print(f"{name:22s} SWD {r['swd_x1e3']['mean']:7.2f}{fd}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(strict_json(results, indent=2) + "\n")
    if args.grid:
        cols = [(name, v[:64]) for name, v in sets.items()]
        # 8 x 8 mosaics, one per step count, side by side.
        mosaic = [(name, torch.cat([torch.cat(list(v[i * 8:(i + 1) * 8]), dim=-1) for i in range(8)], dim=-2)[None])
                  for name, v in cols]
        side = next(iter(sets.values())).shape[-1]
        write_grid(args.grid, mosaic, cell=8 * max(32, side))
    return 0


if __name__ == "__main__":
    sys.exit(main())
