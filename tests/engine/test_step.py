"""The one training step, on every backend and every recipe, against the same step on the
reference op set (the base op set on NumPy float64, never the backend under test): the same
losses and parameters after two epochs of several chunks and a partial last batch."""

import math
import tracemalloc

import numpy as np
import pytest

from xpnet import backends, config
from xpnet.backends import reference_ops
from xpnet.engine import data, model, optim, step
from xpnet.engine.step import Net, Steps

RECIPES = {
    "sgd": {},
    "sgd-l2": {"l2": 5.0},
    "momentum": {"optimizer": "momentum"},
    "nesterov": {"optimizer": "nesterov", "l2": 2.0},
    "adam": {"optimizer": "adam", "lr": 0.01},
    "adamw": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.05},
    "dropout": {"dropout": 0.3},
    "max-norm": {"max_norm": 0.8},
    "label-smoothing": {"label_smoothing": 0.1},
    "shift": {"augment": "shift"},
    "affine": {"augment": "affine"},
    "elastic": {"augment": "elastic"},
    "best-cpu": {"optimizer": "nesterov", "dropout": 0.2, "augment": "affine"},
}
CASES = [(r, "relu", "softmax") for r in RECIPES] + [
    ("sgd", "tanh", "softmax"),
    ("sgd", "sigmoid", "sigmoid"),
    ("adam", "sigmoid", "softmax"),
    ("dropout", "tanh", "sigmoid"),
    ("best-cpu", "sigmoid", "softmax"),
    ("sgd", "relu", "identity"),
    ("adam", "tanh", "identity"),
]
N, BATCH, PER_CALL = 100, 16, 3  # 7 steps an epoch: chunks of 3, 3, and the partial batch of 4


def train_steps(ops, backend, dtype, spec, opts, mnist, epochs=2, per_call=PER_CALL, weights=None):
    """``epochs`` epochs of Steps on the first N MNIST images (with the rows' ``weights`` (N,)
    where given); (losses, host layers)."""
    cfg = config.TrainConfig(**{"lr": 0.1, **opts})
    recipe = config.recipe(cfg, N, (28, 28))
    rng = np.random.default_rng(0)
    layers = model.layers_of(model.params_to_device(backend, model.init_params_host(spec, rng), dtype))
    net = Net(layers, optim.init_slots(recipe.optimizer, ops, layers))
    X = backend.asarray(np.ascontiguousarray(mnist.train.images[:N].reshape(N, -1)))
    Y = backend.asarray(data.one_hot(mnist.train.labels[:N], 10, dtype, cfg.label_smoothing))
    W = None if weights is None else backend.asarray(weights.astype(dtype))
    steps = Steps(ops, spec, recipe, X, Y, BATCH, per_call=per_call, W=W)
    per_epoch, t, losses = math.ceil(N / BATCH), 0, []
    for epoch in range(1, epochs + 1):
        order, total = rng.permutation(N), 0.0
        perm = backend.asarray(order)
        masses = [steps.batch(j) * (1.0 if weights is None else float(weights.mean())) for j in range(per_epoch)]
        for first, k in steps.chunks(0, per_epoch):
            scalars = [
                recipe.scalars(
                    spec,
                    optim.lr_at(cfg.lr, "cosine", epoch - 1 + j / per_epoch, epochs),
                    t + 1 + j - first,
                    (epoch - 1) * per_epoch + j,
                    masses[j],
                )
                for j in range(first, first + k)
            ]
            total += float(steps.run(net, perm, first, k, scalars, steps.new_total()))
            t += k
        losses.append(total / (N if weights is None else weights.sum()))
    return np.array(losses), [(backends.to_host(W), backends.to_host(b)) for W, b in net.layers]


_REFERENCE = {}
WEIGHTS = np.random.default_rng(7).choice([0.0, 0.5, 1.0, 3.0], N)  # the rows' weights of the weighed cases


def reference_run(spec, opts, mnist, weighed=False):
    key = (spec, tuple(sorted(opts.items())), weighed)
    if key not in _REFERENCE:
        _REFERENCE[key] = train_steps(
            reference_ops(),
            backends.resolve("numpy", "cpu"),
            "float64",
            spec,
            opts,
            mnist,
            weights=WEIGHTS if weighed else None,
        )
    return _REFERENCE[key]


@pytest.mark.parametrize("recipe,activation,output", CASES)
def test_step_matches_the_reference_step(target, recipe, activation, output, mnist):
    spec = model.Spec((784, 24, 16, 10), activation, output)
    opts = RECIPES[recipe]
    ref_loss, ref_layers = reference_run(spec, opts, mnist)
    loss, layers = train_steps(target.ops, target.backend, target.dtype, spec, opts, mnist)
    rtol = 1e-9 if target.dtype == "float64" else 3e-3
    assert np.all(np.isfinite(loss)) and loss[1] < loss[0] * 1.5
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
    for (W, b), (Wr, br) in zip(layers, ref_layers):
        assert W.dtype == np.dtype(target.dtype) and b.dtype == np.dtype(target.dtype)
        np.testing.assert_allclose(W, Wr, rtol=rtol, atol=rtol * np.abs(Wr).max())
        np.testing.assert_allclose(b, br, rtol=rtol, atol=rtol * max(np.abs(br).max(), 1e-3))


