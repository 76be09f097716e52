"""The training loop: epochs of device-side mini-batches, evaluation, reporting, checkpoints.

No step reads a value back to the host: the epoch's loss is summed on the
device and read once at the end of the epoch (one sync per epoch).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from . import checkpoint, data, kernels, model, optim
from .model import params_to_device  # noqa: F401  (re-exported for callers of train)
from .errors import UserError


@dataclass
class TrainConfig:
    """Every setting of a training run (the CLI flags of ``xpnet train``)."""

    layers: tuple[int, ...] | None = None  # full sizes, input first; checked against the data
    hidden: tuple[int, ...] = (512, 256)  # hidden sizes when layers is None
    activation: str = "relu"
    output: str = "softmax"
    init: str = "auto"
    lr: float = 0.2
    lr_schedule: str = "cosine"
    batch_size: int = 32
    epochs: int = 15
    l2: float = 0.0
    seed: int = 0
    validation: int = 10000
    dtype: str = "float32"
    backend: str | None = None
    device: str = "auto"
    data_dir: str | None = None
    save: str | None = None
    quiet: bool = False

    def check(self) -> None:
        """Reject values no run can use, naming the flag."""
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr {self.lr}: must be a positive number")
        if self.lr_schedule not in optim.SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule}: expected one of {', '.join(optim.SCHEDULES)}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.epochs < 0:
            raise UserError(f"--epochs {self.epochs}: must be >= 0")
        if not (self.l2 >= 0 and math.isfinite(self.l2)):
            raise UserError(f"--l2 {self.l2}: must be >= 0")
        if self.validation < 0:
            raise UserError(f"--validation {self.validation}: must be >= 0")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"--dtype {self.dtype}: expected float32 or float64")
        if self.save:
            target = Path(self.save)
            if target.is_dir():
                raise UserError(f"--save {self.save}: is a directory; give a file name such as model.npz")
            if not target.parent.is_dir():
                raise UserError(f"--save {self.save}: folder {target.parent} does not exist")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        d["hidden"] = list(self.hidden)
        return d


def resolve_spec(cfg: TrainConfig, num_features: int, num_classes: int) -> model.Spec:
    """The architecture from the config and the data's input and class counts."""
    if cfg.layers:
        sizes = tuple(cfg.layers)
        if len(sizes) < 2:
            raise UserError(f"--layers {','.join(map(str, sizes))}: need at least an input and an output size")
        if sizes[0] != num_features:
            raise UserError(f"--layers: input size {sizes[0]} does not match the data's {num_features} pixels per image")
        if sizes[-1] != num_classes:
            raise UserError(f"--layers: output size {sizes[-1]} does not match the data's {num_classes} classes")
    else:
        sizes = (num_features, *cfg.hidden, num_classes)
    if any(s < 1 for s in sizes):
        raise UserError(f"--layers {','.join(map(str, sizes))}: sizes must be >= 1")
    return model.Spec(sizes, cfg.activation, cfg.output, cfg.init)


def params_to_host(params):
    from .backend import to_host

    return [(np.ascontiguousarray(to_host(W)), to_host(b)) for W, b in params]


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


