"""Populations as users meet them: ``xpnet.population.train_population``, ``xpnet train
--population-seeds`` and ``xpnet.train_population``. Every member is the run its settings
make alone: its history, its checkpoint (read by every command, resumable alone), its early
stop, its divergence; and bad populations are refused in one line."""

import json
import signal
from dataclasses import replace

import numpy as np
import pytest

import xpnet
from xpnet import backends, population, training
from xpnet.backends import threads
from xpnet.files import checkpoint

from helpers import assert_clean_error, last_accuracy
from helpers import xpnet as run_xpnet

SMALL = dict(hidden=(16,), epochs=3, validation=57000, batch_size=20, quiet=True)  # 3000 rows trained


def _members(**settings):
    base = training.TrainConfig(**{**SMALL, **settings})
    return [
        replace(base, lr=0.05, init_seed=1, label_smoothing=0.1),
        replace(base, lr=0.2, init_seed=2, momentum=0.5, dropout=0.2),
        replace(base, lr=0.1, init_seed=3, l2=1.0, max_norm=2.0, label_smoothing=0.2),
    ]


def _quiet(line):
    pass


def _close(a, b, tol):
    return all(np.abs(Wa - Wb).max() <= tol and np.abs(ba - bb).max() <= tol for (Wa, ba), (Wb, bb) in zip(a, b))


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adamw"])
def test_each_member_is_its_solo_run(mnist, optimizer):
    """float64: every member's history (losses, validation scores) and final weights are its
    solo run's; the members differ from each other."""
    be = backends.resolve("numpy", "cpu")
    cfgs = _members(dtype="float64", optimizer=optimizer, **({"lr": 0.01} if optimizer == "adamw" else {}))
    if optimizer == "adamw":
        cfgs = [replace(c, lr=c.lr / 20, weight_decay=0.01 * k) for k, c in enumerate(cfgs)]
    together = population.train_population(cfgs, be, mnist, say=_quiet)
    for cfg, member in zip(cfgs, together):
        alone = training.train(cfg, be, mnist, say=_quiet)
        assert [h["epoch"] for h in member.history] == [1, 2, 3]
        for mine, theirs in zip(member.history, alone.history):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-10)
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-10)
            assert mine["val_accuracy"] == theirs["val_accuracy"]
        assert member.test_correct == alone.test_correct
        assert _close(training.params_to_host(member.params), training.params_to_host(alone.params), 1e-10)
    assert len({r.test_correct for r in together} | {r.history[-1]["loss"] for r in together}) > 3


def test_each_member_s_learning_rate_is_its_solo_run_s_to_the_bit(mnist):
    """The population's rates (one ``lr_at`` per schedule group, on an array of base rates)
    are each member's own run's, bit for bit, at every step of every epoch: schedules, warm-ups
    and epoch counts mixed; a stopped member's rate is 0."""
    base = training.TrainConfig(**{**SMALL, "epochs": 4})
    cfgs = [
        replace(base, lr=0.1),
        replace(base, lr=0.3, lr_schedule="cosine", warmup=1.5),
        replace(base, lr=0.07, lr_schedule="cosine", warmup=1.5),
        replace(base, lr=0.2, lr_schedule="step", epochs=5),
        replace(base, lr=0.013, lr_schedule="cosine", epochs=2),
    ]
    pop = population.PopulationRun(cfgs, backends.resolve("numpy", "cpu"), mnist, say=_quiet)
    assert len(pop.schedule_groups) == 4
    for epoch in range(1, 5):
        for step in range(0, pop.per_epoch, 7):
            rates = pop.lr(epoch, step)
            assert rates.tolist() == [m.lr(epoch, step) for m in pop.members]
    pop.live[1] = False
    rates = pop.lr(2, 3)
    assert rates[1] == 0.0 and rates[2] == pop.members[2].lr(2, 3)


