"""Data on the device: the splits of a data set (``Split``, ``Dataset``), moved to the
backend's device once (``to_device``, ``DeviceData``), the validation split, and the targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace

from xpnet.backends.base import Ops
from xpnet.errors import UserError, named

CHUNK_ROWS = 2048  # images per chunk when a device split is read back in order (evaluation)
CLASS_WEIGHTS = ("none", "balanced")  # how --class-weight weighs a class (``class_weights``)


@dataclass
class Split:
    """Images (n, rows, cols) uint8 and labels (n,) int64 (or a regressor's targets (n, t)
    float64), on the host (a Python API caller's images may be floats, and on a device: see
    ``to_device``), and where given each image's weight (n,) float64 (``fit``'s sample_weight):
    finite, >= 0."""

    images: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def class_weights(labels: np.ndarray, kind: str) -> np.ndarray | None:
    """Each class's weight (classes,) float64 for (n,) int labels: ``kind`` "none" (None) or
    "balanced" (class c weighs n / (k * n_c), k the classes present, n_c the labels of c;
    scikit-learn's meaning)."""
    if kind == "none":
        return None
    counts = np.bincount(labels).astype(np.float64)
    present = counts > 0
    out = np.ones_like(counts)
    out[present] = labels.shape[0] / (np.count_nonzero(present) * counts[present])
    return out


def row_weights(split: Split, per_class: np.ndarray | None) -> np.ndarray | None:
    """Each row's weight (n,) float64: the split's own weights times its class's (either may
    be None: 1); None when both are."""
    if per_class is None:
        return split.weights
    by_class = per_class[split.labels]
    return by_class if split.weights is None else by_class * split.weights


@dataclass
class Dataset:
    """A four-file IDX data set on the host (or training data given in memory: no test split).
    ``num_classes``: the network's outputs (a regressor's targets)."""

    train: Split
    test: Split | None
    num_classes: int
    source: str

    @property
    def regression(self) -> bool:
        """Whether the targets are real values (n, t) rather than class labels (n,)."""
        return self.train.labels.ndim == 2

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_features(self) -> int:
        return int(np.prod(self.image_shape))


def one_hot(labels: np.ndarray, num_classes: int, dtype: str = "float32", smoothing: float = 0.0) -> np.ndarray:
    """(n,) int labels -> (n, num_classes) targets: one-hot, or with label smoothing
    1 - smoothing + smoothing/K for the label and smoothing/K elsewhere."""
    out = np.full((labels.shape[0], num_classes), smoothing / num_classes, dtype=dtype)
    out[np.arange(labels.shape[0]), labels] += 1 - smoothing
    return out


@dataclass
class DeviceData:
    """A split resident on the device: x (n, features) uint8 pixels, y (n,) int64 labels (a
    regressor's targets (n, t) floats), for training targets (n, classes) floats (one-hot or
    smoothed; a regressor's targets), and where the rows are weighed their weights w (n,) floats.

    Pixels stay bytes on the device (a quarter of the memory and of the bytes each gathered
    batch moves) and become [0, 1] floats a batch or chunk at a time (``unit_floats``, ``chunks``).
    """

    x: object
    y: object
    onehot: object = None
    w: object = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def chunks(self, dtype, size: int = CHUNK_ROWS):
        """Yield (x chunk as ``dtype`` floats in [0, 1], y chunk (labels or targets) or None
        without them) over the split, in order."""
        n = len(self)
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield unit_floats(self.x[start:stop, ...], dtype), None if self.y is None else self.y[start:stop, ...]


def unit_floats(pixels, dtype):
    """Device uint8 pixels -> ``dtype`` floats in [0, 1] (floats pass through)."""
    return Ops(array_namespace(pixels)).unit_floats(pixels, dtype)[0]


def to_device(
    backend,
    split: Split,
    dtype: str = "float32",
    num_classes: int | None = None,
    smoothing: float = 0.0,
    weights: np.ndarray | None = None,
) -> DeviceData:
    """Move a split to the backend's device, once: uint8 pixels (or floats), labels, with
    ``num_classes`` (a training split) the ``dtype`` targets, and the rows' ``weights`` (n,)
    where given (``row_weights``) as ``dtype``. Images already on the device (arrays of the
    backend's library there, as ``MLPClassifier`` gives them) are only seen as (n, features),
    not copied; labels are on the host."""
    if isinstance(split.images, np.ndarray):
        x = backend.asarray(np.ascontiguousarray(split.images.reshape(len(split), -1)))
    else:
        x = backend.xp.reshape(split.images, (len(split), -1))
    regression = split.labels.ndim == 2
    y = backend.asarray(split.labels.astype(dtype) if regression else split.labels)
    targets = None
    if num_classes is not None:
        targets = y if regression else backend.asarray(one_hot(split.labels, num_classes, dtype, smoothing))
    w = None if weights is None else backend.asarray(weights.astype(dtype))
    return DeviceData(x, y, targets, w)


def split_validation(split: Split, n: int) -> tuple[Split, Split | None]:
    """The last ``n`` items become the validation split (views, no copy), with their weights."""
    if n == 0:
        return split, None
    if not 0 < n < len(split):
        raise UserError(
            f"{named('validation')} {n}: must be between 0 and {len(split) - 1} (the training "
            f"set has {len(split)} images)"
        )
    w = split.weights
    return (
        Split(split.images[:-n, ...], split.labels[:-n], None if w is None else w[:-n]),
        Split(split.images[-n:, ...], split.labels[-n:], None if w is None else w[-n:]),
    )
