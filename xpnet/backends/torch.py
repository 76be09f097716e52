"""PyTorch: the primitives with ``out=``, GEMMs with alpha and beta (``addmm``), and ATen's
own kernels for the sigmoid, the softmax and the activations' backward passes.

Works on CPU and CUDA tensors alike (the calls are the same).
"""

from __future__ import annotations

import torch

from xpnet.backends.base import M32, UNARY, Ops, is_one, library_function

# Tuning constant, measured on the CPUs of bench/RESULTS.md (the numbers are there).
CHUNK_BYTES = 4 << 20  # training rows (as stored) gathered at once: 2-4 MiB was fastest with MKL

_ATEN = torch.ops.aten
_BACKWARD = {  # d * f'(z) from the output a of relu, tanh and sigmoid, in one pass each
    "relu": (_ATEN.threshold_backward, lambda d, a: (d, a, 0)),
    "tanh": (_ATEN.tanh_backward, lambda d, a: (d, a)),
    "sigmoid": (_ATEN.sigmoid_backward, lambda d, a: (d, a)),
}


def _number(x) -> bool:
    return isinstance(x, (int, float))


def _lt_refuses(*mats) -> bool:
    """Whether an ``addmm`` (in place with beta, or with a bias row) on these CUDA operands
    would fail: PyTorch can send it to cuBLASLt, whose heuristic answers
    CUBLAS_STATUS_INVALID_VALUE for an operand of one row or column (and PyTorch raises rather
    than fall back). On an H100 (torch 2.11, CUDA 13) every plain-SGD step failed so, and only
    plain SGD's (its bias update is ones (1, n) @ d with beta 1; bench/RESULTS-gpu.md); by
    PyTorch's source a layer's bias + product of a batch of one row can get there too. Such
    products are written another way there."""
    return mats[0].is_cuda and any(1 in m.shape for m in mats)


