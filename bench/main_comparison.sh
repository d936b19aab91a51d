#!/usr/bin/env bash
# The comparison of issues #12 and #13 on this CPU: every peer and SHRED (the authors' settings,
# the bundled preset and SHRED+) on CIFAR-10 test images, KID-C10 / FID-C10 at n = 100
# (50 for x8 SR, deblurring, colorization and blind deblurring). Costly methods run on fewer images
# (--max-images). Resumable: run it again and it finishes only the missing chunks; METHODS=a,b and
# extra arguments (e.g. --tasks sr4) narrow a run. `bench/main_comparison.sh --report-only` writes the
# whole comparison's report from whatever has finished (methods not run yet are listed as missing). docs/RESULTS.md quotes its tables
# (copied to bench/results/comparison-cifar10-test.json / .md).
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ALL=pinv,ddrm,ddnm,shred@plus,shred-blind@plus,repaint,dps,shred-blind@bundled,selfdeblur,dip,shred@bundled,shred@authors-code
METHODS=${METHODS:-$ALL}
args=()
has() { [[ ",$METHODS," == *",$1,"* ]]; }
has dps && args+=(--set dps.steps=100 --max-images dps=50)
has repaint && args+=(--set repaint.steps=100 --set repaint.jump_n_sample=5 --max-images repaint=25)
has dip && args+=(--set dip.iterations=500 --max-images dip=20)
has selfdeblur && args+=(--set selfdeblur.iterations=500 --max-images selfdeblur=20)
has shred@bundled && args+=(--max-images shred@bundled=20)
has shred-blind@bundled && args+=(--max-images shred-blind@bundled=25)
has shred@authors-code && args+=(--max-images shred@authors-code=20)
exec shred-ir bench --data cifar10-test --n 100 --n-for sr8=50 --n-for deblur=50 --n-for colorize=50 --n-for blind=50 \
  --tasks inpaint,sr4,cs5,sr8,deblur,colorize,blind --methods "$METHODS" "${args[@]}" \
  --batch 25 --device cpu --out "${RUN:-runs/cifar10-main}" "$@"
