"""Backend-specific fast paths for the training step (the only other module, besides
backend.py, that knows array libraries by name).

The portable array-API step (``model.loss_and_grads_2d`` + ``optim.apply``) is the
reference; a fast path computes the same numbers with fewer passes over memory and
no allocation per step, and is tested against it (tests/test_kernels.py).

``fused_step(params, spec)`` returns a ``FusedStep`` for plain SGD on NumPy or PyTorch
arrays (CPU, and CUDA tensors through the same PyTorch calls), or None: then the
portable step is used. Every operation writes into buffers made once; pixels are
gathered as bytes a chunk of batches at a time; the learning rate and 1/batch are
folded into the output error, so that each weight update is one GEMM with beta on
PyTorch (``addmm_``) and a GEMM plus one subtraction on NumPy; the loss comes out of
the softmax for a few extra small operations. ``NumpyOps`` and ``TorchOps`` hold
the library-specific primitives.
"""

from __future__ import annotations

import array_api_compat
import numpy as np

from .model import Spec, _wb2d

CHUNK_BYTES = 512 << 10  # rows gathered at once by FusedStep.step


class NumpyOps:
    """The in-place primitives of FusedStep, for NumPy arrays."""

    take = staticmethod(lambda X, idx, out: np.take(X, idx, axis=0, out=out))
    is_bytes = staticmethod(lambda X: X.dtype == np.uint8)
    matmul = staticmethod(lambda a, b, out: np.matmul(a, b, out=out))
    vdot = staticmethod(lambda a, b: np.vdot(a, b))
    relu_ = staticmethod(lambda Z: np.maximum(Z, 0, out=Z))
    tanh_ = staticmethod(lambda Z: np.tanh(Z, out=Z))
    rsub = staticmethod(lambda c, a, out: np.subtract(c, a, out=out))  # out = c - a
    zeros0 = staticmethod(lambda like: np.zeros((), dtype=np.float64))

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
    def affine(A, Wt, b, out, alpha: float = 1.0):
        """out = alpha * A @ Wt + b."""
        np.matmul(A, Wt, out=out)
        if alpha != 1.0:
            out *= alpha
        out += b

    @staticmethod
    def sigmoid_(Z):
        """Z = sigmoid(Z) = (1 + tanh(Z/2)) / 2, in place (no overflow)."""
        Z *= 0.5
        np.tanh(Z, out=Z)
        Z *= 0.5
        Z += 0.5

    fold_lr = False  # scale the (small) output error by lr/batch; updates use alpha = 1

    @staticmethod
    def softmax_xent(Z, y, out, row, acc) -> None:
        """out = softmax(Z) - y; acc += the summed cross-entropy. Z is overwritten."""
        np.max(Z, axis=1, keepdims=True, out=row)
        Z -= row
        acc -= np.vdot(Z, y)  # minus the (shifted) label logits
        np.exp(Z, out=out)
        np.sum(out, axis=1, keepdims=True, out=row)
        out /= row
        out -= y
        acc += np.sum(np.log(row, out=row))  # plus the log-sum-exps

    @staticmethod
    def sub_colsum(b, delta, scratch, ones, alpha: float = 1.0) -> None:
        """b -= alpha * (column sums of delta)."""
        np.sum(delta, axis=0, keepdims=True, out=scratch)
        if alpha != 1.0:
            scratch *= alpha
        b -= scratch

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
    def usable(W) -> bool:
        return array_api_compat.is_numpy_array(W) and W.flags.writeable

    contiguous = staticmethod(lambda W: W.flags.c_contiguous)


