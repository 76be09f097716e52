"""The training loop: epochs of device-side chunks of steps, reporting, checkpoints, signals.

No step reads a value back to the host: the loss is summed on the device and read about every
10 seconds (to catch divergence early) and at each epoch's end; the progress bar advances from
the host's own count of the steps queued, a few times a second, without waiting for the device.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xpnet import backends, config
from xpnet import callbacks as cb
from xpnet.backends import threads, to_host
from xpnet.engine import budget, data, evaluate, model, optim
from xpnet.engine.evaluate import format_accuracy
from xpnet.engine.step import Net, StepOptions, Steps
from xpnet.errors import Diverged, Stopped, UserError, named
from xpnet.files import checkpoint, idx
from xpnet.settings import TrainConfig

INIT_STREAM = (
    0x1417  # with --init-seed, the host generator of the initial weights: default_rng([init_seed, INIT_STREAM])
)
CHECK_SECONDS = 10.0  # the running loss is read (a device sync) at least this often, for the divergence check
BAR_SECONDS = 0.25  # the progress bar is redrawn at most this often


@dataclass
class TrainState:
    """What a run carries from epoch to epoch, and what a checkpoint keeps to resume it."""

    net: Net  # layers and optimiser slots, on the device
    rng: np.random.Generator  # the host generator: the next epoch's batch order
    epoch: int = 1  # the epoch in progress (1-based)
    step: int = 0  # its steps already done
    t: int = 0  # optimiser steps taken since the start of the run
    loss_partial: float = 0.0  # the summed loss of the epoch's steps already done
    history: list = field(default_factory=list)
    best_val: float = -math.inf  # the best validation score so far (accuracy, or a regressor's R²)
    best_val_loss: float = math.inf  # the lowest validation loss so far
    improved: bool = False  # whether the last epoch reached it


@dataclass
class Result:
    spec: model.Spec
    params: list
    history: list = field(default_factory=list)
    test_correct: int = 0
    test_total: int = 0
    state: TrainState | None = None  # where the run ended (``train(..., state=)`` goes on from it)
    failure: str | None = None  # why a population's member stopped short (it diverged); None: it finished


class StopAt(Exception):
    """A signal asked to stop: steps [0, step) of the epoch are done."""

    def __init__(self, step: int, loss_sum: float):
        super().__init__(step)
        self.step, self.loss_sum = step, loss_sum


class NonFinite(Exception):
    """The running loss was NaN or infinite when read after ``step`` steps."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def _weighed(weights: np.ndarray | None, split: str) -> np.ndarray | None:
    """The rows' weights of a split (None: unweighed), refused when they are all 0."""
    if weights is not None and not weights.sum() > 0:
        raise UserError(f"every row of the {split} split weighs 0 (its sample and class weights)")
    return weights


def params_to_host(params):
    """Host copies [(W (1,out,in), b (1,out,1)), ...] of the parameters: copies even on NumPy,
    whose training goes on updating its arrays in place (early stopping keeps a copy)."""
    return [(np.array(to_host(W), order="C", copy=True), np.array(to_host(b), copy=True)) for W, b in params]


def start_state(cfg: TrainConfig, spec: model.Spec, backend, resume: checkpoint.Saved | None) -> TrainState:
    """A fresh run's state, or a checkpoint's. A fresh run's initial weights come from the
    seed's generator, which then orders the batches; or with ``init_seed`` from a generator of
    their own, the seed's ordering the batches alone (runs differing only in ``init_seed``
    see the same batches)."""
    optimizer = optim.Optimizer(cfg.optimizer)
    if resume is None:
        rng, host_params = initial(cfg, spec)
        layers = model.layers_of(model.params_to_device(backend, host_params, cfg.dtype))
        return TrainState(Net(layers, optim.init_slots(optimizer, backend.ops, layers)), rng)
    host_params, meta = resume.params, resume.meta
    if resume.spec != spec:
        raise UserError(
            f"{named('resume')}: the checkpoint's network {resume.spec.describe()} is not this run's {spec.describe()}"
        )
    s = meta.get("state") or {}
    try:
        rng = np.random.default_rng()
        rng.bit_generator.state = s["rng"]
        state = TrainState(
            None,
            rng,
            int(s["epoch"]),
            int(s["step"]),
            int(s["optimizer"]["t"]),
            float(s["loss_partial"]),
            list(meta.get("metrics", {}).get("history", [])),
            float(s.get("best_val", -math.inf)),
            float(s.get("best_val_loss", math.inf)),
        )
        if s["optimizer"]["name"] != cfg.optimizer:
            raise ValueError(f"it was trained with {named('optimizer')} {s['optimizer']['name']}")
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{named('resume')}: the checkpoint has no usable training state ({e})") from None
    layers = model.layers_of(model.params_to_device(backend, host_params, cfg.dtype))
    slots = optim.init_slots(optimizer, backend.ops, layers)
    if optimizer.slots:
        if not meta.get("slots"):
            raise UserError(f"{named('resume')}: the checkpoint lacks the optimiser's state arrays")
        slots = [_slots_from_host(backend, cfg.dtype, zeros, saved) for zeros, saved in zip(slots, meta["slots"])]
    state.net = Net(layers, slots)
    return state


