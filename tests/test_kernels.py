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
def test_fused_step_equals_portable_step(name, activation, output, dtype, rtol, rng):
    be = get_backend(name, "cpu", required=True)
    sizes = (20, 16, 12, 5)
    spec = model.Spec(sizes, activation, output)
    host = model.init_params_host(spec, rng)
    X, Y = _batch(rng, 64, sizes)
    Xd, Yd = be.asarray(X, dtype), be.asarray(Y, dtype)
    fast = model.params_to_device(be, host, dtype)
    slow = model.params_to_device(be, host, dtype)
    step = kernels.fused_step(fast, spec)
    assert step is not None
    loss_total = 0.0
    for idx_host in (rng.permutation(64)[:24], rng.permutation(64)[:24], rng.permutation(64)[:7]):  # a partial batch too
        idx = be.asarray(idx_host)
        step(Xd, Yd, idx, 0.3, decay=0.999)
        loss, grads = model.loss_and_grads_2d(slow, be.xp.take(Xd, idx, axis=0), be.xp.take(Yd, idx, axis=0), spec)
        slow = optim.sgd(slow, grads, 0.3, l2=0.1, n_train=30)  # decay 1 - 0.3*0.1/30 = 0.999
        loss_total += float(loss) * idx_host.shape[0]
    assert float(step.loss_sum) == pytest.approx(loss_total, rel=rtol)
    for (Wf, bf), (Ws, bs) in zip(fast, slow):
        Wf, bf, Ws, bs = (be.to_host(a) for a in (Wf, bf, Ws, bs))
        assert Wf.shape == Ws.shape and bf.shape == bs.shape
        np.testing.assert_allclose(Wf, Ws, rtol=rtol, atol=rtol * np.abs(Ws).max())
        np.testing.assert_allclose(bf, bs, rtol=rtol, atol=rtol * max(np.abs(bs).max(), 1e-3))


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