def test_members_stepped_in_groups_side_by_side_are_their_solo_runs(mnist, monkeypatch):
    """With two cores to use (``threads=2``), a population of four on NumPy is stepped, scored
    and tested in two groups of two, side by side (``threads.at_once``): every member's history,
    validation scores, test accuracy and weights are still its solo run's. One group on one
    core, with fewer than four members, or on an op set without lanes."""
    be = backends.resolve("numpy", "cpu")
    first = _members()[0]
    cfgs = [replace(c, dtype="float64", threads=2) for c in _members() + [replace(first, lr=0.3, init_seed=4)]]
    calls = []
    real = threads.at_once
    monkeypatch.setattr(threads, "at_once", lambda tasks: calls.append(len(tasks)) or real(tasks))
    together = population.train_population(cfgs, be, mnist, say=_quiet)
    assert len(calls) > 6 and set(calls) == {2}  # the steps' chunks, the validation scores, the test
    for cfg, member in zip(cfgs, together):
        alone = training.train(cfg, be, mnist, say=_quiet)
        for mine, theirs in zip(member.history, alone.history):
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-10)
            assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-10)  # its own smoothing
            assert mine["val_accuracy"] == theirs["val_accuracy"]
        assert member.test_correct == alone.test_correct
        assert _close(training.params_to_host(member.params), training.params_to_host(alone.params), 1e-10)

    def lanes(cfgs):
        return population.PopulationRun(cfgs, be, mnist, say=_quiet).lanes()

    assert lanes(cfgs) == 2
    assert lanes(cfgs[:3]) == 1
    assert lanes([replace(c, threads=1) for c in cfgs]) == 1
    monkeypatch.setattr(type(be.ops), "lanes", False)
    assert lanes(cfgs) == 1


def test_float32_members_score_as_their_solo_runs(mnist):
    """float32, one epoch on the full training set: each member's test accuracy within 0.05
    points of its solo run's."""
    be = backends.resolve("numpy", "cpu")
    base = training.TrainConfig(hidden=(30,), epochs=1, batch_size=50, quiet=True)
    cfgs = [replace(base, lr=float(lr), init_seed=k) for k, lr in enumerate((0.03, 0.1, 0.3))]
    together = population.train_population(cfgs, be, mnist, say=_quiet)
    for cfg, member in zip(cfgs, together):
        alone = training.train(cfg, be, mnist, say=_quiet)
        assert abs(member.test_correct - alone.test_correct) <= 5  # 0.05 points of 10000 test images


def test_members_stop_on_their_own(mnist):
    """Early stopping, fewer epochs, a callback and divergence each stop one member at an
    epoch's end; the others go on to their own ends, equal to their solo runs."""
    be = backends.resolve("numpy", "cpu")
    base = training.TrainConfig(**{**SMALL, "epochs": 4, "validation": 56000, "dtype": "float64"})
    cfgs = [
        replace(base, lr=0.1, init_seed=0),
        replace(base, lr=2.0, init_seed=1, early_stop=1),  # too fast: its validation score falls
        replace(base, lr=0.1, init_seed=2, epochs=2),
        replace(base, lr=1e300, init_seed=3),  # diverges in its first epoch
        replace(base, lr=0.05, init_seed=4),
    ]

    class StopAfter:
        def __init__(self, epoch):
            self.epoch, self.seen = epoch, []

        def on_epoch_end(self, epoch, logs):
            self.seen.append(epoch)
            return epoch >= self.epoch

    stopper = StopAfter(3)
    lines = []
    results = population.train_population(cfgs, be, mnist, say=lines.append, callbacks=[[], [], [], [], [stopper]])
    assert [len(r.history) for r in results][0] == 4
    assert 1 <= len(results[1].history) < 4 and any("early stop" in line for line in lines)
    assert len(results[2].history) == 2
    assert results[3].history == [] and "diverged at epoch 1" in results[3].failure and results[3].test_total == 0
    assert stopper.seen == [1, 2, 3] and len(results[4].history) == 3
    for k in (0, 1, 2):
        alone = training.train(cfgs[k], be, mnist, say=_quiet)
        assert [h["loss"] for h in results[k].history] == pytest.approx([h["loss"] for h in alone.history], rel=1e-10)
        assert results[k].test_correct == alone.test_correct
    assert "3 of 5 finished" not in population.summary(results) and "4 of 5 finished" in population.summary(results)


def test_member_checkpoints_are_ordinary_and_resume_alone(tmp_path, mnist, monkeypatch):
    """Ctrl-C inside an epoch: every member saves a resumable checkpoint; each resumed alone
    ends where its uninterrupted solo run ends (float64: within 1e-10)."""
    be = backends.resolve("numpy", "cpu")
    cfgs = [replace(c, save=str(tmp_path / f"m{k}.npz")) for k, c in enumerate(_members(dtype="float64"))]
    calls = {"n": 0}

    def fake_stop(self):
        calls["n"] += 1
        if calls["n"] >= 5 and self.signum is None:
            self.signum = signal.SIGINT
        return self.signum is not None

    monkeypatch.setattr(training.SignalFlag, "__call__", fake_stop)
    lines = []
    with pytest.raises(training.Stopped) as e:
        population.train_population(cfgs, be, mnist, say=lines.append)
    assert e.value.exit_code == 130 and "xpnet train --resume" in lines[-1]
    monkeypatch.undo()
    for cfg in cfgs:
        saved = checkpoint.load(cfg.save)
        assert saved.meta["state"]["epoch"] >= 1
        resumed = training.train(cfg, be, mnist, say=_quiet, resume=saved)
        alone = training.train(replace(cfg, save=None), be, mnist, say=_quiet)
        assert _close(training.params_to_host(resumed.params), training.params_to_host(alone.params), 1e-10)


