#!/usr/bin/env bash
# Issue #13, item 3: does each preset's default beat its input (A^+ y) on every task? Measured on
# cifar10-TRAIN images (never the test split), next to DDRM and DDNM. Resumable.
#   bench/check_defaults.sh                 # SHRED+ on every bench task
#   PART=denoise bench/check_defaults.sh    # the bundled preset's denoising entry and candidates
#   PART=denoise-finish bench/check_defaults.sh # SHRED+'s denoising with and without the Tikhonov step
#   PART=colorize bench/check_defaults.sh   # candidates for SHRED+'s colorization entry
#   PART=colorize50 bench/check_defaults.sh # the colorization entry on 50 images, with KID-C10
#   PART=blind bench/check_defaults.sh      # candidates for SHRED+'s blind entry
#   PART=blind-ks bench/check_defaults.sh   # kernel-only steps for it, on 20 other images
#   PART=blind-search bench/check_defaults.sh # the kernel search of blind SHRED+ (SEED=2, SEED=6)
#   PART=blind-plus bench/check_defaults.sh # blind SHRED+ (the search) on PART=blind's 10 images
cd "$(dirname "$0")/.."
. .venv/bin/activate
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "${PART:-all}" = colorize ]; then
  # SHRED+ on colorization trailed the grey input (A^+ y) in PSNR: candidates for its entry.
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} --tasks colorize \
    --methods pinv,ddnm,shred@plus,shred@plus#consistency,shred@plus#lr01,shred@plus#s08,shred@plus#t100 \
    --set shred@plus#consistency.finish=consistency --set shred@plus#lr01.lr=0.01 \
    --set shred@plus#s08.warm_strength=0.8 --set shred@plus#t100.finish_t=100 \
    --min-realism-images 1000 --batch 25 --device cpu --out ${RUN:-runs/check-colorize-train} "$@"
fi
if [ "${PART:-all}" = colorize50 ]; then
  # The colorization entry against its grey input on 50 images (the first 20 are the ones the
  # entry was checked on), with KID-C10: bench/results/check-colorize50-train.md.
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-50} --tasks colorize \
    --methods pinv,ddrm,ddnm,shred@plus \
    --min-realism-images 20 --batch 25 --device cpu --out ${RUN:-runs/check-colorize50-train} "$@"
fi
if [ "${PART:-all}" = blind ]; then
  # Candidates for blind SHRED+'s entry. "#a09" is the entry first tuned (a one-pass DDIM inversion
  # of y blended with noise, a = 0.9, 19 iterations, kernel lr 2e-3); the other "#..." rows change
  # one thing of it: "#a05" a = 0.5 with kernel lr 2e-4, "#lr01" lr 0.01 for x_T, "#noise" /
  # "#noise-lr01" Algorithm 1's start from noise (at lr 0.01 too), "#fp3" / "#fp3-a1" the
  # inversion solved by 3 fixed-point iterations per step with x0 clipping off (a start that gives
  # back y), a = 0.9 / 1. The preset since, shred-blind@plus, is "#fp3-a1" in 17 iterations
  # (30 + 170 = 200 calls). shred-blind@bundled is the authors' blind settings (1,000 calls).
  # "#ddnm-it15" ends that entry, in 15 iterations, with DDNM's finish under each image's estimated
  # kernel (dense SVD, singular values below 3e-2 cut): 30 + 150 + 15 = 195 calls. It failed
  # (8.4 dB): the estimated kernel leaves about 15 % of y unexplained (residual 0.146 without the
  # finish), and the range-null space step divides that misfit by singular values down to the
  # cut (bench/results/check-blind-train.md).
  # "#ks20" adds 20 kernel-only Adam steps per iteration to the preset (BlindConfig.kernel_steps:
  # H_theta fitted to each x0, no network call); "#ks20-a07" and "#ks20-noise-lr01" also start
  # from a = 0.7 and from noise at lr 0.01. PART=blind-ks checks "#ks20" on 20 other images.
  # KID-C10 at n = 10 is for orientation only (its spread is large at that n). Every row here is
  # the kernel network's (kernel_estimate=network: shred-blind@plus searches the blur since
  # PART=blind-search), as when these rows were measured.
  B=shred-blind@plus
  NET=(--set $B.kernel_estimate=network)
  for v in a05 a09 lr01 noise noise-lr01 fp3 fp3-a1 ddnm-it15 ks20 ks20-a07 ks20-noise-lr01; do
    NET+=(--set "$B#$v.kernel_estimate=network"); done
  A09="iterations=19 warm_strength=0.9 invert_fixed_point=1 clip_x0=true"
  FP3A1="warm_strength=1.0 invert_fixed_point=3 clip_x0=false coarse_iterations=0"
  pin() { local label=$1; shift; for kv in "$@"; do echo --set "$B#$label.$kv"; done; }
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} --tasks blind \
    --methods $B#a05,$B#a09,$B#lr01,shred-blind@bundled,$B#noise,$B#noise-lr01,$B#fp3,$B#fp3-a1,$B,$B#ddnm-it15,$B#ks20,$B#ks20-a07,$B#ks20-noise-lr01 \
    $(pin a09 $A09) $(pin a05 $A09 warm_strength=0.5 kernel_lr=0.0002) $(pin lr01 $A09 lr=0.01) \
    $(pin noise $A09 init=noise) $(pin noise-lr01 $A09 init=noise lr=0.01) \
    $(pin fp3 $A09 invert_fixed_point=3 clip_x0=false) $(pin fp3-a1 $A09 invert_fixed_point=3 clip_x0=false warm_strength=1.0) \
    $(pin ddnm-it15 $FP3A1 iterations=15 finish=ddnm finish_t=300 finish_steps=15) \
    $(pin ks20 kernel_steps=20) $(pin ks20-a07 kernel_steps=20 warm_strength=0.7) \
    $(pin ks20-noise-lr01 kernel_steps=20 init=noise lr=0.01) "${NET[@]}" \
    --min-realism-images 10 --batch 25 --device cpu --out ${RUN:-runs/check-blind9-train} "$@"
