#!/usr/bin/env bash
# SHRED+ tuning on cifar10-TRAIN images (never the test split), n = 20, seed 1. Resumable.
#   bench/tune_plus.sh                     # x4 SR and box inpainting: the first round
#   PART=ill-posed bench/tune_plus.sh      # x8 SR and CS 5 %, where SHRED+ lost on realism
#   PART=coarse-to-fine bench/tune_plus.sh # deblurring and colorization with coarse-to-fine
# The first round's report is bench/results/tune-plus-train.{json,md}. Its labelled variants'
# settings were relative to the provisional preset of that time (warm start from A^+ y, a = 0.5,
# cosine lr 0.05, consistency finish): "#ddrm" is the warm start from DDRM with 17 iterations and
# the consistency finish, "#ddrm-fin" the same start with 15 iterations and DDNM's finish, which
# became the preset.
# "#fp3" (the later rounds): the warm start's DDIM inversion solved by 3 fixed-point iterations per
# step with x0 clipping off (bench/inversion_roundtrip.py: the one-pass inversion gives back about
# 20 dB of the image it inverts, this one 33 dB), and the first 8 iterations through 5 DDIM steps:
# 20 (DDRM) + 30 (inversion) + 8 x 5 + 7 x 10 + 15 (finish) = 175 network calls per image.
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
P=shred@plus
FP3=(--set $P#fp3.invert_fixed_point=3 --set $P#fp3.clip_x0=false --set $P#fp3.coarse_iterations=8)
if [ "${PART:-first}" = ill-posed ]; then
  # "#noise": Algorithm 1's start from noise; "#fp3-a0.2": less of the warm start; "#c2f":
  # coarse-to-fine alone (155 calls); "#c2f-t100": with DDNM's finish from t = 100 in 5 steps;
  # "#c2f-fs30": with a 30-step finish (170 calls); "#c2f-it19": 19 iterations (195 calls).
  exec shred-ir bench --data cifar10-train --seed 1 --n 20 --tasks sr8,cs5 \
    --methods pinv,ddrm,$P,$P#fp3,$P#noise,$P#fp3-a0.2,$P#c2f,$P#c2f-t100,$P#c2f-fs30,$P#c2f-it19 \
    "${FP3[@]}" \
    --set $P#fp3-a0.2.invert_fixed_point=3 --set $P#fp3-a0.2.clip_x0=false \
    --set $P#fp3-a0.2.coarse_iterations=8 --set $P#fp3-a0.2.warm_strength=0.2 \
    --set $P#noise.init=noise --set $P#c2f.coarse_iterations=8 \
    --set $P#c2f-t100.coarse_iterations=8 --set $P#c2f-t100.finish_t=100 --set $P#c2f-t100.finish_steps=5 \
    --set $P#c2f-fs30.coarse_iterations=8 --set $P#c2f-fs30.finish_steps=30 \
    --set $P#c2f-it19.coarse_iterations=8 --set $P#c2f-it19.iterations=19 \
    --min-realism-images 20 --batch 25 --device cpu --out ${RUN:-runs/tune-ill-posed} "$@"
fi
if [ "${PART:-first}" = coarse-to-fine ]; then
  exec shred-ir bench --data cifar10-train --seed 1 --n 20 --tasks deblur,colorize \
    --methods pinv,ddrm,$P,$P#c2f --set $P#c2f.coarse_iterations=8 \
    --min-realism-images 20 --batch 25 --device cpu --out ${RUN:-runs/tune-coarse-to-fine} "$@"
fi
exec shred-ir bench --data cifar10-train --seed 1 --n 20 --tasks sr4,inpaint \
  --methods pinv,ddrm,ddnm,$P#ddrm,$P#ddrm-fin \
  --set $P#ddrm.warm_from=ddrm --set $P#ddrm.iterations=17 --set $P#ddrm.finish=consistency \
  --set $P#ddrm-fin.warm_from=ddrm --set $P#ddrm-fin.iterations=15 --set $P#ddrm-fin.finish=ddnm \
  --min-realism-images 20 --batch 25 --device cpu --out ${RUN:-runs/tune-train} "$@"
