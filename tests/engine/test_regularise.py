"""Dropout and augmentation: determinism across backends, gradients, and the optimiser state
carried through checkpoints."""

import math

import numpy as np
import pytest

from xpnet import backends, training
from xpnet.engine import augment, data, model, rand
from xpnet.files import checkpoint

from helpers import targets


def test_label_smoothing_targets():
    t = data.one_hot(np.array([1, 0]), 4, "float64", smoothing=0.2)
    np.testing.assert_allclose(t, [[0.05, 0.85, 0.05, 0.05], [0.85, 0.05, 0.05, 0.05]])


@pytest.mark.slow
@pytest.mark.parametrize("target", targets(dtype="float32"), indirect=True)
def test_random_streams_augmentation_and_dropout_identical_on_every_backend(target, mnist):
    """The same seed draws bit-identical numbers and dropout masks everywhere, and the same
    augmented images up to float32 rounding (the resampling's sines and cosines are each
    library's own)."""
    be, ref = target.backend, backends.resolve("numpy", "cpu")
    x_host = (mnist.train.images[:8].reshape(8, -1) / 255.0).astype(np.float32)
    for kind in augment.KINDS:
        a = ref.to_host(augment.augment(ref.asarray(x_host), kind, (28, 28), seed=3, step=11))
        b = be.to_host(augment.augment(be.asarray(x_host), kind, (28, 28), seed=3, step=11))
        np.testing.assert_allclose(b, a, atol=2e-6)
        assert kind == "none" or not np.array_equal(a, x_host)
    like = be.asarray(np.zeros(1, np.float32))
    u = be.to_host(rand.uniform(like, (64, 50), 5, 1, 2))
    assert np.array_equal(u, ref.to_host(rand.uniform(ref.asarray(np.zeros(1, np.float32)), (64, 50), 5, 1, 2)))
    for transposed in (False, True):
        mask = be.to_host(
            rand.Stream(be.ops, like, (64, 50), transposed).keep_mask(be.ops, rand.key(9, 7, 4), 0.75, like.dtype)
        )
        ref_mask = ref.to_host(
            rand.Stream(ref.ops, ref.asarray(np.zeros(1, np.float32)), (64, 50)).keep_mask(
                ref.ops, rand.key(9, 7, 4), 0.75, np.float32
            )
        )
        assert np.array_equal(mask, ref_mask)
        assert set(np.unique(ref_mask)) == {0.0, np.float32(1 / 0.75)}
        np.testing.assert_array_equal(mask > 0, u_of(ref, 9, 7, 4) < 0.75)  # the same as uniform < keep


def u_of(be, seed, stream, step):
    return be.to_host(rand.uniform(be.asarray(np.zeros(1, np.float32)), (64, 50), seed, stream, step))


def _affine_by_hand(img, u, side=28):
    """The documented affine map, resampled pixel by pixel (bilinear, zero outside)."""
    c0 = (side - 1) / 2
    th, s, sh = u[2] * 12 * math.pi / 180, 1 + 0.1 * u[3], 0.15 * u[4]
    a, b, c = math.cos(th) / s, (sh - math.sin(th)) / s, math.sin(th) / s
    out = np.zeros((side, side))
    for r in range(side):
        for q in range(side):
            sy = a * (r - c0) + b * (q - c0) + c0 - 2.0 * u[0]
            sx = c * (r - c0) + a * (q - c0) + c0 - 2.0 * u[1]
            y0, x0 = math.floor(sy), math.floor(sx)
            wy, wx = sy - y0, sx - x0
            for dy, dx, w in (
                (0, 0, (1 - wy) * (1 - wx)),
                (0, 1, (1 - wy) * wx),
                (1, 0, wy * (1 - wx)),
                (1, 1, wy * wx),
            ):
                if 0 <= y0 + dy < side and 0 <= x0 + dx < side:
                    out[r, q] += w * img[y0 + dy, x0 + dx]
    return out.reshape(-1)


