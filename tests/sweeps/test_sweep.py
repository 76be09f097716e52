"""``xpnet sweep`` on Optuna: the search-space file, the storages (SQLite, journal, a real
PostgreSQL server), several workers sharing a study, a killed worker's trial retried, Ctrl-C."""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers import write_dataset

try:
    import optuna
except ImportError:  # the test extra installs it: missing in CI fails (.ci/run), elsewhere (a GPU machine) skips
    message = "optuna is not installed (pip install 'xpnet[sweep]')"
    pytest.fail(message, pytrace=False) if os.environ.get("CI") == "true" else pytest.skip(
        message, allow_module_level=True
    )
from xpnet import cli
from xpnet.errors import UserError
from xpnet.sweeps import space

SPACE = """
[train]
data-dir = "{data}"
epochs = {epochs}
validation = 200
batch-size = 4

[sweep]
pruner = "none"

[sweep.params]
lr = {{low = 0.01, high = 0.5, log = true}}
hidden = ["16", "16,8"]
"""


def xpnet(*args, cwd, check=True, timeout=300):
    p = subprocess.run(
        [sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
    if check:
        assert p.returncode == 0, (p.stdout, p.stderr)
    return p


def popen(*args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "xpnet", *map(str, args)],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def one_line_error(p, *needles, code=2):
    err = p.stderr.strip()
    assert p.returncode == code and "Traceback" not in err and len(err.splitlines()) == 1, (p.returncode, p.stderr)
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("sweepdata"), np.random.default_rng(0), n_train=2000, n_test=300)


def make_study(folder: Path, data: Path, storage: str, epochs: int = 8, name: str = "s") -> str:
    (folder / "space.toml").write_text(SPACE.format(data=data, epochs=epochs))
    xpnet("sweep", "create", "--study", name, "--space", "space.toml", "--storage", storage, cwd=folder)
    return name


def trials(storage: str, name: str = "s"):
    from xpnet.sweeps import study as sweep

    return sweep.open_study(name, storage)[0].get_trials(deepcopy=False)


def counted(ts) -> int:
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in ts)


# --- the search-space file ---------------------------------------------------------------------