def initial(cfg: TrainConfig, spec: model.Spec):
    """A fresh run's (host generator, initial parameters on the host): the weights drawn from
    the seed's generator, which then orders the batches, or with ``init_seed`` from a generator
    of their own."""
    rng = np.random.default_rng(cfg.seed)
    init = rng if cfg.init_seed is None else np.random.default_rng([cfg.init_seed, INIT_STREAM])
    return rng, model.init_params_host(spec, init)


def _slots_from_host(backend, dtype: str, zeros, saved):
    """A layer's checkpointed slots ([[W slots (1,out,in)], [b slots (1,out,1)]], host) copied
    into its fresh slots (laid out like the layer's W^T and b)."""
    ops = backend.ops
    dev = model.layers_of(
        [(backend.asarray(np.array(W, dtype=dtype)), backend.asarray(np.array(b, dtype=dtype))) for W, b in zip(*saved)]
    )
    return [
        [ops.copy(src, out=a) for a, (src, _) in zip(zeros[0], dev)],
        [ops.copy(src, out=a) for a, (_, src) in zip(zeros[1], dev)],
    ]


def _public_slots(slots):
    """Slots shaped like the layers -> [[W slots (1,out,in)], [b slots (1,out,1)]] per layer."""
    out = []
    for sW, sb in slots:
        pairs = model.params_of(list(zip(sW, sb))) if sW else []
        out.append([[W for W, _ in pairs], [b for _, b in pairs]])
    return out


