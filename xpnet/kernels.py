"""Backend-specific fast paths for the training step (the only other module, besides
backend.py, that knows array libraries by name).

The portable array-API step (``model.loss_and_grads_2d`` + ``optim.apply``) is the
reference; a fast path computes the same numbers with fewer passes over memory and
no allocation per step, and is tested against it (tests/test_kernels.py).

``fused_step(params, spec)`` returns a ``FusedStep`` for plain SGD on NumPy or PyTorch
arrays (CPU, and CUDA tensors through the same PyTorch calls), a ``JaxStep`` for JAX, or
None: then the portable step is used. Every operation of a FusedStep writes into buffers
made once, on views made once; rows are gathered a chunk of batches at a time; each
weight update is one GEMM with beta on PyTorch (``addmm_``, lr/batch as its alpha) and a
GEMM plus one subtraction on NumPy (lr/batch folded into the output error); the loss is
summed once per chunk from the logits the steps left behind. ``NumpyOps`` and
``TorchOps`` hold the library-specific primitives.
"""

from __future__ import annotations

import array_api_compat
import numpy as np

from .layers import OUTPUTS, log_softmax
from .model import Spec, _wb2d


class NumpyOps:
    """The in-place primitives of FusedStep, for NumPy arrays."""

    take = staticmethod(lambda X, idx, out: np.take(X, idx, axis=0, out=out))
    is_bytes = staticmethod(lambda X: X.dtype == np.uint8)
    itemsize = staticmethod(lambda X: X.dtype.itemsize)
    relu_ = staticmethod(lambda Z: np.maximum(Z, 0, out=Z))
    tanh_ = staticmethod(lambda Z: np.tanh(Z, out=Z))
    rsub = staticmethod(lambda c, a, out: np.subtract(c, a, out=out))  # out = c - a
    zeros0 = staticmethod(lambda like: np.zeros((), dtype=np.float64))
    fold_lr = False  # scale the (small) output error by lr/batch; updates use alpha = 1
    chunk_bytes = 512 << 10  # training rows (as stored) gathered at once; measured: larger is slower here

    @staticmethod
    def feature_major(size: int, n: int) -> bool:
        """Store a hidden layer's activations as (size, n): OpenBLAS's GEMMs are faster so for
        wide layers (measured: 784-800-800-10 and 784-512-256-10), slower for narrow ones."""
        return size >= 256

    @staticmethod
    def usable(W) -> bool:
        return array_api_compat.is_numpy_array(W) and W.flags.writeable

    contiguous = staticmethod(lambda W: W.flags.c_contiguous)

    @staticmethod
    def empty(shape, like, dtype=None):
        return np.empty(shape, dtype=dtype or like.dtype)

    @staticmethod
    def ones(shape, like):
        return np.ones(shape, dtype=like.dtype)

    @staticmethod
    def to_floats(pixels, out) -> float:
        """out = pixels / 255 (one pass); returns the scale still to apply: 1."""
        np.multiply(pixels, out.dtype.type(1 / 255), out=out)
        return 1.0

    @staticmethod
    def matmul(a, b, out):
        np.matmul(a, b, out=out)

    @staticmethod
    def affine(A, Wt, b, out, alpha: float = 1.0):
        """out = alpha * A @ Wt + b."""
        np.matmul(A, Wt, out=out)
        if alpha != 1.0:
            out *= alpha
        out += b

    @staticmethod
    def sub_matmul(C, a, b, scratch, decay: float, alpha: float = 1.0) -> None:
        """C = decay * C - alpha * a @ b (scratch: a buffer shaped like C)."""
        np.matmul(a, b, out=scratch)
        if alpha != 1.0:
            scratch *= alpha
        if decay != 1.0:
            C *= decay
        C -= scratch

    @staticmethod
    def sub_colsum(b, delta, deltaT, scratch, ones, alpha: float = 1.0) -> None:
        """b (out,) -= alpha * (column sums of delta (n, out))."""
        np.sum(delta, axis=0, out=scratch)
        if alpha != 1.0:
            scratch *= alpha
        b -= scratch

    @staticmethod
    def sigmoid(Z, out):
        """out = sigmoid(Z) = (1 + tanh(Z/2)) / 2 (no overflow); out may be Z."""
        np.multiply(Z, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5

    @staticmethod
    def copy(src, out):
        np.copyto(out, src)

    @staticmethod
    def softmax_t(zT, out, row) -> None:
        """out = softmax over the classes of class-major logits zT (classes, n), max
        subtracted; row: (1, n) scratch."""
        np.max(zT, axis=0, keepdims=True, out=row)
        np.subtract(zT, row, out=out)
        np.exp(out, out=out)
        np.sum(out, axis=0, keepdims=True, out=row)
        out /= row

    @staticmethod
    def xent_sum_t(zT, yT):
        """Summed cross-entropy of class-major logits zT (classes, m) against one-hot yT: 0-d."""
        return -np.sum(log_softmax(zT.T) * yT.T)

    @staticmethod
    def times_derivative(name: str, d, a, scratch) -> None:
        """d *= activation'(z), written with the activation's output a."""
        if name == "relu":
            np.greater(a, 0, out=scratch)
        elif name == "tanh":
            np.multiply(a, a, out=scratch)
            np.subtract(1.0, scratch, out=scratch)
        else:
            np.subtract(1.0, a, out=scratch)
            scratch *= a
        d *= scratch


class TorchOps:
    """The same primitives for PyTorch tensors; the weight update is one addmm_ (GEMM with
    beta)."""

    fold_lr = True  # the output error stays unscaled; lr/batch goes into the updates' alpha
    chunk_bytes = 4 << 20  # training rows (as stored) gathered at once (2-4 MiB measured fastest)

    def __init__(self):
        import torch

        self.torch = torch
        aten = torch.ops.aten
        self._backward = {"relu": lambda d, a: aten.threshold_backward.grad_input(d, a, 0, grad_input=d),
                          "tanh": lambda d, a: aten.tanh_backward.grad_input(d, a, grad_input=d),
                          "sigmoid": lambda d, a: aten.sigmoid_backward.grad_input(d, a, grad_input=d)}

    def usable(self, W) -> bool:
        return array_api_compat.is_torch_array(W) and not W.requires_grad

    def contiguous(self, W) -> bool:
        return W.is_contiguous()

    @staticmethod
    def feature_major(size: int, n: int) -> bool:
        """Store a hidden layer's activations as (size, n): with MKL every benchmark config
        and the default network train faster so (the weight GEMMs then split well on two
        threads even at batch 50)."""
        return True

    def is_bytes(self, X):
        return X.dtype == self.torch.uint8

    def itemsize(self, X):
        return X.element_size()

    def take(self, X, idx, out):
        return self.torch.index_select(X, 0, idx, out=out)

    def to_floats(self, pixels, out) -> float:
        """out = pixels as floats (one pass); the 1/255 is folded into the first layer's GEMMs."""
        out.copy_(pixels)
        return 1 / 255

    def zeros0(self, like):
        return self.torch.zeros((), dtype=self.torch.float64, device=like.device)

    def empty(self, shape, like, dtype=None):
        return self.torch.empty(shape, dtype=dtype or like.dtype, device=like.device)

    def ones(self, shape, like):
        return self.torch.ones(shape, dtype=like.dtype, device=like.device)

    def tanh_(self, Z):
        Z.tanh_()

    def relu_(self, Z):
        Z.clamp_(min=0)

    def rsub(self, c, a, out):
        self.torch.neg(a, out=out).add_(c)

    def matmul(self, a, b, out):
        self.torch.mm(a, b, out=out)

    def affine(self, A, Wt, b, out, alpha: float = 1.0):
        self.torch.addmm(b, A, Wt, alpha=alpha, out=out)

    def sub_matmul(self, C, a, b, scratch, decay: float, alpha: float = 1.0) -> None:
        """C = decay * C - alpha * a @ b, as one GEMM into C (contiguous)."""
        C.addmm_(a, b, beta=decay, alpha=-alpha)

    def sub_colsum(self, b, delta, deltaT, scratch, ones, alpha: float = 1.0) -> None:
        """b (out,) -= alpha * (column sums of delta), as one matrix-vector product with beta."""
        b.addmv_(deltaT, ones, alpha=-alpha)

    def sigmoid(self, Z, out):
        self.torch.sigmoid(Z, out=out)

    def copy(self, src, out):
        out.copy_(src)

    def softmax_t(self, zT, out, row) -> None:
        self.torch.softmax(zT, 0, out=out)

    def xent_sum_t(self, zT, yT):
        return -self.torch.sum(self.torch.log_softmax(zT, 0) * yT)

    def times_derivative(self, name: str, d, a, scratch) -> None:
        """One pass each, with ATen's own backward kernels of relu, tanh and sigmoid."""
        self._backward[name](d, a)


class FusedStep:
    """Plain SGD steps of ``spec`` over an epoch, in place: params are updated where they lie.

    Each layer's W^T (in, out) is a view of the storage behind the public (1, out, in) W,
    contiguous either as W^T or as W (see model.params_to_device); the weight update is
    written straight into that storage. ``ops`` holds the library's in-place primitives.

    Rows are gathered a chunk of ``chunk_steps`` batches at a time (``ops.chunk_bytes`` of
    stored rows: one gather and one bytes-to-floats pass instead of several small ones per
    step); each batch is then a fixed slice of the chunk. A hidden layer's activations are
    stored (batch, size), or (size, batch) where ``ops.feature_major`` says the library's
    GEMMs are faster so; the output layer is always computed class-major, Z^T = W @ A^T + b^T
    (classes, batch), so that its softmax runs along contiguous batch rows instead of rows
    of ten; it writes the logits into the chunk's logits buffer, and the loss of those
    columns is summed once per chunk (``loss_total``), off the step's path.
    """

    def __init__(self, params, spec: Spec, ops):
        self.spec, self.ops = spec, ops
        self.Wt = []  # (in, out) views of each public W
        self.upd = []  # per layer: (C, by_rows): the contiguous one of W (out, in) (by_rows) and W^T
        self.b = []  # (1, out) views of each public b
        for W, b in params:
            Wt, b2 = _wb2d(W, b)
            if ops.contiguous(Wt):
                self.upd.append((Wt, False))
            elif ops.contiguous(Wt.T):
                self.upd.append((Wt.T, True))
            else:
                raise ValueError("FusedStep needs W or W^T contiguous")
            self.Wt.append(Wt)
            self.b.append(b2)
        self.W = [Wt.T for Wt in self.Wt]  # (out, in) views
        self.bvec = [b2[0, ...] for b2 in self.b]  # (out,) views
        self.bT = [b2.T for b2 in self.b]  # (out, 1) views: the biases of feature-major outputs
        self.loss_sum = ops.zeros0(self.Wt[0])  # float64; see loss_total
        self._loss_lo = self._loss_hi = 0  # columns of the chunk whose loss is not yet in loss_sum
        self.params = params  # updated in place
        self._buffers = {}

    def _bufs(self, n: int):
        """Per-batch-size buffers and their transposed views, made once. Index l: the l-th
        activation (0: the input, L: the logits), so d[l] is dLoss/dZ of layer l's output.
        Each hidden A[l] and d[l] is contiguous as (n, size) or, where ``ops.feature_major``,
        as (size, n) (then A[l] is a view of the contiguous AT[l]); the logits and their error
        are always contiguous class-major (classes, n)."""
        if n not in self._buffers:
            ops, like = self.ops, self.Wt[0]
            sizes = self.spec.sizes
            fm = [False] + [ops.feature_major(s, n) for s in sizes[1:-1]] + [True]

            def contiguous(layers):  # [None, then per layer l: a buffer stored as that layer's layout]
                return [None] + [ops.empty((sizes[l], n) if fm[l] else (n, sizes[l]), like) for l in layers]

            def views(cs):  # (batch-major views, feature-major views) of those buffers
                return ([None if c is None else (c.T if f else c) for c, f in zip(cs, fm)],
                        [None if c is None else (c if f else c.T) for c, f in zip(cs, fm)])

            hidden, every = range(1, len(sizes) - 1), range(1, len(sizes))
            Ac, dc = contiguous(hidden), contiguous(every)
            (A, AT), (d, dT) = views(Ac), views(dc)
            self._buffers[n] = {
                "A": A, "AT": AT, "d": d, "dT": dT, "fm": fm, "Ac": Ac, "dc": dc, "t": contiguous(every),
                "row": ops.empty((1, n), like),
                "ones": ops.ones((n,), like),
                "db": [ops.empty((o,), like) for o in sizes[1:]],
                "dW": [ops.empty(tuple(C.shape), like) for C, _ in self.upd],  # NumPy only: the update's product
            }
        return self._buffers[n]

    def begin_epoch(self, X, Y, perm, batch_size: int) -> None:
        """Set up ``step(s, ...)``: batch s is rows perm[s*batch_size : (s+1)*batch_size] of
        X (N, in), uint8 pixels or floats, and one-hot Y (N, out)."""
        self._flush()
        ops, like = self.ops, self.Wt[0]
        self.X, self.Y, self.perm, self.bs = X, Y, perm, batch_size
        raw = ops.is_bytes(X)
        row_bytes = X.shape[1] * ops.itemsize(X) + Y.shape[1] * ops.itemsize(Y)
        k = self.chunk_steps = max(1, ops.chunk_bytes // (batch_size * row_bytes))
        rows, classes = k * batch_size, Y.shape[1]
        key = ("chunk", rows, X.shape[1], classes, raw)
        if key not in self._buffers:
            x, y = ops.empty((rows, X.shape[1]), like), ops.empty((rows, classes), like)
            yT, zT = ops.empty((classes, rows), like), ops.empty((classes, rows), like)
            views = []  # per batch position j: x, x^T, y^T, z^T of a full batch
            for j in range(k):
                lo, hi = j * batch_size, (j + 1) * batch_size
                views.append((x[lo:hi, ...], x[lo:hi, ...].T, yT[:, lo:hi], zT[:, lo:hi]))
            raw_buf = ops.empty((rows, X.shape[1]), like, X.dtype) if raw else None
            self._buffers[key] = (raw_buf, x, y, yT, zT, views)
        self._raw, self._x, self._y, self._yT, self._zT, self._views = self._buffers[key]
        self._chunk = None  # the first step of the chunk now gathered
        self._rows = 0  # rows in that chunk
        self._scale = 1.0  # what the first layer's GEMMs still multiply the chunk's x by

    def step(self, s: int, lr: float, decay: float = 1.0) -> None:
        """SGD step on batch ``s`` of the epoch set up by begin_epoch: W = decay * W - lr * dW."""
        j = s % self.chunk_steps
        if s - j != self._chunk:
            self._gather(s - j, j * self.bs)
        lo = j * self.bs
        hi = lo + self.bs
        if hi <= self._rows:
            self._step(*self._views[j], lr, decay)
        else:  # the epoch's last, partial batch
            hi = self._rows
            x = self._x[lo:hi, ...]
            self._step(x, x.T, self._yT[:, lo:hi], self._zT[:, lo:hi], lr, decay)
        self._loss_hi = hi

    def loss_total(self):
        """The summed loss of every step so far: a 0-d float64 array, not read (no sync)."""
        self._flush()
        return self.loss_sum

    def _flush(self) -> None:
        """Add the loss of the logits computed since the last flush to loss_sum."""
        lo, hi = self._loss_lo, self._loss_hi
        if hi > lo:
            zT, yT = self._zT[:, lo:hi], self._yT[:, lo:hi]
            if self.spec.output == "softmax":
                self.loss_sum += self.ops.xent_sum_t(zT, yT)
            else:
                loss, _ = OUTPUTS[self.spec.output][1](zT.T, yT.T)
                self.loss_sum += loss * (hi - lo)
        self._loss_lo = hi

    def _gather(self, first: int, start_row: int) -> None:
        """Rows of steps first, first+1, ... (as many as fit in the chunk) into the chunk's
        buffers, x as floats and y class-major; the loss counts from ``start_row`` on."""
        self._flush()
        n, ops = self.perm.shape[0], self.ops
        lo, hi = first * self.bs, min((first + self.chunk_steps) * self.bs, n)
        m = hi - lo
        idx = self.perm[lo:hi]
        if self._raw is not None:  # pixels kept as bytes on the device: to floats here
            ops.take(self.X, idx, self._raw[:m, ...])
            self._scale = ops.to_floats(self._raw[:m, ...], self._x[:m, ...])
        else:
            ops.take(self.X, idx, self._x[:m, ...])
        ops.take(self.Y, idx, self._y[:m, ...])
        ops.copy(self._y[:m, ...].T, self._yT[:, :m])
        self._chunk, self._rows = first, m
        self._loss_lo = self._loss_hi = start_row

    def _step(self, x, xT, yT, zT, lr: float, decay: float) -> None:
        """One SGD step on the batch x (n, in) (x^T its transposed view) and class-major
        one-hot y^T (classes, n); the logits are left in z^T (classes, n)."""
        ops, act = self.ops, self.spec.activation
        n = x.shape[0]
        buf = self._bufs(n)
        A, AT, d, dT, t, fm = buf["A"], buf["AT"], buf["d"], buf["dT"], buf["t"], buf["fm"]
        A[0], AT[0] = x, xT  # the batch's slots in the cached lists
        L = len(self.Wt)
        for layer in range(L - 1):
            alpha = self._scale if layer == 0 else 1.0
            if fm[layer + 1]:  # Z^T = W @ A^T + b^T
                ops.affine(self.W[layer], AT[layer], self.bT[layer], AT[layer + 1], alpha)
            else:  # Z = A @ W^T + b
                ops.affine(A[layer], self.Wt[layer], self.b[layer], A[layer + 1], alpha)
            _activate(ops, act, buf["Ac"][layer + 1])
        ops.affine(self.W[L - 1], AT[L - 1], self.bT[L - 1], zT, self._scale if L == 1 else 1.0)  # Z^T = W @ A^T + b^T
        # the output error is scaled by lr/n here, or (fold_lr) that factor goes into each update
        alpha = lr / n if ops.fold_lr else 1.0
        self._output_delta(zT, yT, dT[L], t[L], buf["row"], 1.0 if ops.fold_lr else lr / n)
        for layer in range(L - 1, -1, -1):
            if layer > 0:
                if fm[layer]:  # dA^T = W^T @ dZ^T
                    ops.matmul(self.Wt[layer], dT[layer + 1], dT[layer])
                else:  # dA = dZ @ W
                    ops.matmul(d[layer + 1], self.W[layer], d[layer])
            C, by_rows = self.upd[layer]
            a, b = (dT[layer + 1], A[layer]) if by_rows else (AT[layer], d[layer + 1])
            ops.sub_matmul(C, a, b, buf["dW"][layer], decay, alpha * (self._scale if layer == 0 else 1.0))
            ops.sub_colsum(self.bvec[layer], d[layer + 1], dT[layer + 1], buf["db"][layer], buf["ones"], alpha)
            if layer > 0:  # elementwise, on the contiguous buffers
                ops.times_derivative(act, buf["dc"][layer], buf["Ac"][layer], t[layer])

    def _output_delta(self, zT, yT, out, scratch, row, scale: float) -> None:
        """out = scale * dLoss_sum/dZ^T for the class-major logits z^T (left as they are)."""
        ops = self.ops
        if self.spec.output == "softmax":
            ops.softmax_t(zT, out, row)
            out -= yT
        else:  # sigmoid output, quadratic cost: (a - y) * a * (1 - a)
            ops.sigmoid(zT, scratch)  # a
            ops.rsub(0.0, yT, out)
            out += scratch  # a - y
            out *= scratch
            ops.rsub(1.0, scratch, scratch)
            out *= scratch
        if scale != 1.0:
            out *= scale


def _activate(ops, name: str, Z) -> None:
    """Hidden activation in place."""
    if name == "relu":
        ops.relu_(Z)
    elif name == "tanh":
        ops.tanh_(Z)
    else:
        ops.sigmoid(Z, Z)


class JaxStep:
    """Plain SGD on JAX arrays: the portable array-API step, gather included, compiled once
    with ``jax.jit`` (JAX arrays are immutable: ``params`` holds the current parameters).
    Same interface as FusedStep: begin_epoch, step, loss_total, params."""

    _compiled = {}  # Spec -> the jitted step: made once per process, so an epoch does not recompile it

    def __init__(self, params, spec: Spec):
        if spec not in JaxStep._compiled:
            JaxStep._compiled[spec] = _jax_sgd_step(spec)
        self._step = JaxStep._compiled[spec]
        self.params = list(params)
        self.loss_sum = array_api_compat.array_namespace(params[0][0]).zeros((), dtype=params[0][0].dtype)

    def begin_epoch(self, X, Y, perm, batch_size: int) -> None:
        self.X, self.Y, self.perm, self.bs = X, Y, perm, batch_size

    def step(self, s: int, lr: float, decay: float = 1.0) -> None:
        n, bs = self.perm.shape[0], self.bs
        start = s * bs
        self.params, self.loss_sum = self._step(self.params, self.X, self.Y, self.perm, start, min(bs, n - start),
                                                lr, decay, self.loss_sum)

    def loss_total(self):
        """The summed loss of every step so far: a 0-d array, not read (no sync)."""
        return self.loss_sum


def _jax_sgd_step(spec: Spec):
    """The jitted plain-SGD step of ``spec``: (params, X, Y, perm, start, size, lr, decay,
    loss_sum) -> (new params, loss_sum + the batch's summed loss); ``size`` is static."""
    import jax

    from . import data, model

    def sgd_step(params, X, Y, perm, start, size, lr, decay, loss_sum):
        xp = array_api_compat.array_namespace(X)
        idx = jax.lax.dynamic_slice(perm, (start,), (size,))  # the batch's rows, sliced inside
        xb = data.unit_floats(xp.take(X, idx, axis=0), Y.dtype)
        yb = xp.take(Y, idx, axis=0)
        loss, grads = model.loss_and_grads_2d(params, xb, yb, spec)
        new = [(decay * W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]
        return new, loss_sum + loss * xb.shape[0]

    return jax.jit(sgd_step, static_argnums=(5,), donate_argnums=(0,))


_TORCH_OPS = None


def fused_step(params, spec: Spec):
    """A FusedStep (NumPy, PyTorch) or JaxStep for these params, or None when the arrays
    have no fast path."""
    global _TORCH_OPS
    W = params[0][0]
    if array_api_compat.is_jax_array(W):
        return JaxStep(params, spec)
    if NumpyOps.usable(W):
        ops = NumpyOps
    elif array_api_compat.is_torch_array(W):
        if _TORCH_OPS is None:
            _TORCH_OPS = TorchOps()
        ops = _TORCH_OPS
        if not ops.usable(W):
            return None
    else:
        return None
    try:
        return FusedStep(params, spec, ops)
    except ValueError:
        return None
