"""Resume: an interrupted run continued from its checkpoint equals the uninterrupted run."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from xpnet import backends, training
from xpnet.files import checkpoint

from helpers import assert_clean_error, xpnet


def _params(path):
    return checkpoint.load(path)[1]


def _same(a, b):
    return all(np.array_equal(Wa, Wb) and np.array_equal(ba, bb) for (Wa, ba), (Wb, bb) in zip(a, b))


SMALL = dict(
    hidden=(16,), epochs=3, validation=57000, batch_size=20, quiet=True, threads=1
)  # bits follow the BLAS thread count


@pytest.mark.slow
@pytest.mark.parametrize("where", ["inside epoch 1", "inside epoch 2", "at the epoch 1/2 boundary"])
def test_interrupted_then_resumed_is_bit_identical(tmp_path, mnist, monkeypatch, where):
    be = backends.resolve("numpy", "cpu")
    # stop() is asked after each chunk of steps and after each epoch
    per_epoch = 3000 // SMALL["batch_size"]
    chunks = -(-per_epoch // be.ops.steps_per_call(SMALL["batch_size"], 784 + 10 * 4, 0))
    assert chunks >= 3
    stop_after = {"inside epoch 1": 1, "inside epoch 2": chunks + 2, "at the epoch 1/2 boundary": chunks}[where]
    full = tmp_path / "full.npz"
    training.train(training.TrainConfig(save=str(full), **SMALL), be, mnist, say=lambda s: None)

    calls = {"n": 0}

    def fake_stop(self):
        calls["n"] += 1
        if calls["n"] >= stop_after and self.signum is None:
            self.signum = signal.SIGINT
        return self.signum is not None

    part = tmp_path / "part.npz"
    monkeypatch.setattr(training.SignalFlag, "__call__", fake_stop)
    lines = []
    with pytest.raises(training.Stopped) as e:
        training.train(training.TrainConfig(save=str(part), **SMALL), be, mnist, say=lines.append)
    assert e.value.exit_code == 130
    assert "Resume with: xpnet train --resume" in lines[-1]
    monkeypatch.undo()

    state = checkpoint.load(part)[2]["state"]
    epoch, mid = {"inside epoch 1": (1, True), "inside epoch 2": (2, True), "at the epoch 1/2 boundary": (2, False)}[
        where
    ]
    assert state["epoch"] == epoch and (0 < state["step"] < per_epoch if mid else state["step"] == 0)
    training.train(
        training.TrainConfig(save=str(part), **SMALL), be, mnist, say=lambda s: None, resume=checkpoint.load(part)
    )
    assert _same(_params(part), _params(full))


@pytest.mark.slow
def test_sigterm_from_outside_then_resume_cli(tmp_path):
    model, ref = tmp_path / "m.npz", tmp_path / "ref.npz"
    args = [
        "--hidden",
        "16",
        "--epochs",
        "4",
        "--validation",
        "50000",
        "--batch-size",
        "1",
        "--quiet",
        "--threads",
        "1",
    ]
    xpnet("train", *args, "--save", ref)
    p = subprocess.Popen(
        [sys.executable, "-m", "xpnet", "train", *args, "--save", str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in p.stdout:
        if line.startswith("epoch   1/4"):
            p.send_signal(signal.SIGTERM)
            break
    out, err = p.communicate(timeout=120)
    assert p.returncode == 143, (out, err)
    assert "SIGTERM: stopped at epoch" in out and f"--resume {model}" in out
    assert "Traceback" not in err
    r = xpnet("train", "--resume", model, "--quiet")
    assert "resuming at epoch" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("test accuracy:")
    assert _same(_params(model), _params(ref))


def test_log_appends_one_json_object_per_epoch(tmp_path):
    log = tmp_path / "run.jsonl"
    xpnet("train", "--hidden", "8", "--epochs", "2", "--validation", "55000", "--log", log)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("step", "loss", "val_accuracy", "seconds", "samples_per_s", "lr", "backend", "device"):
        assert key in rows[0]


def test_resume_refuses_other_architecture_and_missing_state(tmp_path):
    model = tmp_path / "m.npz"
    xpnet("train", "--hidden", "8", "--epochs", "1", "--validation", "55000", "--save", model)
    p = xpnet("train", "--resume", model, "--hidden", "9", check=False)
    assert_clean_error(p, "--resume", "784-8-10")


def test_config_file_and_flags_precedence(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[train]\nhidden = [12]\nlr = 0.05\nbatch-size = 64\nactivation = "tanh"\n')
    out = xpnet("train", "--config", cfg, "--lr", "0.07", "--print-config").stdout
    assert "hidden = [12]" in out and "lr = 0.07" in out and "batch-size = 64" in out and 'activation = "tanh"' in out
    out = xpnet("train", "--preset", "nielsen", "--config", cfg, "--print-config").stdout
    assert 'output = "sigmoid"' in out and "batch-size = 64" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = 0\n")
    assert_clean_error(xpnet("train", "--config", bad, check=False), "--batch-size")
    bad.write_text("colour = 3\n")
    assert_clean_error(xpnet("train", "--config", bad, check=False), "bad.toml", "colour")
    bad.write_text("lr = [\n")
    assert_clean_error(xpnet("train", "--config", bad, check=False), "bad.toml", "TOML")
    bad.write_text('activation = "swish"\n')
    assert_clean_error(xpnet("train", "--config", bad, check=False), "bad.toml", "activation")


@pytest.mark.slow
def test_same_seed_bit_identical_across_processes(tmp_path):
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    args = ["train", "--hidden", "16", "--epochs", "2", "--validation", "55000", "--threads", "1", "--seed", "5"]
    xpnet(*args, "--save", a)
    xpnet(*args, "--save", b)
    xpnet(*args[:-1], "6", "--save", c)
    assert _same(_params(a), _params(b))
    assert not _same(_params(a), _params(c))