BAD_SPACES = [
    ("[sweep.params]\nlearning_rate = [0.1]", "sweep.params.learning_rate: not a setting"),
    ("[sweep.params]\nseed = [1, 2]", "sweep.params.seed: not swept"),
    ("[sweep.params]\nlr = {low = 0.5, high = 0.1}", "sweep.params.lr: low 0.5 is above high 0.1"),
    ("[sweep.params]\nl2 = {low = 0.0, high = 1.0, log = true}", "sweep.params.l2: log = true needs low > 0"),
    ("[sweep.params]\nlr = {low = -1.0, high = 1.0}", "sweep.params.lr.low -1.0: must be a number > 0"),
    ("[sweep.params]\nlr = {low = 0.1}", "sweep.params.lr: expected keys low, high"),
    ("[sweep.params]\nlr = {low = 0.1, high = 1.0, step = 0.1, log = true}", "sweep.params.lr.step 0.1"),
    ("[sweep.params]\nbatch_size = {low = 1.5, high = 8}", "sweep.params.batch_size.low = 1.5: expected an integer"),
    ("[sweep.params]\nactivation = {low = 1, high = 2}", "sweep.params.activation: --activation is not a number"),
    ('[sweep.params]\nactivation = ["relu", "swish"]', 'sweep.params.activation[1] = "swish": expected one of'),
    ('[sweep.params]\nhidden = ["16,x"]', "sweep.params.hidden[0] = '16,x': expected comma-separated integers"),
    ('[sweep.params]\nhidden = ["16,0"]', "sweep.params.hidden[0]: sizes must be >= 1"),
    ("[sweep.params]\nbatch_size = []", "sweep.params.batch_size: expected a range"),
    ("[sweep.params]\nepochs = {low = 0, high = 3}", "sweep.params.epochs: every trial needs epochs >= 1"),
    ("[sweep.params]\nbatch_size = [32, 32]", "sweep.params.batch_size: a choice is listed twice"),
    (
        '[sweep]\nsampler = "cma"\n[sweep.params]\nlr = [0.1]',
        'sweep.sampler = "cma": expected one of tpe, random, grid',
    ),
    (
        '[sweep]\npruner = "hyperband"\n[sweep.params]\nlr = [0.1]',
        'sweep.pruner = "hyperband": expected one of median, none',
    ),
    (
        '[sweep]\nsampler = "grid"\n[sweep.params]\nlr = {low = 0.1, high = 1.0}',
        "sweep.params.lr: the grid sampler needs choices",
    ),
    ("[sweep]\nseeds = 3\n[sweep.params]\nlr = [0.1]", "unknown key 'seeds' in [sweep]"),
    ("[train]\nepochs = 2", "no [sweep.params] table"),
    ("[train]\nlr = 0.1\n[sweep.params]\nlr = [0.1, 0.2]", "lr is both fixed under [train] and searched"),
    (
        "[train]\nlayers = [784, 16, 10]\nhidden = [16]\n[sweep.params]\nlr = [0.1]",
        "layers and hidden in [train] both given",
    ),
    ('[train]\nsave = "m.npz"\n[sweep.params]\nlr = [0.1]', "[train] save: set by the sweep"),
    ('[train]\nlr = "fast"\n[sweep.params]\nepochs = [1]', 'lr = "fast": expected a number'),
    ("[train]\nvalidation = 0\n[sweep.params]\nlr = [0.1]", "validation and epochs must be > 0"),
    ("[train]\ndropout = 2.0\n[sweep.params]\nlr = [0.1]", "[train]: --dropout 2.0"),
    ("[sweep.params]\nlr = [0.1]\n[other]\nx = 1", "unknown table 'other' at the top level"),
    ("[train]\nepochs = 1\n[sweep.params]\nlr = [0.1]\n[other]\nx = 1", "'other' beside [train]"),
    ("[sweep.params\n", "not valid TOML"),
]


@pytest.mark.parametrize("text,needle", BAD_SPACES, ids=[n[:30] for _, n in BAD_SPACES])
def test_space_file_errors_name_the_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        space.load(str(path))
    assert str(e.value).startswith(f"--space {path}: ") and needle in str(e.value), str(e.value)


def test_space_suggests_settings_of_their_types(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        '[train]\nepochs = 2\nlayers = [64, 10, 3]\n[sweep]\nsampler = "grid"\n[sweep.params]\n'
        "lr = {low = 0.1, high = 0.3, step = 0.1}\nbatch-size = {low = 8, high = 16, step = 8}\n"
        'hidden = ["16,8", [4], ""]\nactivation = ["relu", "tanh"]\n'
    )
    s = space.load(str(path))
    assert s.grid_size() == 3 * 2 * 3 * 2
    s = space.Space.from_dict(json.loads(json.dumps(s.to_dict())))  # as the study stores it
    got = s.suggest(optuna.trial.FixedTrial({"lr": 0.2, "batch_size": 16, "hidden": "16,8", "activation": "tanh"}))
    assert got == {"epochs": 2, "layers": None, "lr": 0.2, "batch_size": 16, "hidden": (16, 8), "activation": "tanh"}
    assert (
        s.suggest(optuna.trial.FixedTrial({"lr": 0.1, "batch_size": 8, "hidden": "", "activation": "relu"}))["hidden"]
        == ()
    )


