"""A NumPy-backed emulator of CuPy 14.2, for proving xpnet's CuPy rules without a GPU.

Arrays (``cupy.ndarray``, not a NumPy subclass) hold a private NumPy array ``_a`` (possibly a
view: slicing, ``.T``, ``transpose``, ``reshape`` without copy, ``squeeze``, ``[..., None]``
share memory as on a GPU). Functions are NumPy's, wrapped (operands unwrapped, array results
wrapped, dtypes kept), with explicit versions where CuPy's rules need them. Every kernel,
allocation, host synchronisation and host-to-device copy is counted in ``cupy._emulation``.

Rules enforced (as CuPy 14.2 on a GPU):
  1. No implicit host conversion: ``__array__`` raises TypeError; ``.get()``/``asnumpy`` copy.
     NumPy ufuncs/functions applied to emulated arrays DISPATCH to the CuPy function of the
     same name (``__array_ufunc__``/``__array_function__``, as CuPy does); with a NumPy array
     among the operands, or no CuPy counterpart, they raise TypeError. ``__dlpack__`` raises
     BufferError (device memory); ``__dlpack_device__`` is (kDLCUDA=2, id).
  2. ``cupy.cuda.Device``: current device per thread, unhashable, equal by id; arrays live on
     the device current at their creation; a kernel on an array of another device raises
     ValueError. Device count: XPNET_EMULATED_CUPY_COUNT or ``_emulation.configure(count=)``.
  3. Counters (``cupy._emulation``): launches (elementwise, reductions, gathers, cuBLAS, raw
     kernels, graph replays' kernels), allocations, host_syncs, h2d_copies, graph_launches,
     memsets (zeros, fill(0)) and memcpys (copyto between arrays alike, peer copies).
  4. matmul: operands neither C- nor F-ordered are copied; an ``out`` not C-contiguous or of
     another dtype gets the product in a temporary, then a copy kernel.
  4b. Reductions (sum, prod, max, min) of a C- or F-contiguous array over all its axes or over
     consecutive axes at its contiguous end go through CUB, as CuPy 14 sends them
     (CUPY_ACCELERATORS defaults to "cub"): two new buffers (result and workspace) and, with
     ``out=``, a copy kernel into it.
  5. Elementwise kernels with ``out=``: an input that is not the output object but whose
     memory bounds overlap it is copied first.
  6. ``cupy.cublas.gemm`` with host or device (read at execution) alpha/beta. cuBLAS handles
     keep a stream and a pointer mode; every cuBLAS call CuPy makes (``cupy.cublas.gemm``,
     ``matmul``, the raw bindings of ``cupy_backends.cuda.libs.cublas``) first sets the
     handle's stream to the current one and raises NotImplementedError while that captures
     (CuPy 14.2's ``_setStream``); ``cupy_backends.cuda.libs.cublas.SharedObject`` stands for
     libcublas.so, whose GEMMs run on their handle's stream (captured when it captures).
  7. Streams and CUDA graphs: capture records kernels (arrays by reference, scalars by value);
     allocations, syncs and host copies during a capture raise CUDARuntimeError and
     invalidate it (stricter than CuPy, whose relaxed capture lets an allocation through);
     ``Graph.launch`` replays.
  8. RawModule/RawKernel: the CUDA signature is parsed and each argument's type checked; the
     kernel's NumPy reference (xpnet.backends.cuda_kernels.REFERENCES) runs on flat views.
  10. Failure injection: ``_emulation.configure(fail=...)`` or XPNET_EMULATED_CUPY_FAIL.
Not emulated: asynchrony (everything runs at once, in order), peer access, memory limits,
CuPy's own type promotion where it differs from NumPy's, kernel fusion.
"""

import numpy as _numpy

from cupy import _array as _impl
from cupy import (
    _core,  # noqa: F401
    _emulation,  # noqa: F401
    cuda,  # noqa: F401
)
from cupy._array import (  # noqa: F401
    MemoryPointer,
    RawKernel,
    RawModule,
    arange,
    array,
    asanyarray,
    asarray,
    asnumpy,
    clip,
    concatenate,
    copyto,
    dot,
    empty,
    empty_like,
    full,
    full_like,
    get_array_module,
    matmul,
    ndarray,
    ones,
    ones_like,
    take,
    ufunc,
    zeros,
    zeros_like,
)

__version__ = "14.2.0"

_SKIP = {
    "ndarray",
    "asarray",
    "array",
    "asanyarray",
    "matrix",
    "memmap",
    "recarray",
    "chararray",
    "vectorize",
    "frompyfunc",
    "nditer",
    "nested_iters",
    "broadcast",
    "ndenumerate",
    "ndindex",
    "errstate",
    "printoptions",
    "testing",
    "test",
    "show_config",
    "show_runtime",
    "info",
    "load",
    "save",
    "savez",
    "savez_compressed",
    "loadtxt",
    "savetxt",
    "genfromtxt",
    "fromfile",
    "frombuffer",
    "fromregex",
    "fromiter",
    "fromstring",
    "matmul",
}


def _export():
    g = globals()
    for name, obj in vars(_numpy).items():
        if name.startswith("_") or name in _SKIP or name in g:
            continue
        if isinstance(obj, _numpy.ufunc):
            g[name] = _impl.UFUNCS[name]
        elif isinstance(obj, type) or isinstance(obj, (int, float)) or obj is None:
            g[name] = obj  # dtypes (float32, bool_, ...), dtype, finfo, iinfo, pi, inf, newaxis
        elif callable(obj) and not isinstance(obj, type(_numpy)):
            g[name] = _impl.REDUCTIONS.get(name) or _impl._generic(obj)
    g.update(_impl.REDUCTIONS)


_export()
concat = concatenate
bool_ = _numpy.bool_


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _POOL


def is_available() -> bool:
    return cuda.is_available()


_POOL = cuda.MemoryPool()

from cupy import fft, linalg  # noqa: E402,F401  (real CuPy imports these, not cublas: `import cupy.cublas` does)
