"""Each backend's op set against the base op set (the reference) on NumPy float64.

Every op is run with ``out=None`` and, where the op set writes in place, into buffers in
both layouts (contiguous, and stored as the transpose), with inputs that are themselves
transposed views where that matters (GEMMs)."""

import numpy as np
import pytest

from xpnet.backends import reference_ops
from xpnet.engine import model

from helpers import RTOL, targets

REF = reference_ops()
SHAPE = (7, 5)


def _check(t, got, want, rtol=None):
    rtol = rtol or RTOL[t.dtype]
    want = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(
        t.to_host(got).astype(np.float64), want, rtol=rtol, atol=rtol * max(1.0, np.abs(want).max())
    )


def _outs(t, shape, like):
    """None, and for in-place op sets a buffer in each layout."""
    outs = [None]
    if t.ops.in_place:
        outs.append(t.ops.buffer(shape, like))
        if len(shape) == 2:
            outs.append(t.ops.buffer(shape, like, transposed=True))
    return outs


def _wrote(t, got, out):
    """An in-place op set returns the buffer it was given."""
    if out is not None:
        assert got is out


@pytest.fixture
def data(rng):
    return {"x": rng.standard_normal(SHAPE), "y": rng.standard_normal(SHAPE), "pos": rng.uniform(0.1, 3.0, SHAPE)}


BINARY = [
    ("add", "x", "y"),
    ("subtract", "x", "y"),
    ("multiply", "x", "y"),
    ("divide", "x", "pos"),
    ("maximum", "x", "y"),
    ("minimum", "x", "y"),
    ("add", "x", 0.5),
    ("add", 0.5, "x"),
    ("subtract", 1.0, "x"),
    ("subtract", "x", 2.0),
    ("multiply", 3.0, "x"),
    ("divide", 2.0, "pos"),
    ("maximum", "x", 0.0),
    ("minimum", "x", 1.0),
]


@pytest.mark.parametrize("op,a,b", BINARY)
def test_elementwise_binary(target, data, op, a, b):
    t = target
    host = [data[v] if isinstance(v, str) else v for v in (a, b)]
    dev = [t.asarray(h) if isinstance(h, np.ndarray) else h for h in host]
    like = next(d for d in dev if not isinstance(d, float))
    want = getattr(REF, op)(*host)
    for out in _outs(t, SHAPE, like):
        got = getattr(t.ops, op)(*dev, out=out)
        _wrote(t, got, out)
        _check(t, got, want)


UNARY = [
    ("exp", "x"),
    ("log", "pos"),
    ("sqrt", "pos"),
    ("tanh", "x"),
    ("cos", "x"),
    ("sin", "x"),
    ("abs", "x"),
    ("negative", "x"),
    ("floor", "x"),
    ("sigmoid", "x"),
]


@pytest.mark.parametrize("op,a", UNARY)
def test_elementwise_unary(target, data, op, a):
    t = target
    x = t.asarray(data[a])
    want = getattr(REF, op)(data[a])
    for out in _outs(t, SHAPE, x):
        got = getattr(t.ops, op)(x, out=out)
        _wrote(t, got, out)
        _check(t, got, want)


def test_clip_compare_cast_copy(target, data):
    t, ops = target, target.ops
    x, y = t.asarray(data["x"]), t.asarray(data["y"])
    for out in _outs(t, SHAPE, x):
        _check(t, ops.clip(x, -0.5, 0.25, out=out), REF.clip(data["x"], -0.5, 0.25))
        _check(t, ops.greater(x, y, out=out), REF.greater(data["x"], data["y"]))
        _check(t, ops.less(x, 0.1, t.dtype, out=out), REF.less(data["x"], 0.1, "float64"))
        _check(t, ops.copy(x, out=out), data["x"])
    ints = t.asarray(np.arange(35).reshape(SHAPE) % 11, "int64")
    _check(t, ops.astype(ints, t.dtype), np.arange(35).reshape(SHAPE) % 11)
    _check(t, ops.astype(ops.floor(t.asarray(data["x"] * 3)), "int64"), np.floor(data["x"] * 3))


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-1.0, 1.0), (0.3, 1.0), (-0.7, 0.9)])
def test_axpy_and_axpby_update_y(target, data, alpha, beta):
    t, ops = target, target.ops
    x = t.asarray(data["x"])
    y = t.asarray(data["y"])
    got = ops.axpy(alpha, x, y)
    _check(t, got, data["y"] + alpha * data["x"])
    y = t.asarray(data["y"])
    got2 = ops.axpby(alpha, x, beta, y)
    _check(t, got2, alpha * data["x"] + beta * data["y"])
    if ops.in_place:
        assert got2 is y


