"""Optimisers against hand-computed steps, dropout and augmentation determinism across backends,
and the optimiser state carried through checkpoints."""

import numpy as np
import pytest

from conftest import CPU_REQUIRED, get_backend
from xpnet import augment, backend as backends, checkpoint, data, model, optim, rand, train


def _one(rng):
    W = rng.standard_normal((1, 3, 2))
    b = rng.standard_normal((1, 3, 1))
    g = [(rng.standard_normal((1, 3, 2)), rng.standard_normal((1, 3, 1))) for _ in range(2)]
    return [(W, b)], g


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_optimisers_match_hand_computed_steps(name, rng):
    params, (g1, g2) = _one(rng)
    hp = optim.Hyper(name, momentum=0.8, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.01, l2=2.0, n_train=10)
    lr = 0.1
    W0, b0 = params[0]
    # by hand, for the weight W (the bias has no L2 / weight decay)
    gw1 = g1[0] + 0.2 * W0
    if name == "sgd":
        W1 = W0 - lr * gw1
    elif name in ("momentum", "nesterov"):
        v1 = gw1
        W1 = W0 - lr * (gw1 + 0.8 * v1 if name == "nesterov" else v1)
    else:
        m1, v1 = 0.1 * gw1, 0.01 * gw1 ** 2
        d = (m1 / 0.1) / (np.sqrt(v1 / 0.01) + 1e-8)
        W1 = W0 - lr * (d + (0.01 * W0 if name == "adamw" else 0))
    pure, state = optim.update(params, [g1], optim.init_state(name, params), lr, hp)
    np.testing.assert_allclose(pure[0][0], W1, rtol=1e-12)
    # a second step: the state is carried; in-place equals pure
    pure2, _ = optim.update(pure, [g2], state, lr, hp)
    copies = [(W0.copy(), b0.copy())]
    st = optim.init_state(name, copies)
    optim.update_(copies, [g1], st, lr, hp)
    optim.update_(copies, [g2], st, lr, hp)
    assert st["t"] == 2
    np.testing.assert_allclose(copies[0][0], pure2[0][0], rtol=1e-12)
    np.testing.assert_allclose(copies[0][1], pure2[0][1], rtol=1e-12)


def test_max_norm_and_warmup():
    W = np.array([[[3.0, 4.0], [0.3, 0.4]]])
    (Wn, _), = optim.max_norm([(W, np.zeros((1, 2, 1)))], 2.0)
    np.testing.assert_allclose(np.linalg.norm(Wn[0], axis=1), [2.0, 0.5])
    assert optim.lr_at(1.0, "constant", 0.0, 10, warmup=2.0) < 0.01
    assert optim.lr_at(1.0, "constant", 1.0, 10, warmup=2.0) == pytest.approx(0.505)
    assert optim.lr_at(1.0, "constant", 2.0, 10, warmup=2.0) == 1.0


def test_label_smoothing_targets():
    t = data.one_hot(np.array([1, 0]), 4, "float64", smoothing=0.2)
    np.testing.assert_allclose(t, [[0.05, 0.85, 0.05, 0.05], [0.85, 0.05, 0.05, 0.05]])


@pytest.mark.parametrize("backend", CPU_REQUIRED)
def test_random_streams_augmentation_and_dropout_identical_on_every_backend(backend, mnist):
    be = get_backend(*backend)
    ref = backends.resolve("numpy", "cpu")
    x_host = (mnist.train.images[:8].reshape(8, -1) / 255.0).astype(np.float32)
    for kind in augment.KINDS:
        a = ref.to_host(augment.augment(ref.asarray(x_host), kind, (28, 28), seed=3, step=11))
        b = be.to_host(augment.augment(be.asarray(x_host), kind, (28, 28), seed=3, step=11))
        np.testing.assert_allclose(b, a, atol=2e-6)
        assert kind == "none" or not np.array_equal(a, x_host)
    like = be.asarray(np.zeros(1, np.float32))
    u = be.to_host(rand.uniform(like, (64, 50), 5, 1, 2))
    assert np.array_equal(u, ref.to_host(rand.uniform(ref.asarray(np.zeros(1, np.float32)), (64, 50), 5, 1, 2)))
    masks = train._dropout_masks(be.asarray(x_host), model.Spec((784, 30, 20, 10)), 0.25, 9, 4)
    ref_masks = train._dropout_masks(ref.asarray(x_host), model.Spec((784, 30, 20, 10)), 0.25, 9, 4)
    for m, r in zip(masks, ref_masks):
        assert np.array_equal(be.to_host(m), ref.to_host(r))
        assert set(np.unique(ref.to_host(r))) <= {0.0, np.float32(1 / 0.75)}