@pytest.mark.slow
def test_a_trial_reports_each_epoch_and_stops_when_pruned(tmp_path, data_dir):
    from xpnet import backends
    from xpnet.files import idx
    from xpnet.sweeps import study as sweep

    class PruneAtEpoch2(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.last_step >= 2

    (tmp_path / "space.toml").write_text(SPACE.format(data=data_dir, epochs=6))
    s = space.load(str(tmp_path / "space.toml"))
    objective = sweep.Objective(
        "s", s, idx.load(str(data_dir), test=False), backends.resolve("numpy", "cpu"), str(tmp_path), 1, print
    )
    for pruner, state, epochs in ((optuna.pruners.NopPruner(), "COMPLETE", 6), (PruneAtEpoch2(), "PRUNED", 2)):
        study = optuna.create_study(direction="maximize", pruner=pruner)
        study.optimize(objective, n_trials=1)
        t = study.trials[0]
        log = [json.loads(line) for line in (tmp_path / "s" / "trial-0" / "log.jsonl").read_text().splitlines()]
        assert (
            t.state.name == state and sorted(t.intermediate_values) == list(range(1, epochs + 1)) and len(log) == epochs
        )
        assert t.value == log[-1]["val_accuracy"] and t.user_attrs["seed"] == 0


def test_a_population_of_trials_trains_together_each_as_it_would_alone(tmp_path, data_dir):
    """``--population``: four trials asked at once, split by their shape into two populations;
    each reports every epoch, one is pruned on its own, each is told as it ends, and each
    complete one's value is the solo run of its settings (float64)."""
    from xpnet import backends, training
    from xpnet.files import idx
    from xpnet.sweeps import study as sweep

    class PruneTrial2(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 2 and trial.last_step >= 2

    float64 = SPACE.replace("batch-size = 4", 'batch-size = 4\ndtype = "float64"')
    (tmp_path / "space.toml").write_text(float64.format(data=data_dir, epochs=4))
    s = space.load(str(tmp_path / "space.toml"))
    dataset, be = idx.load(str(data_dir), test=False), backends.resolve("numpy", "cpu")
    lines = []
    objective = sweep.Objective("s", s, dataset, be, str(tmp_path), 1, lambda line: lines.append(line))
    # a seeded sampler: an unseeded one drew one shape for all four trials about one run in eight
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(direction="maximize", pruner=PruneTrial2(), sampler=sampler)
    objective.population(study, [study.ask() for _ in range(4)])
    ts = study.trials
    assert [t.state.name for t in ts] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    order = [int(line.split()[1]) for line in lines]  # told as each ended: trial 2 before its population's others
    mates = [t.number for t in ts if t.params["hidden"] == ts[2].params["hidden"] and t.number != 2]
    assert sorted(order) == [0, 1, 2, 3] and all(order.index(2) < order.index(k) for k in mates)
    assert "pruned" in lines[order.index(2)]
    assert {t.user_attrs["seed"] for t in ts} == {0} and [t.user_attrs["init_seed"] for t in ts] == [0, 1, 2, 3]
    assert len({t.params["hidden"] for t in ts}) == 2  # two shapes: two populations (or a lone trial)
    for t in ts:
        log = [
            json.loads(line) for line in (tmp_path / "s" / f"trial-{t.number}" / "log.jsonl").read_text().splitlines()
        ]
        epochs = 2 if t.number == 2 else 4
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1)) and len(log) == epochs
        if t.state.name == "COMPLETE":
            cfg, _ = objective.prepare(t)  # the trial's settings again, from its attributes
            alone = training.train(replace(cfg, save=None), be, dataset, say=lambda line: None)
            assert t.value == log[-1]["val_accuracy"] == alone.history[-1]["val_accuracy"]
            assert log[-1]["loss"] == pytest.approx(alone.history[-1]["loss"], rel=1e-10)


def test_a_population_refused_before_training_fails_each_of_its_trials(tmp_path, data_dir, monkeypatch):
    """A population that cannot start (its memory refused, say) leaves none of its trials
    running: each is told failed with the reason."""
    from xpnet import backends, population
    from xpnet.files import idx
    from xpnet.sweeps import study as sweep

    def refused(*args, **kwargs):
        raise UserError("--hidden 30: the population needs more memory than is free")

    monkeypatch.setattr(population, "train_population", refused)
    one_shape = SPACE.replace('hidden = ["16", "16,8"]\n', "")  # the three trials form one population
    (tmp_path / "space.toml").write_text(one_shape.format(data=data_dir, epochs=2))
    s = space.load(str(tmp_path / "space.toml"))
    dataset, be = idx.load(str(data_dir), test=False), backends.resolve("numpy", "cpu")
    objective = sweep.Objective("s", s, dataset, be, str(tmp_path), 1, lambda line: None)
    study = optuna.create_study(direction="maximize")
    objective.population(study, [study.ask() for _ in range(3)])
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3
    assert all("more memory" in t.user_attrs["error"] for t in study.trials)


