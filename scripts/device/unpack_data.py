"""Rebuild the zips packed by pack_data.py (byte-identical JPEG files, same names, stored)."""
from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np


def unpack(npz: Path, dst: Path) -> None:
    d = np.load(npz)
    prefix, blob = d["prefix"].tobytes(), d["blob"]
    ends = np.cumsum(d["lengths"].astype(np.int64))
    starts = ends - d["lengths"]
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for name, s, e in zip(d["names"], starts, ends):
            z.writestr(str(name), prefix + blob[s:e].tobytes())


def main(src: str, dst: str) -> int:
    src_p, dst_p = Path(src), Path(dst)
    dst_p.mkdir(parents=True, exist_ok=True)
    for split in ("cifar10-train", "cifar10-test"):
        unpack(src_p / f"{split}.npz", dst_p / f"{split}-jpeg.zip")
    shutil.copy(src_p / "train-images-idx3-ubyte.gz", dst_p / "train-images-idx3-ubyte.gz")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
