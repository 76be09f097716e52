"""cupy_backends.cuda.libs.cublas of the emulator: the raw bindings' signatures (pointers as
ints, column-major matrices), each GEMM one cuBLAS launch on its handle's stream. Host
pointers (the pointer mode HOST) are read when the call is made, as cuBLAS reads them (so a
captured graph keeps the values given at capture); device pointers when it runs.

As in CuPy 14.2 (``cupy_backends/cuda/libs/cublas.pyx``), every binding that runs cuBLAS work
first sets the handle's stream to the current one (``_setStream``), and that is refused while
the current stream captures (``NotImplementedError``). ``SharedObject`` stands for the
libcublas.so CuPy loaded: its C functions, called directly (as ctypes would), set nothing
themselves and are not refused: cuBLAS captures GEMMs on the handle's stream."""

from __future__ import annotations

import ctypes

import numpy
from cupy import _emulation as _em

CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE = 0, 1
CUBLAS_DEFAULT_MATH, CUBLAS_TENSOR_OP_MATH = 0, 1
VERSION = 130100  # cublasGetVersion's: 13.1.0


def getVersion(handle: int) -> int:
    return VERSION


def getPointerMode(handle: int) -> int:
    return _em.handle_state(handle)["pointer_mode"]


def setPointerMode(handle: int, mode: int) -> None:
    if mode not in (CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE):
        raise ValueError(f"CUBLAS_STATUS_INVALID_VALUE: pointer mode {mode}")
    _em.handle_state(handle)["pointer_mode"] = mode


def getMathMode(handle: int) -> int:
    return _em.handle_state(handle)["math_mode"]


def setMathMode(handle: int, mode: int) -> None:
    _em.handle_state(handle)["math_mode"] = mode


def setStream(handle: int, stream: int) -> None:
    """CuPy's binding: refused for a capturing stream."""
    s = _em._streams.get(stream)
    if s is not None and s._capturing:
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")
    _em.set_handle_stream(handle, stream)


def getStream(handle: int) -> int:
    return _em.handle_state(handle)["stream"]


def _operand(ptr, dtype, trans, rows, cols, ld, stride, batch):
    """op(X) of each batch as (batch, rows, cols): X column-major with leading dimension ld."""
    if trans not in (CUBLAS_OP_N, CUBLAS_OP_T):
        raise ValueError(f"CUBLAS_STATUS_INVALID_VALUE: transpose {trans}")
    stored = (rows, cols) if trans == CUBLAS_OP_N else (cols, rows)
    if ld < max(1, stored[0]):
        raise ValueError(f"CUBLAS_STATUS_INVALID_VALUE: leading dimension {ld} < {stored[0]}")
    x = _em.at_pointer(ptr, dtype, (batch, *stored), (stride, 1, ld))
    return x if trans == CUBLAS_OP_N else numpy.swapaxes(x, 1, 2)


def _gemm(ctype, dtype, handle, transa, transb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch):
    """C = alpha op(A) op(B) + beta C for each of ``batch`` matrices, on the handle's stream."""
    _em.check_fail("cublas")
    device = _em.handle_state(handle)["pointer_mode"] == CUBLAS_POINTER_MODE_DEVICE
    opA = _operand(A, dtype, transa, m, k, lda, sA, batch)
    opB = _operand(B, dtype, transb, k, n, ldb, sB, batch)
    out = _operand(C, dtype, CUBLAS_OP_N, m, n, ldc, sC, batch)
    if device:
        al, be = (_em.at_pointer(p, dtype, (), ()) for p in (alpha, beta))
    else:
        al, be = (ctype.from_address(p).value for p in (alpha, beta))
    factor = 2 if _em.fail == "wrong" else 1

    def run():
        a_, b_ = (float(x) for x in (al, be))
        prod = numpy.matmul(opA, opB) * (a_ * factor)
        out[...] = prod if b_ == 0 else prod + b_ * out

    _em.launch(run, "cublas", stream=_em.handle_stream(handle))


def _gemms(ctype, dtype):
    """(gemm, gemmStridedBatched) with the C functions' arguments."""

    def gemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        _gemm(ctype, dtype, handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1)

    def batched(handle, transa, transb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch):
        _gemm(ctype, dtype, handle, transa, transb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch)

    return gemm, batched


def _binding(fn):
    """CuPy's binding of a cuBLAS function: ``_setStream(handle)`` first."""

    def binding(handle, *args):
        _em.cupy_binding_stream(handle)
        return fn(handle, *args)

    return binding


_SGEMM, _SGEMM_BATCHED = _gemms(ctypes.c_float, numpy.float32)
_DGEMM, _DGEMM_BATCHED = _gemms(ctypes.c_double, numpy.float64)
sgemm, dgemm = _binding(_SGEMM), _binding(_DGEMM)
sgemmStridedBatched, dgemmStridedBatched = _binding(_SGEMM_BATCHED), _binding(_DGEMM_BATCHED)


class SharedObject:
    """The emulated libcublas.so: its C functions by their exported names (function objects,
    which take ctypes' ``argtypes`` and ``restype`` as a ctypes.CDLL's do), each returning a
    cublasStatus_t (0: success). ``calls`` lists the names called, in order."""

    def __init__(self):
        self.calls = []
        for name, fn in (
            ("cublasSetStream_v2", _em.set_handle_stream),
            ("cublasSgemm_v2", _SGEMM),
            ("cublasDgemm_v2", _DGEMM),
            ("cublasSgemmStridedBatched", _SGEMM_BATCHED),
            ("cublasDgemmStridedBatched", _DGEMM_BATCHED),
        ):
            setattr(self, name, self._function(name, fn))

    def _function(self, name, fn):
        def call(*args):
            self.calls.append(name)
            fn(*args)
            return 0

        return call


def shared_object(version: int):
    """What xpnet.backends.cublas.shared_object finds in a process whose CuPy is this one: the
    stand-in of this cuBLAS version's libcublas.so (a new one per call), else None."""
    return SharedObject() if version == VERSION else None
