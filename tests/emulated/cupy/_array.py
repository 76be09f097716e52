"""The emulated cupy.ndarray, ufuncs, kernels and the functions with CuPy-specific rules."""

from __future__ import annotations

import builtins
import numbers
import re

import numpy

from cupy import _emulation as _em
from cupy.cuda.device import Device

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
)


# ---- helpers -------------------------------------------------------------------------------


def _extent(a: numpy.ndarray):
    """[first byte, last byte + 1) of a NumPy view, or None when empty (CuPy's bounds)."""
    if a.size == 0:
        return None
    lo = hi = a.__array_interface__["data"][0]
    for n, s in zip(a.shape, a.strides):
        if s > 0:
            hi += s * (n - 1)
        else:
            lo += s * (n - 1)
    return lo, hi + a.itemsize


def _bounds_overlap(a: numpy.ndarray, b: numpy.ndarray) -> bool:
    ea, eb = _extent(a), _extent(b)
    return ea is not None and eb is not None and ea[0] < eb[1] and eb[0] < ea[1]


def _check_devices(arrays) -> None:
    cur = _em.current_device()
    for x in arrays:
        if x._dev != cur:
            raise ValueError(
                f"The device where the array resides ({x._dev}) is different from "
                f"the current device ({cur}). Peer access is unavailable between "
                "these devices."
            )


def _scalar_operand(x):
    if isinstance(x, (numbers.Number, numpy.generic)):
        return x
    if isinstance(x, numpy.ndarray):
        raise TypeError(
            f"Unsupported type {type(x)}: a NumPy array cannot be a CuPy kernel "
            "operand (copy it with cupy.asarray first)"
        )
    raise TypeError(f"Unsupported type {type(x)}")


def _fresh(result, kind="elementwise", launches=1, dev=None):
    """Wrap a freshly computed NumPy result: one new buffer, ``launches`` kernels."""
    result = numpy.asarray(result)
    _em.check_fail(kind)
    _em.allocate(result)
    _em.tally(kind, launches)
    return ndarray._wrap(result, dev)


def _copy_if_overlapping(inputs, outs):
    """CuPy's kernel preprocessing: an input that is not one of the outputs but whose memory
    bounds overlap one is copied first (a new buffer and a copy kernel)."""
    res = []
    for x in inputs:
        if (
            isinstance(x, ndarray)
            and not builtins.any(x is o for o in outs)
            and builtins.any(_bounds_overlap(x._a, o._a) for o in outs)
        ):
            x = x.copy()
        res.append(x)
    return res


def _elementwise(fn, args, outs, kw, kind="elementwise"):
    """One elementwise kernel: ``fn(*numpy operands, **kw)`` (a NumPy ufunc or similar)."""
    _em.check_fail(kind)
    arrays = [x for x in args if isinstance(x, ndarray)]
    for x in args:
        if not isinstance(x, ndarray):
            _scalar_operand(x)
    _check_devices(arrays + list(outs or ()))
    if not outs:
        res = fn(*[x._a if isinstance(x, ndarray) else x for x in args], **kw)
        if isinstance(res, tuple):
            first = _fresh(res[0], kind)
            return (first,) + tuple(_fresh(r, kind, 0) for r in res[1:])
        return _fresh(res, kind)
    args = _copy_if_overlapping(args, outs)
    ops = [x._a if isinstance(x, ndarray) else x for x in args]
    np_outs = tuple(o._a for o in outs)
    _em.launch(
        lambda: fn(*ops, out=np_outs, **kw),
        kind,
        lambda: _validate(fn, ops, np_outs, kw),
    )
    return outs[0] if len(outs) == 1 else tuple(outs)


def _validate(fn, ops, np_outs, kw) -> None:
    """What ``fn`` would raise, run into scratch (during a capture: the values are not real)."""
    with numpy.errstate(all="ignore"):
        fn(*ops, out=tuple(numpy.empty_like(o) for o in np_outs), **kw)


