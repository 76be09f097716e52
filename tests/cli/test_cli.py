"""The command line, end to end through subprocesses, on real MNIST."""

import argparse
import importlib.util
import re

import pytest

from helpers import ACC, COMBOS, CUPY_IS_EMULATED, assert_clean_error, last_accuracy, parsers, write_dataset, xpnet


def _gpu_usable():
    """A real GPU through a real CuPy (not the emulated one, which subprocesses do not see)."""
    if importlib.util.find_spec("cupy") is None or CUPY_IS_EMULATED:
        return False
    from xpnet.backends.devices import _cupy_status

    return _cupy_status(0)[0] is not None


@pytest.mark.slow
def test_train_save_evaluate_across_backends_and_predict(tmp_path, mnist):
    model = tmp_path / "m.npz"
    p = xpnet("train", "--backend", "torch", "--epochs", "1", "--hidden", "64", "--save", model, "--quiet")
    trained = last_accuracy(p.stdout)
    assert float(ACC.match(trained).group(1)) > 90.0
    assert "epoch   1/1" in p.stdout and "samples/s" in p.stdout and "val acc" in p.stdout
    assert model.is_file()

    evals = []
    cpu_backends = [name for name, _, gpu in COMBOS if not gpu]  # conftest's one list of backends
    for backend in cpu_backends:
        e = xpnet("evaluate", "--model", model, "--backend", backend, gpu=backend == "cupy")
        evals.append(last_accuracy(e.stdout))
        assert re.search(r"^\s+7\s+1028\s+\d+\s+\d+\.\d\d%$", e.stdout, re.M), e.stdout  # per-class table
    assert evals == [trained] * len(cpu_backends)

    # predict: a PGM written from a test digit and a PNG of the same digit as dark ink on white, larger
    from PIL import Image

    img = mnist.test.images[0]  # a 7
    pgm = tmp_path / "seven.pgm"
    pgm.write_bytes(b"P5\n28 28\n255\n" + img.tobytes())
    png = tmp_path / "seven_big.png"
    Image.fromarray(255 - img).resize((84, 84)).save(png)
    r = xpnet("predict", "--model", model, pgm, png)
    lines = [line for line in r.stdout.splitlines() if line.startswith(str(tmp_path))]
    assert len(lines) == 2
    for line in lines:
        assert re.search(r": 7 \(\d+\.\d%\)$", line), r.stdout


def test_training_on_a_custom_idx_dataset(tmp_path, rng):
    folder = write_dataset(tmp_path / "toy", rng, n_train=900, n_test=300, shape=(9, 6), classes=3, gz=True)
    model = tmp_path / "toy.npz"
    p = xpnet(
        "train",
        "--data-dir",
        folder,
        "--validation",
        "100",
        "--epochs",
        "3",
        "--hidden",
        "16",
        "--batch-size",
        "16",
        "--save",
        model,
    )
    assert "training 54-16-3" in p.stdout
    assert float(ACC.match(last_accuracy(p.stdout)).group(1)) > 90.0
    e = xpnet("evaluate", "--model", model, "--data-dir", folder)
    assert last_accuracy(e.stdout) == last_accuracy(p.stdout)
    # the MNIST-sized model does not fit this data
    p = xpnet("train", "--data-dir", folder, "--layers", "784,30,10", check=False)
    assert_clean_error(p, "--layers", "784", "54")


@pytest.mark.skipif(_gpu_usable(), reason="a GPU is usable here; see the gpu tests")
def test_device_cuda_without_gpu_exits_2_with_one_line():
    p = xpnet("train", "--device", "cuda", check=False)
    assert_clean_error(p, "--device cuda", "no usable GPU", "--device cpu")
    p = xpnet("train", "--backend", "cupy", check=False)
    assert_clean_error(p, "--backend cupy", "no usable GPU")


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_usable(), reason="no usable CUDA GPU through CuPy")
def test_device_cuda_trains_on_the_gpu(tmp_path):
    p = xpnet("train", "--device", "cuda", "--epochs", "1", "--quiet")
    assert "backend cupy" in p.stdout
    assert float(ACC.match(last_accuracy(p.stdout)).group(1)) > 90.0


@pytest.mark.slow
@pytest.mark.skipif(not CUPY_IS_EMULATED, reason="a real CuPy is installed (test_device_cuda_trains_on_the_gpu)")
def test_device_cuda_trains_on_the_emulated_gpu(tmp_path):
    """The headline command, end to end on the emulated CuPy: CUDA graphs, the fused kernels,
    a checkpoint that the CPU evaluates to the same accuracy."""
    model = tmp_path / "gpu.npz"
    p = xpnet("train", "--device", "cuda", "--epochs", "1", "--hidden", "64", "--quiet", "--save", model, gpu=True)
    assert "backend cupy" in p.stdout.splitlines()[0] and "cuda:0" in p.stdout
    trained = last_accuracy(p.stdout)
    assert float(ACC.match(trained).group(1)) > 90.0
    assert last_accuracy(xpnet("evaluate", "--model", model, "--device", "cpu").stdout) == trained