def test_hash_integer_ops(target, rng):
    t, ops = target, target.ops
    host = rng.integers(0, 1 << 32, SHAPE, dtype=np.uint64)
    x = t.asarray(host, ops.hash_dtype)
    ref = host.astype(np.uint32)
    for out in _outs(t, SHAPE, x):
        np.testing.assert_array_equal(t.to_host(ops.bitwise_xor(x, 0x9E3779B9, out=out)), ref ^ np.uint32(0x9E3779B9))
        np.testing.assert_array_equal(t.to_host(ops.right_shift(x, 13, out=out)), ref >> np.uint32(13))
        np.testing.assert_array_equal(t.to_host(ops.mul32(x, 0x7FEB352D, out=out)), REF.mul32(ref, 0x7FEB352D))


def test_take_and_slice(target, data, rng):
    t, ops = target, target.ops
    X = t.asarray(data["x"])
    idx_host = rng.permutation(SHAPE[0])[:4]
    idx = t.asarray(idx_host, "int64")
    outs = [None] + ([ops.buffer((4, SHAPE[1]), X)] if ops.in_place else [])
    for out in outs:
        _check(t, ops.take(X, idx, out=out), data["x"][idx_host])
    flat = t.asarray(data["x"].reshape(-1))
    _check(t, ops.take(flat, idx), data["x"].reshape(-1)[idx_host])
    _check(t, ops.slice(X, 2, 3), data["x"][2:5])
    _check(t, ops.slice(X, 1, 2, axis=1), data["x"][:, 1:3])


