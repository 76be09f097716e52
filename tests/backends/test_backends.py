"""Backend selection from the flags, and host <-> device copies on every backend."""

import numpy as np
import pytest

from xpnet import backends
from xpnet.backends import ops_for
from xpnet.backends.base import Ops
from xpnet.errors import UserError

from helpers import targets


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


def test_host_device_round_trip(target, rng):
    host = rng.random((3, 4, 1)).astype(target.dtype)
    dev = target.backend.asarray(host)
    assert np.array_equal(target.to_host(dev), host)


def test_each_backend_has_its_op_set(target):
    """In-place op sets for NumPy, CuPy and PyTorch; the reference op set for the others."""
    ops = target.ops
    expected = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "jax": "jax"}.get(target.name, "array-api")
    assert ops.name == expected
    assert ops.in_place == (target.name in ("numpy", "cupy", "torch"))
    assert ops is ops_for(target.asarray(np.zeros(2)))  # one op set per library, made once


def test_readonly_numpy_arrays_get_the_reference_op_set():
    a = np.zeros(3)
    a.flags.writeable = False
    ops = ops_for(a)
    assert type(ops) is Ops and not ops.in_place


@pytest.mark.parametrize("target", targets(names=("cupy",), dtype="float32"), indirect=True)
def test_cupy_runs_replay_captured_chunks_as_their_eager_steps(target, mnist):
    """On CuPy (a GPU, or the emulated one) a run's chunks of full batches are captured as CUDA
    graphs and replayed, none refused (CuPy's own cuBLAS bindings would be: the products call
    libcublas itself), and three epochs end where the eager steps do."""
    from xpnet import training
    from xpnet.engine import data
    from xpnet.settings import TrainConfig

    split = data.Split(mnist.train.images[: 12 * 32], mnist.train.labels[: 12 * 32])
    layers = []
    for graph in (True, False):
        cfg = TrainConfig(hidden=(24,), batch_size=32, epochs=3, validation=0, quiet=True, cuda_graph=graph)
        run = training.Run(cfg, target.backend, data.Dataset(split, split, 10, "test"), say=lambda line: None)
        for _ in range(3):
            run.run_epoch(run.backend.asarray(run.state.rng.permutation(run.n)))
            run.state.epoch += 1
        assert run.steps.graphs == graph and all(g is not None for g in run.steps._graphs.values())
        layers.append([(backends.to_host(W), backends.to_host(b)) for W, b in run.state.net.layers])
    for (W, b), (We, be) in zip(*layers):
        np.testing.assert_allclose(W, We, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, be, rtol=1e-5, atol=1e-6)
