"""The training loop: epochs of device-side mini-batches, evaluation, reporting, checkpoints.

No step reads a value back to the host: the loss is summed on the device and read
once per 64k samples (to catch divergence early and feed the progress bar) and at
the end of each epoch.
"""

from __future__ import annotations

import importlib.util
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from . import augment, checkpoint, data, kernels, model, optim, rand
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
    warmup: float = 0.0  # epochs of linear warm-up
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0  # adamw's decoupled decay
    dropout: float = 0.0  # on hidden layers
    max_norm: float = 0.0  # 0: off
    label_smoothing: float = 0.0
    augment: str = "none"
    early_stop: int = 0  # patience in epochs on validation accuracy; 0: off
    batch_size: int = 32
    epochs: int = 20
    l2: float = 0.0
    seed: int = 0
    validation: int = 10000
    dtype: str = "float32"
    backend: str | None = None
    device: str = "auto"
    data_dir: str | None = None
    save: str | None = None
    log: str | None = None  # append one JSON object per epoch
    plots: str | None = None  # folder for learning curves, confusion matrix, mistakes
    quiet: bool = False

    def check(self) -> None:
        """Reject values no run can use, naming the flag."""
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr {self.lr}: must be a positive number")
        if self.lr_schedule not in optim.SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule}: expected one of {', '.join(optim.SCHEDULES)}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise UserError(f"--optimizer {self.optimizer}: expected one of {', '.join(optim.OPTIMIZERS)}")
        if self.augment not in augment.KINDS:
            raise UserError(f"--augment {self.augment}: expected one of {', '.join(augment.KINDS)}")
        for flag, value, lo, hi in (("--dropout", self.dropout, 0.0, 0.95), ("--label-smoothing", self.label_smoothing, 0.0, 0.5),
                                    ("--momentum", self.momentum, 0.0, 0.999)):
            if not lo <= value <= hi:
                raise UserError(f"{flag} {value}: must be between {lo} and {hi}")
        for flag, value in (("--warmup", self.warmup), ("--weight-decay", self.weight_decay), ("--max-norm", self.max_norm)):
            if not (value >= 0 and math.isfinite(value)):
                raise UserError(f"{flag} {value}: must be >= 0")
        if self.early_stop < 0:
            raise UserError(f"--early-stop {self.early_stop}: must be >= 0")
        if self.early_stop and not self.validation:
            raise UserError("--early-stop needs a validation split (--validation N > 0)")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.epochs < 0:
            raise UserError(f"--epochs {self.epochs}: must be >= 0")
        if not (self.l2 >= 0 and math.isfinite(self.l2)):
            raise UserError(f"--l2 {self.l2}: must be >= 0")
        if self.validation < 0:
            raise UserError(f"--validation {self.validation}: must be >= 0")
        if self.seed < 0:
            raise UserError(f"--seed {self.seed}: must be >= 0")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"--dtype {self.dtype}: expected float32 or float64")
        if self.log and (Path(self.log).is_dir() or not Path(self.log).parent.is_dir()):
            raise UserError(f"--log {self.log}: not a file in an existing folder")
        if self.plots and not Path(self.plots).is_dir():
            raise UserError(f"--plots {self.plots}: not a directory")
        if self.plots and importlib.util.find_spec("matplotlib") is None:
            raise UserError(f"--plots {self.plots}: pictures need matplotlib: pip install 'xpnet[plots]'")
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


class _StopAt(Exception):
    """Raised inside run_epoch when ``stop()`` turned true: steps [0, step) of the epoch are done."""

    def __init__(self, step: int, loss_sum: float, params):
        super().__init__(step)
        self.step, self.loss_sum, self.params = step, loss_sum, params


