"""cupy_backends.cuda.libs.cublas of the emulator: the raw bindings' signatures (pointers as
ints, column-major matrices), each call one cuBLAS launch on the current stream. Host
pointers (the default pointer mode) are read when the call is made, as cuBLAS reads them
(so a captured graph keeps the values given at capture); device pointers when it runs."""

from __future__ import annotations

import ctypes

import numpy
from cupy import _emulation as _em

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE = 0, 1
_modes: dict = {}


def getPointerMode(handle: int) -> int:
    return _modes.get(handle, CUBLAS_POINTER_MODE_HOST)


def setPointerMode(handle: int, mode: int) -> None:
    _modes[handle] = mode


def _operand(ptr, dtype, trans, rows, cols, ld, stride, batch):
    """op(X) of each batch as (batch, rows, cols): X column-major with leading dimension ld."""
    if trans not in (CUBLAS_OP_N, CUBLAS_OP_T):
        raise ValueError(f"CUBLAS_STATUS_INVALID_VALUE: transpose {trans}")
    stored = (rows, cols) if trans == CUBLAS_OP_N else (cols, rows)
    if ld < max(1, stored[0]):
        raise ValueError(f"CUBLAS_STATUS_INVALID_VALUE: leading dimension {ld} < {stored[0]}")
    x = _em.at_pointer(ptr, dtype, (batch, *stored), (stride, 1, ld))
    return x if trans == CUBLAS_OP_N else numpy.swapaxes(x, 1, 2)


def _gemm_strided_batched(ctype, dtype):
    def gemm(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch):
        _em.check_fail("cublas")
        device = _modes.get(handle, CUBLAS_POINTER_MODE_HOST) == CUBLAS_POINTER_MODE_DEVICE
        opA = _operand(A, dtype, transa, m, k, lda, strideA, batch)
        opB = _operand(B, dtype, transb, k, n, ldb, strideB, batch)
        out = _operand(C, dtype, CUBLAS_OP_N, m, n, ldc, strideC, batch)
        if device:
            al, be = (_em.at_pointer(p, dtype, (), ()) for p in (alpha, beta))
        else:
            al, be = (ctype.from_address(p).value for p in (alpha, beta))
        factor = 2 if _em.fail == "wrong" else 1

        def run():
            a_, b_ = (float(x) for x in (al, be))
            prod = numpy.matmul(opA, opB) * (a_ * factor)
            out[...] = prod if b_ == 0 else prod + b_ * out

        _em.launch(run, "cublas")

    return gemm


sgemmStridedBatched = _gemm_strided_batched(ctypes.c_float, numpy.float32)
dgemmStridedBatched = _gemm_strided_batched(ctypes.c_double, numpy.float64)