class SignalFlag:
    """While active, SIGINT and SIGTERM set a flag (the chunk in flight finishes) instead of
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


class Run:
    """One training run: the data on the device, the steps, the state, and the reporting."""

    def __init__(self, cfg: TrainConfig, backend, dataset: data.Dataset, say=print, resume=None, state=None):
        cfg.check()
        self.cfg, self.backend, self.dataset, self.say = cfg, backend, dataset, say
        self.spec = config.resolve_spec(cfg, dataset.num_features, dataset.num_classes)
        train_split, val_split = data.split_validation(dataset.train, cfg.validation)
        self.recipe = self.step_options(len(train_split), dataset.image_shape)
        n_other = len(dataset.train) - len(train_split) + len(dataset.test or ())  # validation and test images
        budget.check_run(
            cfg, self.spec.sizes, len(train_split), n_other, dataset.image_shape, backend, self.recipe.size
        )  # before allocating
        if dataset.regression and cfg.class_weight != "none":
            raise UserError(f"{named('class_weight')} {cfg.class_weight}: a regressor's targets have no classes")
        per_class = data.class_weights(train_split.labels, cfg.class_weight)  # from the rows trained on
        self.weights = _weighed(data.row_weights(train_split, per_class), "training")  # host (n,) or None
        val_weights = None if val_split is None else _weighed(data.row_weights(val_split, per_class), "validation")
        self.state = state if state is not None else self.start(resume)
        self.train = data.to_device(
            backend, train_split, cfg.dtype, dataset.num_classes, self.recipe.target_smoothing, self.weights
        )
        self.val = data.to_device(backend, val_split, cfg.dtype, weights=val_weights) if val_split is not None else None
        self.n = len(self.train)
        self.mass = self.n if self.weights is None else float(self.weights.sum())  # what an epoch's loss is a mean over
        self.per_epoch = -(-self.n // cfg.batch_size)
        self.masses = self.batch_masses()
        self.steps = Steps(
            backend.ops,
            self.spec,
            self.recipe,
            self.train.x,
            self.train.onehot,
            cfg.batch_size,
            graphs=cfg.cuda_graph,
            W=self.train.w,
        )
        self.resumed = resume is not None
        self.score_key = "val_r2" if dataset.regression else "val_accuracy"  # what the validation split is scored by
        self.threads = threads.Threads(backend.name, cfg.threads)
        self.threads.start()
        self.best_params, self.best_epoch = None, None  # what the run finishes with, when kept (``keep``)

    def lanes(self) -> int:
        """How many groups of members a chunk's steps run in, side by side (``Steps.run``): 1."""
        return 1

    def step_options(self, n_train: int, image_shape) -> StepOptions:
        """What the run's step does (``config.recipe``); a population's step, its members'."""
        return config.recipe(self.cfg, n_train, image_shape)

    def start(self, resume) -> TrainState:
        """The state the run starts from: fresh, or the checkpoint ``resume``'s (``start_state``)."""
        return start_state(self.cfg, self.spec, self.backend, resume)

    def keep(self, epoch: int) -> None:
        """Finish with the parameters as they are now, after ``epoch`` (a host copy), rather
        than the last epoch's (early stopping's best epoch)."""
        self.best_params, self.best_epoch = params_to_host(self.params), epoch

    @property
    def params(self):
        return model.params_of(self.state.net.layers)

    def lr(self, epoch: int, step: int) -> float:
        """The learning rate of step ``step`` of epoch ``epoch`` (per-step schedules)."""
        cfg = self.cfg
        return optim.lr_at(cfg.lr, cfg.lr_schedule, epoch - 1 + step / self.per_epoch, cfg.epochs, cfg.warmup)

    def batch_masses(self) -> np.ndarray:
        """What each step of an epoch divides its summed (weighted) loss by (per_epoch,)
        float64: its rows, times the rows' mean weight where they are weighed. So each step's
        gradient is an unbiased estimate of the gradient of the weighted mean loss over the
        training set (scikit-learn's objective), as a step on rows repeated per their integer
        weights would be; with the whole set in one batch it is exactly that gradient."""
        starts = np.arange(0, self.n, self.cfg.batch_size)
        rows = np.minimum(self.cfg.batch_size, self.n - starts).astype(np.float64)
        return rows if self.weights is None else rows * (self.mass / self.n)

    def run_epoch(self, perm, stop=None, bar=None, clock=time.monotonic) -> float:
        """The rest of the current epoch's steps, in the order ``perm`` (device ints); returns
        the epoch's summed loss (one host read). Raises StopAt when ``stop()`` turns true
        before the epoch's end, NonFinite when the running loss, read every CHECK_SECONDS,
        is not finite. ``bar`` (tqdm-like) advances every BAR_SECONDS from the steps queued."""
        st, bs, steps = self.state, self.cfg.batch_size, self.steps
        masses = self.masses
        total = steps.new_total()
        last_check = last_bar = clock()
        for first, k in steps.chunks(st.step, self.per_epoch):
            scalars = [
                self.recipe.scalars(
                    self.spec,
                    self.lr(st.epoch, j),
                    st.t + 1 + j - first,
                    (st.epoch - 1) * self.per_epoch + j,
                    float(masses[j]),
                )
                for j in range(first, first + k)
            ]
            total = steps.run(st.net, perm, first, k, scalars, total, lanes=self.lanes())
            st.t += k
            done, now = first + k, clock()
            self.threads.tick()
            if now - last_check >= CHECK_SECONDS:
                last_check = now
                running = self.read(total) + st.loss_partial
                if not np.isfinite(running).any():  # a population goes on while any member does
                    raise NonFinite(done)
                if bar is not None:
                    mean = np.min(running) / max(float(masses[:done].sum()), 1e-300)
                    bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
            if bar is not None and (now - last_bar >= BAR_SECONDS or done == self.per_epoch):
                last_bar = now
                bar.update(min(done * bs, self.n) - bar.n)
            if stop is not None and stop() and done < self.per_epoch:
                raise StopAt(done, self.read(total) + st.loss_partial)
        return self.read(total) + st.loss_partial

    def read(self, total) -> float:
        """The summed loss ``total`` (``Steps.new_total``) on the host (a device sync)."""
        return float(total)

    def save(self, epoch: int, step: int, rng_state, loss_partial: float, metrics=None, params=None) -> None:
        """Write the checkpoint (model, optimiser slots, and the state to resume at epoch/step)."""
        st, cfg = self.state, self.cfg
        state, slots = saved_state(cfg, st, epoch, step, rng_state, loss_partial)
        stored_config = cfg.to_checkpoint() | {
            "image_shape": list(self.dataset.image_shape),
            "num_classes": self.dataset.num_classes,
        }
        try:
            checkpoint.save(
                cfg.save,
                self.spec,
                params if params is not None else params_to_host(self.params),
                stored_config,
                {"history": st.history, **(metrics or {})},
                state,
                slots,
            )
        except checkpoint.NonFinite:  # nothing written: the file keeps the last good state
            raise diverged(
                cfg,
                st.history if Path(cfg.save).is_file() else [],
                f"epoch {epoch}, step {step}",
                "the weights or the loss are not finite (not saved)",
            ) from None


