"""What every command promises (issue 14, classes 7 and 9): --json prints one document and
nothing else, no path is ever empty, a checkpoint resumes from any folder, and floating-point
warnings never reach stderr."""

import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from xpnet import cli
from xpnet.engine import optim
from xpnet.files import checkpoint

from helpers import assert_clean_error, last_accuracy, parsers, write_dataset, xpnet

ROWS, COLS, CLASSES = 9, 6, 3  # the toy data's images


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A small IDX data set and a model trained on it: (folder, model path)."""
    root = tmp_path_factory.mktemp("toy")
    folder = write_dataset(
        root / "data", np.random.default_rng(7), n_train=600, n_test=200, shape=(ROWS, COLS), classes=CLASSES
    )
    model = root / "m.npz"
    xpnet(
        "train",
        "--data-dir",
        folder,
        "--validation",
        "100",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--save",
        model,
        "--quiet",
    )
    return folder, model


def _pgm(path, pixels):
    path.write_bytes(f"P5\n{COLS} {ROWS}\n255\n".encode() + pixels.astype(np.uint8).tobytes())
    return path


def _main(capsys, *args):
    """cli.main in this process, with every warning an error: (exit status, stdout, stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# --- --json --------------------------------------------------------------------------------


def test_evaluate_json_is_one_document_with_the_text_numbers(toy):
    folder, model = toy
    args = ["evaluate", "--model", model, "--data-dir", folder, "--backend", "numpy"]
    text = xpnet(*args).stdout
    p = xpnet(*args, "--json")
    doc = json.loads(p.stdout)  # all of stdout: one document, no device line
    assert p.stderr == ""
    assert set(doc) == {"model", "data", "backend", "device", "dtype", "accuracy", "correct", "total", "per_class"}
    assert (doc["model"], doc["data"], doc["dtype"]) == (str(model), str(folder), "float32")
    assert f"device: {doc['device']}, backend {doc['backend']}" in text
    assert last_accuracy(text) == f"test accuracy: {100 * doc['accuracy']:.2f}% ({doc['correct']}/{doc['total']})"
    assert doc["total"] == 200 and doc["correct"] == sum(r["correct"] for r in doc["per_class"])
    table = [line.split() for line in text.splitlines() if re.match(r"^\s+\d+\s", line)]
    assert [
        [str(r["class"]), str(r["total"]), str(r["correct"]), f"{100 * r['accuracy']:.2f}%"] for r in doc["per_class"]
    ] == table and len(table) == CLASSES


def test_predict_json_is_one_document_with_the_text_numbers(toy, tmp_path):
    folder, model = toy
    from xpnet.files import idx

    test = idx.load(folder).test
    paths = [_pgm(tmp_path / f"{i}.pgm", test.images[i]) for i in range(3)]
    text = xpnet("predict", "--model", model, *paths).stdout
    p = xpnet("predict", "--model", model, *paths, "--json")
    doc = json.loads(p.stdout)
    assert p.stderr == ""
    assert doc["model"] == str(model) and f"device: {doc['device']}, backend {doc['backend']}" in text
    rows = doc["predictions"]
    assert [r["image"] for r in rows] == [str(path) for path in paths]
    assert [line for line in text.splitlines() if not line.startswith("device:")] == [
        f"{r['image']}: {r['class']} ({100 * r['probability']:.1f}%)" for r in rows
    ]
    for r in rows:
        assert len(r["probabilities"]) == CLASSES and r["probabilities"][r["class"]] == r["probability"]
        assert max(r["probabilities"]) == r["probability"] and sum(r["probabilities"]) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_json_errors_stay_one_line_on_stderr(toy, tmp_path, command):
    _, model = toy
    missing = tmp_path / "missing.npz"
    p = xpnet(command, "--model", missing, *(["x.pgm"] if command == "predict" else []), "--json", check=False)
    assert_clean_error(p, str(missing), "not found")
    assert p.stdout == ""
    if command == "predict":
        p = xpnet(command, "--model", model, tmp_path / "none.pgm", "--json", check=False)
        assert_clean_error(p, "none.pgm", "not found")
        assert p.stdout == ""


# --- empty paths ---------------------------------------------------------------------------

PATH_METAVARS = {"PATH", "DIR", "FILE.png", "FILE.toml", "IMAGE"}


def _path_arguments():
    """(command, flag or argument name) of every argument of every command that names a path."""
    out = []
    for parser in parsers()[1:]:
        for action in parser._actions:
            if action.metavar in PATH_METAVARS:
                out.append((parser.prog.split()[-1], (action.option_strings or [action.metavar])[0]))
    return out


PATH_ARGUMENTS = _path_arguments()


def test_the_path_arguments_are_found():
    found = set(PATH_ARGUMENTS)
    assert {
        ("train", "--save"),
        ("train", "--resume"),
        ("evaluate", "--model"),
        ("evaluate", "--data-dir"),
        ("predict", "IMAGE"),
        ("show", "--out"),
        ("show", "--data-dir"),
        ("walkthrough", "--data-dir"),
        ("imagine", "--out"),
        ("plot", "--log"),
    } <= found


@pytest.mark.parametrize("command,name", PATH_ARGUMENTS, ids=[" ".join(c) for c in PATH_ARGUMENTS])
def test_an_empty_path_is_refused_naming_its_flag(capsys, command, name):
    parser = next(p for p in parsers()[1:] if p.prog.split()[-1] == command)
    args = [command]
    for action in parser._actions:  # the other required arguments, given
        if action.required and (action.option_strings or [action.metavar])[0] != name:
            args += [action.option_strings[0], "x"] if action.option_strings else ["1"]  # a file or a digit
    args += [""] if name == "IMAGE" else [name, ""]
    rc, out, err = _main(capsys, *args)
    assert rc == 2 and out == "", (out, err)
    assert err.startswith(f"xpnet: error: {name} '': must not be empty") and len(err.splitlines()) == 1, err


# --- resuming from another folder ----------------------------------------------------------


@pytest.mark.slow
def test_a_checkpoint_resumes_from_another_folder(tmp_path, rng):
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    write_dataset(a / "toy", rng, n_train=300, n_test=100, shape=(ROWS, COLS), classes=CLASSES)
    run = ["--validation", "50", "--hidden", "8", "--quiet"]
    xpnet("train", "--data-dir", "toy", "--epochs", "1", "--log", "run.jsonl", "--save", "m.npz", *run, cwd=a)
    saved = checkpoint.load(a / "m.npz")
    assert {k: saved[2]["config"][k] for k in ("data_dir", "save", "log")} == {
        "data_dir": str(a / "toy"),
        "save": str(a / "m.npz"),
        "log": str(a / "run.jsonl"),
    }  # stored absolute
    p = xpnet("train", "--resume", a / "m.npz", "--epochs", "2", cwd=b)
    assert "resuming at epoch 2" in p.stdout and len((a / "run.jsonl").read_text().splitlines()) == 2

    # an older checkpoint holds the paths as given, relative to the folder its run was started in
    spec, params, meta = checkpoint.load(a / "m.npz")

    def old(**paths):
        config = meta["config"] | {"data_dir": "toy", "log": None} | paths
        checkpoint.save(a / "old.npz", spec, params, config, meta["metrics"], meta["state"], meta["slots"])

    old()
    p = xpnet("train", "--resume", "../a/old.npz", "--epochs", "3", cwd=b, check=False)
    assert_clean_error(
        p,
        "--data-dir toy (stored in ../a/old.npz, relative to the folder the run was started in): "
        "folder not found; give --data-dir to point at it",
    )
    p = xpnet("train", "--resume", "../a/old.npz", "--epochs", "3", "--data-dir", "../a/toy", "--quiet", cwd=b)
    assert "resuming at epoch 3" in p.stdout
    old()
    p = xpnet("train", "--resume", "old.npz", "--epochs", "3", "--quiet", cwd=a)  # where it was started: as before
    assert "resuming at epoch 3" in p.stdout
    old(log="logs/run.jsonl")
    p = xpnet("train", "--resume", "../a/old.npz", "--epochs", "3", "--data-dir", "../a/toy", cwd=b, check=False)
    assert_clean_error(
        p, "--log logs/run.jsonl (stored in ../a/old.npz, relative", "folder logs not found", "give --log"
    )


# --- no floating-point warnings ------------------------------------------------------------

COMBOS = [(a, o, opt) for a in ("sigmoid", "tanh", "relu") for o in ("softmax", "sigmoid") for opt in optim.OPTIMIZERS]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_a_diverging_run_says_one_line_and_warns_nothing(toy, capsys, backend):
    folder, _ = toy
    for activation, output, optimizer in COMBOS:
        rc, out, err = _main(
            capsys,
            "train",
            "--data-dir",
            folder,
            "--backend",
            backend,
            "--hidden",
            "16",
            "--epochs",
            "1",
            "--lr",
            "1e30",
            "--activation",
            activation,
            "--output",
            output,
            "--optimizer",
            optimizer,
            "--validation",
            "100",
            "--quiet",
        )
        case = (activation, output, optimizer, out, err)
        assert rc in (0, 1), case  # 1: diverged; 0: saturated units, a finite loss
        assert err == "" if rc == 0 else len(err.splitlines()) == 1 and "training diverged" in err, case


def test_a_diverging_run_ends_with_one_line_on_stderr(toy):
    folder, _ = toy
    p = xpnet(
        "train",
        "--data-dir",
        folder,
        "--backend",
        "array_api_strict",
        "--hidden",
        "16",
        "--epochs",
        "1",
        "--lr",
        "1e30",
        "--validation",
        "100",
        "--quiet",
        check=False,
    )
    assert_clean_error(p, "training diverged", "try a smaller --lr", code=1)


@pytest.fixture(scope="module")
def huge(toy, tmp_path_factory):
    """The toy model with weights near float32's largest: its outputs overflow."""
    spec, params, meta = checkpoint.load(toy[1])
    rng = np.random.default_rng(0)
    big = [
        (W * np.float32(1e37), np.clip(rng.standard_normal(b.shape) * 1e38, -3e38, 3e38).astype(np.float32))
        for W, b in params
    ]
    path = tmp_path_factory.mktemp("huge") / "huge.npz"
    checkpoint.save(path, spec, big, meta["config"])
    return path


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_overflowing_models_and_steps_warn_nothing(toy, huge, tmp_path, capsys, backend):
    folder, _ = toy
    pgm = _pgm(tmp_path / "x.pgm", np.arange(ROWS * COLS).reshape(ROWS, COLS) * 4)
    cases = [
        ["evaluate", "--model", huge, "--data-dir", folder],
        ["evaluate", "--model", huge, "--data-dir", folder, "--json"],
        ["predict", "--model", huge, pgm],
        ["predict", "--model", huge, pgm, "--json"],
        ["imagine", "--model", huge, "--steps", "3", "--out", tmp_path / "i.png", "0"],
        ["walkthrough", "--data-dir", folder, "--lr", "1e308", "--iterations", "3", "--every", "1"],
    ]
    for args in cases:
        rc, out, err = _main(capsys, *args, "--backend", backend)
        assert rc == 0 and err == "", (args, out, err)
        if "--json" in args:
            doc = json.loads(out)  # NaN probabilities are null: still JSON
            if args[0] == "predict":  # no class is made up for outputs that are not finite
                assert [p["class"] for p in doc["predictions"]] == [None] and doc["predictions"][0][
                    "probability"
                ] is None
        elif args[0] == "predict":
            assert out.strip().endswith("no prediction (the model's outputs are not finite)"), out


def _outputs(toy):
    """Commands whose result is on stdout, with the toy model and data."""
    folder, model = toy
    return [
        ["presets"],
        ["evaluate", "--model", model, "--data-dir", folder],
        ["evaluate", "--model", model, "--data-dir", folder, "--json"],
        ["train", "--print-config"],
    ]


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly_and_a_full_disk_in_one_line(toy):
    """``xpnet ... | head -1`` when the reader has gone: no traceback, the status of a tool a
    closed pipe ended (141); stdout on a full disk: one line naming it, exit 2."""
    for args in _outputs(toy):
        p = subprocess.Popen(
            [sys.executable, "-m", "xpnet", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        p.stdout.close()  # the reader goes before anything is written
        err = p.stderr.read().decode()
        assert p.wait(timeout=300) == 141 and err == "", (args, p.returncode, err)
        if os.path.exists("/dev/full"):
            with open("/dev/full", "w") as full:
                done = subprocess.run(
                    [sys.executable, "-m", "xpnet", *map(str, args)], stdout=full, stderr=subprocess.PIPE, text=True
                )
            assert done.returncode == 2, (args, done.stderr)
            assert done.stderr.strip() == "xpnet: error: cannot write to standard output (No space left on device)"