@pytest.mark.parametrize(
    "recipe,activation,output",
    [
        ("sgd", "relu", "softmax"),
        ("adam", "tanh", "sigmoid"),
        ("best-cpu", "relu", "softmax"),
        ("sgd", "relu", "identity"),
    ],
)
def test_weighed_step_matches_the_reference_step(target, recipe, activation, output, mnist):
    """Rows' weights (some 0, some fractional, some 3) in the output error and the loss: the
    same losses and parameters as the reference op set's weighed step, and not those of the
    unweighed run (the weights do something)."""
    spec = model.Spec((784, 24, 16, 10), activation, output)
    opts = RECIPES[recipe]
    ref_loss, ref_layers = reference_run(spec, opts, mnist, weighed=True)
    loss, layers = train_steps(target.ops, target.backend, target.dtype, spec, opts, mnist, weights=WEIGHTS)
    rtol = 1e-9 if target.dtype == "float64" else 3e-3
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
    for (W, b), (Wr, br) in zip(layers, ref_layers):
        np.testing.assert_allclose(W, Wr, rtol=rtol, atol=rtol * np.abs(Wr).max())
        np.testing.assert_allclose(b, br, rtol=rtol, atol=rtol * max(np.abs(br).max(), 1e-3))
    unweighed = reference_run(spec, opts, mnist)[1]
    assert not np.allclose(layers[-1][0], unweighed[-1][0], rtol=0.01, atol=1e-4)


def test_chunking_does_not_change_the_trajectory(mnist):
    """One step per chunk, three, or the op set's own choice: bit-identical parameters on NumPy."""
    be = backends.resolve("numpy", "cpu")
    spec = model.Spec((784, 24, 16, 10))
    runs = [train_steps(be.ops, be, "float32", spec, RECIPES["best-cpu"], mnist, per_call=k) for k in (1, 3, None)]
    for _, layers in runs[1:]:
        for (W, b), (Wr, br) in zip(layers, runs[0][1]):
            assert np.array_equal(W, Wr) and np.array_equal(b, br)


@pytest.mark.parametrize("recipe", ["sgd", "best-cpu", "adam"])
def test_numpy_step_allocates_no_arrays(recipe, mnist):
    """After the first step, a step writes only into its buffers: no array of the step (at
    least 256 KiB here: activations, masks, images, gradients) is allocated, even for a
    moment (tracemalloc's peak sees NumPy's array memory). The bound leaves room for NumPy's
    own scratch of broadcasting ufuncs, at most 8192 elements per operand whatever the sizes."""
    be = backends.resolve("numpy", "cpu")
    ops, spec, n = be.ops, model.Spec((784, 1024, 512, 10)), 128
    cfg = config.TrainConfig(**RECIPES[recipe])
    rec = config.recipe(cfg, 1000, (28, 28))
    layers = model.layers_of(
        model.params_to_device(be, model.init_params_host(spec, np.random.default_rng(0)), "float32")
    )
    net = Net(layers, optim.init_slots(rec.optimizer, ops, layers))
    bufs = step.Buffers(ops, spec, rec, n, net)
    x = be.asarray(mnist.train.images[:n].reshape(n, -1) / 255.0, "float32")
    y = be.asarray(data.one_hot(mnist.train.labels[:n], 10))
    logits = ops.buffer((n, 10), x, transposed=True)

    def one(i):
        step.train_step(ops, spec, rec, net, bufs, x, y, rec.scalars(spec, 0.01, i, i, n), logits)

    one(1)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(2, 5):
            one(i)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 160 * 1024, f"{peak} bytes allocated during 3 steps"


@pytest.mark.slow
def test_jax_chunk_compiles_once_across_epochs(mnist, monkeypatch):
    """The jitted chunk is traced once per run and (steps per call, batch size): three epochs
    trace as much as one (a retrace per epoch once cost more than the epoch's steps)."""
    be = backends.resolve("jax", "cpu")
    traces = []
    real = step.train_step
    monkeypatch.setattr(step, "train_step", lambda *a, **k: (traces.append(1), real(*a, **k))[1])
    spec = model.Spec((784, 13, 10), "tanh")
    train_steps(be.ops, be, "float32", spec, RECIPES["best-cpu"], mnist, epochs=1)
    first = len(traces)
    assert first == 2  # the chunk of 3 steps (traced once: one loop body) and the partial batch
    train_steps(be.ops, be, "float32", spec, RECIPES["best-cpu"], mnist, epochs=3)  # a new run: its own compile
    assert len(traces) == 2 * first