def test_population_seeds_on_the_command_line(tmp_path):
    """--population-seeds 3: three checkpoints and logs, each the solo run with its
    --init-seed (the same test accuracy line), read by evaluate, predict and export; the
    summary line last."""
    flags = ["--hidden", "12", "--epochs", "1", "--validation", "58000", "--batch-size", "40", "--dtype", "float64"]
    p = run_xpnet(
        "train", *flags, "--population-seeds", "3", "--seed", "5", "--save", tmp_path / "m.npz",
        "--log", tmp_path / "log.jsonl",
    )  # fmt: skip
    out = p.stdout.strip().splitlines()
    assert out[-1].startswith("population of 3: test accuracy mean ") and "3 of 3 finished" in out[-1]
    for seed in (5, 6, 7):
        path = tmp_path / f"m-init{seed}.npz"
        line = next(x for x in out if x.startswith(f"[{seed - 5}] test accuracy"))
        solo = run_xpnet("train", *flags, "--seed", "5", "--init-seed", str(seed))
        assert line.endswith(last_accuracy(solo.stdout))
        assert last_accuracy(run_xpnet("evaluate", "--model", path).stdout) == last_accuracy(solo.stdout)
        assert json.loads((tmp_path / f"log-init{seed}.jsonl").read_text().splitlines()[0])["epoch"] == 1
        assert xpnet.load(path).spec.sizes == (784, 12, 10)
    run_xpnet("export", "--model", tmp_path / "m-init6.npz", "--onnx", tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size > 0


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--population-seeds", "1"], ["--population-seeds 1", "at least 2"]),
        (["--population-seeds", "2", "--resume", "nothing.npz"], ["--resume"]),
    ],
)
def test_bad_population_flags_are_one_line(args, needles):
    assert_clean_error(run_xpnet("train", "--epochs", "1", *args, check=False), *needles)


def test_python_api_trains_members_and_refuses_what_cannot_share_a_step(tmp_path):
    models = xpnet.train_population(
        [{"lr": 0.05, "init_seed": 0}, {"lr": 0.2, "init_seed": 1, "save": str(tmp_path / "b.npz")}],
        hidden=(12,), epochs=1, validation=58000, batch_size=40, verbose=0,
    )  # fmt: skip
    assert len(models) == 2 and all(0.5 < m.test_accuracy <= 1 for m in models)
    assert xpnet.load(tmp_path / "b.npz").test_accuracy == models[1].test_accuracy
    shared = dict(epochs=1, validation=58000, verbose=0)
    with pytest.raises(ValueError, match="^hidden: member 1 has"):
        xpnet.train_population([{"hidden": (8,)}, {"hidden": (9,)}], **shared)
    with pytest.raises(ValueError, match="^init_seed: give it to every member or to none"):
        xpnet.train_population([{"init_seed": 1}, {}], **shared)
    with pytest.raises(ValueError, match="^save: two members write the same"):
        xpnet.train_population([{"save": str(tmp_path / "x.npz")}, {"save": str(tmp_path / "x.npz")}], **shared)
    with pytest.raises(ValueError, match="at least 2 members"):
        xpnet.train_population([{}], **shared)
    with pytest.raises(TypeError, match="members="):
        xpnet.train_population({"lr": 0.1}, **shared)
    with pytest.raises(ValueError, match="^callbacks: expected one list per member"):
        xpnet.train_population([{}, {}], callbacks=[[]], **shared)


def test_the_memory_estimate_counts_every_member():
    """K members need K times a network's parameters, slots, gradients and batch buffers (the
    data and the evaluation once); a population that cannot fit is refused before any work."""
    from xpnet.engine import budget

    one = budget.estimate((784, 512, 10), 4, "adam", 128, 60000, 10000)
    many = budget.estimate((784, 512, 10), 4, "adam", 128, 60000, 10000, members=16)
    for part in ("parameters", "optimiser slots", "gradients", "a batch"):
        assert many[part] == 16 * one[part]
    assert many["data"] == one["data"] and many["evaluation"] == one["evaluation"]
    with pytest.raises(ValueError, match="^hidden 4096,4096: the run needs about .*more than the"):
        xpnet.train_population([{"init_seed": k} for k in range(2000)], hidden=(4096, 4096), epochs=1, verbose=0)
