"""Helpers that write small IDX data sets for tests."""

import gzip
import struct
from pathlib import Path

import numpy as np

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
         np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    dt = arr.dtype if arr.dtype.itemsize == 1 else arr.dtype.newbyteorder(">")
    header = bytes([0, 0, CODES[dt], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(dt).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    raw = idx_bytes(arr)
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_dataset(folder: Path, rng, n_train=600, n_test=200, shape=(8, 8), classes=3, gz=False) -> Path:
    """A learnable toy set: class k lights up band k of the image, plus noise."""
    folder.mkdir(parents=True, exist_ok=True)

    def make(n):
        labels = rng.integers(0, classes, n).astype(np.uint8)
        imgs = (rng.random((n, *shape)) * 60).astype(np.uint8)
        rows = shape[0] // classes
        for i, k in enumerate(labels):
            imgs[i, k * rows:(k + 1) * rows] = 200 + rng.integers(0, 55)
        return imgs, labels

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs, labels = make(n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", imgs, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return folder
