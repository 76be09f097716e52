"""CuPy: the NumPy op set (CuPy has the same API, ``out=`` included) on the current GPU, with
the step's fused formulas as kernels of their own, products through cuBLAS with alpha and beta,
per-step scalars read from device memory, and chunks of steps replayed as CUDA graphs.

- Kernels (``cuda_kernels``, compiled once per dtype and device by NVRTC): bias + activation
  after a layer's GEMM; the activation's derivative times the incoming error, with the bias
  gradient (or plain SGD's bias update) summed in the same pass; the output layer's bias, softmax
  or sigmoid and error; each optimiser's update; a chunk's loss, added to the epoch's on the device;
  max-norm's squared norms.
- Products: one cuBLAS GEMM into the output with alpha and beta (the SGD update is one GEMM),
  operands read where they lie, so that nothing goes through a temporary; alpha and beta that
  change from step to step are device scalars (cuBLAS's device pointer mode). The GEMMs are
  libcublas's own functions (``cublas``): CuPy's bindings are refused inside a capture.
- Per-step scalars (``step_inputs``): a chunk's are copied to the device at once, and each step
  reads its own; so a chunk of steps captured once as a CUDA graph (``capture``, on a stream of
  its own) replays with each chunk's rates and random keys (``replay``, on the current stream);
  where a chunk cannot be captured (``capture`` gives None) the steps run eagerly.

``backends.resolve`` makes the chosen device current for the run (array-api-compat ignores
``device=`` in CuPy's creation functions). No op synchronises with the GPU: there is no
boolean-mask assignment and nothing is read back inside a step. A kernel whose operands are not
laid out as it expects falls back to the base op set's formula.
"""

from __future__ import annotations

import cupy
import numpy
from cupy._core import _routines_linalg
from cupy_backends.cuda.libs import cublas as cublas_lib

from xpnet.backends import cublas
from xpnet.backends import cuda_kernels as kernels
from xpnet.backends.numpy import NumpyOps, wide

CHUNK_BYTES = 4 << 20  # training rows gathered at once (not yet measured on a GPU)


def _feature_major(a) -> bool:
    """A 2-D (n, size) array stored contiguously as its (size, n) transpose."""
    return a.ndim == 2 and a.flags.f_contiguous


def _features(x):
    """A layer's batch as the fused kernels read it, (n, features) stored feature-major (each
    feature's n values contiguous): a 2-D (n, size) stored so as itself, a population's
    (K, n, size) stored as (K, size, n) as the (n, K*size) of every member's features (a view);
    None where it is not so laid out."""
    if x.ndim == 2:
        return x if _feature_major(x) else None
    if x.ndim == 3 and x.mT.flags.c_contiguous:
        K, n, size = x.shape
        return x.mT.reshape(K * size, n).T
    return None


def _class_major(x):
    """Logits, targets or an output error (n, classes), or a population's (K, n, classes),
    stored class-major: their (classes, n) (or (K, classes, n)) transpose, C-contiguous; else None."""
    return x.mT if x.ndim in (2, 3) and x.mT.flags.c_contiguous else None


def _per_feature(v, features: int):
    """A bias row (1, size), or a population's (K, 1, size), C-contiguous, as the (1, K*size)
    row of every member's features; None where it is not that (or not ``features`` long)."""
    if v is None or v.ndim not in (2, 3) or v.shape[-2] != 1 or v.size != features or not v.flags.c_contiguous:
        return None
    return v.reshape(1, features)


def _over_batch(x, axis: int, out):
    """(x's features as the fused kernels read them, ``out`` as their one row) for a sum of x
    over its batch axis (-2) into ``out``; (None, None) where not so laid out."""
    rows = _features(x) if out is not None and axis % x.ndim == x.ndim - 2 else None
    return rows, None if rows is None else _per_feature(out, rows.shape[1])


def _one_value(v) -> bool:
    """A coefficient all of whose uses read one value: None, a number or a 0-d device scalar
    (not a population's per-member (K, 1, 1))."""
    return v is None or _on_host(v) or v.ndim == 0


