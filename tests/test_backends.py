"""Cross-backend: the same seed and config give the same losses and parameters everywhere.

NumPy float64 is the reference; float32 backends agree within float32 tolerance.
The CPU backends (numpy, array_api_strict, torch) are required; GPU ones carry the gpu mark.
"""

import numpy as np
import pytest

from conftest import BACKEND_PARAMS, get_backend
from xpnet import backend as backends
from xpnet import data, model, train
from xpnet.errors import UserError


def _run_steps(be, dtype, mnist, activation="relu", output="softmax", steps=20, batch=32, lr=0.1, l2=5.0):
    """Train ``steps`` mini-batches on the first MNIST images from seed 0; losses and host params."""
    rng = np.random.default_rng(0)
    n = steps * batch + 7  # a last, partial batch too
    split = data.Split(mnist.train.images[:n], mnist.train.labels[:n])
    spec = model.Spec((784, 32, 16, 10), activation, output)
    params = model.params_to_device(be, model.init_params_host(spec, rng), dtype)
    dev = data.to_device(be, split, dtype, 10)
    cfg = train.TrainConfig(lr=lr, batch_size=batch, l2=l2)
    losses = []
    for _ in range(2):  # two epochs, reshuffled from the same host generator
        perm = be.asarray(rng.permutation(n))
        params, loss_sum = train.run_epoch(params, dev, perm, spec, cfg, lr)
        losses.append(float(loss_sum) / n)
    return np.array(losses), train.params_to_host(params)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("activation,output", [("relu", "softmax"), ("sigmoid", "sigmoid"), ("tanh", "softmax")])
def test_training_steps_match_numpy(backend, activation, output, mnist):
    be = get_backend(*backend)
    ref_loss, ref_params = _run_steps(backends.resolve("numpy", "cpu"), "float64", mnist, activation, output)
    for dtype, rtol in (("float32", 2e-3), ("float64", 1e-9)):
        loss, params = _run_steps(be, dtype, mnist, activation, output)
        np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
        for (W, b), (Wr, br) in zip(params, ref_params):
            assert W.dtype == np.dtype(dtype) and b.dtype == np.dtype(dtype)
            scale = np.abs(Wr).max()
            np.testing.assert_allclose(W, Wr, rtol=rtol, atol=rtol * scale)
            np.testing.assert_allclose(b, br, rtol=rtol, atol=rtol * max(np.abs(br).max(), 1e-3))


def test_unknown_backend_and_device_are_user_errors():
    with pytest.raises(UserError, match="--backend"):
        backends.resolve("tensorflow", "cpu")
    with pytest.raises(UserError, match="--device"):
        backends.resolve(None, "gpu")
    with pytest.raises(UserError, match="CPU only"):
        backends.resolve("numpy", "cuda")


def test_auto_device_says_why_it_picked_the_cpu():
    be = backends.resolve(None, "auto")
    if be.name == "numpy":
        assert be.label == "cpu" and be.note
    else:
        assert be.name == "cupy" and be.label == "cuda:0"


def test_host_device_round_trip(any_backend, rng):
    host = rng.random((3, 4, 1)).astype(np.float32)
    dev = any_backend.asarray(host)
    assert np.array_equal(any_backend.to_host(dev), host)