def saved_state(cfg: TrainConfig, st: TrainState, epoch: int, step: int, rng_state, loss_partial: float):
    """What a checkpoint keeps to resume ``st`` at epoch/step: (the state's record, the
    optimiser's slots on the host as [[W slots (1,out,in)], [b slots (1,out,1)]] per layer)."""
    state = {
        "epoch": epoch,
        "step": step,
        "rng": rng_state,
        "loss_partial": loss_partial,
        **({"best_val": st.best_val} if math.isfinite(st.best_val) else {}),
        **({"best_val_loss": st.best_val_loss} if math.isfinite(st.best_val_loss) else {}),
        "optimizer": {"name": cfg.optimizer, "t": st.t},
    }
    return state, [[[to_host(a) for a in slot] for slot in pair] for pair in _public_slots(st.net.slots)]


def train(
    cfg: TrainConfig,
    backend,
    dataset: data.Dataset,
    say=print,
    resume=None,
    callbacks=(),
    state=None,
    epochs: int | None = None,
) -> Result:
    """Train per ``cfg`` on ``dataset`` with ``backend``; prints one line per epoch and the test line.

    ``resume``: a loaded checkpoint (``checkpoint.Saved``) whose training state to continue.
    ``state``: a TrainState on ``backend`` to go on from instead (a previous ``Result.state``).
    ``epochs``: how many epochs to run, even past ``cfg.epochs`` (``MLPClassifier.partial_fit``
    runs one at a time); None: up to epoch ``cfg.epochs``.
    With ``cfg.save`` a resumable checkpoint is written after every epoch and on SIGINT/SIGTERM.
    ``callbacks`` (see ``xpnet.callbacks``) run after those ``cfg`` asks for (printing, --log,
    --save, --early-stop); any of them may stop the run after an epoch.
    """
    run = Run(cfg, backend, dataset, say, resume, state)
    st = run.state
    last = cfg.epochs if epochs is None else st.epoch + epochs - 1
    say(
        f"training {run.spec.describe()} on {run.n} images "
        f"({dataset.source}), {backend.name} on {backend.label}, {cfg.dtype}, "
        f"lr {cfg.lr} ({cfg.lr_schedule}), batch {cfg.batch_size}, {cfg.epochs} epochs"
        + (f", resuming at epoch {st.epoch} step {st.step}" if run.resumed else "")
    )
    where = f"{backend.name} on {backend.label}"
    for line in budget.summary(run.spec, cfg.dtype, cfg.optimizer, cfg.batch_size, where):
        say(line)
    callbacks = cb.standard(cfg) + list(callbacks)
    cb.call(callbacks, "on_train_begin", run)
    with SignalFlag() as stop:
        while st.epoch <= last:
            if epoch_done(run, _epoch(run, stop), callbacks):
                break
            if stop():
                _stopped(run, stop.signum, st.epoch, 0, st.rng.bit_generator.state, 0.0)
    result = finish(run)
    cb.call(callbacks, "on_train_end", result)
    return result