class TorchOps:
    """The same primitives for PyTorch tensors; the weight update is one addmm_ (GEMM with beta)."""

    def __init__(self):
        import torch

        self.torch = torch

    def take(self, X, idx, out):
        return self.torch.index_select(X, 0, idx, out=out)

    def to_floats(self, pixels, out) -> float:
        """out = pixels as floats (one pass); the 1/255 is folded into the first layer's GEMMs."""
        out.copy_(pixels)
        return 1 / 255

    def is_bytes(self, X):
        return X.dtype == self.torch.uint8

    def matmul(self, a, b, out):
        return self.torch.matmul(a, b, out=out)

    def vdot(self, a, b):
        return self.torch.dot(a.reshape(-1), b.reshape(-1))

    def tanh_(self, Z):
        return Z.tanh_()

    def relu_(self, Z):
        return Z.clamp_(min=0)

    def rsub(self, c, a, out):
        return self.torch.neg(a, out=out).add_(c)

    def zeros0(self, like):
        return self.torch.zeros((), dtype=self.torch.float64, device=like.device)

    def empty(self, shape, like, dtype=None):
        return self.torch.empty(shape, dtype=dtype or like.dtype, device=like.device)

    def ones(self, shape, like):
        return self.torch.ones(shape, dtype=like.dtype, device=like.device)

    def affine(self, A, Wt, b, out, alpha: float = 1.0):
        self.torch.addmm(b, A, Wt, alpha=alpha, out=out)

    def sigmoid_(self, Z):
        Z.sigmoid_()

    fold_lr = True  # the output error stays unscaled; lr/batch goes into the updates' alpha

    def softmax_xent(self, Z, y, out, row, acc) -> None:
        torch = self.torch
        torch.log_softmax(Z, dim=1, out=out)
        acc.sub_(self.vdot(out, y))
        out.exp_()
        out -= y

    def sub_colsum(self, b, delta, scratch, ones, alpha: float = 1.0) -> None:
        """b -= alpha * (column sums of delta), as one matrix-vector product with beta."""
        b.view(-1).addmv_(delta.T, ones, alpha=-alpha)

    def times_derivative(self, name: str, d, a, scratch) -> None:
        """One pass each, with ATen's own backward kernels of relu, tanh and sigmoid."""
        aten = self.torch.ops.aten
        if name == "relu":
            aten.threshold_backward.grad_input(d, a, 0, grad_input=d)
        elif name == "tanh":
            aten.tanh_backward.grad_input(d, a, grad_input=d)
        else:
            aten.sigmoid_backward.grad_input(d, a, grad_input=d)

    def sub_matmul(self, C, a, b, scratch, decay: float, alpha: float = 1.0) -> None:
        if C.is_contiguous():
            C.addmm_(a, b, beta=decay, alpha=-alpha)
        else:  # C^T is the contiguous storage: (C - a b)^T = C^T - b^T a^T
            C.T.addmm_(b.T, a.T, beta=decay, alpha=-alpha)

    def usable(self, W) -> bool:
        return array_api_compat.is_torch_array(W) and not W.requires_grad

    def contiguous(self, W) -> bool:
        return W.is_contiguous()