class TorchOps(Ops):
    """In-place primitives on PyTorch tensors."""

    name = "torch"
    lib = torch
    in_place = True
    hash_dtype = "int64"  # PyTorch has no shifts on uint32 tensors
    weight_layout = "out_in"  # MKL runs the layer GEMMs faster with W contiguous
    chunk_bytes = CHUNK_BYTES
    scale_in_gemm = True  # addmm's alpha is free: the output error stays unscaled

    # ---- memory ---------------------------------------------------------------------------

    def buffer(self, shape, like, dtype=None, transposed: bool = False):
        dt = self._dtype(dtype, like)
        if transposed:  # the last two axes swapped in storage
            return torch.empty((*shape[:-2], shape[-1], shape[-2]), dtype=dt, device=like.device).mT
        return torch.empty(tuple(shape), dtype=dt, device=like.device)

    def zeros(self, shape, like, dtype=None):
        return torch.zeros(tuple(shape), dtype=self._dtype(dtype, like), device=like.device)

    def is_transposed(self, a) -> bool:
        return a.dim() >= 2 and a.stride(-1) != 1 and a.stride(-2) == 1

    def _ones(self, shape, like):
        """A cached array of ones (for sums as matrix products)."""
        cache = self.__dict__.setdefault("_ones_cache", {})
        key = (shape, like.dtype, like.device)
        ones = cache.get(key)
        if ones is None:
            ones = cache[key] = torch.ones(shape, dtype=like.dtype, device=like.device)
        return ones

    # ---- elementwise ----------------------------------------------------------------------

    def add(self, x, y, out=None):
        if _number(x):
            x, y = y, x
        return torch.add(x, y, out=out)

    def subtract(self, x, y, out=None):
        if _number(x):  # c - y
            return torch.neg(y, out=out).add_(x)
        return torch.sub(x, y, out=out)

    def multiply(self, x, y, out=None):
        if _number(x):
            x, y = y, x
        return torch.mul(x, y, out=out)

    def divide(self, x, y, out=None):
        if _number(x):  # c / y
            return torch.reciprocal(y, out=out).mul_(x)
        return torch.div(x, y, out=out)

    def maximum(self, x, y, out=None):
        return torch.clamp_min(x, y, out=out) if _number(y) else torch.maximum(x, y, out=out)

    def minimum(self, x, y, out=None):
        return torch.clamp_max(x, y, out=out) if _number(y) else torch.minimum(x, y, out=out)

    exp, log, sqrt, tanh, cos, sin, abs, negative, floor = (library_function(name) for name in UNARY)

    def clip(self, x, lo, hi, out=None):
        return torch.clamp(x, lo, hi, out=out)

    def greater(self, x, y, out=None):
        if out is None:
            return torch.gt(x, y).to(x.dtype)
        return self._compare(torch.gt, x, y, out)

    def less(self, x, y, dtype, out=None):
        if out is None:
            return torch.lt(x, y).to(self._dtype(dtype, x))
        return self._compare(torch.lt, x, y, out)

    def _compare(self, op, x, y, out):
        """op(x, y) written as 0.0 / 1.0 into the float out; on arrays stored transposed, on
        their transposes (ATen's comparison into another dtype is 6x slower on the strided view)."""
        if _number(y) and self.is_transposed(x) and self.is_transposed(out):
            op(x.T, y, out=out.T)
            return out
        return op(x, y, out=out)

    def astype(self, x, dtype, out=None):
        if out is None:
            return x.to(self._dtype(dtype, x))
        return out.copy_(x)

    def copy(self, x, out=None):
        return x.clone() if out is None else out.copy_(x)

    def axpy(self, alpha, x, y):
        if not _number(alpha):  # a population's per-member (K, 1, 1) coefficient
            return y.addcmul_(x, alpha)
        return y.add_(x, alpha=alpha)

    def axpby(self, alpha, x, beta, y):
        if not is_one(beta):
            y.mul_(beta)
        return self.axpy(alpha, x, y)

    # ---- integers, for rand ---------------------------------------------------------------

    def bitwise_xor(self, x, y, out=None):
        return torch.bitwise_xor(x, y, out=out)

    def right_shift(self, x, bits: int, out=None):
        return torch.bitwise_right_shift(x, bits, out=out)

    def mul32(self, x, c: int, out=None):
        return torch.mul(x, c, out=out).bitwise_and_(M32)

    # ---- gathers, reductions, products ----------------------------------------------------

    def take(self, x, idx, out=None):
        return torch.index_select(x, 0, idx, out=out)

    def sum(self, x, axis: int, out=None, alpha=1.0, beta=None):
        if beta is None:
            out = torch.sum(x, dim=axis, keepdim=True, out=out)
            return out if is_one(alpha) else out.mul_(alpha)
        if x.dim() == 2 and _number(alpha) and _number(beta):  # out = beta * out + alpha * (ones @ x or x @ ones)
            down = axis in (0, -2)
            ones = self._ones((1, x.shape[0]) if down else (x.shape[1], 1), x)
            if _lt_refuses(ones, x):  # a GEMV into out's elements instead
                rows = x.mT if down else x
                out.view(-1).addmv_(rows, self._ones((rows.shape[1],), x), beta=beta, alpha=alpha)
                return out
            return out.addmm_(ones, x, beta=beta, alpha=alpha) if down else out.addmm_(x, ones, beta=beta, alpha=alpha)
        t = torch.sum(x, dim=axis, keepdim=True, out=self.work(out.shape, out, "sum"))
        return self.axpby(alpha, t, beta, out)

    def max(self, x, axis: int, out=None):
        return torch.amax(x, dim=axis, keepdim=True, out=out)

    def sum_squares(self, x, axis: int, out=None):
        t = torch.mul(x, x, out=self.work(x.shape, x, "sq"))
        return torch.sum(t, dim=axis, keepdim=True, out=out)

    def matmul(self, a, b, out=None, alpha=1.0, beta=None):
        if a.dim() != 2 or b.dim() != 2 or not (_number(alpha) and (beta is None or _number(beta))):
            return self._batched(a, b, out, alpha, beta)
        if beta is not None:
            if _lt_refuses(a, b):  # the product into scratch (beta 0: plain cuBLAS), then added
                return self.axpby(alpha, torch.mm(a, b, out=self.work(out.shape, out, "gemm")), beta, out)
            return out.addmm_(a, b, beta=beta, alpha=alpha)
        if out is None:
            r = torch.mm(a, b)
            return r if is_one(alpha) else r.mul_(alpha)
        if is_one(alpha):
            return torch.mm(a, b, out=out)
        return torch.addmm(out, a, b, beta=0, alpha=alpha, out=out)

    def affine(self, x, w, b, out=None, alpha=1.0):
        if w.dim() != 2 or _lt_refuses(x, w):  # one row (a batch of one): the product, then the bias
            return self._batched(x, w, out, alpha).add_(b)
        return torch.addmm(b, x, w, alpha=alpha, out=out)

    def _batched(self, a, b, out, alpha=1.0, beta=None):
        """alpha * a @ b (plus beta * out) for a population's stacks (K, m, k) (a shared 2-D
        operand broadcast), alpha and beta numbers or per-member (K, 1, 1) tensors; a stack
        times a shared operand is one wide GEMM (``numpy.wide``)."""
        t = self._product(a, b, out if beta is None else self.work(out.shape, out, "gemm"))
        if not is_one(alpha):
            t.mul_(alpha)
        if beta is None:
            return t
        if not is_one(beta):
            out.mul_(beta)
        return out.add_(t)

    def _product(self, a, b, out):
        """a @ b into out (new where None), out stored transposed filled through its transpose."""
        if out is None:
            return torch.matmul(a, b)
        if self.is_transposed(out):
            self._product(b.mT, a.mT, out.mT)
        elif a.dim() == 3 and b.dim() == 2 and a.is_contiguous() and out.is_contiguous():
            torch.mm(a.reshape(-1, a.shape[-1]), b, out=out.view(-1, out.shape[-1]))
        else:
            torch.matmul(a, b, out=out)
        return out

    def pad(self, x, rows: int, cols: int, out=None):
        if out is None:
            return super().pad(x, rows, cols)
        out[:, 1 : rows + 1, 1 : cols + 1].copy_(x.view(x.shape[0], rows, cols))
        return out

    # ---- the network's formulas: ATen kernels -------------------------------------------

    def sigmoid(self, z, out=None):
        return torch.sigmoid(z, out=out)

    def activate(self, name: str, z, out=None):
        if name == "relu":
            return torch.clamp_min(z, 0.0, out=out)
        return super().activate(name, z, out=out)

    def activation_grad(self, name: str, d, a, out=None):
        op, args = _BACKWARD[name]
        if out is None:
            return op(*args(d, a))
        return op.grad_input(*args(d, a), grad_input=out)

    def softmax(self, z, axis: int, out=None):
        axis %= z.dim()
        if axis >= z.dim() - 2 and self.is_transposed(z) and (out is None or self.is_transposed(out)):
            # along the storage's own axis: ATen's kernel is twice as fast so
            z, axis, out = z.mT, 2 * z.dim() - 3 - axis, None if out is None else out.mT
            return (torch.softmax(z, axis, out=out) if out is not None else torch.softmax(z, axis)).mT
        return torch.softmax(z, axis, out=out) if out is not None else torch.softmax(z, axis)

    def unit_floats(self, pixels, dtype, out=None):
        """Pixels as floats in one pass; the 1/255 is left to the first layer's GEMMs."""
        if pixels.is_floating_point():
            return pixels, 1.0
        if out is None:
            return pixels.to(self._dtype(dtype, pixels)), 1.0 / 255.0
        return out.copy_(pixels), 1.0 / 255.0