def epoch_done(run: Run, entry: dict, callbacks) -> bool:
    """After an epoch's report ``entry``: the best validation scores so far, the state moved to
    the next epoch, then the callbacks; whether any of them asks to stop."""
    cfg, st = run.cfg, run.state
    st.improved = run.val is not None and (
        entry.get("val_loss", math.inf) < st.best_val_loss
        if cfg.early_stop_on == "loss"
        else entry[run.score_key] > st.best_val
    )
    st.best_val = max(st.best_val, entry.get(run.score_key, -math.inf))
    st.best_val_loss = min(st.best_val_loss, entry.get("val_loss", math.inf))
    st.epoch, st.step, st.loss_partial = st.epoch + 1, 0, 0.0
    return any(cb.call(callbacks, "on_epoch_end", entry["epoch"], entry))


def _epoch(run: Run, stop) -> dict:
    """One epoch (or the rest of a resumed one): steps, then the report line and log entry."""
    cfg, st = run.cfg, run.state
    t0 = time.perf_counter()
    rng_state = st.rng.bit_generator.state  # before this epoch's permutation: enough to redo it
    perm = run.backend.asarray(st.rng.permutation(run.n))  # the epoch's one host->device copy
    start = st.step
    bar = progress(run.n, st.epoch, cfg.epochs, cfg.quiet)
    try:
        with run.backend.ops.errors_ignored():  # overflow shows up as a non-finite loss, reported below
            loss = run.run_epoch(perm, stop, bar) / run.mass
    except StopAt as e:
        _stopped(run, stop.signum, st.epoch, e.step, rng_state, e.loss_sum)
    except NonFinite as e:
        raise diverged(cfg, st.history, f"epoch {st.epoch}, step {e.step}") from None
    finally:
        if bar is not None:
            bar.close()
    if not math.isfinite(loss):
        raise diverged(cfg, st.history, f"epoch {st.epoch}")
    return report(run, loss, time.perf_counter() - t0, start)


def report(run: Run, loss: float, seconds: float, start: int, val=None) -> dict:
    """The epoch's entry (appended to the history) after its steps from ``start`` took
    ``seconds`` to a mean ``loss``: the rates, and the validation (and with --log or --plots
    the training) scores of the network as it is now; ``val``: a classifier's validation
    (correct, total, mean loss) where already known (a population scores its members at once)."""
    cfg, st = run.cfg, run.state
    entry = {
        "epoch": st.epoch,
        "step": st.epoch * run.per_epoch,
        "loss": loss,
        "lr": run.lr(st.epoch, 0),
        "seconds": seconds,
        "samples_per_s": (run.n - start * cfg.batch_size) / seconds,
        "backend": run.backend.name,
        "device": run.backend.label,
    }
    if (cfg.log or cfg.plots) and not run.dataset.regression:
        c, t = evaluate.accuracy(run.params, run.train, run.spec, cfg.dtype)
        entry["train_accuracy"] = c / t
    if run.val is not None and run.dataset.regression:
        entry["val_r2"], val_loss = evaluate.r2_and_loss(run.params, run.val, run.spec, cfg.dtype)
        if math.isfinite(val_loss):
            entry["val_loss"] = val_loss
    elif run.val is not None:
        smoothing = cfg.label_smoothing
        c, t, val_loss = val or evaluate.accuracy_and_loss(run.params, run.val, run.spec, cfg.dtype, smoothing)
        entry["val_accuracy"] = float(c / t)
        if math.isfinite(val_loss):  # outputs that overflow on the validation split: no loss to record
            entry["val_loss"] = val_loss
    st.history.append(entry)
    return entry


def finish(run: Run, preds=None) -> Result:
    """The test set, read once (unless the data set has none): the final checkpoint, the
    pictures and the result line. ``preds``: the test predictions (host (n,)) of the network as
    it is, where already known (a population predicts for its members at once)."""
    cfg, backend, dataset, say = run.cfg, run.backend, run.dataset, run.say
    params = run.params
    if run.best_params is not None:
        params = model.params_to_device(backend, run.best_params, cfg.dtype)
    result, metrics = Result(run.spec, params, run.state.history, state=run.state), {}
    if dataset.test is not None:
        if preds is None or run.best_params is not None:
            preds = evaluate.host_predictions(backend, params, dataset.test, run.spec, cfg.dtype)
        result.test_correct, result.test_total = int((preds == dataset.test.labels).sum()), len(dataset.test)
        metrics = {"test_accuracy": result.test_correct / result.test_total}
    if cfg.save:
        done = run.best_epoch + 1 if run.best_params is not None else run.state.epoch  # where a resume would go on
        run.save(done, 0, run.state.rng.bit_generator.state, 0.0, metrics, params=params_to_host(params))
        say(f"saved {cfg.save}")
    if dataset.test is None:
        return result
    say(
        format_accuracy(result.test_correct, result.test_total)
    )  # before the pictures: a failure to draw never hides it
    if cfg.plots:
        _draw(cfg.plots, run.state.history, dataset, preds, say)
    return result


