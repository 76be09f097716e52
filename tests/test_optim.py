"""SGD: the in-place path equals the pure one; L2 follows the seeds' (1 - lr*l2/n) decay."""

import numpy as np
import pytest

from xpnet import optim


def _pair(rng):
    params = [(rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 4, 1)))]
    grads = [(rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 4, 1)))]
    return params, grads


@pytest.mark.parametrize("l2", [0.0, 5.0])
def test_inplace_equals_pure_and_hand_computed(rng, l2):
    params, grads = _pair(rng)
    (W, b), (dW, db) = params[0], grads[0]
    expect_W = (1 - 0.5 * l2 / 100) * W - 0.5 * dW
    expect_b = b - 0.5 * db
    pure = optim.sgd(params, grads, 0.5, l2, 100)
    copies = [(W.copy(), b.copy())]
    inplace, _ = optim.update_(copies, grads, optim.init_state("sgd", copies), 0.5, optim.Hyper("sgd", l2=l2, n_train=100))
    for (Wn, bn) in (pure[0], inplace[0]):
        np.testing.assert_allclose(Wn, expect_W, rtol=1e-14)
        np.testing.assert_allclose(bn, expect_b, rtol=1e-14)
    assert inplace[0][0] is copies[0][0]  # really in place
    assert np.array_equal(params[0][0], W)  # the pure path left its input alone


def test_step_uses_pure_path_for_readonly_arrays(rng):
    params, grads = _pair(rng)
    for W, b in params:
        W.flags.writeable = False
        b.flags.writeable = False
    new, _ = optim.apply(params, grads, optim.init_state("sgd", params), 0.1, optim.Hyper("sgd"))
    assert new[0][0] is not params[0][0]


def test_schedules():
    assert optim.lr_at(0.2, "constant", 4.0, 10) == 0.2
    assert optim.lr_at(0.2, "cosine", 0.0, 10) == pytest.approx(0.2)
    assert optim.lr_at(0.2, "cosine", 5.0, 10) == pytest.approx(0.1)
    assert 0 < optim.lr_at(0.2, "cosine", 9.0, 10) < 0.01
    assert [optim.lr_at(1.0, "step", e, 8) for e in range(8)] == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
