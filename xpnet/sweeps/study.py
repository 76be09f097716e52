"""Hyperparameter sweeps on Optuna (``xpnet sweep create | run | show | best``).

A study lives in a database that any number of worker processes, on any number of machines,
share: SQLite (the default, one machine), PostgreSQL (several machines) or Optuna's journal
file (a shared file system). ``create`` makes the study once and stores the search space and
the fixed settings in it (a user attribute), so that a worker needs only the study's name and
storage. Each worker loads the data once (without its test split), then runs trials: a trial
trains with its suggested settings and its trial number as seed, reports its validation
accuracy after each epoch (the objective, maximised) for the pruner, and writes its checkpoint
and JSON log to ``OUT/STUDY/trial-N/``. A worker's trials beat every ``--heartbeat`` seconds;
one not heard from for GRACE_BEATS beats (a killed worker, a lost machine) is marked failed
and run again, with the same settings and seed, by the next worker that looks.

Optuna is imported only here, and only when a sweep command runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

from xpnet import backends, population
from xpnet import callbacks as cb
from xpnet.engine import data, evaluate
from xpnet.engine.evaluate import format_accuracy
from xpnet.errors import Diverged, Stopped, UserError, print_line
from xpnet.files import atomic, checkpoint, idx
from xpnet.settings import Range, TrainConfig, flag
from xpnet.sweeps import space as space_mod
from xpnet.training import SignalFlag, train

DEFAULT_STORAGE = "sqlite:///xpnet-sweeps.db"
ATTR = "xpnet"  # the study's user attribute holding its search space (space.Space.to_dict)
GRACE_BEATS = 3  # a running trial not heard from for this many heartbeats is failed and retried
MAX_RETRY = 3  # times a trial whose worker died is retried
POLL_SECONDS = 1.0  # how often a worker waiting for others' trials to finish looks again
RUN_RANGES = {
    "workers": Range(1, 1024),
    "trials": Range(1),
    "timeout": Range(0, above=True),
    "heartbeat": Range(1, 3600),
    "threads": Range(0, 4096),
    "population": Range(1, 1024),
}  # sweep run's numeric flags
STORAGE_HELP = "expected sqlite:///FILE, postgresql+psycopg://USER@HOST[:PORT]/DB or journal:FILE"


def _optuna():
    """Optuna, quiet (xpnet prints its own line per trial), or a UserError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UserError("xpnet sweep needs Optuna: pip install 'xpnet[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def shown(url: str) -> str:
    """The storage URL as printed: any password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return url if url.startswith(("journal:", "sqlite:")) else make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: printed as given, refused elsewhere
        return url


def storage(url: str | None, heartbeat: int | None = None):
    """The Optuna storage of ``--storage URL`` (default DEFAULT_STORAGE); with ``heartbeat``
    (seconds), running trials beat and stale ones are failed and retried."""
    optuna = _optuna()
    url = url or DEFAULT_STORAGE
    if url.startswith("journal:"):
        return _journal(url, url[len("journal:") :], heartbeat)
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep:
        path = rest[1:] if rest.startswith("/") else ""
        if not path or not Path(path).parent.is_dir():
            raise UserError(
                f"--storage {url}: "
                + (f"folder {Path(path).parent} does not exist" if path else "needs a file: sqlite:///FILE")
            )
        engine = {"connect_args": {"timeout": 60}}  # workers wait for each other's writes
    elif scheme in ("postgresql", "postgresql+psycopg") and sep:
        if not _installed("psycopg"):
            raise UserError(f"--storage {shown(url)}: PostgreSQL needs psycopg: pip install 'xpnet[postgres]'")
        url, engine = "postgresql+psycopg://" + rest, {"connect_args": {"connect_timeout": 10}}
    else:
        raise UserError(f"--storage {url}: {STORAGE_HELP}")
    beats = (
        {}
        if not heartbeat
        else {
            "heartbeat_interval": heartbeat,
            "grace_period": GRACE_BEATS * heartbeat,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        }
    )
    import sqlalchemy.exc

    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, **beats)
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"--storage {shown(url)}: cannot open the database ({first})") from None


def _journal(url: str, path: str, heartbeat: int | None):
    """Optuna's JournalStorage on the file ``path``. Optuna gives journals no heartbeat, so
    xpnet adds one (``_heartbeat_journal``) when ``heartbeat`` is given."""
    if not path or not Path(path).parent.is_dir():
        raise UserError(
            f"--storage {url}: "
            + (f"folder {Path(path).parent} does not exist" if path else "needs a file: journal:FILE")
        )
    if Path(path).is_dir():
        raise UserError(f"--storage {url}: is a directory; give a file such as journal:sweeps.log")
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage

    try:
        lock = JournalFileSymlinkLock(path)
        backend = JournalFileBackend(path, lock)
        lock.acquire()  # the lock Optuna's writers hold: a partial last line is a dead writer's, not one in flight
        try:
            _check_journal(url, path)
        finally:
            lock.release()
    except OSError as e:
        raise UserError(f"--storage {url}: cannot open ({e.strerror or e})") from None
    return _heartbeat_journal(backend, heartbeat) if heartbeat else JournalStorage(backend)


def _check_journal(url: str, path: str) -> None:
    """A journal file Optuna can read: UTF-8 lines of JSON objects. A last line cut mid-write (a
    worker killed while appending) is dropped, its complete records kept, and the user told on
    stderr; anything else that is not a journal is a UserError naming the file and line."""
    raw = Path(path).read_bytes()
    complete, _, partial = raw.rpartition(b"\n")  # no newline at all: all of it partial
    for number, line in enumerate(complete.split(b"\n") if complete else [], 1):
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"--storage {url}: line {number} is not UTF-8 text: not an Optuna journal") from None
        except json.JSONDecodeError:
            raise UserError(
                f"--storage {url}: line {number} is not JSON: not an Optuna journal, or a damaged one"
            ) from None
        if not isinstance(record, dict) or "op_code" not in record:
            raise UserError(f"--storage {url}: line {number} is not a journal record: not an Optuna journal")
    if partial:
        with open(path, "r+b") as f:
            f.truncate(len(raw) - len(partial))
        kept = complete.count(b"\n") + 1 if complete else 0
        print(
            f"xpnet: {path}: its last line was cut mid-write (a worker killed while writing?): dropped "
            f"{len(partial)} bytes, kept the {kept} complete records",
            file=sys.stderr,
        )


def _heartbeat_journal(backend, interval: int):
    """A JournalStorage whose running trials beat: each writes the time into a system
    attribute of its trial every ``interval`` seconds; a trial whose last beat (by this
    machine's clock: machines sharing a journal keep their clocks in step) is older than
    GRACE_BEATS intervals is stale, failed and retried, as on RDBStorage."""
    optuna = _optuna()
    try:
        from optuna.storages._heartbeat import BaseHeartbeat  # Optuna's heartbeat interface (not exported)
    except ImportError:  # another Optuna layout: the journal without heartbeats (a dead worker's trial stays running)
        return optuna.storages.journal.JournalStorage(backend)

    RUNNING = optuna.trial.TrialState.RUNNING
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)

    class HeartbeatJournal(optuna.storages.journal.JournalStorage, BaseHeartbeat):
        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, "xpnet:heartbeat", [trial_id, time.time()])

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now, stale = time.time(), []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(RUNNING,)):
                beat = t.system_attrs.get("xpnet:heartbeat")  # a retry carries its original's: not its own
                if beat and beat[0] == t._trial_id and now - beat[1] > GRACE_BEATS * interval:
                    stale.append(t._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int:
            return interval

        def get_heartbeat_stale_trial_callback(self):
            return retry

    return HeartbeatJournal(backend)


def open_study(name: str, url: str | None, heartbeat: int | None = None, sampled: bool = False):
    """(study, space) of an existing xpnet study; with ``sampled`` the study has the sampler
    and pruner its space names (what a worker needs)."""
    optuna = _optuna()
    st = storage(url, heartbeat)
    try:
        study = optuna.load_study(study_name=name, storage=st, sampler=optuna.samplers.RandomSampler())
    except KeyError:
        raise UserError(
            f"--study {name}: no such study in {shown(url or DEFAULT_STORAGE)}; "
            f"make it with xpnet sweep create --study {name} --space FILE.toml"
        ) from None
    if ATTR not in study.user_attrs:
        raise UserError(f"--study {name}: not a study made by xpnet sweep create (no search space stored)")
    space = space_mod.Space.from_dict(study.user_attrs[ATTR])
    if sampled:
        study = optuna.load_study(
            study_name=name, storage=st, sampler=_sampler(optuna, space), pruner=_pruner(optuna, space)
        )
    return study, space


def _sampler(optuna, space):
    if space.sampler == "random":
        return optuna.samplers.RandomSampler()
    if space.sampler == "grid":
        return optuna.samplers.GridSampler({p.name: p.grid() for p in space.params})
    return optuna.samplers.TPESampler(constant_liar=True)  # workers in parallel avoid each other's running points


def _pruner(optuna, space):
    return optuna.pruners.MedianPruner() if space.pruner == "median" else optuna.pruners.NopPruner()


def create(name: str, space_path: str, url: str | None, say) -> None:
    """Make the study ``name``: its search space checked in full and stored in it, the data
    read and checked once."""
    if not name or not all(c.isalnum() or c in "._-" for c in name) or name[0] in ".-":
        raise UserError(f"--study {name!r}: use letters, digits, '.', '_' and '-' (it names the trials' folder)")
    space = space_mod.load(space_path)
    dataset = idx.load(space.train.get("data_dir"))
    data.split_validation(dataset.train, space.train.get("validation", TrainConfig.validation))
    optuna = _optuna()
    st = storage(url)
    try:
        study = optuna.create_study(study_name=name, storage=st, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        raise UserError(
            f"--study {name}: already exists in {shown(url or DEFAULT_STORAGE)} (see xpnet sweep show --study {name})"
        ) from None
    study.set_user_attr(ATTR, space.to_dict() | {"space_file": os.path.abspath(space_path)})
    params = ", ".join(p.name for p in space.params)
    say(
        f"created study {name} in {shown(url or DEFAULT_STORAGE)}: {len(space.params)} parameters ({params}), "
        f"sampler {space.sampler}, pruner {space.pruner}, data {dataset.source}"
    )
    say(
        f"run it with: xpnet sweep run --study {name}"
        + (f" --storage {shown(url)}" if url else "")
        + " --trials N [--workers J]"
    )


class _Report(cb.Callback):
    """A trial's training callback: reports each epoch's validation accuracy to the Optuna trial
    and stops training when the pruner says so; ``check()`` raises Stopped after a signal that
    came outside training's own handler."""

    def __init__(self, trial, check):
        self.trial, self.check, self.pruned_at, self.run = trial, check, None, None

    def on_train_begin(self, run) -> None:
        self.run = run
        self.check()

    def on_epoch_end(self, epoch: int, logs: dict) -> bool:
        self.check()
        self.trial.report(logs["val_accuracy"], epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            return True
        return False

    def value(self) -> float:
        """The validation accuracy of the model the run finished with (early stopping's best epoch, or the last)."""
        history, best = self.run.state.history, self.run.best_epoch
        return next(e for e in reversed(history) if best is None or e["epoch"] == best)["val_accuracy"]


class _Told(cb.Callback):
    """A population member's trial told to the study when its run ends (``on_train_end``):
    complete with its validation accuracy, pruned, or failed with its error; ``done`` then
    prints its line."""

    def __init__(self, study, trial, report: _Report, done):
        self.study, self.trial, self.report, self.done = study, trial, report, done
        self.told = False

    def on_train_end(self, result) -> None:
        if result.failure:
            self.fail(result.failure)
            return
        self.trial.set_user_attr("epochs", len(result.history))
        states = _optuna().trial.TrialState
        if self.report.pruned_at is not None:
            frozen = self.study.tell(self.trial, state=states.PRUNED)
        else:
            frozen = self.study.tell(self.trial, self.report.value())
        self.told = True
        self.done(self.study, frozen)

    def fail(self, error: str) -> None:
        self.trial.set_user_attr("error", error)
        self.told = True
        self.done(self.study, self.study.tell(self.trial, state=_optuna().trial.TrialState.FAIL))


class _Heartbeats:
    """While a population trains, a thread recording every running trial's heartbeat (where the
    storage keeps them), as Optuna's own loop does for the one trial it runs."""

    def __init__(self, study, trials):
        self.storage, self.trials = study._storage, trials
        self.stopped = threading.Event()
        interval = getattr(self.storage, "get_heartbeat_interval", None)  # a storage that keeps heartbeats
        self.interval = interval() if interval is not None else None

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            for trial in self.trials:
                self.storage.record_heartbeat(trial._trial_id)

    def __enter__(self):
        if self.interval:
            for trial in self.trials:
                self.storage.record_heartbeat(trial._trial_id)
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        return False


class Objective:
    """What a worker runs for each trial: train with the trial's settings, return its validation accuracy."""

    def __init__(self, study_name: str, space, dataset, backend, out: str, threads: int, say):
        self.study_name, self.space, self.dataset, self.backend = study_name, space, dataset, backend
        self.out, self.threads, self.say = out, threads, say
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.trial = None  # the trial in progress, or the last one
        self.running = []  # a population's trials in flight
        self.signals = None  # a training.SignalFlag while the worker runs: SIGINT/SIGTERM outside training

    def check(self) -> None:
        """Stopped, after SIGINT or SIGTERM came outside training (which stops on its own)."""
        if self.signals is not None and self.signals():
            raise Stopped(128 + self.signals.signum)

    def __call__(self, trial) -> float:
        self.trial = trial
        cfg, log = self.prepare(trial)
        report = _Report(trial, self.check)
        try:  # the log through its callback, not cfg.log: that would add a pass over the training set per epoch
            train(cfg, self.backend, self.dataset, say=lambda line: None, callbacks=[report, cb.JsonLog(log)])
        except (Diverged, UserError) as e:
            trial.set_user_attr("error", str(e))
            raise
        trial.set_user_attr("epochs", len(report.run.state.history))
        if report.pruned_at is not None:
            raise _optuna().TrialPruned(f"pruned after epoch {report.pruned_at}")
        return report.value()

    def prepare(self, trial, seed: int | None = None, init_seed: int | None = None) -> tuple[TrainConfig, str]:
        """A trial's settings (its suggested ones over the study's fixed ones) and the path of its
        log, its folder made and its attributes set: the worker, the checkpoint, the log, and the
        seed (the trial's number; in a population the population's, ``seed``) and ``init_seed``
        (None; in a population the trial's number). A retry (its attributes copied) repeats the
        trial it replaces."""
        folder = Path(self.out, self.study_name, f"trial-{trial.number}").absolute()
        folder.mkdir(parents=True, exist_ok=True)
        if "seed" in trial.user_attrs:
            seed, init_seed = trial.user_attrs["seed"], trial.user_attrs.get("init_seed")
        elif seed is None:
            seed = trial.number
        settings = self.space.suggest(trial)
        log = folder / "log.jsonl"
        log.unlink(missing_ok=True)
        cfg = TrainConfig(
            **(
                dataclasses.asdict(TrainConfig())
                | settings
                | {
                    "seed": seed,
                    "init_seed": init_seed,
                    "save": str(folder / "model.npz"),
                    "quiet": True,
                    "threads": self.threads,
                }
            )
        )
        attrs = {"worker": self.worker, "seed": seed, "checkpoint": cfg.save, "log": str(log)}
        for key, value in attrs.items() | ({"init_seed": init_seed}.items() if init_seed is not None else ()):
            trial.set_user_attr(key, value)
        return cfg, str(log)

    def population(self, study, trials: list) -> None:
        """``trials`` (asked at once, ``--population K``) trained together: those that share
        every setting but a population's member settings (``population.MEMBER_SETTINGS``) as one
        population (the batch order of the first fresh trial's number, each member's initial
        weights from its own number), the others alone; each reports every epoch to the pruner
        and is told to the study as it finishes, while every trial in flight beats."""
        self.running = list(trials)
        fresh = [t.number for t in trials if "seed" not in t.user_attrs]
        prepared = [self.prepare(t, fresh[0] if fresh else None, t.number) for t in trials]
        groups: dict = {}
        for trial, (cfg, log) in zip(trials, prepared):
            key = tuple(v for f, v in dataclasses.asdict(cfg).items() if f not in population.MEMBER_SETTINGS)
            groups.setdefault(key, []).append((trial, cfg, log))
        with _Heartbeats(study, trials):
            for members in groups.values():
                told = [_Told(study, trial, _Report(trial, self.check), self.done) for trial, _, _ in members]
                lists = [[t.report, cb.JsonLog(log), t] for t, (_, _, log) in zip(told, members)]
                cfgs = [cfg for _, cfg, _ in members]
                try:
                    if len(members) == 1:
                        train(cfgs[0], self.backend, self.dataset, say=lambda line: None, callbacks=lists[0])
                    else:
                        population.train_population(cfgs, self.backend, self.dataset, lambda line: None, lists)
                except (Diverged, UserError) as e:  # a lone trial's failure, or a population refused before training
                    for t in told:  # (a member's own failure is told by its run)
                        if not t.told:
                            t.fail(str(e))
        self.running = []

    def done(self, study, frozen) -> None:
        """Optuna's callback after each trial: one line."""
        self.say(trial_line(row(frozen)))


def row(t) -> dict:
    """A finished or running trial as ``sweep show`` reports it."""
    attrs = t.user_attrs
    return {
        "number": t.number,
        "state": t.state.name,
        "val_accuracy": t.value if t.values else None,
        "params": dict(t.params),
        "duration_s": t.duration.total_seconds() if t.duration else None,
        "epochs": attrs.get("epochs"),
        "seed": attrs.get("seed"),
        "worker": attrs.get("worker"),
        "retry_of": t.system_attrs.get("failed_trial"),
        "checkpoint": attrs.get("checkpoint"),
        "error": attrs.get("error"),
    }


def trial_line(r: dict) -> str:
    """One line of ``sweep show`` and of a worker's output: number, state, accuracy, time, worker, parameters."""
    acc = f"val acc {100 * r['val_accuracy']:6.2f}%" if r["val_accuracy"] is not None else "val acc      -"
    secs = f"{r['duration_s']:7.1f}s" if r["duration_s"] is not None else "       -"
    params = " ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
    extra = (f"  (retry of trial {r['retry_of']})" if r["retry_of"] is not None else "") + (
        f"  error: {r['error']}" if r["error"] else ""
    )
    return f"trial {r['number']:>4}  {r['state'].lower():<8}  {acc}  {secs}  {r['worker'] or '-'}  {params}{extra}"


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _counted(t) -> bool:
    """Whether a trial counts towards ``--trials``: complete, pruned, or failed on its own (an
    error in training; a trial whose worker died is retried instead, and its retry counts)."""
    name = t.state.name
    return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and "error" in t.user_attrs)


def _next_step(study, target: int | None) -> str:
    """ "go" (start a trial), "wait" (the target is met if the running trials finish: wait for
    them, so that a trial whose worker dies is retried here) or "stop"."""
    if target is None:
        return "go"
    trials = study.get_trials(deepcopy=False)
    done = sum(map(_counted, trials))
    if done >= target:
        return "stop"
    running = sum(t.state.name == "RUNNING" for t in trials)
    waiting = any(t.state.name == "WAITING" for t in trials)
    return "go" if waiting or done + running < target else "wait"


def _work(study, objective: Objective, target: int | None, deadline: float | None, members: int = 1) -> None:
    """Run trials until the study has ``target`` counted trials or ``deadline`` (monotonic)
    passes: one at a time, or ``members`` asked at once and trained as populations."""
    optuna = _optuna()
    while deadline is None or time.monotonic() < deadline:
        step = _next_step(study, target)
        if step == "stop":
            return
        objective.check()
        if step == "wait":
            time.sleep(POLL_SECONDS)
            optuna.storages.fail_stale_trials(study)
            continue
        if members == 1:
            study.optimize(objective, n_trials=1, catch=(Diverged, UserError), callbacks=[objective.done])
            continue
        optuna.storages.fail_stale_trials(study)  # as study.optimize does before each trial
        with warnings.catch_warnings():  # Optuna's warning that ask() has no heartbeat: _Heartbeats beats
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            asked = [study.ask() for _ in range(_room(study, target, members))]
        objective.population(study, asked)


def _room(study, target: int | None, members: int) -> int:
    """How many trials to ask for at once: ``members``, or fewer where the target needs fewer
    (counting the finished and the running), at least one."""
    if target is None:
        return members
    trials = study.get_trials(deepcopy=False)
    busy = sum(map(_counted, trials)) + sum(t.state.name == "RUNNING" for t in trials)
    return max(1, min(members, target - busy))


def _requeue(study, trial) -> int | None:
    """After an interruption: the trial that was running (if any) failed and queued again, with
    its settings and seed, for the next worker; returns its number."""
    optuna = _optuna()
    if trial is None:
        return None
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    if frozen.state.name == "RUNNING":
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    if frozen.state.name != "FAIL" or "error" in frozen.user_attrs:
        return None
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, frozen)
    return trial.number


def _threads(n: int) -> str:
    return f"{n} thread{'s' * (n != 1)}" if n else "threads following the free cores"


def work(args, say) -> int:
    """One worker (``xpnet sweep run --workers 1``): the data loaded once, trials until the
    target, the timeout, or SIGINT/SIGTERM (the running trial is then queued again)."""
    study, space = open_study(args.study, args.storage, heartbeat=args.heartbeat, sampled=True)
    dataset = idx.load(space.train.get("data_dir"), test=False)  # trials never read the test set
    fixed = TrainConfig(**(dataclasses.asdict(TrainConfig()) | space.train))
    backend = backends.resolve(args.backend or fixed.backend, args.device or fixed.device, fixed.tf32)
    try:
        Path(args.out, args.study).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot make the trials' folder ({e.strerror or e})") from None
    objective = Objective(args.study, space, dataset, backend, args.out, args.threads, say)
    target = args.trials if space.sampler != "grid" else min(args.trials or space.grid_size(), space.grid_size())
    deadline = time.monotonic() + args.timeout if args.timeout else None
    say(
        f"worker {objective.worker}: study {args.study}, {backend.name} on {backend.label}, "
        f"{_threads(args.threads)}, {dataset.source}"
    )
    try:
        with (
            SignalFlag() as objective.signals
        ):  # a signal stops the worker at the next check, or training after its chunk
            _work(study, objective, target, deadline, args.population)
        finished = sum(map(_counted, study.get_trials(deepcopy=False)))
        say(
            f"worker {objective.worker}: done: the study holds {finished} finished trials"
            + (f" (--trials {target})" if target is not None else "")
        )
    except (Stopped, KeyboardInterrupt) as e:
        again = [n for n in (_requeue(study, t) for t in objective.running or [objective.trial]) if n is not None]
        if not args.spawned:
            queued = ""
            if again:
                queued = f"; trial{'s' * (len(again) > 1)} {', '.join(map(str, again))} "
                queued += f"{'are' if len(again) > 1 else 'is'} queued to run again"
            print(f"xpnet: interrupted: worker stopped{queued}", file=sys.stderr, flush=True)
        raise Stopped(getattr(e, "exit_code", 130)) from None
    return 0


def run(args, say) -> int:
    """``xpnet sweep run``: one worker here, or ``--workers J`` worker processes, each with
    ``--threads`` (default: the usable cores shared out) CPU threads."""
    for name, allowed in RUN_RANGES.items():
        if getattr(args, name) is not None:
            allowed.check(flag(name), getattr(args, name))
    if args.workers == 1:
        return work(args, say)
    open_study(args.study, args.storage)  # a missing study or storage refused here, once
    threads = args.threads or max(1, backends.threads.usable_cores() // args.workers)
    return _spawn(args, threads, say)


def _spawn(args, threads: int, say) -> int:
    """``args.workers`` processes of ``xpnet sweep run --workers 1``, in their own session (a
    Ctrl-C reaches them once, from here); SIGINT or SIGTERM here is passed on and waited for."""
    cmd = [
        sys.executable,
        "-m",
        "xpnet",
        "sweep",
        "run",
        "--study",
        args.study,
        "--workers",
        "1",
        "--threads",
        str(threads),
        "--out",
        args.out,
        "--heartbeat",
        str(args.heartbeat),
        "--spawned",
    ]
    for name in ("storage", "trials", "timeout", "device", "backend", "population"):
        if getattr(args, name) is not None:
            cmd += [f"--{name}", str(getattr(args, name))]
    say(f"starting {args.workers} workers, {_threads(threads)} each")
    old = signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))  # both: KeyboardInterrupt here
    procs = [subprocess.Popen(cmd, start_new_session=True) for _ in range(args.workers)]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        try:
            for p in procs:
                p.wait()
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once (their trials are retried through the heartbeat)
            for p in procs:
                p.kill()
        print(
            f"xpnet: interrupted: {args.workers} workers stopped; their running trials are queued to run again",
            file=sys.stderr,
            flush=True,
        )
        raise Stopped(130) from None
    finally:
        signal.signal(signal.SIGTERM, old)
    return max(codes, key=lambda c: c != 0)


