"""The fused in-place steps of kernels.py against the portable array-API step."""

import numpy as np
import pytest

from conftest import get_backend
from xpnet import backend as backends
from xpnet import kernels, layers, model, optim


def _batch(rng, n, sizes):
    X = rng.random((n, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    return X, Y


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("activation", sorted(layers.ACTIVATIONS))
@pytest.mark.parametrize("output", sorted(layers.OUTPUTS))
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("layout", ["batch-major", "feature-major", "mixed"])
def test_fused_step_equals_portable_step(name, activation, output, dtype, rtol, layout, rng, monkeypatch):
    """Every activation and output, both hidden-activation layouts (and one of each), several
    chunks, a partial last batch, the loss read mid-chunk; L2 decay on."""
    be = get_backend(name, "cpu", required=True)
    sizes = (20, 16, 12, 5)
    ops = kernels.NumpyOps if name == "numpy" else kernels.TorchOps
    pick = {"batch-major": lambda size, n: False, "feature-major": lambda size, n: True,
            "mixed": lambda size, n: size == 16}[layout]
    monkeypatch.setattr(ops, "feature_major", staticmethod(pick))
    spec = model.Spec(sizes, activation, output)
    host = model.init_params_host(spec, rng)
    X, Y = _batch(rng, 64, sizes)
    Xd, Yd = be.asarray(X, dtype), be.asarray(Y, dtype)
    fast = model.params_to_device(be, host, dtype)
    slow = model.params_to_device(be, host, dtype)
    step = kernels.fused_step(fast, spec)
    assert step is not None
    itemsize = 8 if dtype == "float64" else 4
    monkeypatch.setattr(ops, "chunk_bytes", 2 * 10 * (20 + 5) * itemsize)  # chunks of 2 steps of 10 rows
    perm_host = rng.permutation(64)[:54]  # 5 full batches and a partial one of 4
    step.begin_epoch(Xd, Yd, be.asarray(perm_host), 10)
    assert step.chunk_steps == 2
    loss_total = 0.0
    for s in range(6):
        idx = be.asarray(perm_host[s * 10:(s + 1) * 10])
        step.step(s, 0.3, decay=0.999)
        loss, grads = model.loss_and_grads_2d(slow, be.xp.take(Xd, idx, axis=0), be.xp.take(Yd, idx, axis=0), spec)
        slow = optim.sgd(slow, grads, 0.3, l2=0.1, n_train=30)  # decay 1 - 0.3*0.1/30 = 0.999
        loss_total += float(loss) * idx.shape[0]
        if s in (0, 3, 5):  # read mid-chunk, at a chunk's end and at the epoch's end
            assert float(step.loss_total()) == pytest.approx(loss_total, rel=rtol)
    assert float(step.loss_total()) == pytest.approx(loss_total, rel=rtol)  # a second read adds nothing
    for (Wf, bf), (Ws, bs) in zip(fast, slow):
        Wf, bf, Ws, bs = (be.to_host(a) for a in (Wf, bf, Ws, bs))
        assert Wf.shape == Ws.shape and bf.shape == bs.shape
        np.testing.assert_allclose(Wf, Ws, rtol=rtol, atol=rtol * np.abs(Ws).max())
        np.testing.assert_allclose(bf, bs, rtol=rtol, atol=rtol * max(np.abs(bs).max(), 1e-3))


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_fused_step_on_bytes_resumed_mid_chunk(name, rng):
    """uint8 pixels (scaled by 1/255 on the way), an epoch started at step 3 (a resume, in the
    middle of a chunk) and a second epoch: the same parameters and loss as the portable step."""
    be = get_backend(name, "cpu", required=True)
    sizes = (30, 8, 4)
    spec = model.Spec(sizes, "relu", "softmax")
    host = model.init_params_host(spec, rng)
    pixels = rng.integers(0, 256, (50, 30)).astype(np.uint8)
    Y = np.eye(4)[rng.integers(0, 4, 50)]
    Xd, Yd = be.asarray(pixels), be.asarray(Y, "float64")
    fast = model.params_to_device(be, host, "float64")
    slow = model.params_to_device(be, host, "float64")
    step = kernels.fused_step(fast, spec)
    loss_total = 0.0
    for epoch, start in ((1, 3), (2, 0)):
        perm_host = rng.permutation(50)
        step.begin_epoch(Xd, Yd, be.asarray(perm_host), 7)  # 8 steps: 7 of 7 rows and one of 1
        assert step.chunk_steps > 3
        for s in range(start, 8):
            idx = be.asarray(perm_host[s * 7:(s + 1) * 7])
            step.step(s, 0.2)
            xb = be.xp.astype(be.xp.take(Xd, idx, axis=0), be.xp.float64) / 255
            loss, grads = model.loss_and_grads_2d(slow, xb, be.xp.take(Yd, idx, axis=0), spec)
            slow = optim.sgd(slow, grads, 0.2)
            loss_total += float(loss) * idx.shape[0]
    assert float(step.loss_total()) == pytest.approx(loss_total, rel=1e-10)
    for (Wf, bf), (Ws, bs) in zip(fast, slow):
        np.testing.assert_allclose(be.to_host(Wf), be.to_host(Ws), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(be.to_host(bf), be.to_host(bs), rtol=1e-10, atol=1e-12)


def test_no_fused_path_for_other_arrays_or_readonly(rng):
    spec = model.Spec((4, 3, 2))
    host = model.init_params_host(spec, rng)
    strict = get_backend("array_api_strict", "cpu", required=True)
    assert kernels.fused_step(model.params_to_device(strict, host, "float64"), spec) is None
    readonly = [(W.copy(), b.copy()) for W, b in host]  # C-order (1,out,in): not the (in,out) layout
    for W, b in readonly:
        W.flags.writeable = False
    assert kernels.fused_step(readonly, spec) is None


@pytest.mark.parametrize("activation", sorted(layers.ACTIVATIONS))
def test_jax_step_equals_portable_step(activation, rng):
    be = get_backend("jax", "cpu", required=True)
    sizes = (20, 16, 5)
    spec = model.Spec(sizes, activation, "softmax")
    host = model.init_params_host(spec, rng)
    X, Y = _batch(rng, 40, sizes)
    Xd, Yd = be.asarray(X, "float64"), be.asarray(Y, "float64")
    perm = rng.permutation(40)
    step = kernels.fused_step(model.params_to_device(be, host, "float64"), spec)
    assert isinstance(step, kernels.JaxStep)
    step.begin_epoch(Xd, Yd, be.asarray(perm), 16)
    slow = model.params_to_device(backends.resolve("numpy", "cpu"), host, "float64")
    for s in range(3):  # batches of 16, 16 and 8
        step.step(s, 0.3, 0.999)
        idx = perm[s * 16:(s + 1) * 16]
        _, grads = model.loss_and_grads_2d(slow, X[idx], Y[idx], spec)
        slow = optim.sgd(slow, grads, 0.3, l2=0.1, n_train=30)
    for (Wf, bf), (Ws, bs) in zip(step.params, slow):
        np.testing.assert_allclose(be.to_host(Wf), Ws, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(be.to_host(bf), bs, rtol=1e-10, atol=1e-12)


def test_jax_step_compiles_once_per_batch_shape_across_epochs(rng, monkeypatch):
    """run_epoch makes a JaxStep per epoch; the jitted step is shared, so a second epoch
    traces nothing (a retrace per epoch once cost more than the epoch's steps)."""
    be = get_backend("jax", "cpu", required=True)
    spec = model.Spec((13, 7, 3), "tanh", "softmax")  # a spec no other test compiles
    traces = []
    real = model.loss_and_grads_2d
    monkeypatch.setattr(model, "loss_and_grads_2d", lambda *a, **k: (traces.append(1), real(*a, **k))[1])
    X, Y = _batch(rng, 40, spec.sizes)
    Xd, Yd = be.asarray(X, "float32"), be.asarray(Y, "float32")
    params = model.params_to_device(be, model.init_params_host(spec, rng), "float32")
    for epoch in range(3):
        step = kernels.fused_step(params, spec)
        step.begin_epoch(Xd, Yd, be.asarray(rng.permutation(40)), 16)
        for s in range(3):  # batches of 16, 16 and 8: two shapes
            step.step(s, 0.1)
        params = step.params
        assert len(traces) == 2, f"epoch {epoch + 1}: {len(traces)} traces"
