"""cuBLAS GEMMs for the CuPy op set, called on the library CuPy loaded, so that a CUDA graph
can capture them.

CuPy 14 refuses every cuBLAS call of its own while a stream captures: each of its bindings first
sets the handle's stream to the current one, and refuses that during a capture
(``cupy_backends/cuda/libs/cublas.pyx``, ``setStream``: "calling cuBLAS API during stream
capture is currently unsupported"). cuBLAS itself captures GEMMs (since CUDA 12.2 its workspace
too). So the products go to libcublas's own functions through ctypes (``Direct``), on CuPy's
handle for the current thread and device, the handle's stream set to the current one before
each call, as CuPy's bindings would; where that library cannot be opened (not loaded under
its soname), through CuPy's bindings (``Bindings``), and chunks are not captured.
Both take the C functions' arguments after the data type ("s" or "d"), the handle and the
stream: ``functions`` gives the one to use.
"""

from __future__ import annotations

import ctypes
import os

DEFAULT_MATH, TF32_MATH = 0, 3  # cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH
_GEMM_ARGS = [ctypes.c_int] * 5 + [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_GEMM_ARGS += [ctypes.c_void_p] * 2 + [ctypes.c_int]
_BATCHED_ARGS = [ctypes.c_int] * 5 + [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_longlong]
_BATCHED_ARGS += [ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
_BATCHED_ARGS += [ctypes.c_longlong, ctypes.c_int]
# the C functions used (cublas_v2.h's names as exported), after their cublasHandle_t argument
SIGNATURES = {
    "cublasSetStream_v2": [ctypes.c_void_p],
    "cublasSgemm_v2": _GEMM_ARGS,
    "cublasDgemm_v2": _GEMM_ARGS,
    "cublasSgemmStridedBatched": _BATCHED_ARGS,
    "cublasDgemmStridedBatched": _BATCHED_ARGS,
}


def shared_object(version: int):
    """The libcublas of cuBLAS ``version`` (cublasGetVersion's: major * 10000 + minor * 100 +
    patch) that this process has loaded (CuPy loads it with its first handle), opened by its
    soname without loading anything (RTLD_NOLOAD: the very library CuPy calls, not another
    copy such as PyTorch's), or None where there is none."""
    try:
        return ctypes.CDLL(f"libcublas.so.{version // 10000}", mode=os.RTLD_NOLOAD)
    except (OSError, AttributeError):  # not loaded under that name; no RTLD_NOLOAD (not Linux or macOS)
        return None


class Direct:
    """libcublas's functions, called directly: each call's handle stream set first (``stream``),
    a non-zero cublasStatus_t raised as RuntimeError."""

    capture = True  # these calls may be captured into a CUDA graph

    def __init__(self, so):
        self.so = so
        for name, args in SIGNATURES.items():
            fn = getattr(so, name)
            fn.argtypes, fn.restype = [ctypes.c_void_p, *args], ctypes.c_int

    def _call(self, name: str, handle: int, *args) -> None:
        status = getattr(self.so, name)(handle, *args)
        if status != 0:
            raise RuntimeError(f"cuBLAS {name} failed: status {status}")

    def gemm(self, dtype: str, handle: int, stream: int, *args) -> None:
        self._call("cublasSetStream_v2", handle, stream)
        self._call(f"cublas{dtype.upper()}gemm_v2", handle, *args)

    def gemm_batched(self, dtype: str, handle: int, stream: int, *args) -> None:
        self._call("cublasSetStream_v2", handle, stream)
        self._call(f"cublas{dtype.upper()}gemmStridedBatched", handle, *args)


class Bindings:
    """CuPy's bindings of the same functions (each sets the current stream itself, and is
    refused during a capture)."""

    capture = False

    def __init__(self, lib):
        self.lib = lib

    def gemm(self, dtype: str, handle: int, stream: int, *args) -> None:
        getattr(self.lib, f"{dtype}gemm")(handle, *args)

    def gemm_batched(self, dtype: str, handle: int, stream: int, *args) -> None:
        getattr(self.lib, f"{dtype}gemmStridedBatched")(handle, *args)


def functions(bindings_lib, handle: int):
    """``Direct`` on the loaded libcublas (``shared_object``), else CuPy's ``Bindings``."""
    so = shared_object(bindings_lib.getVersion(handle))
    if so is not None:
        try:
            return Direct(so)
        except AttributeError:  # a library without these symbols
            pass
    return Bindings(bindings_lib)
