"""Central-difference gradient checks in float64 for every activation and loss."""

import numpy as np
import pytest

from xpnet import backends
from xpnet.backends import reference_ops
from xpnet.engine import model

ACTS = sorted(model.ACTIVATIONS)
OUTS = sorted(model.OUTPUTS)


def _setup(be, activation, output, rng, sizes=(7, 5, 4, 3), batch=6):
    spec = model.Spec(sizes, activation, output, "xavier")
    host = model.init_params_host(spec, rng)
    # keep relu inputs away from the kink so that finite differences are valid
    x_host = rng.uniform(0.1, 1.0, size=(batch, sizes[0], 1))
    labels = rng.integers(0, sizes[-1], size=batch)
    y_host = np.eye(sizes[-1])[labels][:, :, None]
    params = [(be.asarray(W, "float64"), be.asarray(b, "float64")) for W, b in host]
    return spec, host, params, be.asarray(x_host, "float64"), be.asarray(y_host, "float64"), x_host, y_host


def _loss(be, spec, host_params, x, y):
    params = [(be.asarray(W, "float64"), be.asarray(b, "float64")) for W, b in host_params]
    loss, _ = model.loss_and_grads(params, be.asarray(x, "float64"), be.asarray(y, "float64"), spec)
    return float(loss)


def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("output", OUTS)
def test_parameter_gradients_match_central_differences(backend_name, activation, output, rng):
    be = backends.resolve(backend_name, "cpu")
    spec, host, params, x, y, x_host, y_host = _setup(be, activation, output, rng)
    _, grads = model.loss_and_grads(params, x, y, spec)
    h = 1e-6
    for li, ((W, b), (dW, db)) in enumerate(zip(host, grads)):
        for which, P, G in (("W", W, dW), ("b", b, db)):
            G = be.to_host(G)
            assert G.shape == P.shape
            num = np.zeros_like(P)
            for idx in np.ndindex(P.shape):
                plus = [(w.copy(), bb.copy()) for w, bb in host]
                minus = [(w.copy(), bb.copy()) for w, bb in host]
                (plus[li][0] if which == "W" else plus[li][1])[idx] += h
                (minus[li][0] if which == "W" else minus[li][1])[idx] -= h
                num[idx] = (_loss(be, spec, plus, x_host, y_host) - _loss(be, spec, minus, x_host, y_host)) / (2 * h)
            assert _rel_err(G, num) < 1e-6, f"layer {li} {which}: {activation}/{output}"


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("output", OUTS)
def test_input_gradient_matches_central_differences(activation, output, rng):
    be = backends.resolve("numpy", "cpu")
    spec, host, params, x, y, x_host, y_host = _setup(be, activation, output, rng)
    dx = be.to_host(model.input_grad(params, x, y, spec))
    assert dx.shape == x_host.shape
    h = 1e-6
    num = np.zeros_like(x_host)
    for idx in np.ndindex(x_host.shape):
        xp_, xm = x_host.copy(), x_host.copy()
        xp_[idx] += h
        xm[idx] -= h
        num[idx] = (_loss(be, spec, host, xp_, y_host) - _loss(be, spec, host, xm, y_host)) / (2 * h)
    # the loss is a batch mean, input_grad is d(mean loss)/dx
    assert _rel_err(dx, num) < 1e-6


@pytest.mark.parametrize("name", ACTS)
def test_activation_derivatives(name):
    """The op set's derivative, written with the output a = f(z), against central differences."""
    ops = reference_ops()
    z = np.linspace(-4, 4, 41)
    z = z[np.abs(z) > 0.05]  # off relu's kink
    h = 1e-6
    num = (ops.activate(name, z + h) - ops.activate(name, z - h)) / (2 * h)
    assert _rel_err(ops.activation_grad(name, np.ones_like(z), ops.activate(name, z)), num) < 1e-6


def test_sigmoid_is_stable_for_large_inputs():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is right at -1000
        s = reference_ops().sigmoid(z)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[2] == 0.5 and s[-1] == 1.0
    assert s[1] == pytest.approx(np.exp(-50.0), rel=1e-14)  # relative precision kept far in the tail


def test_cross_entropy_stable_for_huge_logits():
    ops = reference_ops()
    z = np.array([[1000.0], [0.0], [-1000.0]])  # (classes, n)
    y = np.array([[1.0], [0.0], [0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = ops.loss_sum("softmax", z, y, 0)
        delta = ops.output_error("softmax", z, y, 1.0, 0)
    assert np.isfinite(float(loss)) and float(loss) < 1e-12
    assert np.all(np.isfinite(delta))
