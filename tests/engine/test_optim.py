"""Optimisers against hand-computed steps, in place and not; SGD's fused form; max-norm; schedules."""

import numpy as np
import pytest

from xpnet import backends
from xpnet.backends import reference_ops
from xpnet.engine import optim

from helpers import targets


def _hand(name, W0, g1, lr, opt):
    """The first weight update of ``name`` by hand (slots start at zero, t = 1)."""
    g = g1 + (opt.l2 / opt.n_train) * W0
    if name in ("momentum", "nesterov"):
        v = g
        return W0 - lr * (g + opt.momentum * v if name == "nesterov" else v)
    m, v = (1 - opt.beta1) * g, (1 - opt.beta2) * g**2
    d = (m / (1 - opt.beta1)) / (np.sqrt(v / (1 - opt.beta2)) + opt.eps)
    return W0 - lr * (d + (opt.weight_decay * W0 if name == "adamw" else 0))


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam", "adamw"])
@pytest.mark.parametrize("target", targets(dtype="float64"), indirect=True)
def test_optimisers_match_hand_computed_steps(target, name, rng):
    """Step 1 against the hand computation; step 2 (slots carried) against the reference op set."""
    opt = optim.Optimizer(name, momentum=0.8, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.01, l2=2.0, n_train=10)
    W0, g1, g2 = (rng.standard_normal((3, 2)) for _ in range(3))
    lr, ops, ref = 0.1, target.ops, reference_ops()
    W, slots = target.asarray(W0), [target.ops.zeros_like(target.asarray(W0)) for _ in range(opt.slots)]
    W, slots = opt.update(ops, W, target.asarray(g1), slots, opt.step_scalars(lr, 1), True)
    np.testing.assert_allclose(target.to_host(W), _hand(name, W0, g1, lr, opt), rtol=1e-12)
    W_ref, s_ref = opt.update(ref, W0, g1, [np.zeros_like(W0)] * opt.slots, opt.step_scalars(lr, 1), True)
    W, slots = opt.update(ops, W, target.asarray(g2), slots, opt.step_scalars(lr, 2), True)
    W_ref, _ = opt.update(ref, W_ref, g2, s_ref, opt.step_scalars(lr, 2), True)
    np.testing.assert_allclose(target.to_host(W), W_ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam", "adamw"])
def test_in_place_update_writes_into_the_parameter_and_slots(name, rng):
    ops = backends.resolve("numpy", "cpu").ops
    opt = optim.Optimizer(name)
    W, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    slots = [np.zeros_like(W) for _ in range(opt.slots)]
    W_new, slots_new = opt.update(ops, W, g.copy(), slots, opt.step_scalars(0.1, 1), True)
    assert W_new is W and all(a is b for a, b in zip(slots_new, slots))


@pytest.mark.parametrize("l2", [0.0, 5.0])
def test_sgd_coefficients_are_the_seeds_decay(l2):
    """SGD's fused update p <- beta p + alpha (lr g): beta = 1 - lr l2 / N for weights only."""
    opt = optim.Optimizer("sgd", l2=l2, n_train=100)
    assert opt.fused and opt.slots == 0
    s = opt.step_scalars(0.5, 1)
    assert opt.sgd_coefficients(s, True) == (-1.0, 1 - 0.5 * l2 / 100)
    assert opt.sgd_coefficients(s, False) == (-1.0, 1.0)


def test_max_norm_caps_each_units_incoming_weights():
    ops = reference_ops()
    Wt = np.array([[3.0, 0.3], [4.0, 0.4]])  # W^T (in, out): columns are units
    np.testing.assert_allclose(np.linalg.norm(optim.max_norm(ops, Wt, 2.0), axis=0), [2.0, 0.5])


def test_schedules_and_warmup():
    assert optim.lr_at(0.2, "constant", 4.0, 10) == 0.2
    assert optim.lr_at(0.2, "cosine", 0.0, 10) == pytest.approx(0.2)
    assert optim.lr_at(0.2, "cosine", 5.0, 10) == pytest.approx(0.1)
    assert 0 < optim.lr_at(0.2, "cosine", 9.0, 10) < 0.01
    assert [optim.lr_at(1.0, "step", e, 8) for e in range(8)] == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert optim.lr_at(1.0, "constant", 0.0, 10, warmup=2.0) < 0.01
    assert optim.lr_at(1.0, "constant", 1.0, 10, warmup=2.0) == pytest.approx(0.505)
    assert optim.lr_at(1.0, "constant", 2.0, 10, warmup=2.0) == 1.0
