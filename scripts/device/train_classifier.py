"""Train the CIFAR-10 feature classifier behind the FID-C10 metric (run by train_bundled.sh).

    python scripts/device/train_classifier.py TRAIN.zip TEST.zip OUT_FOLDER [MINUTES]
"""
from __future__ import annotations

import json
import sys

from shred.data import load_images
from shred.metrics.features import save_classifier, train_classifier


def main(train: str, test: str, out: str, minutes: str = "3") -> int:
    tr, te = load_images(train, workers=8), load_images(test, workers=8)
    assert tr.classes == te.classes, (tr.classes, te.classes)
    net, record = train_classifier(tr.images, tr.labels, te.images, te.labels, minutes=float(minutes), epochs=30)
    record.update(dataset="CIFAR-10 train split (../shared/data/cifar10, re-encoded JPEG)", classes=tr.classes)
    save_classifier(net.float(), out, record, name="cifar10-classifier")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