@pytest.mark.parametrize("axis", [0, 1])
def test_reductions(target, data, rng, axis):
    t, ops = target, target.ops
    x = t.asarray(data["x"])
    shape = (1, SHAPE[1]) if axis == 0 else (SHAPE[0], 1)
    prior = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    for out in _outs(t, shape, x):
        for stored in (x, _feature_major(t, data["x"])):  # as such, and as its transpose (a layer's batch)
            _check(t, ops.sum(stored, axis, out=out), REF.sum(data["x"], axis))
            _check(t, ops.sum(stored, axis, out=out, alpha=-0.5), REF.sum(data["x"], axis, alpha=-0.5))
            _check(t, ops.max(stored, axis, out=out), REF.max(data["x"], axis))
            _check(t, ops.sum_squares(stored, axis, out=out), REF.sum_squares(data["x"], axis))
    stack = rng.standard_normal((3, 5, 4))  # a population's (K, in, out) weights, stored (K, out, in)
    weights = t.asarray(np.swapaxes(stack, 1, 2).copy()).mT
    for out in _outs(t, (3, 1, 4), weights):
        _check(t, ops.sum_squares(weights, -2, out=out), REF.sum_squares(stack, -2))
    if ops.in_place:  # with beta: out = beta * out + alpha * sum
        out = ops.copy(t.asarray(prior), out=ops.buffer(shape, x))
        _check(
            t,
            ops.sum(x, axis, out=out, alpha=-0.5, beta=0.9),
            REF.sum(data["x"], axis, out=prior, alpha=-0.5, beta=0.9),
        )
    else:
        _check(
            t,
            ops.sum(x, axis, out=t.asarray(prior), alpha=-0.5, beta=0.9),
            REF.sum(data["x"], axis, out=prior, alpha=-0.5, beta=0.9),
        )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_products_cublaslt_refuses_are_written_another_way(monkeypatch, rng, dtype):
    """On CUDA an addmm (in place with beta, or a bias + product) with a one-row or one-column
    operand can go to cuBLASLt, which refuses it (every plain-SGD step failed so on an H100):
    the torch op set then sums through a GEMV, multiplies into scratch, or adds the bias after
    the product. Those forms, forced here on the CPU, give the same sums and products."""
    torch = pytest.importorskip("torch")
    from xpnet import backends
    from xpnet.backends import torch as torch_ops

    t = backends.resolve("torch", "cpu")
    ops = t.ops
    asked = []  # the operands each product would hand to addmm_: the CUDA check sees a ones row or column

    def refuses(*mats):
        asked.append([tuple(m.shape) for m in mats])
        return True

    monkeypatch.setattr(torch_ops, "_lt_refuses", refuses)
    x_h = rng.standard_normal((7, 5))
    x = torch.as_tensor(x_h.T.copy(), dtype=getattr(torch, dtype)).mT  # feature-major, as a step's errors
    for axis, shape in ((0, (1, 5)), (1, (7, 1))):
        prior = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
        out = torch.tensor(prior, dtype=x.dtype)  # a copy: prior stays the reference's
        got = ops.sum(x, axis, out=out, alpha=-0.5, beta=1.0)
        assert got is out
        np.testing.assert_allclose(got.numpy(), REF.sum(x_h, axis, out=prior.copy(), alpha=-0.5, beta=1.0), rtol=1e-6)
    a_h, b_h = rng.standard_normal((1, 4)), rng.standard_normal((4, 3))  # the partial last batch of one row
    out = torch.ones((1, 3), dtype=x.dtype)
    got = ops.matmul(
        torch.as_tensor(a_h, dtype=x.dtype), torch.as_tensor(b_h, dtype=x.dtype), out=out, alpha=-2.0, beta=1.0
    )
    assert got is out
    np.testing.assert_allclose(got.numpy(), 1.0 - 2.0 * a_h @ b_h, rtol=1e-6)
    bias = rng.standard_normal((1, 3))  # a layer's bias + product for a batch of one row
    for out in (None, torch.empty((1, 3), dtype=x.dtype)):
        got = ops.affine(*(torch.as_tensor(h, dtype=x.dtype) for h in (a_h, b_h, bias)), out=out, alpha=0.5)
        assert out is None or got is out
        np.testing.assert_allclose(got.numpy(), 0.5 * a_h @ b_h + bias, rtol=1e-5, atol=1e-6)
    assert asked == [[(1, 7), (7, 5)], [(5, 1), (7, 5)], [(1, 4), (4, 3)], [(1, 4), (4, 3)], [(1, 4), (4, 3)]]


@pytest.mark.parametrize("a_t", [False, True])
@pytest.mark.parametrize("b_t", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, None), (-0.25, None), (-1.0, 1.0), (-0.5, 0.97), (2.0, 1.0)])
def test_matmul_alpha_beta_layouts(target, rng, a_t, b_t, alpha, beta):
    t, ops = target, target.ops
    a_h, b_h, c_h = rng.standard_normal((6, 4)), rng.standard_normal((4, 5)), rng.standard_normal((6, 5))
    a = t.asarray(a_h.T.copy()).T if a_t else t.asarray(a_h)
    b = t.asarray(b_h.T.copy()).T if b_t else t.asarray(b_h)
    want = REF.matmul(a_h, b_h, out=c_h, alpha=alpha, beta=beta)
    outs = _outs(t, (6, 5), a) if ops.in_place else [t.asarray(c_h)]
    for out in outs:
        if beta is not None:
            if out is None:
                continue
            out = ops.copy(t.asarray(c_h), out=out) if ops.in_place else out
        got = ops.matmul(a, b, out=out, alpha=alpha, beta=beta)
        if ops.in_place:
            _wrote(t, got, out)
        _check(t, got, want)


