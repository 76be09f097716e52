"""A trained network on a data split: predictions, accuracy, the per-class table."""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from . import data, model
from .backends import ops_for


def predictions(params, split: data.DeviceData, spec: model.Spec, dtype: str):
    """Predicted classes for every item of a device split: (n,) int64 device array. A model
    whose outputs overflow predicts what it predicts, without floating-point warnings."""
    xp = array_namespace(split.x)
    with ops_for(params[0][0]).errors_ignored():
        preds = [model.predict_2d(params, xb, spec) for xb, _ in split.chunks(getattr(xp, dtype))]
    return xp.concat(preds) if len(preds) > 1 else preds[0]


def host_predictions(backend, params, split: data.Split, spec: model.Spec, dtype: str) -> np.ndarray:
    """Predicted classes of a host split (n,), on the host: the images copied to the device once."""
    return backend.to_host(predictions(params, data.to_device(backend, split), spec, dtype))


def accuracy(params, split: data.DeviceData, spec: model.Spec, dtype: str) -> tuple[int, int]:
    """(correct, total) of the network on a device split; one host read."""
    xp = array_namespace(split.x)
    correct = xp.sum(xp.astype(predictions(params, split, spec, dtype) == split.y, xp.int64))
    return int(correct), len(split)


def format_accuracy(correct: int, total: int) -> str:
    return f"test accuracy: {100.0 * correct / total:.2f}% ({correct}/{total})"


def per_class(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> list[dict]:
    """For each class (host arrays): {"class", "correct", "total", "accuracy" (None for no images)}."""
    rows = []
    for k in range(num_classes):
        mask = labels == k
        total, correct = int(mask.sum()), int((preds[mask] == k).sum())
        rows.append({"class": k, "correct": correct, "total": total, "accuracy": correct / total if total else None})
    return rows


def per_class_table(rows: list[dict]) -> list[str]:
    """``per_class``'s rows as lines: images, correct predictions and accuracy per class."""
    lines = [f"{'class':>5} {'images':>7} {'correct':>8} {'accuracy':>9}"]
    for r in rows:
        acc = f"{100.0 * r['accuracy']:8.2f}%" if r["total"] else f"{'-':>9}"
        lines.append(f"{r['class']:>5} {r['total']:>7} {r['correct']:>8} {acc}")
    return lines