fi
if [ "${PART:-all}" = blind-search ]; then
  # The kernel search (BlindConfig.kernel_estimate, "auto" in shred-blind@plus: the blur chosen
  # among 9 isotropic Gaussians by the part of y DDRM leaves unexplained under each, then SHRED+'s
  # deblurring entry under it) against the network entry before ("#network"). Each "#sS-sigA-rB" row
  # pins the search's DDRM steps S, the noise A (in 1/100) DDRM is told, and the noise B the final
  # run under the chosen blur is told ("-rsig": B = A, restore_sigma None). The first search entry
  # was "#s10-sig02-rsig"; the preset, shred-blind@plus, is "#s20-sig05-r02" (its defaults).
  # SEED=2 (the blur of PART=blind-ks) and SEED=6 (a wider one, peak 0.082).
  B=shred-blind@plus
  V=(s10-sig02-rsig:10:0.02:None s20-sig02-rsig:20:0.02:None s10-sig01-rsig:10:0.01:None
     s10-sig05-rsig:10:0.05:None s10-sig10-rsig:10:0.1:None s20-sig05-rsig:20:0.05:None
     s10-sig05-r02:10:0.05:0.02 s20-sig05-r02:20:0.05:0.02 s20-sig10-r05:20:0.1:0.05 s20-sig05-r01:20:0.05:0.01)
  M=$B,$B#network; S=(--set $B#network.kernel_estimate=network)
  for v in "${V[@]}"; do IFS=: read -r label steps sig res <<< "$v"; M+=",$B#$label"
    S+=(--set "$B#$label.search_steps=$steps" --set "$B#$label.search_sigma=$sig" --set "$B#$label.restore_sigma=$res"); done
  exec shred-ir bench --data cifar10-train --seed ${SEED:-2} --n ${N:-20} --tasks blind --methods "$M" "${S[@]}" \
    --min-realism-images 10 --batch 25 --device cpu --out ${RUN:-runs/check-blind-search-s${SEED:-2}-train} "$@"
fi
if [ "${PART:-all}" = blind-plus ]; then
  # SHRED+'s blind entry since PART=blind-search (the kernel search) on PART=blind's 10 images
  # (seed 1, the mildest blur: input 25.73 dB), where the kernel network's entry lost to its input.
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} --tasks blind --methods shred-blind@plus \
    --min-realism-images 10 --batch 25 --device cpu --out ${RUN:-runs/check-blind-plus-train} "$@"
fi
if [ "${PART:-all}" = blind-ks ]; then
  # kernel_steps=20 ("#ks20") against the preset ("#ks0") on 20 other training images (seed 2),
  # whose blur is closer to the test split's than PART=blind's 10.
  B=shred-blind@plus
  exec shred-ir bench --data cifar10-train --seed 2 --n ${N:-20} --tasks blind \
    --methods $B#ks0,$B#ks20 --set $B#ks0.kernel_steps=0 --set $B#ks20.kernel_steps=20 \
    --set $B#ks0.kernel_estimate=network --set $B#ks20.kernel_estimate=network \
    --min-realism-images 10 --batch 25 --device cpu --out ${RUN:-runs/check-blind-train-s2} "$@"
fi
if [ "${PART:-all}" = denoise ]; then
  # "#authors": the authors' lr 0.002 x 25 iterations (the bundled entry before); "#lr03-25":
  # lr 0.03 x 25; shred@bundled: lr 0.03 for up to 100 iterations with the discrepancy stop.
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} --tasks denoise \
    --methods pinv,shred@bundled#authors,shred@bundled#lr03-25,shred@bundled,shred@plus \
    --set shred@bundled#authors.lr=0.002 --set shred@bundled#authors.iterations=25 --set shred@bundled#authors.stop=none \
    --set shred@bundled#lr03-25.iterations=25 --set shred@bundled#lr03-25.stop=none \
    --min-realism-images 1000 --batch 25 --device cpu --out ${RUN:-runs/check-denoise-train} "$@"
fi
if [ "${PART:-all}" = denoise-finish ]; then
  # SHRED+'s denoising with and without its Tikhonov last step ("#no-tikhonov"), and with the
  # finish's DDNM+ per singular value ("#svd"; the preset keeps the simplified form on the identity).
  exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} --tasks denoise \
    --methods pinv,shred@plus,shred@plus#no-tikhonov,shred@plus#svd --set shred@plus#no-tikhonov.finish_noise=none \
    --set shred@plus#svd.finish_ddnm_plus=svd \
    --min-realism-images 1000 --batch 25 --device cpu --out ${RUN:-runs/check-denoise-finish-train} "$@"
fi
exec shred-ir bench --data cifar10-train --seed 1 --n ${N:-10} \
  --tasks inpaint,sr4,cs5,sr8,deblur,colorize,denoise,blind \
  --methods pinv,ddrm,ddnm,shred@plus,shred-blind@plus \
  --min-realism-images 1000 --batch 25 --device cpu --out ${RUN:-runs/check-defaults-train} "$@"
