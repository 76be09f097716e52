"""The order-3 public shapes, and dtypes that do not drift, on every backend."""

import numpy as np
import pytest

from xpnet.engine import model

from helpers import targets


@pytest.mark.parametrize("activation", sorted(model.ACTIVATIONS))
@pytest.mark.parametrize("output", sorted(model.OUTPUTS))
@pytest.mark.parametrize("target", targets(dtype="float32"), indirect=True)
def test_order3_shapes_and_dtype(target, activation, output, rng):
    be = target.backend
    sizes = (12, 9, 7, 4)
    spec = model.Spec(sizes, activation, output)
    host = model.init_params_host(spec, rng)
    for (W, b), (i, o) in zip(host, zip(sizes[:-1], sizes[1:])):
        assert W.shape == (1, o, i) and b.shape == (1, o, 1)
    params = [(be.asarray(W, "float32"), be.asarray(b, "float32")) for W, b in host]
    batch = 5
    x = be.asarray(rng.random((batch, sizes[0], 1)), "float32")
    y = be.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)][:, :, None], "float32")

    out = model.forward(params, x, spec)
    assert tuple(out.shape) == (batch, sizes[-1], 1)
    assert out.dtype == be.xp.float32
    assert tuple(model.logits(params, x, spec).shape) == (batch, sizes[-1], 1)

    loss, grads = model.loss_and_grads(params, x, y, spec)
    assert tuple(loss.shape) == () and loss.dtype == be.xp.float32
    for (W, b), (dW, db) in zip(params, grads):
        assert tuple(dW.shape) == tuple(W.shape) and tuple(db.shape) == tuple(b.shape)
        assert dW.dtype == be.xp.float32 and db.dtype == be.xp.float32

    dx = model.input_grad(params, x, y, spec)
    assert tuple(dx.shape) == (batch, sizes[0], 1) and dx.dtype == be.xp.float32


def test_softmax_outputs_are_probabilities(reference, rng):
    spec = model.Spec((6, 5, 3))
    params = [
        (reference.asarray(W, "float64"), reference.asarray(b, "float64")) for W, b in model.init_params_host(spec, rng)
    ]
    out = reference.to_host(model.forward(params, reference.asarray(rng.random((4, 6, 1))), spec))
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.all(out >= 0)


def test_gemm_formulation_equals_order3_matvec(reference, rng):
    """The 2-D GEMM inside equals the seeds' broadcast (1,out,in) @ (B,in,1) form."""
    spec = model.Spec((10, 8, 3), "sigmoid", "sigmoid", "normal")
    host = model.init_params_host(spec, rng)
    x = rng.random((6, 10, 1))
    a = x
    for W, b in host:
        z = W @ a + b  # (B, out, 1), batch of matrix-vector products
        a = 1 / (1 + np.exp(-z))
    params = [(reference.asarray(W), reference.asarray(b)) for W, b in host]
    ours = reference.to_host(model.forward(params, reference.asarray(x), spec))
    np.testing.assert_allclose(ours, a, rtol=1e-12, atol=1e-12)


def test_init_schemes(rng):
    big = model.Spec((400, 300, 10), "relu")
    (W, b), _ = model.init_params_host(big, rng)
    assert big.resolved_init == "he"
    assert abs(W.std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400) * 10
    assert np.all(b == 0)
    assert model.Spec((4, 3), "tanh").resolved_init == "xavier"
    ((W, b),) = model.init_params_host(model.Spec((400, 300), "sigmoid", init="normal"), rng)
    assert abs(W.std() - 1.0) < 0.02 and abs(b.std() - 1.0) < 0.2


def test_same_seed_same_init():
    spec = model.Spec((20, 10, 5))
    a = model.init_params_host(spec, np.random.default_rng(7))
    b = model.init_params_host(spec, np.random.default_rng(7))
    c = model.init_params_host(spec, np.random.default_rng(8))
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