class FusedStep:
    """One SGD step of ``spec``, in place: params are updated where they lie.

    Each layer's W^T (in, out) is a view of the storage behind the public (1, out, in) W,
    contiguous either as W^T or as W (see model.params_to_device).
    ``ops`` holds the library's in-place primitives (NumpyOps, TorchOps).
    """

    def __init__(self, params, spec: Spec, ops):
        self.spec, self.ops = spec, ops
        self.Wt = []  # (in, out) views of each public W
        self.b = []  # (1, out) views of each public b
        for W, b in params:
            Wt, b2 = _wb2d(W, b)
            if not (ops.contiguous(Wt) or ops.contiguous(Wt.T)):
                raise ValueError("FusedStep needs W or W^T contiguous")
            self.Wt.append(Wt)
            self.b.append(b2)
        self.loss_sum = ops.zeros0(self.Wt[0])
        self.params = params  # updated in place
        self._buffers = {}

    def _bufs(self, n: int):
        """Per-batch-size buffers: activations A[1..L], deltas, scratch."""
        if n not in self._buffers:
            like, new = self.Wt[0], self.ops.empty
            sizes = self.spec.sizes
            self._buffers[n] = {
                "A": [new((n, s), like) for s in sizes],  # A[0]: the batch as floats, if given as bytes
                "d": [new((n, s), like) for s in sizes],  # d[l]: dLoss/dZ_l (times lr/n unless fold_lr)
                "t": [new((n, s), like) for s in sizes],  # scratch for activation derivatives
                "row": new((n, 1), like),
                "ones": self.ops.ones((n,), like),
                "db": [new(tuple(b.shape), like) for b in self.b],
                "dW": [new(tuple(w.shape), like) for w in self.Wt],  # NumPy only: the update's product
            }
        return self._buffers[n]

    def __call__(self, X, Y, idx, lr: float, decay: float = 1.0) -> None:
        """Gather rows ``idx`` of X (N, in) and one-hot Y (N, out), then one SGD step."""
        n = idx.shape[0]
        xb, yb = self._gather(X, Y, idx, n)
        self._step(xb, yb, lr, decay)

    def begin_epoch(self, X, Y, perm, batch_size: int) -> None:
        """Set up ``step(s, ...)``: batch s is rows perm[s*batch_size : (s+1)*batch_size]."""
        self.X, self.Y, self.perm, self.bs = X, Y, perm, batch_size
        row_bytes = X.shape[1] * (1 if self.ops.is_bytes(X) else 4) + Y.shape[1] * 4
        self.chunk_steps = max(1, CHUNK_BYTES // (batch_size * row_bytes))
        self._chunk = None

    def step(self, s: int, lr: float, decay: float = 1.0) -> None:
        """SGD step on batch ``s`` of the epoch set up by begin_epoch.

        Batches are gathered a chunk of several steps at a time (one large gather instead of
        two small ones per step); each batch is then a contiguous slice of the chunk.
        """
        n, bs, k = self.perm.shape[0], self.bs, self.chunk_steps
        first = (s // k) * k
        if self._chunk != first:
            lo, hi = first * bs, min((first + k) * bs, n)
            self._chunk_x, self._chunk_y = self._gather(self.X, self.Y, self.perm[lo:hi], k * bs)
            self._chunk = first
        lo = (s - first) * bs
        hi = min(lo + bs, n - first * bs)
        self._step(self._chunk_x[lo:hi, ...], self._chunk_y[lo:hi, ...], lr, decay)

    def _gather(self, X, Y, idx, capacity: int):
        """Rows idx of X and Y into reusable buffers of ``capacity`` rows: (views of) both."""
        key = ("gather", capacity)
        if key not in self._buffers:
            self._buffers[key] = (self.ops.empty((capacity, X.shape[1]), self.Wt[0], X.dtype),
                                  self.ops.empty((capacity, Y.shape[1]), self.Wt[0]))
        bx, by = self._buffers[key]
        m = idx.shape[0]
        xb, yb = bx[:m, ...], by[:m, ...]
        self.ops.take(X, idx, xb)
        self.ops.take(Y, idx, yb)
        return xb, yb

    def _step(self, xb, yb, lr: float, decay: float) -> None:
        """One SGD step on the batch xb (n, in), one-hot yb (n, out)."""
        ops, act = self.ops, self.spec.activation
        n = xb.shape[0]
        buf = self._bufs(n)
        scale = 1.0  # what the first layer's GEMMs still multiply their input by
        if ops.is_bytes(xb):  # pixels kept as bytes on the device: to [0, 1] floats here
            scale = ops.to_floats(xb, buf["A"][0])
            xb = buf["A"][0]
        A = [xb] + buf["A"][1:]
        d, t = buf["d"], buf["t"]
        L = len(self.Wt)
        for layer in range(L):
            Z = A[layer + 1]
            ops.affine(A[layer], self.Wt[layer], self.b[layer], Z, scale if layer == 0 else 1.0)
            if layer < L - 1:
                _activate(ops, act, Z)
        # the output error is scaled by lr/n here, or (fold_lr) that factor goes into each update
        alpha = lr / n if ops.fold_lr else 1.0
        self._output_delta(A[L], yb, d[L], buf["row"], 1.0 if ops.fold_lr else lr / n)
        delta = d[L]
        for layer in range(L - 1, -1, -1):
            if layer > 0:
                ops.matmul(delta, self.Wt[layer].T, d[layer])
            ops.sub_matmul(self.Wt[layer], A[layer].T, delta, buf["dW"][layer], decay, alpha * (scale if layer == 0 else 1.0))
            ops.sub_colsum(self.b[layer], delta, buf["db"][layer], buf["ones"], alpha)
            if layer > 0:
                ops.times_derivative(act, d[layer], A[layer], t[layer])
                delta = d[layer]

    def _output_delta(self, Z, y, out, row, scale: float) -> None:
        """Loss of the batch into loss_sum; out = scale * dLoss_sum/dZ. Z is overwritten."""
        ops = self.ops
        if self.spec.output == "softmax":
            ops.softmax_xent(Z, y, out, row, self.loss_sum)
        else:  # sigmoid output, quadratic cost
            ops.sigmoid_(Z)
            ops.rsub(0.0, y, out)
            out += Z  # a - y
            self.loss_sum += 0.5 * ops.vdot(out, out)
            out *= Z
            ops.rsub(1.0, Z, Z)
            out *= Z
        if scale != 1.0:
            out *= scale


def _activate(ops, name: str, Z) -> None:
    """Hidden activation in place."""
    if name == "relu":
        ops.relu_(Z)
    elif name == "tanh":
        ops.tanh_(Z)
    else:
        ops.sigmoid_(Z)


class JaxStep:
    """Plain SGD on JAX arrays: the portable array-API step, gather included, compiled once
    with ``jax.jit`` (JAX arrays are immutable: ``params`` holds the current parameters).
    Same interface as FusedStep: begin_epoch, step, loss_sum, params."""

    def __init__(self, params, spec: Spec):
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

        self._step = jax.jit(sgd_step, static_argnums=(5,), donate_argnums=(0,))
        self.params = list(params)
        self.loss_sum = array_api_compat.array_namespace(params[0][0]).zeros((), dtype=params[0][0].dtype)

    def begin_epoch(self, X, Y, perm, batch_size: int) -> None:
        self.X, self.Y, self.perm, self.bs = X, Y, perm, batch_size

    def step(self, s: int, lr: float, decay: float = 1.0) -> None:
        n, bs = self.perm.shape[0], self.bs
        start = s * bs
        self.params, self.loss_sum = self._step(self.params, self.X, self.Y, self.perm, start, min(bs, n - start),
                                                lr, decay, self.loss_sum)


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