# --- storages and errors -----------------------------------------------------------------------


@pytest.mark.slow
def test_storage_and_study_errors_are_one_line(tmp_path, data_dir):
    make_study(tmp_path, data_dir, "sqlite:///x.db")
    one_line_error(
        xpnet(
            "sweep",
            "create",
            "--study",
            "s",
            "--space",
            "space.toml",
            "--storage",
            "sqlite:///x.db",
            cwd=tmp_path,
            check=False,
        ),
        "--study s: already exists",
    )
    one_line_error(
        xpnet("sweep", "show", "--study", "nope", "--storage", "sqlite:///x.db", cwd=tmp_path, check=False),
        "--study nope: no such study",
    )
    for url, needle in (
        ("mysql://u@h/db", "expected sqlite:///FILE"),
        ("sqlite:///no/such/dir/x.db", "folder no/such/dir does not exist"),
        ("journal:", "needs a file"),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db", "cannot open the database"),
    ):
        p = xpnet("sweep", "show", "--study", "s", "--storage", url, cwd=tmp_path, check=False)
        one_line_error(p, "--storage", needle)
        assert "secret" not in p.stderr
    one_line_error(
        xpnet("sweep", "create", "--study", "a/b", "--space", "space.toml", cwd=tmp_path, check=False), "--study 'a/b'"
    )
    one_line_error(
        xpnet(
            "sweep", "run", "--study", "s", "--storage", "sqlite:///x.db", "--workers", "0", cwd=tmp_path, check=False
        ),
        "--workers 0: must be",
    )
    one_line_error(
        xpnet("sweep", "best", "--study", "s", "--storage", "sqlite:///x.db", cwd=tmp_path, check=False),
        "no complete trial",
    )


def test_missing_optuna_or_psycopg_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # importing it raises ImportError
    assert cli.main(["sweep", "show", "--study", "s", "--storage", "postgresql://u@h/db"]) == 2
    assert "PostgreSQL needs psycopg: pip install 'xpnet[postgres]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert cli.main(["sweep", "show", "--study", "s"]) == 2
    assert capsys.readouterr().err.strip() == "xpnet: error: xpnet sweep needs Optuna: pip install 'xpnet[sweep]'"


def test_every_sweep_flag_has_a_help_text_and_its_default():
    import argparse

    top = cli.build_parser()
    sweep = top._subparsers._group_actions[0].choices["sweep"]
    for parser in sweep._subparsers._group_actions[0].choices.values():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, (parser.prog, action.dest)
            if action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, bool):
                assert "default" in formatter._get_help_string(action), (parser.prog, action.dest)
        assert "--debug" in parser._option_string_actions and "None" not in parser.format_help()