class ufunc:
    """An elementwise CuPy ufunc computed by the NumPy ufunc of the same name."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = self.name = np_ufunc.__name__
        self.nin, self.nout, self.nargs, self.types = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs, np_ufunc.types

    def __call__(self, *args, out=None, dtype=None, casting="same_kind", **kw):
        if len(args) > self.nin:
            args, out = args[: self.nin], args[self.nin :]
        outs = None if out is None else (tuple(out) if isinstance(out, (tuple, list)) else (out,))
        if outs is not None and builtins.all(o is None for o in outs):
            outs = None
        if outs is not None and not builtins.all(isinstance(o, ndarray) for o in outs):
            raise TypeError("out must be a cupy.ndarray")
        if dtype is not None:
            kw["dtype"] = dtype
        kw["casting"] = casting
        return _elementwise(self._u, args, outs, kw)

    def reduce(self, a, axis=0, dtype=None, out=None, keepdims=False):
        return _reduction(self._u.reduce, a, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def __repr__(self):
        return f"<ufunc '{self.name}'>"


# CuPy 14's reductions that try CUB first (CUPY_ACCELERATORS, default "cub": cupy/_core/_accelerator.pyx)
_CUB = ("sum", "prod", "max", "min", "amax", "amin")


def _through_cub(np_func, x, kw) -> bool:
    """Whether CuPy 14 runs this reduction through CUB (``cupy/cuda/cub.pyx``, ``cub_reduction``):
    a C- or F-contiguous array of a CUB dtype reduced over all its axes, or over consecutive axes
    ending at the last (C) or starting at the first (F)."""
    order = "C" if x.flags.c_contiguous else "F" if x.flags.f_contiguous else None
    if np_func.__name__ not in _CUB or order is None or x.size == 0 or x.dtype.kind not in "fiu":
        return False
    if kw.get("dtype") not in (None, x.dtype):
        return False
    axis = kw.get("axis")
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    axes = sorted(ax % x.ndim for ax in axes)
    if len(axes) == x.ndim:
        return True  # device_reduce
    consecutive = axes == list(range(axes[0], axes[-1] + 1))
    return consecutive and (axes[-1] == x.ndim - 1 if order == "C" else axes[0] == 0)


def _reduction(np_func, a, out=None, **kw):
    """One reduction kernel (sum, max, argmax, ...). Through CUB where CuPy 14 would go (see
    ``_through_cub``): its result and its workspace are new buffers, and with ``out`` a copy
    kernel follows (``device_segmented_reduce``, ``device_reduce``)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    _em.check_fail("reduction")
    kw = {k: v for k, v in kw.items() if v is not None}
    _check_devices([a] + ([out] if out is not None else []))
    if _through_cub(np_func, a._a, kw):
        src = a._a
        _em.allocate(numpy.empty(64, numpy.uint8))  # CUB's temporary storage
        if out is None:
            return _fresh(np_func(src, **kw), "reduction")
        y = empty(np_func(numpy.broadcast_to(numpy.zeros((), src.dtype), src.shape), **kw).shape, out.dtype)
        dst = y._a
        _em.launch(lambda: np_func(src, out=dst, **kw), "reduction")
        _elementwise(lambda r, out: numpy.copyto(out[0], r, casting="unsafe"), (y,), (out,), {})  # elementwise_copy
        return out
    if out is None:
        return _fresh(np_func(a._a, **kw), "reduction")
    src, dst = a._a, out._a
    _em.launch(lambda: np_func(src, out=dst, **kw), "reduction", lambda: np_func(src, out=numpy.empty_like(dst), **kw))
    return out


def _reduction_function(np_func, has_dtype=True):
    if has_dtype:

        def f(a, axis=None, dtype=None, out=None, keepdims=False):
            return _reduction(np_func, a, out=out, axis=axis, dtype=dtype, keepdims=keepdims)
    else:

        def f(a, axis=None, out=None, keepdims=False):
            return _reduction(np_func, a, out=out, axis=axis, keepdims=keepdims)

    f.__name__ = np_func.__name__
    return f


_NO_DTYPE = ("max", "min", "amax", "amin", "argmax", "argmin", "any", "all", "nanmax", "nanmin")
REDUCTIONS = {
    name: _reduction_function(getattr(numpy, name), name not in _NO_DTYPE)
    for name in _NO_DTYPE + ("sum", "prod", "mean", "nansum", "nanmean")
}


