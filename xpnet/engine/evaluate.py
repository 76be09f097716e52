"""A trained network on a data split: predictions, accuracy, the per-class table."""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, device

from xpnet.backends import ops_for, to_host
from xpnet.engine import data, model


def _by_chunk(params, split: data.DeviceData, dtype: str, of_chunk):
    """``of_chunk(rows)`` (rows: a chunk of the split as ``dtype`` floats) over the split, a chunk
    at a time, joined along the first axis; without floating-point warnings (a model whose
    outputs overflow gives what it gives)."""
    xp = array_namespace(split.x)
    with ops_for(params[0][0]).errors_ignored():
        out = [of_chunk(xb) for xb, _ in split.chunks(getattr(xp, dtype))]
    return xp.concat(out, axis=0) if len(out) > 1 else out[0]


def predictions(params, split: data.DeviceData, spec: model.Spec, dtype: str):
    """Predicted classes for every item of a device split: (n,) int64 device array."""
    return _by_chunk(params, split, dtype, lambda rows: model.predict_2d(params, rows, spec))


def logits(params, split: data.DeviceData, spec: model.Spec, dtype: str):
    """The network's logits for every item of a device split: (n, classes) device array."""
    layers, ops = model.layers_of(params), ops_for(params[0][0])
    return _by_chunk(params, split, dtype, lambda rows: model.forward_pass(ops, layers, rows, spec)[2])


def host_predictions(backend, params, split: data.Split, spec: model.Spec, dtype: str) -> np.ndarray:
    """Predicted classes of a host split (n,), on the host: the images copied to the device once."""
    return backend.to_host(predictions(params, data.to_device(backend, split), spec, dtype))


def scored(backend, params, split: data.Split, spec: model.Spec, dtype: str) -> tuple[np.ndarray, int, int]:
    """(predicted classes (n,) on the host, correct, total) of the network on a host split."""
    preds = host_predictions(backend, params, split, spec, dtype)
    return preds, int((preds == split.labels).sum()), len(split)


def accuracy(params, split: data.DeviceData, spec: model.Spec, dtype: str) -> tuple[int, int]:
    """(correct, total) of the network on a device split; one host read."""
    xp = array_namespace(split.x)
    correct = xp.sum(xp.astype(predictions(params, split, spec, dtype) == split.y, xp.int64))
    return int(correct), len(split)


def accuracy_and_loss(
    params, split: data.DeviceData, spec: model.Spec, dtype: str, smoothing: float = 0.0
) -> tuple[float, float, float]:
    """(correct, total, mean loss) of the network on a labelled device split, from one forward
    pass a chunk at a time: the loss is the training loss (cross-entropy or the quadratic cost,
    with label smoothing as the step's targets have it) averaged over the items, infinite or NaN
    where the outputs overflow. With the split's weights (``split.w``) each item counts as its
    weight in all three (scikit-learn's weighted accuracy and mean). Host reads at the end."""
    correct, total, loss = scores(model.layers_of(params), split, spec, dtype, smoothing)
    return (int(correct) if split.w is None else float(correct)), total, float(loss)


def scores(layers, split: data.DeviceData, spec: model.Spec, dtype: str, smoothing: float = 0.0):
    """``accuracy_and_loss`` of a network's ``layers`` [(W^T (in,out), b (1,out))], or of a
    population's [(W^T (K,in,out), b (K,1,out))] all at once (the split's rows converted and
    multiplied by the members' first-layer weights once): (correct, total, mean loss) on the
    host, correct and loss (K,) arrays for a population."""
    xp = array_namespace(split.x)
    ops, classes = ops_for(layers[0][0]), spec.sizes[-1]
    members = 0 if layers[0][0].ndim == 3 else None  # the member axis of the logits (K, n, classes)
    every_class = xp.arange(classes, device=device(split.x))
    correct = loss = None
    start = 0
    with ops.errors_ignored():
        for rows, labels in split.chunks(getattr(xp, dtype)):
            w = None if split.w is None else split.w[start : start + rows.shape[0]]
            start += rows.shape[0]
            z = model.forward_pass(ops, layers, rows, spec)[2]
            hit = xp.argmax(z, axis=-1) == labels
            hits = xp.sum(xp.astype(hit, xp.int64) if w is None else xp.astype(hit, w.dtype) * w, axis=-1)
            targets = xp.astype(labels[:, None] == every_class[None, :], z.dtype) * (1.0 - smoothing)
            part = ops.loss_sum(spec.output, z, targets + smoothing / classes, -1, weights=w, member_axis=members)
            correct, loss = (hits, part) if correct is None else (correct + hits, loss + part)
    mass = len(split) if split.w is None else float(xp.sum(xp.astype(split.w, xp.float64)))
    return to_host(correct), mass, np.asarray(to_host(loss), dtype=np.float64) / mass


