"""Pack the training data for the GPU machine into .device/ (ignored by git), within its 64 MiB limit.

    python scripts/device/pack_data.py            # then run scripts/device/train_bundled.sh there

CIFAR-10's JPEG zips (54 + 11 MB) are mostly repetition: every one of the 60,000 files starts with
the same 623-byte JPEG header (tables and all), and the zip adds ~170 bytes per file. The pack keeps
that header once and the rest of each file as it is, so unpack_data.py rebuilds byte-identical
JPEG files (and zips with the same names): 16 MB instead of 65 MB, nothing re-encoded.
"""
from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SHRED_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pack_zip(src: Path, dst: Path) -> None:
    with zipfile.ZipFile(src) as z:
        names = sorted(n for n in z.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        blobs = [z.read(n) for n in names]
    prefix = os.path.commonprefix(blobs)
    tails = [b[len(prefix):] for b in blobs]
    np.savez(dst, prefix=np.frombuffer(prefix, np.uint8), names=np.array(names),
             lengths=np.array([len(t) for t in tails], np.uint32), blob=np.frombuffer(b"".join(tails), np.uint8))
    print(f"{src.name}: {len(names)} files, common prefix {len(prefix)} bytes, "
          f"{src.stat().st_size / 1e6:.1f} MB -> {dst.stat().st_size / 1e6:.1f} MB")


def main() -> int:
    out = ROOT / ".device"
    out.mkdir(exist_ok=True)
    pack_zip(DATA / "cifar10" / "cifar10-train-jpeg.zip", out / "cifar10-train.npz")
    pack_zip(DATA / "cifar10" / "cifar10-test-jpeg.zip", out / "cifar10-test.npz")
    shutil.copy(DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz", out / "train-images-idx3-ubyte.gz")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f".device/ holds {total / 2 ** 20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
