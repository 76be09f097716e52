"""Optimisers, learning-rate schedules and the max-norm constraint: array-API functions.

Every optimiser has a pure form (returns new parameters and state; works on
immutable arrays such as JAX's) and an in-place form for writeable arrays,
tested against each other. ``apply`` picks the in-place form where it can.

L2 (``l2``) follows the seeds: the cost gets (l2 / 2n) * sum(W**2) with n the
training-set size, i.e. (l2 / n) * W is added to each weight gradient (for plain
SGD: W scaled by 1 - lr * l2 / n each step). AdamW's ``weight_decay`` is the
decoupled form: W -= lr * weight_decay * W. Biases are never decayed.

State: {"t": steps taken, "slots": [[slot arrays of W, slot arrays of b], ...]}
with one slot (velocity) for momentum/nesterov and two (m, v) for adam/adamw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from array_api_compat import array_namespace, is_writeable_array

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class Hyper:
    """Optimiser settings (the learning rate comes per step)."""

    name: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0  # adamw only (decoupled)
    l2: float = 0.0  # the seeds' coupled L2
    n_train: int = 1


def init_state(name: str, params) -> dict:
    """Zero slots shaped like each parameter."""
    slots = []
    for W, b in params:
        xp = array_namespace(W)
        slots.append([[xp.zeros_like(a) for _ in range(SLOTS[name])] for a in (W, b)])
    return {"t": 0, "slots": slots}


def _direction(hp: Hyper, p, g, slot, t: int, is_weight: bool):
    """(update direction, new slot arrays) for one parameter; the step is lr * direction."""
    if is_weight and hp.l2:
        g = g + (hp.l2 / hp.n_train) * p
    if hp.name == "sgd":
        return g, slot
    if hp.name in ("momentum", "nesterov"):
        v = hp.momentum * slot[0] + g
        return (g + hp.momentum * v if hp.name == "nesterov" else v), [v]
    xp = array_namespace(p)
    m = hp.beta1 * slot[0] + (1.0 - hp.beta1) * g
    v = hp.beta2 * slot[1] + (1.0 - hp.beta2) * (g * g)
    m_hat = m / (1.0 - hp.beta1 ** t)
    v_hat = v / (1.0 - hp.beta2 ** t)
    d = m_hat / (xp.sqrt(v_hat) + hp.eps)
    if hp.name == "adamw" and is_weight and hp.weight_decay:
        d = d + hp.weight_decay * p
    return d, [m, v]


def update(params, grads, state: dict, lr: float, hp: Hyper):
    """Pure step: (new params, new state)."""
    t = state["t"] + 1
    new_params, new_slots = [], []
    for (W, b), (dW, db), (sW, sb) in zip(params, grads, state["slots"]):
        stepW, sW = _direction(hp, W, dW, sW, t, True)
        stepb, sb = _direction(hp, b, db, sb, t, False)
        new_params.append((W - lr * stepW, b - lr * stepb))
        new_slots.append([sW, sb])
    return new_params, {"t": t, "slots": new_slots}


def update_(params, grads, state: dict, lr: float, hp: Hyper):
    """In-place step on writeable arrays (same numbers as ``update``, written with in-place
    operators so that the big arrays are not reallocated every step); returns (params, state)."""
    t = state["t"] + 1
    for (W, b), (dW, db), slots in zip(params, grads, state["slots"]):
        for k, (p, g, is_weight) in enumerate(((W, dW, True), (b, db, False))):
            if is_weight and hp.l2:
                g = g + (hp.l2 / hp.n_train) * p
            s = slots[k]
            if hp.name == "sgd":
                p -= lr * g
            elif hp.name in ("momentum", "nesterov"):
                v = s[0]
                v *= hp.momentum
                v += g
                p -= lr * (g + hp.momentum * v if hp.name == "nesterov" else v)
            else:
                xp = array_namespace(p)
                m, v = s
                m *= hp.beta1
                m += (1.0 - hp.beta1) * g
                v *= hp.beta2
                v += (1.0 - hp.beta2) * (g * g)
                if hp.name == "adamw" and is_weight and hp.weight_decay:
                    p -= (lr * hp.weight_decay) * p
                denom = xp.sqrt(v / (1.0 - hp.beta2 ** t))
                denom += hp.eps
                p -= (lr / (1.0 - hp.beta1 ** t)) * m / denom
    state["t"] = t
    return params, state


def apply(params, grads, state: dict, lr: float, hp: Hyper):
    """One optimiser step, in place where the arrays (parameters and slots) allow it."""
    slots = (a for layer in state["slots"] for slot in layer for a in slot)
    if all(is_writeable_array(a) for pair in params for a in pair) and all(is_writeable_array(a) for a in slots):
        return update_(params, grads, state, lr, hp)
    return update(params, grads, state, lr, hp)


def sgd(params, grads, lr: float, l2: float = 0.0, n_train: int = 1):
    """One pure SGD step (the seeds' optimiser): new [(W, b), ...]."""
    return update(params, grads, init_state("sgd", params), lr, Hyper("sgd", l2=l2, n_train=n_train))[0]


def max_norm(params, limit: float):
    """Rescale each unit's incoming weight vector (a row of W (1, out, in)) to norm <= limit."""
    out = []
    for W, b in params:
        xp = array_namespace(W)
        norms = xp.sqrt(xp.sum(W * W, axis=2, keepdims=True))
        scale = xp.clip(limit / (norms + 1e-12), max=1.0)
        if is_writeable_array(W):
            W *= scale
        else:
            W = W * scale
        out.append((W, b))
    return out


def lr_at(base_lr: float, schedule: str, progress: float, epochs: int, warmup: float = 0.0) -> float:
    """Learning rate at ``progress`` epochs into a run of ``epochs`` (a float: per-step schedules).

    constant: base_lr; cosine: base_lr * (1 + cos(pi * progress / epochs)) / 2, from base_lr
    towards 0; step: base_lr halved every max(1, epochs // 4) epochs. During the first
    ``warmup`` epochs the rate rises linearly from near 0 to the schedule's value.
    """
    if schedule == "constant":
        lr = base_lr
    elif schedule == "cosine":
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, epochs) / max(epochs, 1)))
    elif schedule == "step":
        lr = base_lr * 0.5 ** (int(progress) // max(1, epochs // 4))
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    if warmup > 0 and progress < warmup:
        lr *= (progress + 1e-2) / warmup
    return lr
