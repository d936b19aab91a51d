#!/usr/bin/env bash
# Issue #13, item 3: does each preset's default beat its input (A^+ y) on every task? Measured on
# cifar10-TRAIN images (never the test split), next to DDRM and DDNM. Resumable.
#   bench/check_defaults.sh                 # SHRED+ on every bench task
#   PART=denoise bench/check_defaults.sh    # the bundled preset's denoising entry and candidates
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "${PART:-all}" = denoise ]; then
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} --tasks denoise \
    --methods pinv,shred@bundled,shred@bundled#lr03,shred@bundled#lr03-stop,shred@plus \
    --set shred@bundled#lr03.lr=0.03 \
    --set shred@bundled#lr03-stop.lr=0.03 --set shred@bundled#lr03-stop.iterations=100 \
    --set shred@bundled#lr03-stop.stop=discrepancy \
    --min-realism-images 1000 --batch 25 --device cpu --out ${RUN:-runs/check-denoise-train} "$@"
fi
exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} \
  --tasks inpaint,sr4,cs5,sr8,deblur,colorize,denoise,blind \
  --methods pinv,ddrm,ddnm,shred@plus,shred-blind@plus \
  --min-realism-images 1000 --batch 25 --device cpu --out ${RUN:-runs/check-defaults-train} "$@"
