#!/usr/bin/env bash
# SHRED+ tuning on cifar10-TRAIN images (never the test split), x4 SR and box inpainting, n = 20:
# the last round, whose report is bench/results/tune-plus-train.{json,md}. The labelled variants'
# settings were relative to the provisional preset of that time (warm start from A^+ y, a = 0.5,
# cosine lr 0.05, consistency finish): "#ddrm" is the warm start from DDRM with 17 iterations and
# the consistency finish, "#ddrm-fin" the same start with 15 iterations and DDNM's finish, which
# became the preset. Run again (resumable) to recompute with the preset of today.
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec shred-ir bench --data cifar10-train --seed 1 --n 20 --tasks sr4,inpaint \
  --methods pinv,ddrm,ddnm,shred@plus#ddrm,shred@plus#ddrm-fin \
  --set shred@plus#ddrm.warm_from=ddrm --set shred@plus#ddrm.iterations=17 --set shred@plus#ddrm.finish=consistency \
  --set shred@plus#ddrm-fin.warm_from=ddrm --set shred@plus#ddrm-fin.iterations=15 --set shred@plus#ddrm-fin.finish=ddnm \
  --min-realism-images 20 --batch 25 --device cpu --out ${RUN:-runs/tune-train} "$@"