@pytest.mark.parametrize(
    "args,needles",
    [
        (["train", "--lr", "0"], ["--lr"]),
        (["train", "--lr", "nan"], ["--lr"]),
        (["train", "--batch-size", "0"], ["--batch-size"]),
        (["train", "--epochs", "-1"], ["--epochs"]),
        (["train", "--layers", "784,x,10"], ["--layers"]),
        (["train", "--layers", "700,30,10"], ["--layers", "700", "784"]),
        (["train", "--layers", "784,30,9"], ["--layers", "9", "10 classes"]),
        (["train", "--backend", "tensorflow"], ["--backend", "tensorflow"]),
        (["train", "--device", "tpu"], ["--device", "tpu"]),
        (["train", "--validation", "60000"], ["--validation"]),
        (["train", "--data-dir", "/nonexistent"], ["--data-dir", "/nonexistent"]),
        (["train", "--bogus"], ["--bogus"]),
        (["train", "--seed", "-1"], ["--seed"]),
        (["train", "--log", "/nonexistent/run.jsonl"], ["--log"]),
        (["train", "--optimizer", "lbfgs"], ["--optimizer"]),
        (["train", "--dropout", "1.5"], ["--dropout"]),
        (["train", "--early-stop", "3", "--validation", "0"], ["--early-stop"]),
        (["evaluate", "--model", "/nonexistent.npz"], ["/nonexistent.npz", "not found"]),
        (["evaluate"], ["--model"]),
        (["train", "--save", ""], ["--save ''"]),
        (["train", "--data-dir", ""], ["--data-dir ''"]),
        (["walkthrough", "--lr", "inf"], ["--lr inf"]),
        (["walkthrough", "--lr", "nan"], ["--lr nan"]),
        (["walkthrough", "--seed", "-1"], ["--seed -1"]),
        (["walkthrough", "--hidden", "0"], ["--hidden 0"]),
        (["walkthrough", "--every", "0"], ["--every 0"]),
        (["walkthrough", "--iterations", "-3"], ["--iterations -3"]),
        (["walkthrough", "--data-dir", ""], ["--data-dir ''"]),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needles):
    assert_clean_error(xpnet(*args, check=False), *needles)


def test_save_to_missing_folder_is_refused_before_training(tmp_path):
    p = xpnet("train", "--epochs", "1", "--save", tmp_path / "no" / "m.npz", check=False)
    assert_clean_error(p, "no/m.npz")
    assert "epoch" not in p.stdout


def test_predict_bad_images(tmp_path):
    model = tmp_path / "m.npz"
    xpnet("train", "--epochs", "0", "--save", model)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    assert_clean_error(xpnet("predict", "--model", model, junk, check=False), "junk.png")
    assert_clean_error(
        xpnet("predict", "--model", model, tmp_path / "missing.pgm", check=False), "missing.pgm", "not found"
    )
    bad = tmp_path / "bad.pgm"
    bad.write_bytes(b"P5\n28 28\n255\n" + b"\x00" * 10)
    assert_clean_error(xpnet("predict", "--model", model, bad, check=False), "bad.pgm", "truncated")


def test_help_lists_the_commands():
    out = xpnet("--help").stdout
    for cmd in ("train", "evaluate", "predict"):
        assert cmd in out
    assert "--device" in xpnet("train", "--help").stdout


def test_every_flag_has_a_help_text_and_its_default():
    from xpnet import config

    for parser in parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            name = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, name
            # train's parser suppresses its defaults (given flags win over presets): they are TrainConfig's
            default = (
                getattr(config.TrainConfig(), action.dest, None)
                if action.default == argparse.SUPPRESS
                else action.default
            )
            if default is not None and not isinstance(default, bool):
                assert "default" in formatter._get_help_string(action), name
        text = parser.format_help()
        assert "None" not in text and "SUPPRESS" not in text, text
    train = parsers()[1].format_help()
    assert "(default: 0.2)" in train and "(default: 512,256)" in train


def test_bare_xpnet_lists_the_commands_and_exits_2():
    p = xpnet(check=False)
    assert p.returncode == 2 and not p.stdout and "Traceback" not in p.stderr
    assert p.stderr.startswith("usage: xpnet")
    for command in ("train", "evaluate", "predict", "presets", "imagine", "walkthrough", "show", "plot"):
        assert re.search(rf"^\s+{command}\b", p.stderr, re.MULTILINE), p.stderr


def test_debug_is_taken_before_and_after_the_command():
    for args in (["--debug", "train", "--lr", "x"], ["train", "--lr", "x", "--debug"]):
        p = xpnet(*args, check=False)
        assert p.returncode == 1 and "Traceback" in p.stderr and "--lr" in p.stderr, p.stderr
    assert all("--debug" in parser._option_string_actions for parser in parsers())
    assert "nielsen" in xpnet("presets", "--debug").stdout


def test_version_flag_errors_name_the_program_once_and_train_help_is_grouped():
    assert xpnet("-V").stdout.strip() == xpnet("--version").stdout.strip()
    assert xpnet("-V").stdout.startswith("xpnet ")
    p = xpnet("train", "--lr", "abc", check=False)
    assert p.returncode == 2 and p.stderr.strip() == "xpnet: error: train: argument --lr: invalid float value: 'abc'"
    assert xpnet("--bogus", check=False).stderr.strip() == "xpnet: error: unrecognized arguments: --bogus"
    help_text = xpnet("train", "--help").stdout
    titles = [line[:-1] for line in help_text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles[-7:] == ["recipe", "network", "optimiser", "regularisation", "data", "outputs", "device"], titles


def test_versions_report_names_each_library_and_its_devices(capsys):
    """``xpnet versions`` and ``xpnet.show_versions()``: the same lines, one per library."""
    import xpnet
    from xpnet import cli

    assert cli.main(["versions"]) == 0
    out = capsys.readouterr().out.splitlines()
    xpnet.show_versions()
    assert capsys.readouterr().out.splitlines() == out
    assert out[0] == f"xpnet {xpnet.__version__}" and out[1].startswith("python ")
    by_library = {line.split(" ")[0].rstrip(":"): line for line in out}
    assert "BLAS" in by_library["numpy"] and "cpu" in by_library["torch"] and "cpu:0" in by_library["jax"]
    assert "CPU_DEVICE" in by_library["array-api-strict"] and "cupy" in by_library
    assert out[-1].startswith("threads: ")
