"""Sizes that cannot fit: the memory estimate against a real run's arrays, and runs too big for
the machine refused in one line, naming the flag, before anything big is allocated."""

import subprocess
import sys
import types

import numpy as np
import pytest

from xpnet import backends, training
from xpnet.engine import budget
from xpnet.errors import UserError
from xpnet.files import idx

from helpers import write_dataset, write_idx

HUGE = 10**30


def _arrays(obj, seen=None):
    """Every NumPy array reachable from obj through lists, tuples, dicts and xpnet objects'
    attributes, as the arrays that own their memory (views share their base's)."""
    seen = {} if seen is None else seen
    if isinstance(obj, np.ndarray):
        while isinstance(obj.base, np.ndarray):
            obj = obj.base
        seen[id(obj)] = obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _arrays(item, seen)
    elif isinstance(obj, dict):
        for item in obj.values():
            _arrays(item, seen)
    elif type(obj).__module__.startswith("xpnet."):
        _arrays(vars(obj), seen)
    return seen


def _nbytes(*objs) -> int:
    seen = {}
    for obj in objs:
        _arrays(obj, seen)
    return sum(a.nbytes for a in seen.values())


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """600 training images (8x8, 3 classes) and 200 test images, as IDX files."""
    return write_dataset(tmp_path_factory.mktemp("small"), np.random.default_rng(0))


@pytest.mark.parametrize(
    "settings",
    [
        {"hidden": (40,)},
        {"hidden": (300, 20), "optimizer": "adam", "dropout": 0.5, "augment": "affine", "dtype": "float64"},
        {"hidden": (24, 24), "optimizer": "momentum", "augment": "elastic", "dropout": 0.2},
        {"hidden": (40,), "batch_size": HUGE},  # one step on all 512 images: buffers sized by them
    ],
)
def test_estimate_is_the_bytes_of_a_runs_arrays(small, settings):
    """Each part of the estimate against the NumPy arrays an epoch of a run made: the model
    (parameters, slots, gradients) and the data exactly, a step's buffers within 2% (the
    augmentation's pixel grid, two small constants, is left out)."""
    ds = idx.load_dir(small)
    cfg = training.TrainConfig(**{"batch_size": 32, "validation": 88, "epochs": 1, "quiet": True, **settings})
    run = training.Run(cfg, backends.resolve("numpy", "cpu"), ds, say=lambda s: None)
    run.run_epoch(run.backend.asarray(run.state.rng.permutation(run.n)))
    assert list(run.steps._buffers) == [min(cfg.batch_size, 512)]  # 512 = 16 full batches of 32: one set of buffers
    need = budget.estimate(
        run.spec.sizes,
        np.dtype(cfg.dtype).itemsize,
        cfg.optimizer,
        cfg.batch_size,
        run.n,
        88,
        cfg.dropout > 0,
        cfg.augment,
        ds.image_shape,
    )
    bufs = run.steps._buffers[min(cfg.batch_size, 512)]
    grads = [bufs.gW, bufs.gb]
    assert need["parameters"] + need["optimiser slots"] + need["gradients"] == _nbytes(run.state.net, grads)
    assert need["data"] == _nbytes(run.train, run.val)
    step = _nbytes(vars(bufs) | {"gW": None, "gb": None}, run.steps._chunk)
    assert 0.98 < need["a batch"] / step < 1.02, (need["a batch"], step)


def _fake_backend(free):
    return types.SimpleNamespace(free_memory=lambda: free, is_cuda=False, label="cpu")


def test_check_names_the_group_that_needs_most():
    need = {
        "parameters": 5 << 30,
        "optimiser slots": 10 << 30,
        "gradients": 0,
        "evaluation": 1 << 20,
        "a batch": 12 << 30,
        "data": 1 << 30,
    }
    flags = {"sizes": "--hidden 9", "batch": "--batch-size 7", "data": "--data-dir d"}
    budget.check(need, _fake_backend(29 << 30), flags)  # fits
    budget.check(need, _fake_backend(None), flags)  # unknown: no check
    with pytest.raises(
        UserError,
        match=r"^--hidden 9: the run needs about 28 GiB \(parameters 5 GiB, optimiser slots 10 GiB, "
        r"evaluation 1 MiB, a batch 12 GiB, data 1 GiB\), more than the 20 GiB of memory available$",
    ):
        budget.check(need, _fake_backend(20 << 30), flags)  # sizes 15 GiB > batch 12 GiB
    with pytest.raises(UserError, match=r"^--batch-size 7: "):
        budget.check(need | {"optimiser slots": 0}, _fake_backend(1 << 30), flags)