def test_other_commands_never_import_optuna():
    code = (
        "import sys; from xpnet import cli; cli.build_parser(); cli.main(['presets']); "
        "assert not {'optuna', 'sqlalchemy', 'xpnet.sweeps.study'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


# --- workers -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_on_sqlite_complete_n_trials_and_best_reads_the_test_set(tmp_path, data_dir):
    data = shutil.copytree(data_dir, tmp_path / "data")
    make_study(tmp_path, data, "sqlite:///sweeps.db", epochs=20)  # relative to the folder the commands run in
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for f in data.glob("t10k-*"):  # the workers never read the test set: they run without its files
        f.rename(hidden / f.name)
    p = xpnet(
        "sweep", "run", "--study", "s", "--storage", "sqlite:///sweeps.db", "--trials", 6, "--workers", 2, cwd=tmp_path
    )
    for f in hidden.iterdir():
        f.rename(data / f.name)
    assert "starting 2 workers, 1 thread each" in p.stdout
    ts = trials(f"sqlite:///{tmp_path}/sweeps.db")
    assert 6 <= counted(ts) <= 7 and all(t.state.name == "COMPLETE" for t in ts), [t.state for t in ts]
    assert len({t.user_attrs["worker"] for t in ts}) == 2  # both workers ran trials
    for t in ts:
        assert t.user_attrs["seed"] == t.number and t.user_attrs["epochs"] == 20
        folder = tmp_path / "xpnet-sweeps" / "s" / f"trial-{t.number}"
        assert t.user_attrs["checkpoint"] == str(folder / "model.npz") and (folder / "model.npz").is_file()
        epochs = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
        assert [e["epoch"] for e in epochs] == list(range(1, 21)) and t.intermediate_values[20] == epochs[-1][
            "val_accuracy"
        ]
    shown = json.loads(
        xpnet("sweep", "show", "--study", "s", "--storage", "sqlite:///sweeps.db", "--json", cwd=tmp_path).stdout
    )
    assert len(shown["trials"]) == len(ts) and shown["best"]["val_accuracy"] == max(t.value for t in ts)
    b = xpnet("sweep", "best", "--study", "s", "--storage", "sqlite:///sweeps.db", "--save", "best.npz", cwd=tmp_path)
    assert f"best: trial {shown['best']['number']}," in b.stdout and b.stdout.strip().splitlines()[-1].startswith(
        "test accuracy: "
    )
    e = xpnet("evaluate", "--model", "best.npz", "--data-dir", data, cwd=tmp_path)
    assert e.stdout.strip().splitlines()[-1] == b.stdout.strip().splitlines()[-1]


def _wait_for_running_trial(storage: str, pid: int, folder: Path, timeout: float = 60.0):
    """The number of the trial the worker ``pid`` is running, once it has finished an epoch
    (so that the trial is mid-training: dozens of epochs to go)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        running = [
            t.number
            for t in trials(storage)
            if t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(f":{pid}")
        ]
        if running:
            log = folder / "xpnet-sweeps" / "s" / f"trial-{running[0]}" / "log.jsonl"
            while time.monotonic() < end and not (log.is_file() and log.read_text()):
                time.sleep(0.01)
            return running[0]
        time.sleep(0.1)
    raise AssertionError("the worker started no trial")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_worker_s_trial_is_retried(tmp_path, data_dir, kind):
    storage = f"sqlite:///{tmp_path}/sweeps.db" if kind == "sqlite" else f"journal:{tmp_path}/sweeps.log"
    make_study(tmp_path, data_dir, storage, epochs=80)
    flags = ("--study", "s", "--storage", storage, "--trials", 2, "--heartbeat", 1)
    victim = popen("sweep", "run", *flags, cwd=tmp_path)
    killed = _wait_for_running_trial(storage, victim.pid, tmp_path)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    xpnet("sweep", "run", *flags, cwd=tmp_path)  # another worker: one new trial, and the killed one again
    ts = {t.number: t for t in trials(storage)}
    assert ts[killed].state.name == "FAIL" and "error" not in ts[killed].user_attrs
    retries = [t for t in ts.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == ts[killed].params and retries[0].user_attrs["seed"] == killed
    assert counted(ts.values()) == 2 and len(ts) == 3


@pytest.mark.slow
def test_a_killed_population_worker_s_trials_are_each_retried(tmp_path, data_dir):
    """kill -9 of a ``--population 3`` worker mid-training: every trial of its population has
    beaten (the worker beats for each, Optuna for none of ask/tell trials), so the next worker
    fails all three as stale and retries each once, with its parameters, its batch order and
    its initial weights."""
    storage = f"sqlite:///{tmp_path}/sweeps.db"
    make_study(tmp_path, data_dir, storage, epochs=80)
    flags = ("--study", "s", "--storage", storage, "--trials", 3, "--heartbeat", 1, "--population", 3)
    victim = popen("sweep", "run", *flags, cwd=tmp_path)
    _wait_for_running_trial(storage, victim.pid, tmp_path)
    running = [t.number for t in trials(storage) if t.state.name == "RUNNING"]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert running == [0, 1, 2]
    xpnet("sweep", "run", *flags, cwd=tmp_path)  # another worker: the three again, as one population
    ts = {t.number: t for t in trials(storage)}
    for killed in running:
        assert ts[killed].state.name == "FAIL" and "error" not in ts[killed].user_attrs
        retries = [t for t in ts.values() if t.system_attrs.get("failed_trial") == killed]
        assert len(retries) == 1 and retries[0].state.name == "COMPLETE", (killed, retries)
        assert retries[0].params == ts[killed].params
        assert (retries[0].user_attrs["seed"], retries[0].user_attrs["init_seed"]) == (0, killed)
    assert counted(ts.values()) == 3 and len(ts) == 6


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_the_workers_and_queues_their_trials_again(tmp_path, data_dir, workers):
    storage = f"sqlite:///{tmp_path}/sweeps.db"
    make_study(tmp_path, data_dir, storage, epochs=400)
    parent = popen("sweep", "run", "--study", "s", "--storage", storage, "--workers", workers, cwd=tmp_path)
    end = time.monotonic() + 60
    while sum(t.state.name == "RUNNING" for t in trials(storage)) < workers and time.monotonic() < end:
        time.sleep(0.2)
    parent.send_signal(signal.SIGINT)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert (
        "interrupted: " + ("2 workers stopped" if workers == 2 else "worker stopped; trial 0 is queued to run again")
        in err
    )
    ts = trials(storage)
    stopped = [t for t in ts if t.state.name == "FAIL"]
    assert len(stopped) == workers and not any(t.state.name == "RUNNING" for t in ts)
    waiting = sorted(t.system_attrs["failed_trial"] for t in ts if t.state.name == "WAITING")
    assert waiting == sorted(t.number for t in stopped)  # the next sweep run runs them first


def test_population_workers_finish_the_trials_on_sqlite(tmp_path, data_dir):
    """``sweep run --population 3 --trials 5``: the worker asks 3 trials, then the 2 the target
    still needs; every trial complete, with its checkpoint, its batch order shared with the
    trials asked with it and its initial weights from its own number."""
    storage = f"sqlite:///{tmp_path}/sweeps.db"
    make_study(tmp_path, data_dir, storage, epochs=2)
    p = xpnet("sweep", "run", "--study", "s", "--storage", storage, "--trials", 5, "--population", 3, cwd=tmp_path)
    ts = trials(storage)
    assert [t.state.name for t in ts] == ["COMPLETE"] * 5 and p.stdout.count(" complete ") == 5
    assert [t.user_attrs["init_seed"] for t in ts] == [0, 1, 2, 3, 4]
    assert [t.user_attrs["seed"] for t in ts] == [0, 0, 0, 3, 3]
    assert all(Path(t.user_attrs["checkpoint"]).is_file() for t in ts)


@pytest.mark.slow
def test_ctrl_c_queues_every_trial_of_a_population_again(tmp_path, data_dir):
    storage = f"sqlite:///{tmp_path}/sweeps.db"
    make_study(tmp_path, data_dir, storage, epochs=400)
    parent = popen("sweep", "run", "--study", "s", "--storage", storage, "--population", 3, cwd=tmp_path)
    end = time.monotonic() + 60
    while sum(t.state.name == "RUNNING" for t in trials(storage)) < 3 and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(1.0)  # training
    parent.send_signal(signal.SIGINT)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted: worker stopped; trials 0, 1, 2 are queued to run again" in err
    ts = trials(storage)
    waiting = sorted(t.system_attrs["failed_trial"] for t in ts if t.state.name == "WAITING")
    assert waiting == [0, 1, 2] and not any(t.state.name == "RUNNING" for t in ts)


# --- a real PostgreSQL server ------------------------------------------------------------------


def _postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[-3]), reverse=True)
    path = found[0] if found else shutil.which("pg_ctl")
    return Path(path).parent if path else None


@pytest.fixture
def postgres():
    """A PostgreSQL server on 127.0.0.1 in a temporary folder, as an unprivileged user when
    run as root (postgres refuses root); its URL. Missing binaries fail in CI (.ci/run installs them)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="xpnet-pg-"))
    as_user = []
    if os.geteuid() == 0:
        user = next(u for u in ("postgres", "nobody") if _has_user(u))
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd):
        return subprocess.run(as_user + [str(c) for c in cmd], check=True, capture_output=True, timeout=120, cwd=folder)

    run(bin_dir / "initdb", "-D", folder / "data", "-U", "xpnet", "--auth=trust", "-E", "UTF8")
    run(
        bin_dir / "pg_ctl",
        "-D",
        folder / "data",
        "-l",
        folder / "log",
        "-w",
        "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}",
        "start",
    )
    try:
        yield f"postgresql+psycopg://xpnet@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            as_user + [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=folder,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.mark.slow
