"""NumPy: the base op set's primitives with ``out=``, so that the formulas run in place.

CuPy shares this implementation (same API, ``out=`` everywhere): ``lib`` is the module
whose functions are called. No op here allocates when it is given ``out``; the few that
need a scratch array take it from ``work``, made once per shape.
"""

from __future__ import annotations

import numpy

from xpnet.backends.base import BINARY, UNARY, Ops, is_number, is_one, library_function

# Tuning constants, measured on the CPUs of bench/RESULTS.md (the numbers are there).
CHUNK_BYTES = 512 << 10  # training rows (as stored) gathered at once: larger chunks were slower
FEATURE_MAJOR_MIN = 256  # hidden layers at least this wide are stored as (size, n): OpenBLAS was faster so


def wide(a, b, out) -> bool:
    """Whether a (K, m, k) @ b (k, n) into out (K, m, n) can run as one (K*m, k) @ (k, n)
    product: a population's members against the input batch they share, a and out C-contiguous
    (their reshapes are views)."""
    return out is not None and a.ndim == 3 and b.ndim == 2 and a.flags.c_contiguous and out.flags.c_contiguous


class NumpyOps(Ops):
    """In-place primitives on NumPy arrays (and, through ``lib``, CuPy arrays)."""

    name = "numpy"
    lib = numpy
    in_place = True
    lanes = True
    weight_layout = "in_out"  # OpenBLAS runs the layer GEMMs faster with W^T contiguous
    chunk_bytes = CHUNK_BYTES
    _sum_reduce = staticmethod(numpy.add.reduce)  # without np.sum's Python wrapper
    _max_reduce = staticmethod(numpy.maximum.reduce)

    # ---- memory ---------------------------------------------------------------------------

    def buffer(self, shape, like, dtype=None, transposed: bool = False):
        dt = self._dtype(dtype, like)
        if transposed:  # the last two axes swapped in storage
            return self.lib.empty((*shape[:-2], shape[-1], shape[-2]), dtype=dt).mT
        return self.lib.empty(shape, dtype=dt)

    def is_transposed(self, a) -> bool:
        return a.ndim >= 2 and a.strides[-1] != a.itemsize and a.strides[-2] == a.itemsize

    def feature_major(self, size: int, n: int) -> bool:
        return size >= FEATURE_MAJOR_MIN

    # ---- elementwise ----------------------------------------------------------------------

    add, subtract, multiply, divide, maximum, minimum = (library_function(name, 2) for name in BINARY)
    exp, log, sqrt, tanh, cos, sin, abs, negative, floor = (library_function(name) for name in UNARY)

    def clip(self, x, lo, hi, out=None):
        out = self.lib.maximum(x, lo, out=out)
        return self.lib.minimum(out, hi, out=out)

    def greater(self, x, y, out=None):
        if out is None:
            return (x > y).astype(x.dtype)
        return self.lib.greater(x, y, out=out)  # written as 0.0 / 1.0 into the float out

    def less(self, x, y, dtype, out=None):
        if out is None:
            return (x < y).astype(self._dtype(dtype, x))
        return self.lib.less(x, y, out=out)

    def astype(self, x, dtype, out=None):
        if out is None:
            return x.astype(self._dtype(dtype, x))
        self.lib.copyto(out, x, casting="unsafe")
        return out

    def copy(self, x, out=None):
        if out is None:
            return x.copy()
        self.lib.copyto(out, x)
        return out

    def axpy(self, alpha, x, y):
        """y += alpha * x, in place (a scratch array when alpha is not +-1)."""
        if is_one(alpha):
            return self.lib.add(y, x, out=y)
        if is_number(alpha, -1):
            return self.lib.subtract(y, x, out=y)
        t = self.lib.multiply(x, alpha, out=self.work(x.shape, x, "axpy"))
        return self.lib.add(y, t, out=y)

    def axpby(self, alpha, x, beta, y):
        """y = alpha * x + beta * y, in place."""
        if not is_one(beta):
            self.lib.multiply(y, beta, out=y)
        return self.axpy(alpha, x, y)

    # ---- integers, for rand ---------------------------------------------------------------

    def bitwise_xor(self, x, y, out=None):
        return self.lib.bitwise_xor(x, y, out=out)

    def right_shift(self, x, bits: int, out=None):
        return self.lib.right_shift(x, bits, out=out)

    def mul32(self, x, c: int, out=None):
        out = self.lib.multiply(x, c, out=out)  # uint32 wraps modulo 2**32
        return out if x.dtype == self.lib.uint32 else self.lib.bitwise_and(out, 0xFFFFFFFF, out=out)

    # ---- gathers, reductions, products ----------------------------------------------------

    take_mode = {"mode": "clip"}  # NumPy's default mode ("raise") copies through a temporary; indices are in range

    def take(self, x, idx, out=None):
        return self.lib.take(x, idx, axis=0, out=out, **self.take_mode)

    def sum(self, x, axis: int, out=None, alpha=1.0, beta=None):
        if beta is None:
            out = self._sum_reduce(x, axis=axis, keepdims=True, out=out)
            return out if is_one(alpha) else self.lib.multiply(out, alpha, out=out)
        t = self._sum_reduce(x, axis=axis, keepdims=True, out=self.work(out.shape, out, "sum"))
        return self._accumulate(out, t, alpha, beta)

    def max(self, x, axis: int, out=None):
        return self._max_reduce(x, axis=axis, keepdims=True, out=out)

    def sum_squares(self, x, axis: int, out=None):
        t = self.lib.multiply(x, x, out=self.work(x.shape, x, "sq"))
        return self._sum_reduce(t, axis=axis, keepdims=True, out=out)

    def matmul(self, a, b, out=None, alpha=1.0, beta=None):
        if beta is not None:
            t = self._gemm(a, b, self.work(out.shape, out, "gemm"))
            return self._accumulate(out, t, alpha, beta)
        out = self._gemm(a, b, out)
        return out if is_one(alpha) else self.lib.multiply(out, alpha, out=out)

    def affine(self, x, w, b, out=None, alpha=1.0):
        out = self._gemm(x, w, out)
        if not is_one(alpha):
            self.lib.multiply(out, alpha, out=out)
        return self.lib.add(out, b, out=out)

    def _gemm(self, a, b, out):
        """a @ b into out; out stored transposed is filled as out^T = b^T @ a^T, so the BLAS
        writes it directly (NumPy's matmul would otherwise not use the BLAS for it). A stack
        (K, m, k) times a shared (k, n) is one wide (K*m, k) @ (k, n) GEMM (``wide``)."""
        if out is not None and self.is_transposed(out):
            self._gemm(b.mT, a.mT, out.mT)
            return out
        if wide(a, b, out):
            self._gemm(a.reshape(-1, a.shape[-1]), b, out.reshape(-1, out.shape[-1]))
            return out
        return self.lib.matmul(a, b, out=out)

    def _accumulate(self, out, t, alpha, beta):
        """out = beta * out + alpha * t (t is scratch, changed)."""
        if not is_one(beta):
            self.lib.multiply(out, beta, out=out)
        if is_one(alpha):
            return self.lib.add(out, t, out=out)
        if is_number(alpha, -1):
            return self.lib.subtract(out, t, out=out)
        self.lib.multiply(t, alpha, out=t)
        return self.lib.add(out, t, out=out)

    def pad(self, x, rows: int, cols: int, out=None):
        if out is None:
            return super().pad(x, rows, cols)
        self.lib.copyto(out[:, 1 : rows + 1, 1 : cols + 1], x.reshape(x.shape[0], rows, cols))
        return out

    def unit_floats(self, pixels, dtype, out=None):
        """out = pixels / 255 in one pass (factor 1 left); floats pass through."""
        if pixels.dtype.kind == "f":
            return pixels, 1.0
        dt = numpy.dtype(self._dtype(dtype, pixels))
        return self.lib.multiply(pixels, dt.type(1.0 / 255.0), out=out, dtype=dt), 1.0
