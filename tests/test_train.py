"""Training on real MNIST: one epoch learns; the loop is deterministic for a seed."""

import numpy as np
import pytest

from xpnet import backends
from xpnet import train


def test_one_epoch_reaches_90_percent_validation(mnist):
    cfg = train.TrainConfig(hidden=(64,), epochs=1, quiet=True)
    lines = []
    result = train.train(cfg, backends.resolve("numpy", "cpu"), mnist, say=lines.append)
    assert result.history[0]["val_accuracy"] >= 0.90
    assert lines[-1].startswith("test accuracy: ") and result.test_correct / result.test_total >= 0.90


def test_same_seed_bit_identical_on_numpy(mnist):
    be = backends.resolve("numpy", "cpu")
    cfg = train.TrainConfig(hidden=(16,), epochs=1, validation=55000, quiet=True)
    a = train.params_to_host(train.train(cfg, be, mnist, say=lambda s: None).params)
    b = train.params_to_host(train.train(cfg, be, mnist, say=lambda s: None).params)
    for (Wa, ba), (Wb, bb) in zip(a, b):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def test_divergence_is_reported(mnist):
    cfg = train.TrainConfig(hidden=(16,), epochs=1, lr=1e30, validation=55000, activation="relu", quiet=True)
    with pytest.raises(train.Diverged, match="epoch 1.*--lr"):
        train.train(cfg, backends.resolve("numpy", "cpu"), mnist, say=lambda s: None)
