"""What happens after each epoch: the printed line, the JSON log, the checkpoint, early stopping,
and anything a caller adds (``xpnet.train(..., callbacks=[...])``, ``MLPClassifier.fit``,
a sweep's pruning), all through one mechanism.

A callback is any object with some of these methods (each optional):

- ``on_train_begin(run)``: ``run`` is the ``training.Run`` (its ``cfg``, ``state``, ``params``, ``say``);
- ``on_epoch_end(epoch, logs) -> bool | None``: ``logs`` is the epoch's entry (``loss``,
  ``val_accuracy`` when there is a validation split, ``seconds``, ``samples_per_s``, ``lr``, ...);
  a true result asks training to stop after this epoch; every callback is still called;
- ``on_train_end(result)``: the ``training.Result`` (test accuracy, history, parameters).

By the time ``on_epoch_end`` runs, ``run.state`` has moved to the next epoch (``run.state.epoch``
is ``epoch + 1``) and ``run.state.improved`` says whether validation accuracy reached a new best.
"""

from __future__ import annotations

import json

from xpnet.errors import UserError, named


class Callback:
    """A callback that does nothing: subclass it and override what you need (or duck-type)."""

    def on_train_begin(self, run) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> bool | None:
        return None

    def on_train_end(self, result) -> None:
        pass


def epoch_line(logs: dict, epochs: int) -> str:
    """The line ``xpnet train`` prints after each epoch."""
    line = f"epoch {logs['epoch']:>3}/{epochs}  loss {logs['loss']:.4f}"
    if "val_loss" in logs:
        line += f"  val loss {logs['val_loss']:.4f}"
    if "val_accuracy" in logs:
        line += f"  val acc {100.0 * logs['val_accuracy']:6.2f}%"
    if "val_r2" in logs:
        line += f"  val R² {logs['val_r2']:.4f}"
    return line + f"  {logs['seconds']:6.2f}s  {logs['samples_per_s']:9.0f} samples/s"


class PrintEpoch(Callback):
    """Prints ``epoch_line`` through the run's ``say``."""

    def on_train_begin(self, run) -> None:
        self.say, self.epochs = run.say, run.cfg.epochs

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.say(epoch_line(logs, self.epochs))


class JsonLog(Callback):
    """Appends each epoch's entry to ``path`` as one JSON object per line (``--log``)."""

    def __init__(self, path: str):
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(logs) + "\n")
        except OSError as e:
            raise UserError(f"{named('log')} {self.path}: cannot append ({e.strerror or e})") from None


class Checkpoint(Callback):
    """Writes the resumable checkpoint (``--save``) after every epoch; with ``only_improved``
    (``--early-stop``) only after epochs that reached a new best validation accuracy, so that
    the file keeps the best epoch."""

    def __init__(self, only_improved: bool = False):
        self.only_improved = only_improved

    def on_train_begin(self, run) -> None:
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        st = self.run.state
        if st.improved or not self.only_improved:
            self.run.save(st.epoch, 0, st.rng.bit_generator.state, 0.0)


class EarlyStopping(Callback):
    """Stops when the validation accuracy (or with ``watch="loss"`` the validation loss,
    ``--early-stop-on``) has not improved for ``patience`` epochs (``--early-stop``),
    keeping the best epoch's parameters on the host for the run to finish with."""

    def __init__(self, patience: int, watch: str = "accuracy"):
        self.patience, self.watch = patience, watch

    def on_train_begin(self, run) -> None:
        self.run = run
        self.best_epoch = run.state.epoch - 1  # a resumed run counts its patience from where it resumed

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        run = self.run
        if run.state.improved:
            self.best_epoch = epoch
            run.keep(epoch)
        if epoch - self.best_epoch >= self.patience:
            if self.watch == "loss":
                best = f"loss {run.state.best_val_loss:.4f}"
            else:
                best = f"R² {run.state.best_val:.4f}" if run.dataset.regression else f"{100 * run.state.best_val:.2f}%"
            what = "R²" if self.watch == "accuracy" and run.dataset.regression else self.watch
            run.say(
                f"early stop: validation {what} has not improved for {self.patience} epochs; "
                f"using epoch {self.best_epoch} ({best})"
            )
            return True
        return False


def standard(cfg) -> list:
    """The callbacks a TrainConfig asks for: the printed line, then --log, --save, --early-stop."""
    out = [PrintEpoch()]
    if cfg.log:
        out.append(JsonLog(cfg.log))
    if cfg.save:
        out.append(Checkpoint(only_improved=bool(cfg.early_stop)))
    if cfg.early_stop:
        out.append(EarlyStopping(cfg.early_stop, cfg.early_stop_on))
    return out


def call(callbacks, method: str, *args) -> list:
    """Each callback's ``method`` (where it has one) with ``args``; their results in order."""
    return [getattr(cb, method)(*args) for cb in callbacks if hasattr(cb, method)]