class _NonFinite(Exception):
    """The running loss was NaN or infinite when read after ``step`` steps."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def _dropout_masks(like, spec: model.Spec, rate: float, seed: int, step: int):
    """Inverted-dropout masks for the hidden layers of a batch: 0 or 1/keep, from rand."""
    xp = array_namespace(like)
    keep = 1.0 - rate
    masks = []
    for layer, size in enumerate(spec.sizes[1:-1]):
        u = rand.uniform(like, (like.shape[0], size), seed, 0xD0 + layer, step)
        masks.append(xp.astype(u < keep, like.dtype) * (1.0 / keep))
    return masks


def run_epoch(params, train: data.DeviceData, perm, spec, cfg: TrainConfig, lr, bar=None,
              start: int = 0, loss_sum=0.0, stop=None, check_every: int = 0, opt_state=None, epoch: int = 1,
              image_shape=None):
    """Steps ``start``, ``start+1``, ... of one pass over ``train`` in the order ``perm``
    (device int array). ``lr``: a float, or a function of the step index giving the rate.

    Returns (params, summed loss as a 0-d array, not yet read). Plain SGD uses the backend's
    fused step where ``kernels`` has one; anything else (momentum, Adam, dropout, max-norm,
    augmentation) the portable array-API step, with ``opt_state`` (optim.init_state) updated
    in place. Every ``check_every`` steps (0: never) the running loss is read (one sync) to
    catch divergence and feed ``bar``; after any step where ``stop()`` is true, raises _StopAt.
    """
    xp = array_namespace(train.x)
    n, bs = len(train), cfg.batch_size
    rate = lr if callable(lr) else (lambda step: lr)
    plain = cfg.optimizer == "sgd" and not cfg.dropout and not cfg.max_norm and cfg.augment == "none"
    fused = kernels.fused_step(params, spec) if plain else None
    hp = optim.Hyper(cfg.optimizer, cfg.momentum, weight_decay=cfg.weight_decay, l2=cfg.l2, n_train=n)
    if opt_state is None:
        opt_state = optim.init_state(cfg.optimizer, params)
    total = xp.asarray(loss_sum, dtype=xp.float64 if fused is not None else train.onehot.dtype, device=device_of(train.x))
    if fused is not None:
        fused.loss_sum += total  # in place on NumPy and torch; JAX rebinds
        fused.begin_epoch(train.x, train.onehot, perm, bs)
    per_epoch = -(-n // bs)
    steps = range(start, per_epoch)
    for step in steps:
        step_lr = rate(step)
        if fused is not None:
            fused.step(step, step_lr, 1.0 - step_lr * cfg.l2 / n)
        else:
            counter = (epoch - 1) * per_epoch + step  # the global step: picks masks and augmentations
            idx = perm[step * bs:min(step * bs + bs, n)]
            xb = data.unit_floats(xp.take(train.x, idx, axis=0), train.onehot.dtype)
            yb = xp.take(train.onehot, idx, axis=0)
            if cfg.augment != "none":
                xb = augment.augment(xb, cfg.augment, image_shape, cfg.seed, counter)
            masks = _dropout_masks(xb, spec, cfg.dropout, cfg.seed, counter) if cfg.dropout else None
            loss, grads = model.loss_and_grads_2d(params, xb, yb, spec, masks)
            params, new_state = optim.apply(params, grads, opt_state, step_lr, hp)
            opt_state.update(new_state)
            if cfg.max_norm:
                params = optim.max_norm(params, cfg.max_norm)
            total = total + loss * xb.shape[0]
        done = step + 1
        if check_every and done % check_every == 0:
            running = float(fused.loss_total() if fused is not None else total)
            if not math.isfinite(running):
                raise _NonFinite(done)
            if bar is not None:
                bar.update(min(done * bs, n) - bar.n)
                bar.set_postfix(loss=f"{running / min(done * bs, n):.4f}", refresh=False)
        if stop is not None and stop() and done < len(steps) + start:
            if fused is not None:
                params, total = fused.params, fused.loss_total()
            raise _StopAt(done, float(total), params)
    if fused is not None:
        params, total = fused.params, fused.loss_total()
    return params, total


class _SignalFlag:
    """While active, SIGINT and SIGTERM set a flag (the step in flight finishes) instead of
    killing the process; a second SIGINT interrupts at once."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _start_state(cfg: TrainConfig, spec, backend, resume):
    """(params on the device, optimiser state, host rng, first epoch, first step, partial loss,
    history, best validation accuracy)."""
    if resume is None:
        rng = np.random.default_rng(cfg.seed)
        params = model.params_to_device(backend, model.init_params_host(spec, rng), cfg.dtype)
        return params, optim.init_state(cfg.optimizer, params), rng, 1, 0, 0.0, [], -1.0
    r_spec, host_params, meta = resume
    if r_spec != spec:
        raise UserError(f"--resume: the checkpoint's network {'-'.join(map(str, r_spec.sizes))} "
                        f"{r_spec.activation}/{r_spec.output} is not this run's {'-'.join(map(str, spec.sizes))} {spec.activation}/{spec.output}")
    state = meta.get("state") or {}
    try:
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        epoch, step, partial = int(state["epoch"]), int(state["step"]), float(state["loss_partial"])
        t, best = int(state["optimizer"]["t"]), float(state.get("best_val", -1.0))
        history = list(meta.get("metrics", {}).get("history", []))
        if state["optimizer"]["name"] != cfg.optimizer:
            raise ValueError(f"it was trained with --optimizer {state['optimizer']['name']}")
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"--resume: the checkpoint has no usable training state ({e})") from None
    params = model.params_to_device(backend, host_params, cfg.dtype)
    opt_state = optim.init_state(cfg.optimizer, params)
    opt_state["t"] = t
    if optim.SLOTS[cfg.optimizer]:
        if not meta.get("slots"):
            raise UserError("--resume: the checkpoint lacks the optimiser's state arrays")
        opt_state["slots"] = [[[backend.asarray(np.array(a, dtype=cfg.dtype)) for a in slot] for slot in pair] for pair in meta["slots"]]
    return params, opt_state, rng, epoch, step, partial, history, best