def test_rand_is_uniform_and_streams_differ():
    ref = backends.resolve("numpy", "cpu")
    like = ref.asarray(np.zeros(1, np.float32))
    u = ref.to_host(rand.uniform(like, (200000,), 1, 2, 3))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.std() - np.sqrt(1 / 12)) < 0.005
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 19000
    others = [rand.uniform(like, (1000,), *k) for k in ((2, 2, 3), (1, 3, 3), (1, 2, 4), (2, 1, 3))]
    for o in others:
        assert not np.array_equal(ref.to_host(o), u[:1000])


def test_dropout_gradient_matches_central_differences(rng):
    spec = model.Spec((6, 5, 4, 3), "tanh", "softmax")
    host = model.init_params_host(spec, rng)
    x = rng.random((4, 6))
    y = np.eye(3)[[0, 2, 1, 1]]
    masks = [(rng.random((4, 5)) < 0.7) / 0.7, (rng.random((4, 4)) < 0.7) / 0.7]
    _, grads = model.loss_and_grads_2d(host, x, y, spec, masks)
    h = 1e-6
    W = host[0][0]
    for idx in [(0, 0, 0), (0, 2, 3), (0, 4, 5)]:
        plus, minus = W.copy(), W.copy()
        plus[idx] += h
        minus[idx] -= h
        lp = float(model.loss_and_grads_2d([(plus, host[0][1])] + host[1:], x, y, spec, masks)[0])
        lm = float(model.loss_and_grads_2d([(minus, host[0][1])] + host[1:], x, y, spec, masks)[0])
        assert grads[0][0][idx] == pytest.approx((lp - lm) / (2 * h), rel=1e-6, abs=1e-10)


def test_adam_dropout_augment_resume_is_bit_identical(tmp_path, mnist, monkeypatch):
    be = backends.resolve("numpy", "cpu")
    opts = dict(hidden=(16,), epochs=2, validation=57000, batch_size=50, optimizer="adam", lr=0.002, dropout=0.2,
                augment="elastic", max_norm=3.0, label_smoothing=0.1, warmup=0.5, quiet=True)
    full, part = tmp_path / "full.npz", tmp_path / "part.npz"
    train.train(train.TrainConfig(save=str(full), **opts), be, mnist, say=lambda s: None)
    calls = {"n": 0}

    def fake_stop(self):
        calls["n"] += 1
        if calls["n"] >= 37 and self.signum is None:
            self.signum = 15
        return self.signum is not None

    monkeypatch.setattr(train._SignalFlag, "__call__", fake_stop)
    with pytest.raises(train.Stopped):
        train.train(train.TrainConfig(save=str(part), **opts), be, mnist, say=lambda s: None)
    monkeypatch.undo()
    meta = checkpoint.load(part)[2]
    assert meta["state"]["optimizer"] == {"name": "adam", "t": 37} and len(meta["slots"][0][0]) == 2
    train.train(train.TrainConfig(save=str(part), **opts), be, mnist, say=lambda s: None, resume=checkpoint.load(part))
    for (Wa, ba), (Wb, bb) in zip(checkpoint.load(part)[1], checkpoint.load(full)[1]):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def test_early_stop_keeps_the_best_epoch(tmp_path, mnist):
    be = backends.resolve("numpy", "cpu")
    lines = []
    cfg = train.TrainConfig(hidden=(8,), epochs=30, validation=55000, lr=3.0, lr_schedule="constant", early_stop=2,
                            save=str(tmp_path / "m.npz"), quiet=True)
    result = train.train(cfg, be, mnist, say=lines.append)
    assert any(l.startswith("early stop") for l in lines)
    vals = [h["val_accuracy"] for h in result.history]
    best = int(np.argmax(vals)) + 1  # the first epoch with the best validation accuracy
    assert len(vals) < 30 and len(vals) - best == 2
    assert checkpoint.load(tmp_path / "m.npz")[2]["state"]["epoch"] == best + 1