def _progress(total: int, epoch: int, epochs: int, quiet: bool):
    """A tqdm bar on a terminal, or None."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="img", leave=False, file=sys.stderr)


@dataclass
class Result:
    spec: model.Spec
    params: list
    history: list = field(default_factory=list)
    test_correct: int = 0
    test_total: int = 0


def run_epoch(params, train: data.DeviceData, perm, spec, cfg: TrainConfig, lr: float, bar=None):
    """One pass over ``train`` in the order ``perm`` (device int array) at learning rate ``lr``.

    Returns (params, summed loss as a 0-d array, not yet read). Uses the backend's fused
    step where ``kernels`` has one, else the portable array-API step. ``bar`` gets
    updated every few steps.
    """
    xp = array_namespace(train.x)
    n, bs = len(train), cfg.batch_size
    fused = kernels.fused_step(params, spec)
    decay = 1.0 - lr * cfg.l2 / n
    loss_sum = xp.zeros((), dtype=train.x.dtype, device=device_of(train.x))
    every = max(1, 2048 // bs)
    for step, start in enumerate(range(0, n, bs)):
        idx = perm[start:min(start + bs, n)]
        if fused is not None:
            fused(train.x, train.onehot, idx, lr, decay)
        else:
            xb = xp.take(train.x, idx, axis=0)
            yb = xp.take(train.onehot, idx, axis=0)
            loss, grads = model.loss_and_grads_2d(params, xb, yb, spec)
            params = optim.step(params, grads, lr, cfg.l2, n)
            loss_sum = loss_sum + loss * xb.shape[0]
        if bar is not None and step % every == every - 1:
            bar.update(every * bs)
    if fused is not None:
        loss_sum = fused.loss_sum
    return params, loss_sum


def train(cfg: TrainConfig, backend, dataset: data.Dataset, say=print) -> Result:
    """Train per ``cfg`` on ``dataset`` with ``backend``; prints one line per epoch and the test line."""
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    spec = resolve_spec(cfg, dataset.num_features, dataset.num_classes)
    train_split, val_split = data.split_validation(dataset.train, cfg.validation)

    params = model.params_to_device(backend, model.init_params_host(spec, rng), cfg.dtype)
    train_dev = data.to_device(backend, train_split, cfg.dtype, dataset.num_classes)
    val_dev = data.to_device(backend, val_split) if val_split is not None else None
    n = len(train_dev)
    say(
        f"training {'-'.join(map(str, spec.sizes))} {spec.activation}/{spec.output} on {n} images "
        f"({dataset.source}), {backend.name} on {backend.label}, {cfg.dtype}, "
        f"lr {cfg.lr} ({cfg.lr_schedule}), batch {cfg.batch_size}, {cfg.epochs} epochs"
    )
    result = Result(spec, params)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = backend.asarray(rng.permutation(n))  # the epoch's one host->device copy
        bar = _progress(n, epoch, cfg.epochs, cfg.quiet)
        try:
            lr = optim.epoch_lr(cfg.lr, cfg.lr_schedule, epoch, cfg.epochs)
            with np.errstate(all="ignore"):  # overflow shows up as a non-finite loss, reported below
                params, loss_sum = run_epoch(params, train_dev, perm, spec, cfg, lr, bar)
            loss = float(loss_sum) / n  # the epoch's sync
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t0
        if not math.isfinite(loss):
            raise Diverged(f"training diverged at epoch {epoch}: the loss is {loss}; try a smaller --lr (now {cfg.lr})")
        entry = {"epoch": epoch, "loss": loss, "lr": lr, "seconds": seconds, "samples_per_s": n / seconds}
        line = f"epoch {epoch:>3}/{cfg.epochs}  loss {loss:.4f}"
        if val_dev is not None:
            c, t = accuracy(params, val_dev, spec, cfg.dtype)
            entry["val_accuracy"] = c / t
            line += f"  val acc {100.0 * c / t:6.2f}%"
        line += f"  {seconds:6.2f}s  {n / seconds:9.0f} samples/s"
        say(line)
        result.history.append(entry)
    result.params = params
    test_dev = data.to_device(backend, dataset.test)
    result.test_correct, result.test_total = accuracy(params, test_dev, spec, cfg.dtype)
    if cfg.save:
        metrics = {"history": result.history, "test_accuracy": result.test_correct / result.test_total}
        config = cfg.to_dict() | {"image_shape": list(dataset.image_shape), "num_classes": dataset.num_classes}
        checkpoint.save(cfg.save, spec, params_to_host(params), config, metrics)
        say(f"saved {cfg.save}")
    say(format_accuracy(result.test_correct, result.test_total))
    return result


class Diverged(Exception):
    """The loss became NaN or infinite (exit code 1)."""

    exit_code = 1
