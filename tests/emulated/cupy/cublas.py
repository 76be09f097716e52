"""cupy.cublas.gemm of the emulator, with CuPy 14.2's rules (one cuBLAS launch)."""

from __future__ import annotations

import numpy

from cupy import _array
from cupy import _emulation as _em
from cupy._array import ndarray


def _scalar(x, dtype):
    """CuPy's _get_scalar_ptr: a cupy array (converted when of another dtype) or a host value."""
    if isinstance(x, ndarray):
        return x if x.dtype == dtype else _array.array(x, dtype=dtype)
    return numpy.array(x, dtype=dtype)


def _op(x, trans):
    return {"N": x, "T": x.T, "H": x.T.conj()}[trans]


def _trans(t):
    t = {0: "N", 1: "T", 2: "H"}.get(t, t)
    if not isinstance(t, str) or t.upper() not in ("N", "T", "H"):
        raise TypeError(f"invalid transpose option {t!r}")
    return t.upper()


def gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out; a, b and out C- or F-ordered (else copied)."""
    assert a.ndim == b.ndim == 2
    assert a.dtype == b.dtype
    dtype = a.dtype
    if dtype.char not in "fdFD":
        raise TypeError("invalid dtype")
    transa, transb = _trans(transa), _trans(transb)
    m, k = a.shape if transa == "N" else a.shape[::-1]
    n = b.shape[1] if transb == "N" else b.shape[0]
    assert (b.shape[0] if transb == "N" else b.shape[1]) == k
    _em.check_fail("cublas")
    _em.cupy_binding_stream(_em.cublas_handle())  # its sgemm binding's: refused while capturing
    if out is None:
        out = _array.empty((m, n), dtype=dtype, order="F")
        beta = 0.0
    else:
        assert out.ndim == 2 and out.shape == (m, n) and out.dtype == dtype
    _array._check_devices([a, b, out] + [x for x in (alpha, beta) if isinstance(x, ndarray)])
    alpha, beta = _scalar(alpha, dtype), _scalar(beta, dtype)
    if isinstance(alpha, ndarray) or isinstance(beta, ndarray):  # device pointer mode
        alpha = alpha if isinstance(alpha, ndarray) else _array.array(alpha)
        beta = beta if isinstance(beta, ndarray) else _array.array(beta)

    def ordered(x):
        return x._a.flags.c_contiguous or x._a.flags.f_contiguous

    c = out
    if not (ordered(a) and ordered(b) and ordered(out)):  # CuPy's fallback: F-ordered copies
        a, b = (x if ordered(x) else x.copy(order="F") for x in (a, b))
        c = out if out._a.flags.f_contiguous else out.copy(order="F")
    A, B, C = _op(a._a, transa), _op(b._a, transb), c._a
    factor = 2 if _em.fail == "wrong" else 1

    def value(s):  # a device scalar is read when the kernel runs
        return s._a.reshape(-1)[0] if isinstance(s, ndarray) else s[()]

    def run():
        al, be = value(alpha), value(beta)
        prod = numpy.matmul(A, B) * (al * factor)
        C[...] = prod if be == 0 else prod + be * C

    _em.launch(run, "cublas")
    if c is not out:
        _array.copyto(out, c)
    return out