def test_batched_matmul(target, rng):
    """A matrix times a stack of matrices (the elastic field's smoothing)."""
    t, ops = target, target.ops
    a_h, b_h = rng.standard_normal((4, 4)), rng.standard_normal((3, 4, 5))
    a, b = t.asarray(a_h), t.asarray(b_h)
    outs = [None] + ([ops.buffer((3, 4, 5), a)] if ops.in_place else [])
    for out in outs:
        _check(t, ops.matmul(a, b, out=out), a_h @ b_h)


def test_affine_and_pad(target, rng):
    t, ops = target, target.ops
    x_h, w_h, b_h = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    x, w, b = t.asarray(x_h), t.asarray(w_h), t.asarray(b_h)
    for out in _outs(t, (5, 3), x):
        _check(t, ops.affine(x, w, b, out=out, alpha=0.5), REF.affine(x_h, w_h, b_h, alpha=0.5))
    wT = t.asarray(w_h.T.copy()).T  # weights stored as their transpose
    _check(t, ops.affine(x, wT, b), REF.affine(x_h, w_h, b_h))
    imgs_h = rng.standard_normal((2, 12))
    want = REF.pad(imgs_h, 3, 4)
    assert want.shape == (2, 6, 7) and np.all(want[:, 0] == 0) and np.all(want[:, -2:] == 0)
    out = ops.zeros((2, 6, 7), x) if ops.in_place else None
    _check(t, ops.pad(t.asarray(imgs_h), 3, 4, out=out), want)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activations_and_their_gradients(target, data, name):
    t, ops = target, target.ops
    z, d = t.asarray(data["x"] * 4), t.asarray(data["y"])
    a_h = REF.activate(name, data["x"] * 4)
    for out in _outs(t, SHAPE, z):
        got = ops.activate(name, z, out=out)
        _check(t, got, a_h)
        a = t.asarray(a_h)
        _check(t, ops.activation_grad(name, d, a, out=out), REF.activation_grad(name, data["y"], a_h))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("kind", model.OUTPUTS)
def test_softmax_errors_and_losses(target, rng, axis, kind):
    t, ops = target, target.ops
    z_h = rng.standard_normal((4, 6)) * 5
    labels = rng.integers(0, z_h.shape[axis], z_h.shape[1 - axis])
    y_h = np.eye(z_h.shape[axis])[labels]
    y_h = y_h.T if axis == 0 else y_h
    z, y = t.asarray(z_h), t.asarray(y_h)
    for out in _outs(t, z_h.shape, z):
        _check(t, ops.softmax(z, axis, out=out), REF.softmax(z_h, axis))
        _check(t, ops.output_error(kind, z, y, 0.25, axis, out=out), REF.output_error(kind, z_h, y_h, 0.25, axis))
    _check(t, ops.log_softmax(z, axis), REF.log_softmax(z_h, axis))
    _check(t, ops.loss_sum(kind, z, y, axis), REF.loss_sum(kind, z_h, y_h, axis))


def test_unit_floats(target, rng):
    t, ops = target, target.ops
    pixels_h = rng.integers(0, 256, SHAPE).astype(np.uint8)
    pixels = t.asarray(pixels_h)
    outs = [None] + ([ops.buffer(SHAPE, t.asarray(np.zeros(1)))] if ops.in_place else [])
    for out in outs:
        x, scale = ops.unit_floats(pixels, t.dtype, out=out)
        _check(t, ops.multiply(x, scale), pixels_h / 255.0)


@pytest.mark.parametrize("target", targets(), indirect=True)
def test_sigmoid_keeps_relative_precision_like_torch(target):
    """The stable sigmoid against torch.sigmoid (float64) from large negative to large positive
    z: full relative precision where 0.5 * (1 + tanh(z / 2)) loses it (z < -10) or gives 0."""
    import torch

    t = target
    lo = -700.0 if t.dtype == "float64" else -85.0
    z_h = np.concatenate([np.linspace(lo, 40.0, 2001), [0.0]])
    want = torch.sigmoid(torch.from_numpy(z_h)).numpy()
    got = t.to_host(t.ops.sigmoid(t.asarray(z_h))).astype(np.float64)
    rel = np.abs(got - want) / want
    assert rel.max() < (1e-14 if t.dtype == "float64" else 1e-6), (z_h[np.argmax(rel)], rel.max())
    assert np.all(got[z_h < -30] > 0)  # no underflow to 0 where the tanh form had it