def test_postgres_three_workers_share_one_study_each_trial_run_once(tmp_path, data_dir, postgres):
    make_study(tmp_path, data_dir, postgres, epochs=15)
    workers = [
        popen("sweep", "run", "--study", "s", "--storage", postgres, "--trials", 9, cwd=tmp_path) for _ in range(3)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    ts = trials(postgres)
    assert 9 <= counted(ts) <= 11 and all(t.state.name == "COMPLETE" for t in ts)
    ran_by = {}  # trial number -> the workers whose output reports it
    for w, (out, _) in zip(workers, outputs):
        for line in out.splitlines():
            if line.startswith("trial "):
                ran_by.setdefault(int(line.split()[1]), []).append(w.pid)
    assert sorted(ran_by) == sorted(t.number for t in ts)
    for t in ts:
        assert len(ran_by[t.number]) == 1 and t.user_attrs["worker"].endswith(f":{ran_by[t.number][0]}")
        log = tmp_path / "xpnet-sweeps" / "s" / f"trial-{t.number}" / "log.jsonl"
        assert len(log.read_text().splitlines()) == 15  # trained once: one line per epoch
    assert len({pid for pids in ran_by.values() for pid in pids}) == 3


@pytest.mark.slow
def test_a_damaged_journal_is_one_line_and_one_cut_mid_line_is_repaired(tmp_path, data_dir):
    """journal:DIR, a line that is not JSON, bytes that are no journal: one line naming the
    storage; a last line cut mid-write (a worker killed while appending): the partial line
    dropped, the user told, the complete records kept and the study usable."""
    make_study(tmp_path, data_dir, "journal:j.log", epochs=1)
    xpnet("sweep", "run", "--study", "s", "--storage", "journal:j.log", "--trials", "2", cwd=tmp_path)
    journal = tmp_path / "j.log"
    good = journal.read_bytes()
    (tmp_path / "folder").mkdir()
    one_line_error(
        xpnet("sweep", "show", "--study", "s", "--storage", "journal:folder", cwd=tmp_path, check=False),
        "--storage journal:folder: is a directory",
    )
    journal.write_bytes(good + b"not json\n")
    bad_line = len(good.splitlines()) + 1
    one_line_error(
        xpnet("sweep", "run", "--study", "s", "--storage", "journal:j.log", "--trials", "3", cwd=tmp_path, check=False),
        f"line {bad_line} is not JSON: not an Optuna journal",
    )
    (tmp_path / "r.log").write_bytes(bytes(range(256)) * 4)
    one_line_error(
        xpnet(
            "sweep",
            "create",
            "--study",
            "t",
            "--space",
            "space.toml",
            "--storage",
            "journal:r.log",
            cwd=tmp_path,
            check=False,
        ),
        "not an Optuna journal",
    )
    last = good.splitlines(keepends=True)[-1]
    journal.write_bytes(good + last[: len(last) // 2])  # a record cut mid-line
    p = xpnet("sweep", "show", "--study", "s", "--storage", "journal:j.log", "--json", cwd=tmp_path)
    assert "its last line was cut mid-write" in p.stderr and "Traceback" not in p.stderr
    assert journal.read_bytes() == good
    assert [t["state"] for t in json.loads(p.stdout)["trials"]] == ["COMPLETE", "COMPLETE"]
    xpnet("sweep", "run", "--study", "s", "--storage", "journal:j.log", "--trials", "3", cwd=tmp_path)
    assert len(trials(f"journal:{journal}")) == 3