def show(args, say) -> int:
    """``xpnet sweep show``: every trial and the best, as a table or one JSON document."""
    study, space = open_study(args.study, args.storage)
    rows = [row(t) for t in study.get_trials(deepcopy=False)]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(complete, key=lambda r: r["val_accuracy"], default=None)
    if args.json:
        doc = {
            "study": args.study,
            "storage": shown(args.storage or DEFAULT_STORAGE),
            "sampler": space.sampler,
            "pruner": space.pruner,
            "objective": "val_accuracy",
            "direction": "maximize",
            "trials": rows,
            "best": best,
        }
        print_line(json.dumps(doc, allow_nan=False))
        return 0
    states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    say(
        f"study {args.study}: {len(rows)} trials ("
        + ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n)
        + f"), sampler {space.sampler}, pruner {space.pruner}"
    )
    for r in rows:
        say(trial_line(r))
    say(f"best: {trial_line(best)}" if best else "best: none yet (no complete trial)")
    return 0


def best(args, say) -> int:
    """``xpnet sweep best``: the best trial's model evaluated on the test set (the one place a
    sweep reads it), and with ``--save`` copied there."""
    study, space = open_study(args.study, args.storage)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        raise UserError(f"--study {args.study}: no complete trial yet (xpnet sweep show --study {args.study})")
    t = max(complete, key=lambda t: t.value)
    path = t.user_attrs.get("checkpoint")
    if not path or not Path(path).is_file():
        raise UserError(
            f"--study {args.study}: trial {t.number}'s checkpoint {path} is not on this machine "
            f"(written by worker {t.user_attrs.get('worker')}): run this there, or copy the file"
        )
    if args.save:
        atomic.writable_target("--save", args.save, "best.npz")
    saved = checkpoint.load(path)
    dataset = idx.load(space.train.get("data_dir"), num_classes=saved.spec.sizes[-1])
    be = backends.resolve(args.backend, args.device)
    params, dtype = saved.params_on(be)
    _, correct, total = evaluate.scored(be, params, dataset.test, saved.spec, dtype)
    say(
        f"best: trial {t.number}, val acc {100 * t.value:.2f}%, "
        + " ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    )
    if args.save:
        try:
            atomic.atomic_write(args.save, Path(path).read_bytes())
        except OSError as e:
            raise UserError(f"--save {args.save}: cannot write ({e.strerror or e})") from None
        say(f"saved {args.save} (trial {t.number}'s checkpoint)")
    say(format_accuracy(correct, total))
    return 0
