"""A trained network on a data split: predictions, accuracy, the per-class table."""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from . import data, model


def predictions(params, split: data.DeviceData, spec: model.Spec, dtype: str):
    """Predicted classes for every item of a device split: (n,) int64 device array."""
    xp = array_namespace(split.x)
    preds = [model.predict_2d(params, xb, spec) for xb, _ in split.chunks(getattr(xp, dtype))]
    return xp.concat(preds) if len(preds) > 1 else preds[0]


def accuracy(params, split: data.DeviceData, spec: model.Spec, dtype: str) -> tuple[int, int]:
    """(correct, total) of the network on a device split; one host read."""
    xp = array_namespace(split.x)
    correct = xp.sum(xp.astype(predictions(params, split, spec, dtype) == split.y, xp.int64))
    return int(correct), len(split)


def format_accuracy(correct: int, total: int) -> str:
    return f"test accuracy: {100.0 * correct / total:.2f}% ({correct}/{total})"


def per_class_table(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> list[str]:
    """Images, correct predictions and accuracy per class (host arrays), as lines."""
    lines = [f"{'class':>5} {'images':>7} {'correct':>8} {'accuracy':>9}"]
    for k in range(num_classes):
        mask = labels == k
        n_k, c_k = int(mask.sum()), int((preds[mask] == k).sum())
        acc = f"{100.0 * c_k / n_k:8.2f}%" if n_k else f"{'-':>9}"
        lines.append(f"{k:>5} {n_k:>7} {c_k:>8} {acc}")
    return lines