def test_free_memory_of_the_cpu_is_the_hosts_available_ram():
    free = backends.resolve("numpy", "cpu").free_memory()
    assert free == pytest.approx(backends.host_available(), rel=0.2)
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    assert 0 < free <= total


def xpnet(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "xpnet", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def assert_refused(p, *needles):
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and len(err.splitlines()) == 1, p.stderr
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    "args, flag",
    [
        (["train", "--hidden", "2000000000"], "--hidden 2000000000: the run needs about"),
        (["train", "--hidden", "500000,500000"], "--hidden 500000,500000: the run needs about"),
        (["train", "--layers", "784,3000000,3000000,10", "--optimizer", "adam"], "--layers 784,3000000,3000000,10: "),
        (["train", "--hidden", "10000000", "--batch-size", HUGE], f"--batch-size {HUGE}: the run needs about"),
        (["walkthrough", "--hidden", "2000000000"], "--hidden 2000000000: the run needs about"),
    ],
)
def test_sizes_that_cannot_fit_are_refused_in_one_line(args, flag):
    assert_refused(xpnet(*args), flag, "more than the")


def test_sizes_from_a_config_file_are_refused_in_one_line(tmp_path):
    (tmp_path / "big.toml").write_text("[train]\nhidden = [500000, 500000]\n")
    assert_refused(xpnet("train", "--config", tmp_path / "big.toml"), "--hidden 500000,500000: the run needs about")


def test_a_huge_label_is_refused_when_read(tmp_path):
    """A label of 2**31 - 1 would mean 2**31 classes: refused naming the file, item and value."""
    folder = write_dataset(tmp_path / "d", np.random.default_rng(1), n_train=50, n_test=20)
    labels = np.random.default_rng(2).integers(0, 3, 50).astype(">i4")
    labels[7] = 2**31 - 1
    path = write_idx(folder / "train-labels-idx1-ubyte", labels)
    with pytest.raises(UserError, match=rf"^{path}: label 2147483647 at item 7 is above 65535 "):
        idx.load_dir(folder)
    for command in ("train", "walkthrough"):
        assert_refused(xpnet(command, "--data-dir", folder), str(path), "label 2147483647 at item 7")
    labels[7] = idx.MAX_CLASSES - 1  # the largest allowed label: 65,536 classes
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    assert idx.load_dir(folder).num_classes == idx.MAX_CLASSES


def test_a_batch_larger_than_the_data_trains(small):
    """--batch-size above the image count: one step on all of them per epoch."""
    p = xpnet(
        "train",
        "--data-dir",
        small,
        "--batch-size",
        HUGE,
        "--validation",
        0,
        "--epochs",
        2,
        "--hidden",
        16,
        "--lr",
        0.5,
        "--device",
        "cpu",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1].startswith("test accuracy: ")


def test_summary_lists_each_layer_the_total_and_the_memory(tmp_path, capsys):
    """Model.summary, xpnet summary and xpnet train's first lines: the same layer table, total
    and memory, the parameters counted as the budget counts them."""
    import xpnet
    from xpnet import cli
    from xpnet.engine import model

    spec = model.Spec((784, 16, 10), "relu", "softmax", "auto")
    lines = budget.summary(spec, "float32", "adam", 64, "numpy on cpu")
    assert lines[0] == "network 784-16-10 relu/softmax, float32, numpy on cpu"
    assert lines[2].split() == ["1", "16", "x", "784", "16", "12,560"] and lines[3].split()[-1] == "170"
    assert lines[4].split() == ["total", f"{budget.parameters(spec.sizes):,}"] == ["total", "12,730"]
    parts = budget.estimate(spec.sizes, 4, "adam", 64, n_train=64)
    assert lines[5] == (
        f"memory: parameters {budget._size(12730 * 4)}, optimiser state "
        f"{budget._size(parts['optimiser slots'] + parts['gradients'])} (adam), one batch (64 images) "
        f"{budget._size(parts['a batch'])}"
    )
    path = tmp_path / "m.npz"
    assert (
        cli.main(
            [
                "train",
                "--hidden",
                "16",
                "--epochs",
                "1",
                "--validation",
                "59000",
                "--optimizer",
                "adam",
                "--batch-size",
                "64",
                "--save",
                str(path),
                "--quiet",
                "--backend",
                "numpy",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[2:8] == lines
    assert cli.main(["summary", "--model", str(path), "--backend", "numpy"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == lines
    assert xpnet.load(path).summary().splitlines()[1:] == lines[1:]
