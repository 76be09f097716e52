"""The emulator's own state: counters, configuration, current device/stream, capture.

Public API:
    counters            object with int attributes launches, host_syncs, allocations,
                        h2d_copies, graph_launches, memsets, memcpys
    reset_counters()    zero them
    snapshot()          dict of them
    configure(fail="", count=1)   failure injection ("", "driver", "cublas", "nvrtc",
                        "wrong") and number of devices; no arguments restores the defaults
    reference_lookup(name)        NumPy reference of a RawModule kernel (monkeypatchable)
    compute_type_calls  list of (dtype, compute_type) given to set_compute_type
    capturing()         whether the current stream is capturing
"""

from __future__ import annotations

import importlib
import os
import threading
import weakref

import numpy

FIELDS = ("launches", "host_syncs", "allocations", "h2d_copies", "graph_launches", "memsets", "memcpys")
FAILS = ("", "driver", "cublas", "nvrtc", "wrong")


class CUDARuntimeError(RuntimeError):
    """cupy.cuda.runtime.CUDARuntimeError (status is kept when given as an int)."""

    def __init__(self, status):
        self.status = status if isinstance(status, int) else None
        super().__init__(status if isinstance(status, str) else f"CUDA runtime error {status}")


CUDARuntimeError.__module__ = "cupy_backends.cuda.api.runtime"


class _Counters:
    def __init__(self):
        for f in FIELDS:
            setattr(self, f, 0)

    def __repr__(self):
        return f"Counters({snapshot()})"


counters = _Counters()
compute_type_calls: list = []
memory = {"used": 0, "free": 0}  # bytes held by live emulated buffers / cached after free
fail = ""
count = 1


def reset_counters() -> None:
    for f in FIELDS:
        setattr(counters, f, 0)


def snapshot() -> dict:
    return {f: getattr(counters, f) for f in FIELDS}


def configure(fail: str = "", count: int = 1) -> None:
    if fail not in FAILS:
        raise ValueError(f"unknown failure {fail!r}: one of {FAILS}")
    if int(count) < 1:
        raise ValueError("count must be at least 1")
    globals().update(fail=fail, count=int(count))
    if _tls.__dict__.get("device", 0) >= count:
        _tls.device = 0


def reference_lookup(name: str):
    """The NumPy reference of CUDA kernel ``name`` (xpnet keeps them beside the sources)."""
    refs = importlib.import_module("xpnet.backends.cuda_kernels").REFERENCES
    try:
        return refs[name]
    except KeyError:
        raise KeyError(
            f"no NumPy reference for CUDA kernel {name!r} in xpnet.backends.cuda_kernels.REFERENCES"
        ) from None


# ---- per-thread current device and stream --------------------------------------------------

_tls = threading.local()
null_stream = None  # set by cupy.cuda.stream


def current_device() -> int:
    return getattr(_tls, "device", 0)


def set_device(i: int) -> None:
    if not 0 <= i < count:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    _tls.device = i


def stream_stack() -> list:
    if not hasattr(_tls, "streams"):
        _tls.streams = []
    return _tls.streams


def current_stream():
    s = stream_stack()
    return s[-1] if s else null_stream


def capturing() -> bool:
    s = current_stream()
    return s is not None and s._capturing


def _forbid_in_capture(what: str) -> None:
    s = current_stream()
    if s is not None and s._capturing:
        msg = f"cudaErrorStreamCaptureUnsupported: {what} during stream capture"
        s._capture_error = s._capture_error or msg
        raise CUDARuntimeError(msg)


# ---- what costs what ----------------------------------------------------------------------


def _free(nbytes: int) -> None:
    memory["used"] -= nbytes
    memory["free"] += nbytes


_buffers: dict = {}  # id -> (address, nbytes, weakref to the buffer): device pointers resolved


def allocate(a: numpy.ndarray) -> None:
    """A new device buffer holding ``a`` (a fresh NumPy array)."""
    _forbid_in_capture(f"allocation of a {tuple(a.shape)} {a.dtype} array")
    counters.allocations += 1
    memory["used"] += a.nbytes
    memory["free"] = max(0, memory["free"] - a.nbytes)
    weakref.finalize(a, _free, a.nbytes)
    key = id(a)
    _buffers[key] = (a.__array_interface__["data"][0], a.nbytes, weakref.ref(a, lambda _: _buffers.pop(key, None)))


