"""Populations: K networks of one shape trained together by the population step, each its own run.

A population's members share what makes the step one step (the layer sizes, activation,
output, batch size, dtype, backend and device, the data, the batch order ``seed`` and the
augmentation) and may differ in ``MEMBER_SETTINGS``: the learning rate and its schedule, the
optimiser's momentum and decays, dropout, max-norm, label smoothing, the initial weights
(``init_seed``), the epochs and early stopping, and where each writes. Each member is a
``training.Run`` of its own (``Member``): its history, callbacks, checkpoint and result are
those of the solo run with its settings, and equal it (``tests/engine/test_population_step.py``,
``tests/cli/test_population.py``).

A member stops on its own (its epochs, early stopping, a callback, a non-finite loss) at an
epoch's end, where the losses are read anyway: from then on its learning rate is 0 (so its
weights no longer move) and nothing of it is read; the others go on. No step reads anything
back to the host.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import fields, replace
from functools import cached_property, partial
from pathlib import Path

import numpy as np

from xpnet import callbacks as cb
from xpnet import config, training
from xpnet.backends import threads, to_host
from xpnet.engine import data, evaluate, model, optim
from xpnet.engine.step import Net, StepOptions, member_groups
from xpnet.errors import Stopped, UserError, named
from xpnet.files import idx
from xpnet.settings import TrainConfig

# what members may differ in; every other setting is the population's
MEMBER_SETTINGS = (
    "lr",
    "lr_schedule",
    "warmup",
    "momentum",
    "weight_decay",
    "l2",
    "dropout",
    "max_norm",
    "label_smoothing",
    "init_seed",
    "epochs",
    "early_stop",
    "early_stop_on",
    "save",
    "log",
    "plots",
)
OUTPUTS = ("save", "log", "plots")  # files a member writes: no two members may share one
LANE_MEMBERS = 2  # the fewest members a group stepped in a thread of its own has (``PopulationRun.lanes``)


def check(cfgs: list) -> None:
    """Refuse members that cannot train together: a UserError naming the setting."""
    if len(cfgs) < 2:
        raise UserError(f"a population needs at least 2 members, got {len(cfgs)}")
    first = cfgs[0]
    for f in fields(TrainConfig):
        if f.name in MEMBER_SETTINGS:
            continue
        for k, c in enumerate(cfgs[1:], 1):
            if getattr(c, f.name) != getattr(first, f.name):
                raise UserError(
                    f"{named(f.name)}: member {k} has {getattr(c, f.name)!r}, member 0 {getattr(first, f.name)!r}; "
                    f"a population's members differ only in {', '.join(named(m) for m in MEMBER_SETTINGS)}"
                )
    if len({c.init_seed is None for c in cfgs}) > 1:
        raise UserError(
            f"{named('init_seed')}: give it to every member or to none (without it a member's weights are drawn "
            f"from {named('seed')}'s generator, which would then order its batches differently)"
        )
    for name in OUTPUTS:
        given = [getattr(c, name) for c in cfgs if getattr(c, name)]
        if len(set(given)) < len(given):
            raise UserError(f"{named(name)}: two members write the same {given[0]}; give each its own")


class Member(training.Run):
    """Member ``k`` of a population: its own settings, step options (its part of the
    population's), state (its slice of the population's arrays: views on the op sets that write
    in place, refreshed at each epoch's end on the others), history, callbacks, checkpoint and
    result; the data and steps the population's."""

    def __init__(self, cfg: TrainConfig, population: PopulationRun, k: int, say):
        self.cfg, self.backend, self.dataset, self.say, self.k = cfg, population.backend, population.dataset, say, k
        for name in ("spec", "weights", "train", "val", "n", "mass", "per_epoch", "masses", "score_key", "threads"):
            setattr(self, name, getattr(population, name))
        self.recipe, self.steps = population.recipe.members[k], population.steps
        self.resumed, self.best_params, self.best_epoch = False, None, None
        self.state = training.TrainState(None, population.state.rng)
        self.failure = None  # why it stopped early, when it diverged


class PopulationRun(training.Run):
    """The K members' shared run: the data on the device, the population's state (its layers
    [(W^T (K,in,out), b (K,1,out))], ``model.population_to_device``) and steps, and the members."""

    def __init__(self, cfgs: list, backend, dataset, say=print, member_say=None):
        check(cfgs)
        for c in cfgs[1:]:  # the first is checked by Run
            c.check()
        self.cfgs = cfgs
        super().__init__(cfgs[0], backend, dataset, say)  # the memory of K checked before any allocation
        member_say = member_say or (lambda k: lambda line: say(f"[{k}] {line}"))
        self.members = [Member(c, self, k, member_say(k)) for k, c in enumerate(cfgs)]
        self.live = [m.cfg.epochs >= 1 for m in self.members]  # members still training
        each = self.recipe.member_smoothing  # the validation loss's label smoothing, per member where it differs
        self.val_smoothing = (
            cfgs[0].label_smoothing if each is None else backend.ops.constant(each.reshape(-1, 1, 1), self.train.onehot)
        )
        self.test = None  # the test split on the device, once a member needs it
        self.share()

    def step_options(self, n_train: int, image_shape) -> StepOptions:
        return StepOptions.population([config.recipe(c, n_train, image_shape) for c in self.cfgs])

    def scores(self, split) -> tuple:
        """``evaluate.scores`` of every member on a device split: (correct (K,), total, mean loss
        (K,)), each member's loss with its own label smoothing; the groups of members the step
        runs side by side (``lanes``) scored side by side too."""
        smoothing = self.val_smoothing

        def score(members):
            each = smoothing[members] if getattr(smoothing, "ndim", 0) else smoothing
            return evaluate.scores(self.layers(members), split, self.spec, self.cfg.dtype, each)

        parts = self.in_groups(score)
        return np.concatenate([p[0] for p in parts]), parts[0][1], np.concatenate([p[2] for p in parts])

    def predictions(self, split) -> np.ndarray:
        """Every member's predicted classes for each item of a device split (K, n), on the host;
        the groups of members side by side as in ``scores``."""

        def predict(members):
            return to_host(evaluate.population_predictions(self.layers(members), split, self.spec, self.cfg.dtype))

        return np.concatenate(self.in_groups(predict))

    def layers(self, members: slice) -> list:
        """The population's layers of ``members`` [(W^T (k,in,out), b (k,1,out))]: views."""
        return [(W[members], b[members]) for W, b in self.state.net.layers]

    def in_groups(self, fn) -> list:
        """[fn(members)] for each group of members of ``lanes``, side by side (``threads.at_once``),
        or [fn(all members)]."""
        count = self.lanes()
        if count == 1:
            return [fn(slice(None))]
        return threads.at_once([partial(fn, members) for members in member_groups(len(self.members), count)])

    def lanes(self) -> int:
        """On an op set with ``lanes`` (NumPy), one group of members per core the run may use
        (``threads.Threads``; ``--threads``), each of at least LANE_MEMBERS members: the
        elementwise passes of a population's step, which NumPy runs on one core, then run on
        all of them (each group's products on its own core)."""
        if not self.backend.ops.lanes:
            return 1
        return max(1, min(self.threads.count or 1, len(self.members) // LANE_MEMBERS))

    def start(self, resume) -> training.TrainState:
        """The members' initial weights side by side (``model.population_to_device``) and the
        batch order they share (equal for all: ``check``)."""
        starts = [training.initial(c, self.spec) for c in self.cfgs]
        layers = model.population_to_device(self.backend, [params for _, params in starts], self.cfg.dtype)
        return training.TrainState(
            Net(layers, optim.init_slots(self.recipe.optimizer, self.backend.ops, layers)), starts[0][0]
        )

    def lr(self, epoch: int, step: int):
        """Each member's rate at step ``step`` of epoch ``epoch`` (K,): 0 once it has stopped.
        One ``optim.lr_at`` per group of members on the same schedule (``schedule_groups``),
        their base rates an array: each rate the solo run's to the bit."""
        rates = np.zeros(len(self.members))
        progress = epoch - 1 + step / self.per_epoch
        for (schedule, epochs, warmup), ks in self.schedule_groups:
            rates[ks] = optim.lr_at(self.base_lrs[ks], schedule, progress, epochs, warmup)
        return np.where(self.live, rates, 0.0)

    @cached_property
    def base_lrs(self) -> np.ndarray:
        """The members' base learning rates (K,)."""
        return np.array([c.lr for c in self.cfgs], dtype=np.float64)

    @cached_property
    def schedule_groups(self) -> list:
        """The members grouped by their schedule: [((schedule, epochs, warm-up), indices)]."""
        groups: dict = {}
        for k, c in enumerate(self.cfgs):
            groups.setdefault((c.lr_schedule, c.epochs, c.warmup), []).append(k)
        return [(key, np.array(ks)) for key, ks in groups.items()]

    def read(self, total) -> np.ndarray:
        return np.asarray(to_host(total), dtype=np.float64)

    def share(self) -> None:
        """Each member's state: views of its slice of the population's layers and slots, its
        optimiser's step count (a member's checkpoint is then an ordinary one)."""
        net = self.state.net
        for k, m in enumerate(self.members):
            slots = [[[s[k] for s in sW], [s[k] for s in sb]] for sW, sb in net.slots]
            m.state.net = Net(model.member_layers(net.layers, k), slots)
            if self.live[k]:
                m.state.t = self.state.t


def train_population(cfgs: list, backend, dataset, say=print, callbacks=None) -> list:
    """Train the members ``cfgs`` (TrainConfigs, ``check``) together on ``dataset``; each
    prints its lines (prefixed by its index), writes its --log and --save, and stops as its
    solo run would, finished (tested, saved, ``on_train_end``) at the epoch's end where it
    stops. ``callbacks``: per member, a list (as ``training.train``'s). Returns each member's
    ``training.Result`` (a diverged member's with ``failure`` set and no test score)."""
    pop = PopulationRun(cfgs, backend, dataset, say)
    st, K = pop.state, len(cfgs)
    rates = sorted({c.lr for c in cfgs})
    say(
        f"training a population of {K} {pop.spec.describe()} on {pop.n} images ({dataset.source}), "
        f"{backend.name} on {backend.label}, {pop.cfg.dtype}, lr {rates[0]}"
        + (f" to {rates[-1]}" if len(rates) > 1 else "")
        + f", batch {pop.cfg.batch_size}, up to {max(c.epochs for c in cfgs)} epochs"
    )
    lists = [cb.standard(m.cfg) + list((callbacks or [()] * K)[k]) for k, m in enumerate(pop.members)]
    for m, cbs in zip(pop.members, lists):
        cb.call(cbs, "on_train_begin", m)
    results = [None] * K
    with training.SignalFlag() as stop:
        _finish(pop, [k for k in range(K) if not pop.live[k]], results, lists)  # members of 0 epochs
        while any(pop.live):
            _finish(pop, _epoch(pop, stop, lists), results, lists)
            if stop() and any(pop.live):
                _stopped(pop, stop.signum, st.epoch, 0, st.rng.bit_generator.state, np.zeros(K))
    return results


def _epoch(pop: PopulationRun, stop, lists) -> list:
    """One epoch of every live member: the steps, then each member's report (its validation
    scores taken for all members at once) and callbacks; returns the members that stopped."""
    st, cfg = pop.state, pop.cfg
    t0 = time.perf_counter()
    rng_state = st.rng.bit_generator.state
    perm = pop.backend.asarray(st.rng.permutation(pop.n))
    bar = training.progress(pop.n, st.epoch, max(c.cfg.epochs for c in pop.members), cfg.quiet)
    try:
        with pop.backend.ops.errors_ignored():
            losses = pop.run_epoch(perm, stop, bar) / pop.mass
    except training.StopAt as e:
        pop.share()
        _stopped(pop, stop.signum, st.epoch, e.step, rng_state, e.loss_sum)
    except training.NonFinite as e:
        losses = np.full(len(pop.members), math.nan)
        where = f"epoch {st.epoch}, step {e.step}"
    else:
        where = f"epoch {st.epoch}"
    finally:
        if bar is not None:
            bar.close()
    pop.share()
    seconds = time.perf_counter() - t0
    val = None
    if pop.val is not None and not pop.dataset.regression:
        val = pop.scores(pop.val)
    stopped = []
    for k, m in enumerate(pop.members):
        if not pop.live[k]:
            continue
        pop.live[k] = False
        stopped.append(k)
        if not math.isfinite(losses[k]):
            m.failure = str(training.diverged(m.cfg, m.state.history, where))
            m.say(m.failure)
            continue
        mine = None if val is None else (val[0][k], val[1], float(val[2][k]))
        entry = training.report(m, float(losses[k]), seconds, 0, mine)
        if not training.epoch_done(m, entry, lists[k]) and m.state.epoch <= m.cfg.epochs:
            pop.live[k] = True
            stopped.pop()
    st.epoch, st.step = st.epoch + 1, 0
    return stopped


def _finish(pop: PopulationRun, members: list, results: list, lists) -> None:
    """The members that stopped: each tested (the test predictions of every member taken at
    once), saved and reported as its solo run's end (``training.finish``); a diverged one's
    result without."""
    preds = None
    if members and pop.dataset.test is not None:
        if pop.test is None:
            pop.test = data.to_device(pop.backend, pop.dataset.test)
        preds = pop.predictions(pop.test)
    for k in members:
        m = pop.members[k]
        if m.failure is None:
            result = training.finish(m, None if preds is None else preds[k])
        else:
            result = training.Result(m.spec, m.params, m.state.history, state=m.state, failure=m.failure)
        cb.call(lists[k], "on_train_end", result)
        results[k] = result


def _stopped(pop: PopulationRun, signum, epoch: int, step: int, rng_state, loss_partial) -> None:
    """After SIGINT/SIGTERM: each live member's resumable checkpoint (where it has --save) at
    epoch/step, as its solo run would write it; then Stopped."""
    name = signal.Signals(signum).name
    for k, m in enumerate(pop.members):
        if pop.live[k] and m.cfg.save:
            m.state.t = pop.state.t
            m.save(epoch, step, rng_state, float(loss_partial[k]))
    saved = [m.cfg.save for k, m in enumerate(pop.members) if pop.live[k] and m.cfg.save]
    pop.say(
        f"{name}: stopped at epoch {epoch}, step {step}; "
        + (f"saved {', '.join(saved)} (each resumes with xpnet train --resume PATH)" if saved else "nothing saved")
    )
    raise Stopped(128 + signum)


def seeded(cfg: TrainConfig, count: int) -> list:
    """``count`` members of one recipe differing in their initial weights (``--population-seeds``):
    init seeds S .. S+count-1 from S = ``init_seed`` (or ``seed``), each writing its files with
    ``-init{seed}`` before the suffix."""
    if count < 2:
        raise UserError(f"{named('population_seeds')} {count}: a population needs at least 2 members")
    first = cfg.seed if cfg.init_seed is None else cfg.init_seed
    return [
        replace(
            cfg,
            init_seed=first + i,
            **{name: _member_path(getattr(cfg, name), first + i) for name in OUTPUTS if getattr(cfg, name)},
        )
        for i in range(count)
    ]


def _member_path(path: str, init_seed: int) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}-init{init_seed}{p.suffix}"))


def summary(results: list) -> str:
    """The population's test accuracy in one line: mean, spread (sample standard deviation),
    the range and how many members reached the end."""
    accs = [100.0 * r.test_correct / r.test_total for r in results if r.test_total and r.failure is None]
    if not accs:
        return f"population of {len(results)}: no member finished"
    spread = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    return (
        f"population of {len(results)}: test accuracy mean {np.mean(accs):.2f}% ± {spread:.2f} "
        f"(min {min(accs):.2f}%, max {max(accs):.2f}%, {len(accs)} of {len(results)} finished)"
    )


def train_from(cfgs: list, say, callbacks=None):
    """``xpnet train --population-seeds`` and ``xpnet.train_population``: the members checked,
    each --plots folder checked, the data loaded and checked (once), then trained together.
    Returns (the data, the backend, each member's Result)."""
    check(cfgs)
    for c in cfgs:
        training.check_plots(c)
    dataset = idx.load(cfgs[0].data_dir)
    be = training.pick_backend(cfgs[0], say)
    return dataset, be, train_population(cfgs, be, dataset, say, callbacks)


def resolved(given: dict) -> TrainConfig:
    """One member's settings from those given (``config.resolve``); a population starts afresh."""
    if "resume" in given:
        raise UserError(
            f"{named('resume')}: a population trains from the start; resume a member's checkpoint on its own"
        )
    return config.resolve(given)[0]
