"""imagine, walkthrough, pictures: they run end to end and show what they claim."""

import json

import numpy as np
import pytest
from PIL import Image

from xpnet import backends, explore
from xpnet.engine import model
from xpnet.files import checkpoint

from helpers import assert_clean_error, targets, xpnet


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    xpnet("train", "--hidden", "100", "--epochs", "2", "--save", path, "--quiet")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("target", targets(dtype="float32", gpu=False), indirect=True)
def test_imagined_digits_are_classified_as_intended(trained, target):
    be = target.backend
    spec, host, meta = checkpoint.load(trained)
    params = model.params_to_device(be, host, "float32")
    imgs, probs = explore.imagine(params, spec, list(range(10)), (28, 28), steps=150)
    assert imgs.shape == (10, 28, 28) and imgs.min() >= 0 and imgs.max() <= 1
    assert list(np.argmax(probs, axis=1)) == list(range(10))
    assert np.all(probs[np.arange(10), np.arange(10)] > 0.9)
    assert imgs.std() > 0.02  # not a blank page


@pytest.mark.slow
def test_imagine_cli_writes_a_2x5_grid(trained, tmp_path):
    out = tmp_path / "imagined.png"
    r = xpnet("imagine", "--model", trained, "--out", out, "--steps", "100")
    assert "10/10 imagined digits classified as intended" in r.stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 1.5 * im.height  # five columns, two rows
    r = xpnet("imagine", "--model", trained, "3", "7", "--out", out, "--steps", "100")
    assert "2/2 imagined" in r.stdout
    assert_clean_error(xpnet("imagine", "--model", trained, "12", "--out", out, check=False), "DIGIT 12")


def test_walkthrough_changes_its_mind_and_settles(mnist):
    lines = []
    guesses = explore.walkthrough(
        backends.resolve("numpy", "cpu"),
        mnist.train.images[0],
        int(mnist.train.labels[0]),
        10,
        iterations=250,
        every=10,
        say=lines.append,
    )
    assert guesses[-1] == 5 == mnist.train.labels[0]
    assert guesses[0] != 5  # a fresh network starts out wrong, then settles on the answer
    assert sum("iteration" in line for line in lines) == 25
    errors = [line for line in lines if line.strip().startswith("error:")]
    assert len(errors) == 25 and errors[-1].count(":") == 11


@pytest.mark.slow
def test_show_plot_and_train_plots(tmp_path):
    xpnet("show", "--count", "20", "--out", tmp_path / "digits.png")
    log = tmp_path / "run.jsonl"
    xpnet(
        "train",
        "--hidden",
        "16",
        "--epochs",
        "2",
        "--validation",
        "55000",
        "--log",
        log,
        "--plots",
        tmp_path,
        "--quiet",
    )
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert all("train_accuracy" in r and "val_accuracy" in r for r in rows)
    xpnet("plot", "--log", log, "--out", tmp_path / "again.png")
    for name in ("digits.png", "curves.png", "confusion.png", "mistakes.png", "again.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 200 and im.height > 100
            assert np.asarray(im.convert("L")).std() > 5  # something is drawn
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert_clean_error(xpnet("plot", "--log", bad, check=False), "bad.jsonl", "line 1")
    assert_clean_error(xpnet("train", "--plots", tmp_path / "nope", check=False), "--plots")


def test_presets_listed_and_resolved():
    out = xpnet("presets").stdout
    for name in ("nielsen", "order3", "deep-sigmoid", "single-example", "default"):
        assert name in out
    cfg = xpnet("train", "--preset", "order3", "--print-config").stdout
    assert "l2 = 5.0" in cfg and "batch-size = 50" in cfg and "hidden = [30]" in cfg


@pytest.mark.slow
def test_single_example_preset_trains(tmp_path):
    r = xpnet("train", "--preset", "single-example", "--validation", "50000", "--quiet")
    acc = float(r.stdout.strip().splitlines()[-1].split()[2].rstrip("%"))
    assert acc > 70.0