# ---- the fused formulas: each op set's (CuPy: one kernel each) against the base op set's ----


def _feature_major(t, host):
    """host (n, size) on the device stored as its (size, n) transpose (as the step stores layers)."""
    return t.asarray(host.T.copy()).T


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_dense_and_activation_grad_sum(target, rng, name):
    t, ops = target, target.ops
    x_h, w_h, b_h = rng.standard_normal((6, 4)), rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
    d_h, prior = rng.standard_normal((6, 5)), rng.standard_normal((1, 5))
    x, w, b = t.asarray(x_h), t.asarray(w_h.T.copy()).T, t.asarray(b_h)
    want = REF.dense(name, x_h, w_h, b_h, alpha=0.5)
    outs = [None] + ([ops.buffer((6, 5), x, transposed=True), ops.buffer((6, 5), x)] if ops.in_place else [])
    for out in outs:
        _check(t, ops.dense(name, x, w, b, out=out, alpha=0.5), want)
    want_d, want_sum = REF.activation_grad_sum(name, d_h, want, None, prior, alpha=-0.3, beta=0.9)
    _, want_grad = REF.activation_grad_sum(name, d_h, want, None, prior, alpha=0.7)
    for layout in (_feature_major, lambda t, h: t.asarray(h)):
        d, a = layout(t, d_h), layout(t, want)
        total = t.asarray(prior)
        got_d, got_sum = ops.activation_grad_sum(name, d, a, d, total, alpha=-0.3, beta=0.9)
        _check(t, got_d, want_d)
        _check(t, got_sum, want_sum)
        _, got_grad = ops.activation_grad_sum(
            name, layout(t, d_h), a, None if not ops.in_place else layout(t, d_h), t.asarray(prior), alpha=0.7
        )
        _check(t, got_grad, want_grad)
        if ops.in_place:
            assert got_sum is total


@pytest.mark.parametrize("weighed", [False, True])
@pytest.mark.parametrize("kind", model.OUTPUTS)
def test_logits_and_error_and_chunk_loss(target, rng, kind, weighed):
    """The output layer's bias and error from its product, class-major as the step keeps them,
    and a chunk's loss over its steps' blocks (k, classes, n) added to a running total; with
    the samples' weights, each sample's error and loss times its weight."""
    t, ops = target, target.ops
    z_h, b_h = rng.standard_normal((5, 4)) * 3, rng.standard_normal((1, 4))
    y_h = np.eye(4)[rng.integers(0, 4, 5)] if kind != "identity" else rng.standard_normal((5, 4))
    w_h = rng.uniform(0.0, 3.0, 5) if weighed else None
    want_z, want_d, _ = REF.logits_and_error(kind, z_h, b_h, y_h, 0.25)
    if weighed:
        want_d = want_d * w_h[:, None]
    for total, alpha, beta in ((None, 1.0, None), (b_h, -0.5, 1.0), (np.ones((1, 4)), 2.0, None)):
        z, y, b = _feature_major(t, z_h), _feature_major(t, y_h), t.asarray(b_h)
        out = ops.buffer((5, 4), z, transposed=True) if ops.in_place else None
        into = None if total is None else b if total is b_h else t.asarray(total)  # b itself: SGD's bias update
        w = None if w_h is None else t.asarray(w_h)
        got_z, got_d, got_sum = ops.logits_and_error(kind, z, b, y, 0.25, out, into, alpha, beta, weights=w)
        _check(t, got_z, want_z)
        _check(t, got_d, want_d)
        if total is None:
            assert got_sum is None
        else:
            _check(t, got_sum, (0 if beta is None else beta * total) + alpha * want_d.sum(axis=0, keepdims=True))
    blocks_h = rng.standard_normal((3, 4, 5)) * 2
    targets_h = np.stack([np.eye(4)[rng.integers(0, 4, 5)].T for _ in range(3)])
    weights_h = rng.uniform(0.0, 3.0, (3, 5)) if weighed else None
    total = t.asarray(np.array(1.5), "float64")
    weights = None if weights_h is None else t.asarray(weights_h)
    got = ops.loss_sum(kind, t.asarray(blocks_h), t.asarray(targets_h), 1, total=total, weights=weights)
    per_sample = REF.loss_sum(kind, blocks_h, targets_h, 1, weights=np.ones((3, 5)) if weights_h is None else weights_h)
    _check(t, got, 1.5 + per_sample)
    if weighed:  # the weights by hand: each (step, sample)'s own loss times its weight
        each = [
            REF.loss_sum(kind, blocks_h[i, :, j : j + 1], targets_h[i, :, j : j + 1], 0)
            for i in range(3)
            for j in range(5)
        ]
        _check(t, got, 1.5 + float(np.dot(np.ravel(each), weights_h.ravel())))


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam", "adamw"])
def test_optimizer_update(target, rng, optimizer):
    from xpnet.engine import optim

    t, ops = target, target.ops
    opt = optim.Optimizer(optimizer, weight_decay=0.1, l2=2.0, n_train=50)
    p_h, g_h = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    slots_h = [rng.uniform(0.0, 1.0, (3, 4)) for _ in range(opt.slots)]
    s = opt.step_scalars(0.05, 3)
    for is_weight in (True, False):
        want_p, want_slots = opt.update(REF, p_h, g_h.copy(), [a.copy() for a in slots_h], s, is_weight)
        for layout in (_feature_major, lambda t, h: t.asarray(h)):
            p, slots = layout(t, p_h), [layout(t, a) for a in slots_h]
            got_p, got_slots = opt.update(ops, p, layout(t, g_h), slots, s, is_weight)
            _check(t, got_p, want_p)
            for got, want in zip(got_slots, want_slots):
                _check(t, got, want)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adamw"])