def train(cfg: TrainConfig, backend, dataset: data.Dataset, say=print, resume=None) -> Result:
    """Train per ``cfg`` on ``dataset`` with ``backend``; prints one line per epoch and the test line.

    ``resume``: a loaded checkpoint (spec, host params, meta) whose training state to continue.
    With ``cfg.save`` a resumable checkpoint is written after every epoch and on SIGINT/SIGTERM.
    """
    cfg.check()
    spec = resolve_spec(cfg, dataset.num_features, dataset.num_classes)
    train_split, val_split = data.split_validation(dataset.train, cfg.validation)
    params, opt_state, rng, first_epoch, first_step, partial, history, best_val = _start_state(cfg, spec, backend, resume)
    train_dev = data.to_device(backend, train_split, cfg.dtype, dataset.num_classes, cfg.label_smoothing)
    val_dev = data.to_device(backend, val_split) if val_split is not None else None
    n = len(train_dev)
    config = cfg.to_dict() | {"image_shape": list(dataset.image_shape), "num_classes": dataset.num_classes}

    def save(params, epoch, step, rng_state, loss_partial, metrics=None):
        state = {"epoch": epoch, "step": step, "rng": rng_state, "loss_partial": loss_partial, "best_val": best_val,
                 "optimizer": {"name": cfg.optimizer, "t": opt_state["t"]}}
        slots = [[[backend.to_host(a) for a in slot] for slot in pair] for pair in opt_state["slots"]]
        checkpoint.save(cfg.save, spec, params_to_host(params), config, {"history": history, **(metrics or {})}, state, slots)

    say(
        f"training {'-'.join(map(str, spec.sizes))} {spec.activation}/{spec.output} on {n} images "
        f"({dataset.source}), {backend.name} on {backend.label}, {cfg.dtype}, "
        f"lr {cfg.lr} ({cfg.lr_schedule}), batch {cfg.batch_size}, {cfg.epochs} epochs"
        + (f", resuming at epoch {first_epoch} step {first_step}" if resume is not None else "")
    )
    check_every = max(1, 65536 // cfg.batch_size)  # about one loss read per 64k samples
    best_epoch, best_params = first_epoch - 1, None
    with _SignalFlag() as stop:
        for epoch in range(first_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            rng_state = rng.bit_generator.state  # before this epoch's permutation: enough to redo it
            perm = backend.asarray(rng.permutation(n))  # the epoch's one host->device copy
            per_epoch = -(-n // cfg.batch_size)

            def lr_of(step, epoch=epoch, per_epoch=per_epoch):
                return optim.lr_at(cfg.lr, cfg.lr_schedule, epoch - 1 + step / per_epoch, cfg.epochs, cfg.warmup)

            lr = lr_of(0)  # the rate at the epoch's start, for the log

            start, loss0 = (first_step, partial) if epoch == first_epoch else (0, 0.0)
            bar = _progress(n, epoch, cfg.epochs, cfg.quiet)
            try:
                with np.errstate(all="ignore"):  # overflow shows up as a non-finite loss, reported below
                    params, loss_sum = run_epoch(params, train_dev, perm, spec, cfg, lr_of, bar, start, loss0, stop,
                                                 check_every, opt_state, epoch, dataset.image_shape)
                loss = float(loss_sum) / n  # the epoch's sync
            except _StopAt as e:
                return _stopped(cfg, stop.signum, e, save, epoch, rng_state, say)
            except _NonFinite as e:
                raise _diverged(cfg, history, f"epoch {epoch}, step {e.step}") from None
            finally:
                if bar is not None:
                    bar.close()
            if not math.isfinite(loss):
                raise _diverged(cfg, history, f"epoch {epoch}")
            seconds = time.perf_counter() - t0
            entry = {"epoch": epoch, "step": epoch * per_epoch, "loss": loss, "lr": lr,
                     "seconds": seconds, "samples_per_s": (n - start * cfg.batch_size) / seconds,
                     "backend": backend.name, "device": backend.label}
            line = f"epoch {epoch:>3}/{cfg.epochs}  loss {loss:.4f}"
            if cfg.log or cfg.plots:
                c, t = accuracy(params, train_dev, spec, cfg.dtype)
                entry["train_accuracy"] = c / t
            if val_dev is not None:
                c, t = accuracy(params, val_dev, spec, cfg.dtype)
                entry["val_accuracy"] = c / t
                line += f"  val acc {100.0 * c / t:6.2f}%"
            say(line + f"  {seconds:6.2f}s  {entry['samples_per_s']:9.0f} samples/s")
            history.append(entry)
            if cfg.log:
                _append_log(cfg.log, entry)
            improved = val_dev is not None and entry["val_accuracy"] > best_val
            if improved:
                best_val, best_epoch = entry["val_accuracy"], epoch
                if cfg.early_stop:
                    best_params = params_to_host(params)
            if cfg.save and (improved or not cfg.early_stop):  # with --early-stop the file keeps the best epoch
                save(params, epoch + 1, 0, rng.bit_generator.state, 0.0)
            if cfg.early_stop and epoch - best_epoch >= cfg.early_stop:
                say(f"early stop: validation accuracy has not improved for {cfg.early_stop} epochs; "
                    f"using epoch {best_epoch} ({100 * best_val:.2f}%)")
                break
            if stop():
                return _stopped(cfg, stop.signum, _StopAt(0, 0.0, params), save, epoch + 1, rng.bit_generator.state, say)
    if cfg.early_stop and best_params is not None:
        params = model.params_to_device(backend, best_params, cfg.dtype)
    result = Result(spec, params, history)
    test_dev = data.to_device(backend, dataset.test)
    preds = backend.to_host(predictions(params, test_dev, spec, cfg.dtype))
    result.test_correct, result.test_total = int((preds == dataset.test.labels).sum()), len(dataset.test)
    if cfg.save:
        done = (best_epoch + 1) if cfg.early_stop and best_params is not None else cfg.epochs + 1
        save(params, done, 0, rng.bit_generator.state, 0.0, {"test_accuracy": result.test_correct / result.test_total})
        say(f"saved {cfg.save}")
    if cfg.plots:
        _draw(cfg.plots, history, dataset, preds, say)
    say(format_accuracy(result.test_correct, result.test_total))
    return result


def _diverged(cfg: TrainConfig, history, where: str) -> "Diverged":
    kept = f"; {cfg.save} holds the last good epoch" if cfg.save and history else ""
    return Diverged(f"training diverged at {where}: the loss is not finite; try a smaller --lr (now {cfg.lr}){kept}")


def _draw(folder: str, history, dataset: data.Dataset, preds, say) -> None:
    """Learning curves, the test confusion matrix and a grid of misclassified test digits."""
    from . import plots

    labels = dataset.test.labels
    wrong = np.flatnonzero(preds != labels)[:50]
    paths = [
        plots.learning_curves(history, Path(folder) / "curves.png"),
        plots.confusion(labels, preds, dataset.num_classes, Path(folder) / "confusion.png"),
        plots.digit_grid(dataset.test.images[wrong], [f"{preds[i]} (true {labels[i]})" for i in wrong],
                         Path(folder) / "mistakes.png", title=f"{len(np.flatnonzero(preds != labels))} test digits misclassified (first {len(wrong)}): predicted (true)"),
    ]
    say("plots: " + ", ".join(map(str, paths)))


def _append_log(path: str, entry: dict) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError as e:
        raise UserError(f"--log {path}: cannot append ({e.strerror or e})") from None


def _stopped(cfg, signum, e: _StopAt, save, epoch: int, rng_state, say):
    """After SIGINT/SIGTERM: save a resumable checkpoint (with --save), say how to resume, raise Stopped."""
    name = signal.Signals(signum).name
    if cfg.save:
        save(e.params, epoch, e.step, rng_state, e.loss_sum)
        say(f"{name}: stopped at epoch {epoch}, step {e.step}; saved {cfg.save}. Resume with: xpnet train --resume {cfg.save}")
    else:
        say(f"{name}: stopped at epoch {epoch}, step {e.step}; nothing saved (use --save PATH to make runs resumable)")
    raise Stopped(128 + signum)


class Stopped(Exception):
    """Training stopped on a signal; exit_code is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code


class Diverged(Exception):
    """The loss became NaN or infinite (exit code 1)."""

    exit_code = 1
