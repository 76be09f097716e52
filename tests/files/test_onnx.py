"""ONNX export: the graph gives xpnet's probabilities (within 1e-5) and labels under
onnxruntime on the MNIST test set, from the estimator and from a checkpoint by the command
``xpnet export``, which needs no array library but NumPy."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xpnet
from xpnet import MLPClassifier, backends, training
from xpnet.files import onnx_export

from helpers import assert_clean_error
from helpers import xpnet as run_xpnet

ort = pytest.importorskip("onnxruntime", reason="ONNX checks need onnxruntime (the test extra installs it)")
onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (the test extra installs it)")

TOL = 1e-5


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _inputs(images: np.ndarray, dtype) -> np.ndarray:
    """uint8 images -> the graph's input: (n, features) floats in [0, 1]."""
    return images.reshape(images.shape[0], -1).astype(dtype) / 255


@pytest.mark.parametrize(
    "activation,output,dtype",
    [
        ("relu", "softmax", "float32"),
        ("sigmoid", "sigmoid", "float32"),
        ("tanh", "softmax", "float64"),
        ("relu", "identity", "float32"),
    ],
)
def test_onnx_matches_predict_proba_on_the_test_set(mnist, tmp_path, activation, output, dtype):
    n = 6000
    clf = MLPClassifier(
        hidden=(64, 32),
        activation=activation,
        output=output,
        dtype=dtype,
        epochs=3,
        lr={"softmax": 0.1, "sigmoid": 3.0, "identity": 0.05}[output],
        threads=1,
    )
    clf.fit(mnist.train.images[:n], mnist.train.labels[:n])
    clf.to_onnx(tmp_path / "m.onnx")
    model = onnx.load(tmp_path / "m.onnx")
    assert model.opset_import[0].version >= 17
    assert {node.op_type for node in model.graph.node} <= {
        "Gemm",
        "Relu",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "ReduceSum",
        "Div",
        "ArgMax",
        "Gather",
    }
    probs, labels = _session(tmp_path / "m.onnx").run(None, {"input": _inputs(mnist.test.images, dtype)})
    expected = clf.predict_proba(mnist.test.images)
    assert probs.dtype == np.dtype(dtype) and probs.shape == (10000, 10)
    diff = float(np.max(np.abs(probs - expected)))
    print(f"ONNX {activation}/{output} {dtype}: max abs difference {diff:.3g} over the 10,000 test images")
    assert diff <= TOL
    pred = clf.predict(mnist.test.images)
    assert np.mean(labels == pred) > 0.999  # ties within rounding aside
    assert np.mean(pred == mnist.test.labels) > 0.7


def test_onnx_labels_are_the_classes(mnist, tmp_path):
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    X, y = mnist.train.images[:3000], names[mnist.train.labels[:3000]]
    clf = MLPClassifier(hidden=(32,), epochs=2, threads=1).fit(X, y)
    clf.to_onnx(tmp_path / "s.onnx")
    _, labels = _session(tmp_path / "s.onnx").run(None, {"input": _inputs(mnist.test.images[:2000], np.float32)})
    assert np.mean(labels.astype(str) == clf.predict(mnist.test.images[:2000])) > 0.999
    odd = MLPClassifier(hidden=(32,), epochs=2, threads=1).fit(X, mnist.train.labels[:3000] * 10 + 5)
    odd.to_onnx(tmp_path / "i.onnx")
    _, labels = _session(tmp_path / "i.onnx").run(None, {"input": _inputs(mnist.test.images[:2000], np.float32)})
    assert labels.dtype == np.int64 and np.mean(labels == odd.predict(mnist.test.images[:2000])) > 0.999


def test_export_command_from_a_checkpoint_needs_only_numpy(mnist, tmp_path):
    ckpt, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    cfg = training.TrainConfig(hidden=(32,), epochs=1, validation=55000, quiet=True, save=str(ckpt))
    training.train(cfg, backends.resolve("numpy", "cpu"), mnist, say=lambda s: None)
    code = f"""
        import sys
        for name in ("torch", "jax", "jaxlib", "cupy", "array_api_strict", "sklearn"):
            sys.modules[name] = None  # importing any of them fails
        from xpnet.cli import main
        rc = main(["export", "--model", {str(ckpt)!r}, "--onnx", {str(out)!r}])
        sys.exit(rc)
    """
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wrote {out} (784-32-10 relu/softmax, ONNX opset {onnx_export.OPSET})")
    probs, labels = _session(out).run(None, {"input": _inputs(mnist.test.images, np.float32)})
    model = xpnet.load(ckpt)
    assert np.max(np.abs(probs - model.predict_proba(mnist.test.images))) <= TOL
    assert np.mean(labels == model.predict(mnist.test.images)) > 0.999


def test_export_errors_are_one_line(mnist, tmp_path):
    ckpt = tmp_path / "m.npz"
    cfg = training.TrainConfig(hidden=(8,), epochs=1, validation=59000, quiet=True, save=str(ckpt))
    training.train(cfg, backends.resolve("numpy", "cpu"), mnist, say=lambda s: None)
    assert_clean_error(
        run_xpnet("export", "--model", tmp_path / "none.npz", "--onnx", tmp_path / "x.onnx", check=False), "none.npz"
    )
    assert_clean_error(
        run_xpnet("export", "--model", ckpt, "--onnx", tmp_path / "no" / "x.onnx", check=False),
        "--onnx",
        "does not exist",
    )
    assert_clean_error(
        run_xpnet("export", "--model", ckpt, "--onnx", tmp_path, check=False), "--onnx", "is a directory"
    )
    assert_clean_error(run_xpnet("export", "--model", ckpt, check=False), "--onnx")
    code = f"""
        import sys
        sys.modules["onnx"] = None
        from xpnet.cli import main
        sys.exit(main(["export", "--model", {str(ckpt)!r}, "--onnx", {str(tmp_path / "y.onnx")!r}]))
    """
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert_clean_error(p, "pip install 'xpnet[onnx]'")
