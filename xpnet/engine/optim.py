"""Optimisers, learning-rate schedules and the max-norm constraint, written once on the op set.

Each update is written with the axpy-like ops, so it runs in place on NumPy, CuPy and
PyTorch (``out`` = the parameter or slot itself) and returns new arrays on JAX and the
reference op set. Per-step host scalars (the learning rate, Adam's bias corrections) come in
``s``, a mapping made on the host for each step (``step_scalars``).

L2 (``l2``) follows the seeds: the cost gets (l2 / 2N) * sum(W**2) with N the training-set
size, so (l2 / N) * W is added to each weight gradient; for plain SGD that is the decay
W <- (1 - lr * l2 / N) * W. AdamW's ``weight_decay`` is the decoupled form
W <- W - lr * weight_decay * W. Biases are never decayed.

Slots: one array (the velocity) per parameter for momentum and nesterov, two (m, v) for adam
and adamw, none for sgd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2}


@dataclass(frozen=True)
class Optimizer:
    """An optimiser and its settings (the learning rate comes per step)."""

    name: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0  # adamw only (decoupled)
    l2: float = 0.0  # the seeds' coupled L2
    n_train: int = 1

    @property
    def fused(self) -> bool:
        """Plain SGD: the update is linear in the gradient, so the step computes it inside the
        gradient's own GEMM (``sgd_coefficients``) and never stores the gradient."""
        return self.name == "sgd"

    @property
    def slots(self) -> int:
        return SLOTS[self.name]

    @property
    def rule(self) -> str:
        """The update rule of ``Ops.optimizer_update`` (adamw is adam with a decay)."""
        return "adam" if self.name == "adamw" else self.name

    def step_scalars(self, lr: float, t: int) -> dict:
        """The host scalars of step number ``t`` (1-based), every product of the rate computed
        here, once, so that the step only reads them (on a GPU: from device memory): plain
        SGD's weight decay 1 - lr * l2 / N (with L2); -lr (and -lr * momentum for
        nesterov); Adam's step -lr / (1 - beta1^t), c2 = 1 / (1 - beta2^t) and adamw's decay
        1 - lr * weight_decay."""
        s = {}
        if self.name == "sgd" and self.l2:
            s["decay"] = 1.0 - lr * self.l2 / self.n_train
        elif self.name in ("momentum", "nesterov"):
            s["neg_lr"] = -lr
            if self.name == "nesterov":
                s["neg_lr_mu"] = -lr * self.momentum
        elif self.name in ("adam", "adamw"):
            s["step"] = -lr * (1.0 / (1.0 - self.beta1**t))
            s["c2"] = 1.0 / (1.0 - self.beta2**t)
            if self.name == "adamw" and self.weight_decay:
                s["decay"] = 1.0 - lr * self.weight_decay
        return s

    def sgd_coefficients(self, s, is_weight: bool):
        """(alpha, beta) of SGD's p <- beta * p + alpha * lr * g, with the lr already folded
        into the gradient: the seeds' L2 as the decay 1 - lr * l2 / N of the weights."""
        return -1.0, s["decay"] if is_weight and self.l2 else 1.0

    def coefficients(self, s, is_weight: bool) -> dict:
        """The coefficients of ``Ops.optimizer_update`` for a weight or a bias, from the step's
        scalars ``s`` (``step_scalars``) and the settings."""
        c = {
            "l2c": s.get("l2c", self.l2 / self.n_train) if is_weight and self.l2 else 0.0,
            "mu": s.get("mu", self.momentum),
            "b1": self.beta1,
            "b1c": 1.0 - self.beta1,
            "b2": self.beta2,
            "b2c": 1.0 - self.beta2,
            "eps": self.eps,
        }
        for name in ("neg_lr", "neg_lr_mu", "step", "c2"):
            if name in s:
                c[name] = s[name]
        c["decay"] = s["decay"] if is_weight and "decay" in s else 1.0
        return c

    def update(self, ops, p, g, slots: list, s, is_weight: bool):
        """One step of parameter p with gradient g (g may be overwritten); returns
        (new p, new slots). Not used for SGD (see ``fused``)."""
        return ops.optimizer_update(self.rule, p, g, slots, self.coefficients(s, is_weight))


def init_slots(opt: Optimizer, ops, layers) -> list:
    """Zero slots shaped (and laid out) like each layer's W and b: [[W slots, b slots], ...]."""
    return [[[ops.zeros_like(a) for _ in range(opt.slots)] for a in (W, b)] for W, b in layers]


def max_norm(ops, Wt, limit: float):
    """Rescale each unit's incoming weight vector (a column of W^T (in, out), or of each member's
    (K, in, out)) to norm <= limit (a number, or per member (K, 1, 1))."""
    row = ops.work((*Wt.shape[:-2], 1, Wt.shape[-1]), Wt, "max_norm")
    n = ops.sum_squares(Wt, -2, out=row)
    n = ops.sqrt(n, out=n)
    n = ops.add(n, 1e-12, out=n)
    n = ops.divide(limit, n, out=n)
    n = ops.minimum(n, 1.0, out=n)
    return ops.multiply(Wt, n, out=Wt)


def lr_at(base_lr, schedule: str, progress: float, epochs: int, warmup: float = 0.0):
    """Learning rate at ``progress`` epochs into a run of ``epochs`` (a float: per-step schedules);
    ``base_lr`` a float, or an array of rates on one schedule (a population's: each element
    rounded as the float's would be).

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
        lr = lr * ((progress + 1e-2) / warmup)
    return lr