def _moment(np_func):
    def f(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _reduction(np_func, a, out=out, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    f.__name__ = np_func.__name__
    return f


REDUCTIONS.update(var=_moment(numpy.var), std=_moment(numpy.std))


# ---- the array -----------------------------------------------------------------------------


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous, "OWNDATA": self.owndata}[key]

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


class MemoryPointer:
    def __init__(self, ptr, device_id):
        self.ptr, self.device_id = ptr, device_id

    @property
    def device(self):
        return Device(self.device_id)

    def __int__(self):
        return self.ptr


def _binary(name, reflected=False, inplace=False):
    def op(self, other):
        f = UFUNCS[name]
        if inplace:
            return f(self, other, out=self)
        return f(other, self) if reflected else f(self, other)

    return op


class ndarray:
    """Device memory (a private NumPy array ``_a``, possibly a view) on device ``_dev``."""

    __slots__ = ("_a", "_dev", "__weakref__")
    __hash__ = None
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        a = numpy.empty(shape, dtype=dtype, order=order)
        _em.allocate(a)
        self._a, self._dev = a, _em.current_device()

    @classmethod
    def _wrap(cls, a, dev=None):
        self = object.__new__(cls)
        self._a, self._dev = a, _em.current_device() if dev is None else dev
        return self

    def _view(self, a):
        return ndarray._wrap(a, self._dev)

    # -- metadata (no kernels) --
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: self._view(self._a.T))
    mT = property(lambda self: self._view(numpy.swapaxes(self._a, -1, -2)))
    real = property(lambda self: self._view(self._a.real))
    device = property(lambda self: Device(self._dev))
    data = property(lambda self: MemoryPointer(self._a.__array_interface__["data"][0], self._dev))

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def swapaxes(self, a1, a2):
        return self._view(self._a.swapaxes(a1, a2))

    def squeeze(self, axis=None):
        return self._view(self._a.squeeze(axis))

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return self._view(self._a.diagonal(offset, axis1, axis2))

    def view(self, dtype=None):
        return self._view(self._a if dtype is None else self._a.view(dtype))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        r = self._a.reshape(shape, order=order)
        if r.size == 0 or _bounds_overlap(r, self._a):
            return self._view(r)
        _check_devices([self])
        return _fresh(r.copy(), dev=self._dev)  # CuPy copies when no view is possible

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def flatten(self, order="C"):
        return self.copy(order).reshape(-1)

    # -- kernels --
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and numpy.dtype(dtype) == self.dtype:
            return self
        _check_devices([self])
        return _fresh(self._a.astype(dtype, order=order, casting=casting or "unsafe"))

    def copy(self, order="C"):
        _check_devices([self])
        return _fresh(self._a.copy(order=order))

    def fill(self, value):
        _check_devices([self])
        value = _scalar_operand(value)
        a = self._a
        kind = "memset" if value == 0 and a.flags.c_contiguous else "elementwise"
        _em.launch(lambda: a.fill(value), kind)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        advanced = [k for k in key if not (k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral)))]
        if not advanced:
            if not builtins.any(k is Ellipsis for k in key):
                key = key + (Ellipsis,)
            return self._view(self._a[key])
        _check_devices([self] + [k for k in advanced if isinstance(k, ndarray)])
        if builtins.any(isinstance(k, ndarray) and k.dtype == numpy.bool_ for k in key):
            _em.host_sync("boolean-mask indexing (nonzero)")
        return _fresh(self._a[_host_key(key)], "gather")

    def __setitem__(self, key, value):
        key = key if isinstance(key, tuple) else (key,)
        _check_devices(
            [self] + [k for k in key if isinstance(k, ndarray)] + ([value] if isinstance(value, ndarray) else [])
        )
        if isinstance(value, (numpy.ndarray, list)):
            value = asarray(value)
        a, nkey = self._a, _host_key(key)
        if isinstance(value, ndarray):
            v = value._a
            if value is not self and _bounds_overlap(v, a):
                v = value.copy()._a
            _em.launch(lambda: a.__setitem__(nkey, v), "elementwise", lambda: numpy.empty_like(a).__setitem__(nkey, v))
            return
        value = _scalar_operand(value)
        basic = builtins.all(k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral)) for k in key)
        if basic and not builtins.any(k is Ellipsis for k in nkey):
            nkey = nkey + (Ellipsis,)  # a view even when every index is an int
        if basic and value == 0 and a[nkey].flags.c_contiguous:  # fill(0): a memset
            _em.launch(lambda: a.__setitem__(nkey, value), "memset")
        else:
            _em.launch(
                lambda: a.__setitem__(nkey, value), "elementwise", lambda: numpy.empty_like(a).__setitem__(nkey, value)
            )

    # -- reductions: the module's (set below, for sum, max, argmax, ...) --
    def dot(self, b, out=None):
        return dot(self, b, out=out)

    def clip(self, min=None, max=None, out=None):
        return clip(self, min, max, out=out)

    def take(self, indices, axis=None, out=None):
        return take(self, indices, axis, out)

    # -- host transfers (each a synchronisation) --
    def get(self, stream=None, order="C", out=None, blocking=True):
        _em.host_sync("ndarray.get()")
        if out is not None:
            numpy.copyto(out, self._a)
            return out
        return numpy.array(self._a, order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if not (self._a.flags.c_contiguous or self._a.flags.f_contiguous):
            raise RuntimeError("Cannot set to non-contiguous array")
        _em.h2d(f"ndarray.set() of a {arr.shape} {arr.dtype} array")
        self._a[...] = arr

    def item(self):
        _em.host_sync("ndarray.item()")
        return self._a.item()

    def tolist(self):
        _em.host_sync("ndarray.tolist()")
        return self._a.tolist()

    def __float__(self):
        _em.host_sync("float()")
        return float(self._a)

    def __int__(self):
        _em.host_sync("int()")
        return int(self._a)

    def __complex__(self):
        _em.host_sync("complex()")
        return complex(self._a)

    def __bool__(self):
        _em.host_sync("bool()")
        return bool(self._a)

    def __index__(self):
        _em.host_sync("operator.index()")
        return self._a.__index__()

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        _em.host_sync("iteration")
        return (self[i] for i in range(len(self)))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __repr__(self):
        _em.host_sync("repr()")
        return repr(self._a)

    def __str__(self):
        _em.host_sync("str()")
        return str(self._a)

    def __format__(self, spec):
        _em.host_sync("format()")
        return format(self._a.item() if self.ndim == 0 else self._a, spec)

    def __copy__(self):
        return self.copy()

    # -- interop: no implicit host copy; DLPack to the CPU only as a copy (CuPy 14's to_cpu) --
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __dlpack_device__(self):
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """A CPU consumer asking for a copy (``dl_device=(kDLCPU, 0)``, copy not False: what
        ``numpy.from_dlpack(x, device="cpu")`` asks) gets a host copy, a read back; anything
        else is refused (device memory cannot be shared with the CPU)."""
        if dl_device is not None and tuple(dl_device)[0] == 1 and copy is not False:
            _em.host_sync("__dlpack__ to the CPU")
            return self._a.copy().__dlpack__(max_version=max_version)
        raise BufferError("emulated CUDA device memory cannot be shared with a CPU DLPack consumer")

    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        """NumPy ufuncs on emulated arrays dispatch to CuPy's ufunc, as in CuPy (host arrays
        among the operands make it a TypeError)."""
        outs = kwargs.get("out") or ()
        if builtins.any(isinstance(x, numpy.ndarray) for x in inputs + tuple(outs)):
            return NotImplemented
        mine = UFUNCS.get(uf.__name__)
        if mine is None or method not in ("__call__", "reduce"):
            return NotImplemented
        if "out" in kwargs and len(outs) == 1:
            kwargs["out"] = outs[0]
        return (mine if method == "__call__" else mine.reduce)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """NumPy functions dispatch to the CuPy function of the same name (TypeError when there
        is none or a NumPy array is involved)."""
        import cupy

        mod = {"numpy": cupy, "numpy.linalg": cupy.linalg, "numpy.fft": cupy.fft}.get(
            func.__module__.replace("numpy._core", "numpy").split("._")[0]
        )
        if numpy.ndarray in types or mod is None or not hasattr(mod, func.__name__):
            return NotImplemented
        return getattr(mod, func.__name__)(*args, **kwargs)

    # -- operators --
    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __imatmul__(self, other):
        return matmul(self, other, out=self)

    def __neg__(self):
        return UFUNCS["negative"](self)

    def __pos__(self):
        return UFUNCS["positive"](self)

    def __abs__(self):
        return UFUNCS["absolute"](self)

    def __invert__(self):
        return UFUNCS["invert"](self)

    def __divmod__(self, other):
        return UFUNCS["divmod"](self, other)


for _op, _uf in dict(
    add="add",
    sub="subtract",
    mul="multiply",
    truediv="true_divide",
    floordiv="floor_divide",
    mod="remainder",
    pow="power",
    lshift="left_shift",
    rshift="right_shift",
    and_="bitwise_and",
    or_="bitwise_or",
    xor="bitwise_xor",
).items():
    _op = _op.rstrip("_")
    setattr(ndarray, f"__{_op}__", _binary(_uf))
    setattr(ndarray, f"__r{_op}__", _binary(_uf, reflected=True))
    setattr(ndarray, f"__i{_op}__", _binary(_uf, inplace=True))
for _op, _uf in dict(eq="equal", ne="not_equal", lt="less", le="less_equal", gt="greater", ge="greater_equal").items():
    setattr(ndarray, f"__{_op}__", _binary(_uf))


for _name in ("sum", "prod", "mean", "var", "std", "max", "min", "argmax", "argmin", "any", "all"):
    setattr(ndarray, _name, (lambda f: lambda self, *a, **k: f(self, *a, **k))(REDUCTIONS[_name]))


def _host_key(key):
    return tuple(k._a if isinstance(k, ndarray) else k for k in key)


ndarray.__module__ = ufunc.__module__ = "cupy"
UFUNCS = {name: ufunc(obj) for name, obj in vars(numpy).items() if isinstance(obj, numpy.ufunc)}


# ---- creation and transfers ----------------------------------------------------------------


def _from_host(obj, dtype=None, order="K"):
    if isinstance(obj, numpy.ndarray) and obj.dtype.byteorder == ">":
        obj = obj.astype(obj.dtype.newbyteorder("<"))
    a = numpy.array(obj, dtype=dtype, order=order, copy=True)
    _em.allocate(a)
    _em.h2d(f"a {a.shape} {a.dtype} array")
    return ndarray._wrap(a)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    if isinstance(obj, ndarray):
        if copy is False and (dtype is None or numpy.dtype(dtype) == obj.dtype):
            r = obj
        elif obj._dev != _em.current_device():  # a peer copy (cudaMemcpyPeer)
            a = numpy.array(obj._a, dtype=dtype, order=order)
            _em.allocate(a)
            _em.tally("memcpy")
            r = ndarray._wrap(a)
        elif copy or (dtype is not None and numpy.dtype(dtype) != obj.dtype):
            r = obj.astype(dtype or obj.dtype, order=order)
        else:
            r = obj
    else:
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array from host data")
        r = _from_host(obj, dtype, order)
    return r if r.ndim >= ndmin else r.reshape((1,) * (ndmin - r.ndim) + r.shape)


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    return array(a, dtype=dtype, copy=copy, order=order or "K", blocking=blocking)


asanyarray = asarray


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    return numpy.asarray(a, order=order)


def empty(shape, dtype=float, order="C"):
    return ndarray(shape, dtype, order=order)


def zeros(shape, dtype=float, order="C"):
    a = empty(shape, dtype, order)
    _em.launch(lambda: a._a.fill(0), "memset")
    return a


def ones(shape, dtype=float, order="C"):
    return full(shape, 1, dtype, order)


def full(shape, fill_value, dtype=None, order="C"):
    dtype = numpy.result_type(fill_value) if dtype is None else dtype
    a = empty(shape, dtype, order)
    _em.launch(lambda: a._a.fill(fill_value), "elementwise")
    return a


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    r = numpy.empty_like(a._a, dtype=dtype, order=order, shape=shape)
    _em.allocate(r)
    return ndarray._wrap(r)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    r = empty_like(a, dtype, order, shape=shape)
    _em.launch(lambda: r._a.fill(0), "memset")
    return r


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return full_like(a, 1, dtype, order, shape=shape)


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    r = empty_like(a, dtype, order, shape=shape)
    _em.launch(lambda: r._a.fill(fill_value), "elementwise")
    return r


def arange(start, stop=None, step=1, dtype=None):
    return _fresh(numpy.arange(start, stop, step, dtype=dtype))


# ---- functions with CuPy's own rules -------------------------------------------------------


def copyto(dst, src, casting="same_kind", where=None):
    """A memcpy when both are contiguous alike with one dtype and size (as CuPy), else one
    elementwise copy kernel (inputs overlapping dst in bounds are copied first)."""
    if isinstance(src, numpy.ndarray):
        if src.size != 1:
            raise ValueError("non-scalar numpy.ndarray cannot be used for copyto")
        src = src.reshape(())[()]
    if not isinstance(src, ndarray):
        _scalar_operand(src)
        try:  # NumPy decides whether this scalar may be cast (as CuPy does)
            numpy.copyto(numpy.empty((), dst.dtype), src, casting=casting)
        except TypeError:
            raise TypeError(f"Cannot cast {src!r} to {dst.dtype} in {casting} casting mode") from None
    elif not numpy.can_cast(src.dtype, dst.dtype, casting):
        raise TypeError(f"Cannot cast {src.dtype} to {dst.dtype} in {casting} casting mode")
    if where is not None:
        return _elementwise(
            lambda s, w, out: numpy.copyto(out[0], s, casting="unsafe", where=w), (src, where), (dst,), {}
        )
    if dst.size == 0:
        return
    if isinstance(src, ndarray):
        d, s = dst._a, src._a
        if (
            ((d.flags.c_contiguous and s.flags.c_contiguous) or (d.flags.f_contiguous and s.flags.f_contiguous))
            and d.dtype == s.dtype
            and d.size == s.size
        ):
            _em.launch(lambda: numpy.copyto(d, s.reshape(d.shape)), "memcpy")
            return
    _elementwise(lambda s, out: numpy.copyto(out[0], s, casting="unsafe"), (src,), (dst,), {})


def take(a, indices, axis=None, out=None):
    """CuPy's take: no ``mode``; indices wrap. One gather kernel."""
    if isinstance(indices, (list, numpy.ndarray)):
        indices = asarray(indices)
    ind = indices._a if isinstance(indices, ndarray) else _scalar_operand(indices)
    _check_devices([a] + [x for x in (indices, out) if isinstance(x, ndarray)])
    if out is None:
        return _fresh(numpy.take(a._a, ind, axis=axis, mode="wrap"), "gather")
    src, dst = a._a, out._a
    _em.launch(
        lambda: numpy.take(src, ind, axis=axis, out=dst, mode="wrap"),
        "gather",
        lambda: numpy.take(src, ind, axis=axis, out=numpy.empty_like(dst), mode="wrap"),
    )
    return out


def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    arrays = list(arrays)
    for x in arrays:
        if not isinstance(x, ndarray):
            raise TypeError(f"Only cupy arrays can be concatenated, got {type(x)}")
    _check_devices(arrays + ([out] if out is not None else []))
    _em.check_fail("elementwise")
    np_arrays = [x._a for x in arrays]
    if out is None:
        return _fresh(numpy.concatenate(np_arrays, axis=axis, dtype=dtype, casting=casting), launches=len(arrays))
    dst = out._a
    for i in range(len(arrays)):  # one copy kernel per input
        last = i == len(arrays) - 1
        _em.launch(
            (lambda: numpy.concatenate(np_arrays, axis=axis, out=dst, dtype=dtype, casting=casting))
            if last
            else (lambda: None),
            "elementwise",
        )
    return out


def _blas_operand(x):
    """cuBLAS reads C- or F-ordered matrices; anything else is copied first."""
    if not isinstance(x, ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if x._a.flags.c_contiguous or x._a.flags.f_contiguous:
        return x
    return x.copy()


def _matmul_shape(sa, sb):
    if not sa or not sb:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    a2 = (1,) + sa if len(sa) == 1 else sa
    b2 = sb + (1,) if len(sb) == 1 else sb
    if a2[-1] != b2[-2]:
        raise ValueError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0 (size {b2[-2]} is different from {a2[-1]})"
        )
    shape = numpy.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(sb) == 1:
        shape = shape[:-1]
    if len(sa) == 1:
        shape = shape[:-2] + shape[-1:]
    return shape


def matmul(a, b, out=None, *, dtype=None, casting="same_kind", **kw):
    """One cuBLAS launch (batched and broadcast included). 2-D operands neither C- nor
    F-ordered are copied first, and operands of a batched product (over 2-D) that are not
    C-contiguous; a broadcast batch allocates pointer arrays; an ``out`` that is not
    C-contiguous or has another dtype gets the product in a temporary, then a copy kernel
    into ``out`` (CuPy 14's rules). Refused while the current stream captures, as every cuBLAS
    call CuPy makes."""
    _em.check_fail("cublas")
    _em.cupy_binding_stream(_em.cublas_handle())
    _check_devices([x for x in (a, b, out) if isinstance(x, ndarray)])
    batched = max(getattr(a, "ndim", 0), getattr(b, "ndim", 0)) > 2
    if batched:  # CuPy's batched matmul: ascontiguousarray of each operand
        a, b = (x if x._a.flags.c_contiguous else x.copy() for x in (_blas_operand(a), _blas_operand(b)))
    else:
        a, b = _blas_operand(a), _blas_operand(b)
    rdt = numpy.result_type(a.dtype, b.dtype) if dtype is None else numpy.dtype(dtype)
    shape = _matmul_shape(a.shape, b.shape)
    if batched and (a.shape[:-2] != shape[:-2] or b.shape[:-2] != shape[:-2]):
        for _ in range(3):  # a broadcast batch: CuPy's pointer arrays for gemmBatched, each filled by a kernel
            _em.allocate(numpy.empty(int(numpy.prod(shape[:-2])), numpy.uintp))
            _em.launch(lambda: None, "elementwise")
    factor = 2 if _em.fail == "wrong" else 1
    A, B = a._a, b._a

    def product(target):
        numpy.matmul(A, B, out=target, dtype=rdt)
        if factor != 1:
            target *= factor

    if out is None:
        r = numpy.empty(shape, rdt)
        _em.allocate(r)
        _em.launch(lambda: product(r), "cublas")
        return ndarray._wrap(r)
    if out.shape != shape:
        raise ValueError(f"Shape mismatch: out {out.shape}, expected {shape}")
    if out._a.flags.c_contiguous and out.dtype == rdt:
        dst = out._a
        _em.launch(lambda: product(dst), "cublas")
        return out
    tmp = empty(shape, rdt)
    _em.launch(lambda: product(tmp._a), "cublas")
    _elementwise(lambda s, out: numpy.copyto(out[0], s, casting="unsafe"), (tmp,), (out,), {})
    return out


def dot(a, b, out=None):
    if isinstance(a, ndarray) and isinstance(b, ndarray) and a.ndim <= 2 and b.ndim <= 2 and a.ndim and b.ndim:
        return matmul(a, b, out=out)
    if not isinstance(a, ndarray) or not isinstance(b, ndarray) or not a.ndim or not b.ndim:
        return UFUNCS["multiply"](a, b, out=out)
    return _generic(numpy.dot)(a, b, out=out)


def _clip(x, lo, hi, out=None):
    return numpy.clip(x, lo, hi, out=None if out is None else out[0])


def clip(a, a_min=None, a_max=None, out=None, **kw):
    if a_min is None:
        return UFUNCS["minimum"](a, a_max, out=out)
    if a_max is None:
        return UFUNCS["maximum"](a, a_min, out=out)
    return _elementwise(_clip, (a, a_min, a_max), None if out is None else (out,), {})


def get_array_module(*args):
    import cupy

    return cupy


# ---- everything else: NumPy's function on the wrapped arrays ---------------------------------

SYNCING = {
    "nonzero",
    "argwhere",
    "flatnonzero",
    "unique",
    "unique_values",
    "unique_counts",
    "unique_inverse",
    "unique_all",
    "extract",
    "compress",
}


def _unwrap(x, arrays):
    if isinstance(x, ndarray):
        arrays.append(x)
        return x._a
    if isinstance(x, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array cannot be a CuPy operand")
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_unwrap(v, arrays) for v in x)
    return x


def _generic(np_func):
    """NumPy's function on the wrapped arrays: results sharing memory with an operand are
    views; each other array result is a new buffer, and the call counts as one kernel."""
    name = np_func.__name__

    def f(*args, **kwargs):
        arrays = []
        uargs = _unwrap(list(args), arrays)
        ukw = {k: _unwrap(v, arrays) for k, v in kwargs.items()}
        _check_devices(arrays)
        if name in SYNCING:
            _em.host_sync(f"cupy.{name} (its result's size)")
        out = kwargs.get("out")
        if out is not None:
            _em.launch(
                lambda: np_func(*uargs, **ukw),
                "elementwise",
                lambda: np_func(*uargs, **dict(ukw, out=numpy.empty_like(out._a))),
            )
            return out
        launched = [0]

        def wrap(r):
            if isinstance(r, numpy.generic):
                r = numpy.asarray(r)
            if isinstance(r, numpy.ndarray):
                for x in arrays:
                    if r is x._a:
                        return x
                for x in arrays:
                    if r.size == 0 and r.base is not None or _bounds_overlap(r, x._a):
                        return x._view(r)
                launched[0] += 1
                return _fresh(r, launches=1 if launched[0] == 1 else 0)
            if isinstance(r, (list, tuple)):
                items = [wrap(v) for v in r]
                return type(r)(*items) if hasattr(r, "_fields") else type(r)(items)
            return r

        return wrap(np_func(*uargs, **ukw))

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy's {name} on emulated CuPy arrays."
    return f


# ---- RawModule / RawKernel ------------------------------------------------------------------

_CTYPES = {
    "int": numpy.int32,
    "unsigned int": numpy.uint32,
    "long long": numpy.int64,
    "unsigned long long": numpy.uint64,
    "float": numpy.float32,
    "double": numpy.float64,
}
_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')


def _parse_param(text, real, kernel):
    t = re.sub(r"\b(const|__restrict__|__restrict)\b", " ", text)
    pointer = "*" in t
    words = t.replace("*", " ").split()
    base = " ".join(words[:-1])
    if base == "real":
        if real is None:
            raise ValueError(
                f"kernel {kernel!r} uses 'real' but the code has no 'typedef float real;' or 'typedef double real;'"
            )
        dt = real
    elif base in _CTYPES:
        dt = numpy.dtype(_CTYPES[base])
    else:
        raise ValueError(f"kernel {kernel!r}: unsupported parameter type {text.strip()!r}")
    return words[-1], dt, pointer


class RawKernel:
    """A kernel of CUDA source: arguments are checked as the CUDA signature requires, then
    the NumPy reference runs on flat views of the arrays' memory. One launch per call."""

    def __init__(
        self,
        code,
        name,
        options=(),
        backend="nvrtc",
        *,
        translate_cucomplex=False,
        enable_cooperative_groups=False,
        jitify=False,
        _params=None,
        _reference=None,
    ):
        self.code, self.name, self.options, self.backend = code, name, tuple(options), backend
        if _params is None:
            _params = RawModule(code=code, options=options)._kernels(name)
        self._params = _params
        self._reference = _reference if _reference is not None else _em.reference_lookup(name)

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        for g in (grid, block):
            if (
                not isinstance(g, tuple)
                or not 1 <= len(g) <= 3
                or not builtins.all(isinstance(v, numbers.Integral) and v > 0 for v in g)
            ):
                raise ValueError(f"grid and block must be tuples of 1 to 3 positive ints, got {g!r}")
        args = tuple(args)
        if len(args) != len(self._params):
            raise TypeError(f"kernel {self.name!r} takes {len(self._params)} arguments, got {len(args)}")
        host = []
        for x, (pname, dt, pointer) in zip(args, self._params):
            where = f"kernel {self.name!r} argument {pname!r}"
            if pointer:
                if not isinstance(x, ndarray):
                    raise TypeError(f"{where} is a {dt}* pointer: expected a cupy.ndarray, got {type(x).__name__}")
                if x.dtype != dt:
                    raise TypeError(f"{where} is a {dt}* pointer: got a {x.dtype} array")
                if x._a.flags.c_contiguous:
                    host.append(x._a.reshape(-1))
                elif x._a.flags.f_contiguous:
                    host.append(x._a.T.reshape(-1))
                else:
                    raise ValueError(f"{where}: a raw pointer needs a C- or F-contiguous array")
            else:
                if not isinstance(x, numpy.generic) or x.dtype != dt:
                    raise TypeError(
                        f"{where} is a {dt} scalar: pass numpy.{dt}(...), got {x!r} "
                        f"({type(x).__name__}; a Python number's width would be guessed)"
                    )
                host.append(x)
        _check_devices([x for x in args if isinstance(x, ndarray)])
        ref = self._reference
        _em.launch(lambda: ref(*host), "raw")


class RawModule:
    """CuPy 14.2's signature (``cupy/_core/raw.pyx``): keyword-only, ``options`` a tuple (a typed
    Cython argument: a list raises TypeError)."""

    def __init__(
        self,
        *,
        code=None,
        path=None,
        options=(),
        backend="nvrtc",
        translate_cucomplex=False,
        enable_cooperative_groups=False,
        name_expressions=None,
        jitify=False,
    ):
        if not isinstance(options, tuple):
            raise TypeError(f"Argument 'options' has incorrect type (expected tuple, got {type(options).__name__})")
        if code is None:
            with open(path) as fh:
                code = fh.read()
        self.code, self.options, self.backend = code, options, backend
        m = re.search(r"typedef\s+(float|double)\s+real\s*;", code)
        real = numpy.dtype(numpy.float32 if m.group(1) == "float" else numpy.float64) if m else None
        self._signatures = {
            name: [_parse_param(p, real, name) for p in params.split(",") if p.strip()]
            for name, params in _KERNEL_RE.findall(code)
        }

    def _kernels(self, name):
        if name not in self._signatures:
            raise ValueError(f"no kernel named {name!r} in the module (defined: {sorted(self._signatures)})")
        return self._signatures[name]

    def get_function(self, name):
        return RawKernel(
            self.code, name, self.options, _params=self._kernels(name), _reference=_em.reference_lookup(name)
        )
