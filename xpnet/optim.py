"""Optimisers: mini-batch SGD with L2 weight decay.

``sgd`` is the pure reference (returns new parameters; works on immutable
arrays such as JAX's); ``sgd_`` updates writeable arrays in place and is tested
against it. L2 follows the seeds: the cost gets (l2 / 2n) * sum(W**2) with n the
training-set size, so each step scales W by (1 - lr * l2 / n); biases are not decayed.
"""

from __future__ import annotations

import math

from array_api_compat import is_writeable_array


def sgd(params, grads, lr: float, l2: float = 0.0, n_train: int = 1):
    """One SGD step: new [(W, b), ...] from params and grads of the same shapes."""
    decay = 1.0 - lr * l2 / n_train
    out = []
    for (W, b), (dW, db) in zip(params, grads):
        if decay != 1.0:
            W = decay * W
        out.append((W - lr * dW, b - lr * db))
    return out


def sgd_(params, grads, lr: float, l2: float = 0.0, n_train: int = 1):
    """In-place SGD step on writeable arrays (same result as ``sgd``); returns params."""
    decay = 1.0 - lr * l2 / n_train
    for (W, b), (dW, db) in zip(params, grads):
        if decay != 1.0:
            W *= decay
        W -= lr * dW
        b -= lr * db
    return params


def step(params, grads, lr: float, l2: float = 0.0, n_train: int = 1):
    """SGD in place where the arrays allow it, else the pure update."""
    if all(is_writeable_array(W) and is_writeable_array(b) for W, b in params):
        return sgd_(params, grads, lr, l2, n_train)
    return sgd(params, grads, lr, l2, n_train)


SCHEDULES = ("constant", "cosine", "step")


def epoch_lr(base_lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """Learning rate for ``epoch`` (1-based) of ``epochs``.

    constant: base_lr; cosine: base_lr * (1 + cos(pi * (epoch-1) / epochs)) / 2, from base_lr
    down towards 0; step: base_lr halved every max(1, epochs // 4) epochs.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))
    if schedule == "step":
        return base_lr * 0.5 ** ((epoch - 1) // max(1, epochs // 4))
    raise ValueError(f"unknown schedule {schedule!r}")