def population_predictions(layers, split: data.DeviceData, spec: model.Spec, dtype: str):
    """Each member's predicted classes for every item of a device split, from a population's
    ``layers`` (``scores``): (K, n) int64 device array."""
    xp, ops = array_namespace(split.x), ops_for(layers[0][0])
    with ops.errors_ignored():
        out = [
            xp.argmax(model.forward_pass(ops, layers, rows, spec)[2], axis=-1)
            for rows, _ in split.chunks(getattr(xp, dtype))
        ]
    return xp.concat(out, axis=-1) if len(out) > 1 else out[0]


def r2_and_loss(params, split: data.DeviceData, spec: model.Spec, dtype: str) -> tuple[float, float]:
    """(R², mean loss) of a regressor on a device split with targets y (n, t): the coefficient
    of determination averaged over the targets (scikit-learn's ``r2_score``: 1 - residual sum
    of squares / total sum of squares about the targets' mean; a constant target scores 1 if
    matched exactly, else 0) and the squared-error loss averaged over the items, from one
    forward pass a chunk at a time; each item counting as its weight where ``split.w`` is given.
    Host reads at the end."""
    xp = array_namespace(split.x)
    ops, layers = ops_for(params[0][0]), model.layers_of(params)
    f64 = xp.float64
    w = None if split.w is None else xp.astype(split.w, f64)[:, None]
    y = xp.astype(split.y, f64)
    mass = float(len(split)) if w is None else xp.sum(w)
    mean = (xp.sum(y, axis=0) if w is None else xp.sum(w * y, axis=0)) / mass
    centred = (y - mean) ** 2
    total = xp.sum(centred, axis=0) if w is None else xp.sum(w * centred, axis=0)
    residual, start = None, 0
    with ops.errors_ignored():
        for rows, _ in split.chunks(getattr(xp, dtype)):
            z = xp.astype(model.forward_pass(ops, layers, rows, spec)[2], f64)
            part = (z - y[start : start + rows.shape[0], ...]) ** 2
            if w is not None:
                part = w[start : start + rows.shape[0], ...] * part
            start += rows.shape[0]
            part = xp.sum(part, axis=0)
            residual = part if residual is None else residual + part
    residual = to_host(residual)
    return r2_of(residual, to_host(total)), float(0.5 * residual.sum() / float(mass))


def r2_of(residual: np.ndarray, total: np.ndarray) -> float:
    """R² averaged over the targets (scikit-learn's ``r2_score``) from each target's residual and
    total sums of squares (t,) on the host: 1 - residual / total; a constant target (total 0)
    scores 1 where it is matched exactly, else 0."""
    constant = total == 0
    r2 = np.where(constant, np.where(residual == 0, 1.0, 0.0), 1.0 - residual / np.where(constant, 1.0, total))
    return float(np.mean(r2))


def mean_loss(params, split: data.DeviceData, spec: model.Spec, dtype: str, smoothing: float = 0.0) -> float:
    """The mean training loss of the network on a labelled device split (``accuracy_and_loss``)."""
    return accuracy_and_loss(params, split, spec, dtype, smoothing)[2]


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