def test_optimizer_update_reads_each_member_s_coefficients(target, rng, optimizer):
    """A population's update: p, g and slots (K, in, out), stored as such or (as a population's
    weights are) as their (K, out, in) transpose, with coefficients that differ per member
    ((K, 1, 1) device arrays: rates, momenta, L2, adamw's decays): each member's block is the
    update its own scalars make alone."""
    from xpnet.engine import optim

    t, ops, K = target, target.ops, 3
    opts = [
        optim.Optimizer(optimizer, momentum=0.5 + 0.2 * k, weight_decay=0.1 * k, l2=2.0 * k, n_train=50)
        for k in range(K)
    ]
    scalars = [o.step_scalars(0.05 * (k + 1), 3) for k, o in enumerate(opts)]
    p_h, g_h = rng.standard_normal((K, 4, 5)), rng.standard_normal((K, 4, 5))
    slots_h = [rng.uniform(0.0, 1.0, (K, 4, 5)) for _ in range(opts[0].slots)]
    for is_weight in (True, False):
        want = [
            o.update(REF, p_h[k].copy(), g_h[k].copy(), [a[k].copy() for a in slots_h], s, is_weight)
            for k, (o, s) in enumerate(zip(opts, scalars))
        ]
        each = [o.coefficients(s, is_weight) for o, s in zip(opts, scalars)]
        c = {
            name: each[0][name]
            if len({e[name] for e in each}) == 1
            else t.asarray(np.reshape([e[name] for e in each], (K, 1, 1)))
            for name in each[0]
        }
        assert sum(not isinstance(v, float) for v in c.values()) >= (3 if is_weight else 2)  # they differ
        for layout in (lambda h: t.asarray(np.swapaxes(h, 1, 2).copy()).mT, t.asarray):
            p, slots = layout(p_h), [layout(a) for a in slots_h]
            got_p, got_slots = ops.optimizer_update(opts[0].rule, p, layout(g_h), slots, c)
            for k, (want_p, want_slots) in enumerate(want):
                _check(t, got_p[k, ...], want_p)
                for got, wanted in zip(got_slots, want_slots):
                    _check(t, got[k, ...], wanted)
