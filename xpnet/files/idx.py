"""IDX files: reading and validation, and the bundled MNIST copy, as a ``Dataset`` of host splits.

An IDX file is: 2 zero bytes, a type code, the number of dimensions d, then d
big-endian uint32 sizes, then the items in row-major order (big-endian).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from xpnet.engine.data import Dataset, Split
from xpnet.errors import UserError, named

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 1 << 34  # refuse headers that declare more than 16 GiB
MAX_CLASSES = 1 << 16  # labels are 0 .. MAX_CLASSES - 1: a larger label is a damaged file, not a class


class _GunzipOwning(gzip.GzipFile):
    """A GzipFile that closes the file it reads when it is closed (GzipFile leaves it open)."""

    def close(self):
        raw = self.fileobj
        try:
            super().close()
        finally:
            if raw is not None:
                raw.close()


def _open(path: Path):
    """(binary stream of the file's payload, is gzip, payload size hint modulo 2**32 or None):
    gunzipped if it is gzip data (by its first bytes; a .gz name requires gzip data)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    size = os.fstat(f.fileno()).st_size
    if f.read(2) == GZIP_MAGIC:
        # the gzip trailer's ISIZE: the payload length modulo 2**32 (a hint, checked again while reading)
        f.seek(max(size - 4, 0))
        isize = int.from_bytes(f.read(4), "little") if size >= 18 else None
        f.seek(0)
        return _GunzipOwning(fileobj=f, mode="rb"), True, isize
    if path.suffix == ".gz":
        f.close()
        raise UserError(f"{path}: not gzip data (the name ends in .gz)")
    f.seek(0)
    return f, False, size


def _parse_stream(f, name: str, is_gzip: bool = False, sha=None, size_hint: int | None = None) -> np.ndarray:
    """Decode an IDX stream to a native-endian NumPy array, checking every field.

    Reads straight into the result (no second copy of the payload); ``sha``, a hashlib
    object, is fed the uncompressed bytes.
    """
    try:
        return _parse(f, name, sha, size_hint)
    except EOFError:
        raise UserError(f"{name}: truncated gzip data") from None
    except (OSError, zlib.error) as e:
        raise UserError(f"{name}: corrupt {'gzip ' if is_gzip else ''}data ({e})") from None


def _parse(f, name: str, sha, size_hint) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4:
        raise UserError(f"{name}: not an IDX file ({len(head)} bytes, too short for a header)")
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES:
        raise UserError(f"{name}: not an IDX file (bad magic number 0x{head.hex()})")
    ndim = head[3]
    if ndim == 0:
        raise UserError(f"{name}: IDX header declares 0 dimensions")
    dims_raw = f.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise UserError(f"{name}: truncated IDX header ({4 + len(dims_raw)} bytes, need {4 + 4 * ndim})")
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    dtype = IDX_TYPES[head[2]]
    expected = math.prod(dims) * dtype.itemsize
    header = 4 + 4 * ndim
    if expected > MAX_BYTES:
        raise UserError(f"{name}: header {dims} declares {expected} bytes, more than xpnet reads ({MAX_BYTES})")
    if size_hint is not None and (size_hint - header - expected) % (1 << 32) != 0:
        # the length probably does not match (e.g. a lying header): read what is there before allocating
        out = np.frombuffer(_read_upto(f, expected), dtype=np.uint8)
        got = out.shape[0]
    else:
        out = np.empty(expected, dtype=np.uint8)
        got = _read_into(f, memoryview(out))
    view = memoryview(out)
    if got < expected:
        raise UserError(f"{name}: truncated: header {dims} needs {expected} data bytes, found {got}")
    if f.read(1):
        raise UserError(f"{name}: unexpected bytes after the {dims} items")
    if sha is not None:
        for part in (head, dims_raw, view):
            sha.update(part)
    data = out.view(dtype).reshape(dims)
    return data if dtype.isnative else data.astype(dtype.newbyteorder("="))


def _read_into(f, view) -> int:
    """Fill ``view`` from the stream; returns the number of bytes read."""
    got = 0
    while got < len(view):
        k = f.readinto(view[got : got + (1 << 22)])
        if not k:
            break
        got += k
    return got


def _read_upto(f, n: int) -> bytes:
    """Up to ``n`` bytes of the stream, in chunks (nothing allocated for bytes that are not there)."""
    chunks, got = [], 0
    while got < n:
        chunk = f.read(min(1 << 22, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def parse_idx(payload: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX payload held in memory (see ``_parse_stream``)."""
    return _parse_stream(io.BytesIO(payload), name, size_hint=len(payload))


def read_idx(path: str | os.PathLike, sha=None) -> np.ndarray:
    """Read an IDX file (raw or gzip) and validate it; UserError naming the file on any problem."""
    path = Path(path)
    f, is_gzip, size_hint = _open(path)
    with f:
        return _parse_stream(f, str(path), is_gzip, sha, size_hint)


def _find(folder: Path, base: str) -> Path:
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{named('data_dir')} {folder}: missing {base} (or {base}.gz)")


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.dtype != np.uint8:
        raise UserError(f"{path}: images must be unsigned bytes (IDX type 0x08), found {images.dtype}")
    if images.ndim < 2:
        raise UserError(f"{path}: images need >= 2 dimensions (count, pixels...), found {images.ndim}")
    if images.shape[0] == 0 or min(images.shape[1:]) == 0:
        raise UserError(f"{path}: holds no images (shape {images.shape})")


def _check_labels(labels: np.ndarray, path: Path, count: int, images_path: Path) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise UserError(f"{path}: labels must be a 1-D integer IDX array, found shape {labels.shape} {labels.dtype}")
    if labels.shape[0] != count:
        raise UserError(f"{path}: {labels.shape[0]} labels for the {count} images of {images_path.name}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise UserError(f"{path}: negative label {int(labels.min())}")
    if labels.max() >= MAX_CLASSES:
        i = int(np.argmax(labels >= MAX_CLASSES))
        raise UserError(
            f"{path}: label {int(labels[i])} at item {i} is above {MAX_CLASSES - 1} "
            f"(xpnet trains at most {MAX_CLASSES} classes)"
        )
    return labels


def _check_range(labels: np.ndarray, path: Path, num_classes: int) -> None:
    bad = labels >= num_classes
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{path}: label {int(labels[i])} at item {i} is outside the class range 0..{num_classes - 1}")


def load_dir(folder: str | os.PathLike, num_classes: int | None = None, test: bool = True) -> Dataset:
    """Read and fully validate the four IDX files of ``folder`` (without ``test``: the two
    training files only, and the Dataset has no test split).

    num_classes None: inferred from the training labels (max + 1).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{named('data_dir')} {folder}: not a directory")
    paths = {
        split: tuple(_find(folder, base) for base in bases)
        for split, bases in SPLIT_FILES.items()
        if test or split == "train"
    }
    return _load(paths, num_classes, str(folder))


def _load(paths, num_classes, source, sums=None) -> Dataset:
    """Read the files of ``paths`` ({split: (images, labels)}, the test split optional); with
    ``sums`` ({name: sha256}), verify each payload."""
    splits = {}
    for split, (img_path, lbl_path) in paths.items():
        arrays = []
        for path in (img_path, lbl_path):
            sha = hashlib.sha256() if sums is not None else None
            arrays.append(read_idx(path, sha))
            if sha is not None and sha.hexdigest() != sums.get(path.name.removesuffix(".gz")):
                raise UserError(
                    f"{path}: SHA-256 does not match SHA256SUMS: the bundled MNIST copy is damaged; reinstall xpnet"
                )
        images, labels = arrays
        _check_images(images, img_path)
        labels = _check_labels(labels, lbl_path, images.shape[0], img_path)
        splits[split] = (Split(images, labels), lbl_path)
    train, train_lbl = splits["train"]
    test, test_lbl = splits.get("test", (None, None))
    if test is not None and test.images.shape[1:] != train.images.shape[1:]:
        raise UserError(
            f"{paths['test'][0]}: image size {test.images.shape[1:]} differs from the training "
            f"images' {train.images.shape[1:]}"
        )
    if num_classes is None:
        num_classes = int(train.labels.max()) + 1
        if num_classes < 2:
            raise UserError(f"{train_lbl}: all labels are 0; need at least 2 classes")
    _check_range(train.labels, train_lbl, num_classes)
    if test is not None:
        _check_range(test.labels, test_lbl, num_classes)
    return Dataset(train, test, num_classes, source)


def bundled_dir() -> Path:
    """Folder of the MNIST copy shipped inside the package."""
    return Path(str(resources.files("xpnet") / "data"))


def _bundled_sums(folder: Path) -> dict[str, str]:
    sums = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def load_mnist(test: bool = True) -> Dataset:
    """The bundled MNIST, each file's decompressed bytes checked against SHA256SUMS."""
    folder = bundled_dir()
    paths = {
        split: tuple(folder / (base + ".gz") for base in bases)
        for split, bases in SPLIT_FILES.items()
        if test or split == "train"
    }
    return _load(paths, 10, "bundled MNIST", _bundled_sums(folder))


def load(data_dir: str | None = None, num_classes: int | None = None, test: bool = True) -> Dataset:
    """``--data-dir`` if given, else the bundled MNIST; without ``test``, its test files are not read."""
    return load_dir(data_dir, num_classes, test) if data_dir else load_mnist(test)