def _tf32() -> bool:
    """Whether float32 products may use TensorFloat-32: CuPy's compute type for float32, which
    ``devices.resolve`` sets from ``--tf32``."""
    return _routines_linalg.get_compute_type(numpy.float32) == _routines_linalg.COMPUTE_TYPE_TF32


def _per_member(v, like) -> bool:
    """A population's per-member coefficient as the kernels read it beside like's (K, ...)
    stacks: a contiguous device array of one value per member ((K, 1, 1)) in like's dtype."""
    return (
        isinstance(v, cupy.ndarray)
        and like.ndim == 3
        and v.size == like.shape[0]
        and v.flags.c_contiguous
        and v.dtype == like.dtype
    )


def _integral(v) -> bool:
    """A rand key (an int, or a population's per-member uint32 array), not a float."""
    return isinstance(v, (int, numpy.integer)) or (isinstance(v, numpy.ndarray) and v.dtype.kind in "iu")


def _on_host(x) -> bool:
    """A Python number (cuBLAS and kernels read it by value), not a device scalar."""
    return isinstance(x, (int, float))


def _matrix_layout(x):
    """(transposed, leading dimension, batch stride) of a 2-D or 3-D array's matrices as cuBLAS
    reads them (in elements; a 2-D array is shared by every batch: stride 0), or None where
    cuBLAS cannot read it in place (a matrix neither row- nor column-contiguous)."""
    if x.ndim not in (2, 3) or x.dtype.char not in "fd" or any(s < 0 for s in x.strides):
        return None
    rows, cols = x.shape[-2:]
    sr, sc = (s // x.itemsize for s in x.strides[-2:])
    batch = x.strides[0] // x.itemsize if x.ndim == 3 else 0
    if (cols == 1 or sc == 1) and (rows == 1 or sr >= cols):
        return False, max(sr if rows > 1 else cols, cols, 1), batch
    if (rows == 1 or sr == 1) and (cols == 1 or sc >= rows):
        return True, max(sc if cols > 1 else rows, rows, 1), batch
    return None


_COEFFICIENTS = {}  # (dtype char, value) -> the value as a host array: host alpha and beta of the GEMMs


def _same_layout(*arrays) -> bool:
    """All the same shape and all C-contiguous or all F-contiguous (one flat index each)."""
    shape = arrays[0].shape
    return all(a.shape == shape for a in arrays) and (
        all(a.flags.c_contiguous for a in arrays) or all(a.flags.f_contiguous for a in arrays)
    )


class CupyOps(NumpyOps):
    """In-place primitives on CuPy arrays, and the fused kernels."""

    name = "cupy"
    lib = cupy
    weight_layout = "out_in"
    chunk_bytes = CHUNK_BYTES
    take_mode = {}  # CuPy's take has no mode (it wraps) and writes into out directly
    graphs = True
    lanes = False  # one GPU: its members are already one step's kernels
    _sum_reduce = staticmethod(cupy.sum)
    _max_reduce = staticmethod(cupy.max)

    def feature_major(self, size: int, n: int) -> bool:
        return True

    def zeros(self, shape, like, dtype=None):
        return cupy.zeros(tuple(shape), dtype=self._dtype(dtype, like))

    def device_key(self, x):
        return x.device.id  # a cupy.cuda.Device is not hashable

    # ---- kernels, device scalars --------------------------------------------------------------

    def _launch(self, name: str, like, grid, args, block=(kernels.BLOCK,)) -> None:
        """Run kernel ``name`` of like's dtype (its module compiled on first use per device)."""
        cache = self.__dict__.setdefault("_functions", {})
        key = (name, like.dtype.name, self.device_key(like))
        fn = cache.get(key)
        if fn is None:
            module = cache.get(key[1:])
            if module is None:
                module = cache[key[1:]] = cupy.RawModule(
                    code=kernels.module_source(like.dtype), options=("-std=c++14",)
                )
            fn = cache[key] = module.get_function(name)
        fn(grid, block, args)

    def _scalar(self, value, like):
        """``value`` as a 0-d device array of like's dtype: a device scalar as it is, a number
        as a constant made once (so that kernels and cuBLAS read every scalar from memory)."""
        if not _on_host(value):
            return value
        cache = self.__dict__.setdefault("_constants", {})
        key = (float(value), like.dtype.name, self.device_key(like))
        c = cache.get(key)
        if c is None:
            c = cache[key] = cupy.full((), value, dtype=like.dtype)
        return c

    @staticmethod
    def _int(value: int):
        return numpy.int32(value)

    def _real(self, value, like):
        return like.dtype.type(value)

    # ---- products ----------------------------------------------------------------------------

    def matmul(self, a, b, out=None, alpha=1.0, beta=None):
        if out is not None and out.ndim == 3 and _on_host(alpha) and _per_member(beta, out):
            cupy.multiply(out, beta, out=out)  # each member's beta (plain SGD's decays), then a product added
            beta = 1.0
        if out is not None and self._cublas(a, b, out, alpha, 0.0 if beta is None else beta):
            return out
        return super().matmul(a, b, out, alpha, beta)

    def _gemm(self, a, b, out):
        if out is not None and self._cublas(a, b, out):
            return out
        return super()._gemm(a, b, out)

    def _cublas(self, a, b, out, alpha=1.0, beta=0.0) -> bool:
        """out = alpha * a @ b + beta * out as one cuBLAS GEMM reading every operand where it
        lies (transposed views included; ``cupy.matmul`` would copy some and allocate pointer
        arrays to broadcast): out (m, n), or a population's (K, m, n) stacks, strided-batched
        with a 2-D operand shared by every member (stride 0), or one wide 2-D GEMM where a stack
        meets the operand its members share. alpha and beta: both numbers (cuBLAS's host pointer
        mode) or read from the device (device scalars). False where the layouts do not allow it."""
        if out.ndim not in (2, 3) or not (_one_value(alpha) and _one_value(beta)):
            return False
        if self.is_transposed(out):  # out^T = b^T @ a^T, written row by row
            a, b, out = b.mT, a.mT, out.mT
        if wide(a, b, out):
            a, out = a.reshape(-1, a.shape[-1]), out.reshape(-1, out.shape[-1])
        la, lb, lc = _matrix_layout(a), _matrix_layout(b), _matrix_layout(out)
        batch = out.shape[0] if out.ndim == 3 else 1
        if (
            None in (la, lb, lc)
            or lc[0]
            or not a.dtype == b.dtype == out.dtype
            or any(x.ndim > out.ndim or (x.ndim == 3 and x.shape[0] != batch) for x in (a, b))
        ):
            return False
        m, n = out.shape[-2:]
        if _on_host(alpha) and _on_host(beta):
            mode = cublas_lib.CUBLAS_POINTER_MODE_HOST
            alpha, beta = (self._host_coefficient(v, out.dtype).ctypes.data for v in (alpha, beta))
        else:
            mode = cublas_lib.CUBLAS_POINTER_MODE_DEVICE
            alpha, beta = (self._scalar(v, out).data.ptr for v in (alpha, beta))
        handle = cupy.cuda.device.get_cublas_handle()
        if cublas_lib.getPointerMode(handle) != mode:
            cublas_lib.setPointerMode(handle, mode)
        math = cublas.TF32_MATH if out.dtype.char == "f" and _tf32() else cublas.DEFAULT_MATH
        if cublas_lib.getMathMode(handle) != math:  # the handle's, as --tf32 chose (CuPy sets it for its matmul only)
            cublas_lib.setMathMode(handle, math)
        # row-major out = a @ b is column-major out^T = b^T @ a^T: cuBLAS's A is b, its B is a
        blas, dtype, stream = self._blas(), "s" if out.dtype.char == "f" else "d", cupy.cuda.get_current_stream().ptr
        head = (int(lb[0]), int(la[0]), n, m, a.shape[-1], alpha)
        if out.ndim == 2:
            blas.gemm(dtype, handle, stream, *head, b.data.ptr, lb[1], a.data.ptr, la[1], beta, out.data.ptr, lc[1])
        else:
            blas.gemm_batched(
                dtype, handle, stream, *head, b.data.ptr, lb[1], lb[2], a.data.ptr, la[1], la[2],
                beta, out.data.ptr, lc[1], lc[2], batch,
            )  # fmt: skip
        return True

    def _blas(self):
        """The cuBLAS functions the products call (``cublas.functions``): libcublas's own,
        which a CUDA graph can capture, else CuPy's bindings. Found once per op set."""
        fns = self.__dict__.get("_blas_functions")
        if fns is None:
            handle = cupy.cuda.device.get_cublas_handle()  # CuPy loads libcublas with its first handle
            fns = self.__dict__["_blas_functions"] = cublas.functions(cublas_lib, handle)
        return fns

    @staticmethod
    def _host_coefficient(value: float, dtype):
        """``value`` as a one-element host array of ``dtype`` (cuBLAS's host pointer mode reads it
        during the call), made once per value."""
        key = (numpy.dtype(dtype).char, float(value))
        host = _COEFFICIENTS.get(key)
        if host is None:
            host = _COEFFICIENTS[key] = numpy.full(1, value, dtype)
        return host

    # ---- the fused formulas ------------------------------------------------------------------

    def dense(self, name: str, x, w, b, out=None, alpha=1.0):
        rows = None if out is None else _features(out)
        bias = None if rows is None else _per_feature(b, rows.shape[1])
        if bias is None:
            return super().dense(name, x, w, b, out, alpha)
        out = self.matmul(x, w, out=out, alpha=alpha)
        n, size = rows.shape  # a population's: every member's features
        self._launch(
            "bias_act",
            out,
            kernels.grid(n * size),
            (rows, bias, self._int(n), self._int(size), self._int(kernels.ACTIVATIONS.index(name))),
        )
        return out

    def logits_and_error(self, kind: str, z, b, y, scale, out=None, total=None, alpha=1.0, beta=None, weights=None):
        """The solo kernel's, or a population's (z, out (K, n, classes), b and total (K, 1, classes),
        y shared (n, classes) or each member's (K, n, classes), ``scale`` shared or (K, 1, 1)):
        one block per member."""
        members = z.shape[0] if z.ndim == 3 else 1
        zc, yc, dc = (None if a is None else _class_major(a) for a in (z, y, out))
        bias = _per_feature(b, members * z.shape[-1])
        row = None if total is None else _per_feature(total, members * z.shape[-1])
        scales = 1 if _one_value(scale) else scale.size if scale.flags.c_contiguous else 0
        if (
            any(v is None for v in (zc, yc, dc, bias))
            or (total is not None and row is None)
            or y.ndim > z.ndim
            or (y.ndim == 3 and y.shape[0] != members)
            or scales not in (1, members)
            or not (_one_value(alpha) and _one_value(beta))
            or (weights is not None and not weights.flags.c_contiguous)
        ):
            return super().logits_and_error(kind, z, b, y, scale, out, total, alpha, beta, weights)
        n, classes = z.shape[-2:]
        mode = 0 if total is None else 1 if beta is None else 2
        self._launch(
            "output_error",
            z,
            (members,),
            (
                zc,
                bias,
                yc,
                zc if weights is None else weights,
                dc,
                self._scalar(scale, z) if scales == 1 else scale,
                zc if total is None else row,
                self._scalar(alpha, z),
                self._scalar(0.0 if beta is None else beta, z),
                self._int(n),
                self._int(classes),
                self._int(kernels.OUTPUTS.index(kind)),
                self._int(mode),
                self._int(weights is not None),
                self._int(members),
                self._int(y.shape[0] if y.ndim == 3 else 1),
                self._int(scales > 1),
            ),
        )
        return z, out, total

    def activation_grad(self, name: str, d, a, out=None):
        if out is not d or d.shape != a.shape:
            return super().activation_grad(name, d, a, out)
        if not _same_layout(d, a):  # a population's (K, n, size) stored as (K, size, n): as its features
            d2, a2 = _features(d), _features(a)
            if d2 is None or a2 is None:
                return super().activation_grad(name, d, a, out)
            d, a = d2, a2
        self._launch(
            "act_grad", d, kernels.grid(d.size), (d, a, self._int(d.size), self._int(kernels.ACTIVATIONS.index(name)))
        )
        return out

    def activation_grad_sum(self, name: str, d, a, out, total, alpha=1.0, beta=None):
        rows, acts = _features(d), _features(a)
        row = None if rows is None else _per_feature(total, rows.shape[1])
        if (
            out is not d
            or row is None
            or acts is None
            or acts.shape != rows.shape
            or not (_one_value(alpha) and _one_value(beta))
        ):
            return super().activation_grad_sum(name, d, a, out, total, alpha, beta)
        self._grad_sum(rows, acts, row, alpha, beta, kernels.ACTIVATIONS.index(name))
        return d, total

    def sum(self, x, axis: int, out=None, alpha=1.0, beta=None):
        rows, row = _over_batch(x, axis, out)
        if row is None or not (_one_value(alpha) and _one_value(beta)):
            return super().sum(x, axis, out, alpha, beta)
        self._grad_sum(rows, rows, row, alpha, beta, kernels.ACTIVATIONS.index("identity"))
        return out

    def sum_squares(self, x, axis: int, out=None):
        rows, row = _over_batch(x, axis, out)
        if row is None:
            return super().sum_squares(x, axis, out)
        n, features = rows.shape  # one block per feature: its n values contiguous
        self._launch("sum_squares", x, (features,), (rows, row, self._int(n)))
        return out

    def _grad_sum(self, d, a, total, alpha, beta, act: int) -> None:
        """One block per feature: d <- d * f'(a) (act "identity": unchanged), total <- beta *
        total + alpha * d summed over the batch (beta None: total is overwritten)."""
        self._launch(
            "grad_sum",
            d,
            (d.shape[1],),
            (
                d,
                a,
                total,
                self._scalar(alpha, d),
                self._scalar(0.0 if beta is None else beta, d),
                self._int(d.shape[0]),
                self._int(act),
                self._int(beta is not None),
            ),
        )

    def optimizer_update(self, rule: str, p, g, slots: list, c: dict):
        """The solo kernel's, or a population's (p, g and slots (K, ...) stored alike, one member's
        elements after another's: C-contiguous, or weights (K, in, out) as their (K, out, in)
        transpose): its per-member coefficients ((K, 1, 1) device arrays: rates, momenta, L2,
        adamw's decay) read by member, the one kernel still."""
        per_step = (c["neg_lr"], c.get("neg_lr_mu", 0.0), 1.0) if rule != "adam" else (c["c2"], c["step"], c["decay"])
        each = [c["l2c"], c["mu"], *per_step]  # bit j of the kernel's ``each``: coefficient j per member
        flags = sum(1 << j for j, v in enumerate(each) if not _one_value(v))
        arrays = (p, g, *slots)
        if all(x.ndim == 3 and x.shape == p.shape and x.mT.flags.c_contiguous for x in arrays):
            arrays = tuple(x.mT for x in arrays)  # a population's weights (K, in, out) stored as (K, out, in)
        stacked = arrays[0].ndim == 3 and arrays[0].flags.c_contiguous  # one member's elements after another's
        if (
            not _same_layout(*arrays)
            or not all(_on_host(c[k]) for k in ("b1", "b1c", "b2", "b2c", "eps"))
            or (flags and not (stacked and all(_per_member(v, p) for v in each if not _one_value(v))))
        ):
            return super().optimizer_update(rule, p, g, slots, c)
        self._launch(
            "opt_update",
            p,
            kernels.grid(p.size),
            (
                *arrays[:3],
                arrays[-1],
                self._int(p.size),
                self._int(kernels.RULES.index(rule)),
                *(self._scalar(v, p) for v in each[:2]),
                *(self._real(c[k], p) for k in ("b1", "b1c", "b2", "b2c", "eps")),
                *(self._scalar(v, p) for v in each[2:]),
                self._int(p.shape[0] if flags else 1),
                self._int(flags),
            ),
        )
        return p, slots

    def loss_sum(self, kind: str, z, y, axis: int, total=None, weights=None, member_axis=None):
        """A chunk's logits blocks (steps, classes, n), or a population's (steps, K, classes, n)
        against targets (steps, 1, classes, n) or each member's (steps, K, classes, n), summed
        per member (``member_axis`` 1): one kernel."""
        solo = member_axis is None and z.ndim == 3 and axis == 1
        population = (
            member_axis == 1 and z.ndim == 4 and axis == 2 and y.shape in (z.shape, (z.shape[0], 1, *z.shape[2:]))
        )
        if (
            total is None
            or not (solo or population)
            or not all(a.flags.c_contiguous for a in (z, y, total) + (() if weights is None else (weights,)))
        ):
            return super().loss_sum(kind, z, y, axis, total, weights, member_axis)
        steps, members, classes, n = z.shape if population else (z.shape[0], 1, *z.shape[1:])
        self._launch(
            "loss_sum",
            z,
            (members,),
            (
                z,
                y,
                z if weights is None else weights,
                total,
                self._int(steps),
                self._int(classes),
                self._int(n),
                self._int(kernels.OUTPUTS.index(kind)),
                self._int(weights is not None),
                self._int(members),
                self._int(y.shape[1] if population else 1),
            ),
        )
        return total

    # ---- a chunk's steps: scalars on the device, CUDA graphs ---------------------------------

    def step_inputs(self, per_step: list, like, keep: dict):
        """The chunk's scalars copied to the device at once (floats in like's dtype, rand keys as
        uint32) into buffers kept per chunk length and layout; each step gets 0-d views of its
        row, and a population's per-member values (host arrays (K,)) (K, 1, 1) views of K
        columns, so that a captured chunk re-reads them on every replay."""
        first = per_step[0]
        names = tuple(first)
        ints = tuple(n for n in names if _integral(first[n]))
        floats = tuple(n for n in names if n not in ints)
        widths = {n: numpy.size(first[n]) for n in names}

        def columns(group):  # name -> its first column, and the row's width
            starts, at = {}, 0
            for n in group:
                starts[n], at = at, at + widths[n]
            return starts, at

        (f_at, f_width), (i_at, i_width) = columns(floats), columns(ints)
        key = (len(per_step), names, tuple(widths.values()))
        if key not in keep:
            keep[key] = (
                cupy.empty((len(per_step), max(1, f_width)), dtype=like.dtype),
                cupy.empty((len(per_step), max(1, i_width)), dtype=numpy.uint32),
            )
        f, i = keep[key]

        def rows(group, dtype):
            return numpy.array([numpy.concatenate([numpy.ravel(s[n]) for n in group]) for s in per_step], dtype=dtype)

        if floats:
            f.set(rows(floats, like.dtype))
        if ints:
            i.set(rows(ints, numpy.uint32))

        def view(buf, k, at, n):
            if widths[n] == 1 and not isinstance(first[n], numpy.ndarray):
                return buf[k, at]
            return buf[k, at : at + widths[n]].reshape(widths[n], 1, 1)

        return [
            {
                **{n: view(f, k, f_at[n], n) for n in floats},
                **{n: view(i, k, i_at[n], n) for n in ints},
            }
            for k in range(len(per_step))
        ]

    def capture(self, fn):
        """``fn()``'s kernels captured as a CUDA graph on a stream of this op set's own; None
        (nothing run: the caller runs ``fn`` itself) where a product cannot be captured: cuBLAS
        reached only through CuPy's bindings, or a product that falls back to ``cupy.matmul``
        (CuPy refuses cuBLAS calls of its own during a capture with NotImplementedError)."""
        if not self._blas().capture:
            return None
        streams = self.__dict__.setdefault("_streams", {})
        device = cupy.cuda.Device().id
        stream = streams.get(device)
        if stream is None:
            stream = streams[device] = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            try:
                fn()
            except BaseException as e:
                try:
                    stream.end_capture()
                except Exception:  # noqa: BLE001 (the capture's own error is the one to report)
                    pass
                if isinstance(e, NotImplementedError):
                    return None
                raise
            return stream.end_capture()

    def replay(self, graph) -> None:
        graph.launch(cupy.cuda.get_current_stream())
