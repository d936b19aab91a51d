#!/usr/bin/env bash
# One GPU run that trains the bundled models and the FID-C10 classifier concurrently, then samples
# from the models. Prepare with `python scripts/device/pack_data.py` (and the diffusers wheel in
# .device/); run from the repository root with OUT set to the folder for results.
#   CIFAR_MIN=8 FM_MIN=5 CLF_MIN=3 N_SAMPLES=1600 bash scripts/device/train_bundled.sh
set -uo pipefail
OUT=${OUT:?set OUT}
CIFAR_MIN=${CIFAR_MIN:-8}; FM_MIN=${FM_MIN:-5}; CLF_MIN=${CLF_MIN:-3}; N_SAMPLES=${N_SAMPLES:-1600}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=15
if ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/run.log"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/run.log"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/run.log"
python3 scripts/device/unpack_data.py .device /tmp/data || exit 1
log "data unpacked"
M=/tmp/models
python3 -m shred train /tmp/data/cifar10-train-jpeg.zip --arch cifar10-32 --name cifar10-32 --minutes "$CIFAR_MIN" \
  --batch 128 --lr 2e-4 --workers 12 --out $M/cifar10-32 > "$OUT/train-cifar10.log" 2>&1 &
P1=$!
python3 -m shred train /tmp/data/train-images-idx3-ubyte.gz --arch fashion-mnist-28 --name fashion-mnist-28 \
  --minutes "$FM_MIN" --batch 128 --lr 2e-4 --out $M/fashion-mnist-28 > "$OUT/train-fashion-mnist.log" 2>&1 &
P2=$!
python3 scripts/device/train_classifier.py /tmp/data/cifar10-train-jpeg.zip /tmp/data/cifar10-test-jpeg.zip \
  $M/cifar10-classifier "$CLF_MIN" > "$OUT/train-classifier.log" 2>&1 &
P3=$!
wait $P3; log "classifier done ($?)"
wait $P2; log "fashion-mnist done ($?)"
wait $P1; log "cifar10 done ($?)"
# Models first, so that they come back even if sampling runs out of time. At most 8 files of
# 16 MiB come back: 4 logs, 2 tars, 2 sample files.
tar -C $M -cf "$OUT/cifar10-32.tar" --exclude=checkpoint.pt cifar10-32
tar -C $M -cf "$OUT/more-models.tar" --exclude=checkpoint.pt fashion-mnist-28 cifar10-classifier
log "models packed: $(ls $OUT)"
python3 scripts/device/sample_bundled.py "$OUT/samples-cifar10-32.npz" $M/cifar10-32 "$N_SAMPLES" 10 50 100 >> "$OUT/run.log" 2>&1
python3 scripts/device/sample_bundled.py "$OUT/samples-fashion-mnist-28.npz" $M/fashion-mnist-28 "$N_SAMPLES" 10 50 100 >> "$OUT/run.log" 2>&1
log "done"