def at_pointer(ptr: int, dtype, shape: tuple, strides: tuple) -> numpy.ndarray:
    """A writable view of the live device buffer holding address ``ptr``: elements of dtype at
    ``strides`` (in elements) from it, as a library given a raw pointer would read them."""
    for start, nbytes, ref in list(_buffers.values()):
        base = ref()
        if base is not None and start <= ptr < start + max(nbytes, 1):
            flat = base.reshape(-1, order="A") if base.flags.c_contiguous or base.flags.f_contiguous else None
            if flat is None or flat.dtype != numpy.dtype(dtype):
                raise RuntimeError(f"pointer {ptr:#x}: a {base.dtype} buffer read as {numpy.dtype(dtype)}")
            offset = (ptr - start) // flat.itemsize
            last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
            if last >= flat.size:
                raise RuntimeError(f"pointer {ptr:#x}: read past the end of its buffer (an illegal address)")
            itemsize = flat.itemsize
            return numpy.lib.stride_tricks.as_strided(
                flat[offset:], shape, tuple(s * itemsize for s in strides), writeable=True
            )
    raise RuntimeError(f"pointer {ptr:#x} is not in a live device buffer (an illegal address)")


def host_sync(what: str) -> None:
    _forbid_in_capture(f"host synchronisation ({what})")
    counters.host_syncs += 1


def h2d(what: str) -> None:
    _forbid_in_capture(f"host-to-device copy ({what})")
    counters.h2d_copies += 1


def check_fail(kind: str) -> None:
    """Raise the injected failure for a kernel of this kind ("cublas", "memset", "memcpy" or
    any compiled kernel: "elementwise", "reduction", "gather", "raw")."""
    if kind == "cublas" and fail == "cublas":
        raise RuntimeError("CUBLAS_STATUS_NOT_INITIALIZED: libcublas.so.13 not found")
    if kind not in ("cublas", "memset", "memcpy") and fail == "nvrtc":
        raise RuntimeError("nvrtc: error: failed to open libnvrtc-builtins.so.13")


def tally(kind: str, n: int = 1) -> None:
    field = {"memset": "memsets", "memcpy": "memcpys"}.get(kind, "launches")
    setattr(counters, field, getattr(counters, field) + n)


def launch(fn, kind: str = "elementwise", validate=None, stream=None) -> None:
    """Run one kernel (``fn`` does the work in NumPy), or record it when its stream (the
    current one, or ``stream``: a cuBLAS handle's) is capturing (``validate`` is then called
    instead, to raise what ``fn`` would)."""
    check_fail(kind)
    s = current_stream() if stream is None else stream
    if s is not None and s._capturing:
        if validate is not None:
            validate()
        s._nodes.append((kind, fn))
        return
    tally(kind)
    fn()


# ---- cuBLAS handles: each one's stream and pointer and math modes ---------------------------

_streams: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # ptr -> Stream
_handles: dict = {}  # handle -> {"stream": ptr, "pointer_mode": int, "math_mode": int}


def cublas_handle() -> int:
    """cupy.cuda.device.get_cublas_handle(): one per device here."""
    return 0xC0B1A5 + current_device()


def register_stream(stream) -> None:
    _streams[stream.ptr] = stream


def handle_state(handle: int) -> dict:
    return _handles.setdefault(handle, {"stream": 0, "pointer_mode": 0, "math_mode": 0})


def handle_stream(handle: int):
    """The stream a cuBLAS call on ``handle`` runs on: the one last set on it (cuBLAS's rule)."""
    ptr = handle_state(handle)["stream"]
    return null_stream if ptr == 0 else _streams[ptr]


def set_handle_stream(handle: int, stream_ptr: int) -> None:
    """cublasSetStream: allowed during a capture (it is host state)."""
    if stream_ptr != 0 and stream_ptr not in _streams:
        raise RuntimeError(f"CUBLAS_STATUS_INVALID_VALUE: no stream {stream_ptr:#x}")
    handle_state(handle)["stream"] = stream_ptr


def cupy_binding_stream(handle: int):
    """What each of CuPy 14's cuBLAS bindings does first (``cupy_backends/cuda/libs/cublas.pyx``,
    ``_setStream``): set the handle's stream to the current one, refusing while it captures."""
    s = current_stream()
    if s is not None and s._capturing:
        raise NotImplementedError("calling cuBLAS API during stream capture is currently unsupported")
    set_handle_stream(handle, 0 if s is None else s.ptr)
    return s


def _env_config() -> None:
    configure(
        os.environ.get("XPNET_EMULATED_CUPY_FAIL", ""), int(os.environ.get("XPNET_EMULATED_CUPY_COUNT", "1") or 1)
    )


_env_config()