def progress(total: int, epoch: int, epochs: int, quiet: bool):
    """A tqdm bar on a terminal, or None."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="img", leave=False, file=sys.stderr)


def diverged(cfg: TrainConfig, history, where: str, what: str = "the loss is not finite") -> Diverged:
    kept = f"; {cfg.save} holds the last good epoch" if cfg.save and history else ""
    return Diverged(f"training diverged at {where}: {what}; try a smaller {named('lr')} (now {cfg.lr}){kept}")


def _draw(folder: str, history, dataset: data.Dataset, preds, say) -> None:
    """Learning curves, the test confusion matrix and a grid of misclassified test digits."""
    from xpnet.files import plots

    labels = dataset.test.labels
    wrong = np.flatnonzero(preds != labels)[:50]
    paths = [
        plots.learning_curves(history, Path(folder) / "curves.png"),
        plots.confusion(labels, preds, dataset.num_classes, Path(folder) / "confusion.png"),
        plots.digit_grid(
            dataset.test.images[wrong],
            [f"{preds[i]} (true {labels[i]})" for i in wrong],
            Path(folder) / "mistakes.png",
            title=f"{len(np.flatnonzero(preds != labels))} test digits misclassified (first "
            f"{len(wrong)}): predicted (true)",
        ),
    ]
    say("plots: " + ", ".join(map(str, paths)))


def _stopped(run: Run, signum, epoch: int, step: int, rng_state, loss_partial: float):
    """After SIGINT/SIGTERM: save a resumable checkpoint (with --save), say how to resume, raise Stopped."""
    cfg, say = run.cfg, run.say
    name = signal.Signals(signum).name
    if cfg.save:
        run.save(epoch, step, rng_state, loss_partial)
        say(
            f"{name}: stopped at epoch {epoch}, step {step}; saved {cfg.save}. Resume with: "
            f"xpnet train --resume {cfg.save}"
        )
    else:
        say(f"{name}: stopped at epoch {epoch}, step {step}; nothing saved (use --save PATH to make runs resumable)")
    raise Stopped(128 + signum)


def pick_backend(where, say) -> backends.Backend:
    """The Backend for ``where.backend`` / ``where.device`` / ``where.tf32`` (flags or a
    TrainConfig), announced in one line."""
    be = backends.resolve(where.backend, where.device, tf32=getattr(where, "tf32", False))
    extra = f" ({be.note})" if be.note else ""
    say(f"device: {be.label}, backend {be.name}{extra}")
    return be


class Outcome(NamedTuple):
    """What ``train_from`` made: the resolved settings, the data, the backend and the result."""

    cfg: TrainConfig
    dataset: data.Dataset
    backend: backends.Backend
    result: Result


def check_plots(cfg: TrainConfig) -> None:
    """With --plots, a folder the pictures can be written to, before any training."""
    if cfg.plots:
        from xpnet.files import plots

        plots.check_output(named("plots"), cfg.plots, folder=True)


def train_from(given: dict, say, callbacks=()) -> Outcome | None:
    """``xpnet train`` (and ``xpnet.train``) from the settings given (and ``preset``, ``config``,
    ``resume``, ``print_config``; see ``config.resolve``): the settings resolved and checked,
    the data loaded and checked, then trained. None after ``print_config`` (the TOML printed)."""
    cfg, resume = config.resolve(given)
    if given.get("print_config"):
        for line in config.to_toml(cfg):
            say(line)
        return None
    check_plots(cfg)
    dataset = idx.load(cfg.data_dir)  # fully validated before any training
    be = pick_backend(cfg, say)
    return Outcome(cfg, dataset, be, train(cfg, be, dataset, say=say, resume=resume, callbacks=callbacks))