def test_affine_augmentation_is_the_documented_map(mnist):
    """Shift up to 2 px, rotation up to 12 degrees, scaling 1 +- 0.1, shear up to 0.15 about the
    centre, bilinear with zeros outside: against a per-pixel evaluation of the same map."""
    be = backends.resolve("numpy", "cpu")
    x = mnist.train.images[:6].reshape(6, -1) / 255.0
    plan = augment.Plan(be.ops, x, 6, (28, 28), "affine")
    out = augment.apply(be.ops, plan, x, rand.key(0, augment.PARAMS_STREAM, 7))
    for i in range(6):
        np.testing.assert_allclose(out[i], _affine_by_hand(x[i].reshape(28, 28), plan.u[i]), atol=1e-12)


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
    x = rng.random((4, 6, 1))
    y = np.eye(3)[[0, 2, 1, 1]][:, :, None]
    masks = [(rng.random((4, 5)) < 0.7) / 0.7, (rng.random((4, 4)) < 0.7) / 0.7]
    _, grads = model.loss_and_grads(host, x, y, spec, masks)
    h = 1e-6
    W = host[0][0]
    for idx in [(0, 0, 0), (0, 2, 3), (0, 4, 5)]:
        plus, minus = W.copy(), W.copy()
        plus[idx] += h
        minus[idx] -= h
        lp = float(model.loss_and_grads([(plus, host[0][1])] + host[1:], x, y, spec, masks)[0])
        lm = float(model.loss_and_grads([(minus, host[0][1])] + host[1:], x, y, spec, masks)[0])
        assert grads[0][0][idx] == pytest.approx((lp - lm) / (2 * h), rel=1e-6, abs=1e-10)


def test_adam_dropout_augment_resume_is_bit_identical(tmp_path, mnist, monkeypatch):
    be = backends.resolve("numpy", "cpu")
    opts = dict(
        hidden=(16,),
        epochs=2,
        validation=57000,
        batch_size=50,
        optimizer="adam",
        lr=0.002,
        dropout=0.2,
        augment="elastic",
        max_norm=3.0,
        label_smoothing=0.1,
        warmup=0.5,
        quiet=True,
        threads=1,  # bits follow the BLAS thread count
    )
    full, part = tmp_path / "full.npz", tmp_path / "part.npz"
    training.train(training.TrainConfig(save=str(full), **opts), be, mnist, say=lambda s: None)
    calls = {"n": 0}

    def fake_stop(self):  # asked once per chunk of steps: stop after the third chunk
        calls["n"] += 1
        if calls["n"] >= 3 and self.signum is None:
            self.signum = 15
        return self.signum is not None

    monkeypatch.setattr(training.SignalFlag, "__call__", fake_stop)
    with pytest.raises(training.Stopped):
        training.train(training.TrainConfig(save=str(part), **opts), be, mnist, say=lambda s: None)
    monkeypatch.undo()
    meta = checkpoint.load(part)[2]
    state = meta["state"]
    assert state["epoch"] == 1 and 0 < state["step"] < 60  # 3000 images in batches of 50: 60 steps an epoch
    assert state["optimizer"] == {"name": "adam", "t": state["step"]} and len(meta["slots"][0][0]) == 2
    training.train(
        training.TrainConfig(save=str(part), **opts), be, mnist, say=lambda s: None, resume=checkpoint.load(part)
    )
    for (Wa, ba), (Wb, bb) in zip(checkpoint.load(part)[1], checkpoint.load(full)[1]):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)


def test_early_stop_keeps_the_best_epoch(tmp_path, mnist):
    be = backends.resolve("numpy", "cpu")
    lines = []
    cfg = training.TrainConfig(
        hidden=(8,),
        epochs=30,
        validation=55000,
        lr=3.0,
        lr_schedule="constant",
        early_stop=2,
        save=str(tmp_path / "m.npz"),
        quiet=True,
    )
    result = training.train(cfg, be, mnist, say=lines.append)
    assert any(line.startswith("early stop") for line in lines)
    vals = [h["val_accuracy"] for h in result.history]
    best = int(np.argmax(vals)) + 1  # the first epoch with the best validation accuracy
    assert len(vals) < 30 and len(vals) - best == 2
    assert checkpoint.load(tmp_path / "m.npz")[2]["state"]["epoch"] == best + 1
