"""CuPy: the NumPy op set (CuPy has the same API, ``out=`` included) on the current GPU, with
the step's fused formulas as kernels of their own, products through cuBLAS with alpha and beta,
per-step scalars read from device memory, and chunks of steps replayed as CUDA graphs.

- Kernels (``cuda_kernels``, compiled once per dtype and device by NVRTC): bias + activation
  after a layer's GEMM; the activation's derivative times the incoming error, with the bias
  gradient (or plain SGD's bias update) summed in the same pass; the output layer's bias, softmax
  or sigmoid and error; each optimiser's update; a chunk's loss, added to the epoch's on the device.
- Products: ``cupy.cublas.gemm`` into the output with alpha and beta (the SGD update is one
  GEMM), outputs contiguous so that nothing goes through a temporary; alpha and beta that
  change from step to step are device scalars (cuBLAS's device pointer mode).
- Per-step scalars (``step_inputs``): a chunk's are copied to the device at once, and each step
  reads its own; so a chunk of steps captured once as a CUDA graph (``capture``, on a stream of
  its own) replays with each chunk's rates and random keys (``replay``, on the current stream).

``backends.resolve`` makes the chosen device current for the run (array-api-compat ignores
``device=`` in CuPy's creation functions). No op synchronises with the GPU: there is no
boolean-mask assignment and nothing is read back inside a step. A kernel whose operands are not
laid out as it expects falls back to the base op set's formula.
"""

from __future__ import annotations

import cupy
import numpy

from xpnet.backends import cuda_kernels as kernels
from xpnet.backends.numpy import NumpyOps

CHUNK_BYTES = 4 << 20  # training rows gathered at once (not yet measured on a GPU)


def _feature_major(a) -> bool:
    """A 2-D (n, size) array stored contiguously as its (size, n) transpose."""
    return a.ndim == 2 and a.flags.f_contiguous


def _on_host(x) -> bool:
    """A Python number (cuBLAS and kernels read it by value), not a device scalar."""
    return isinstance(x, (int, float))


def _gemm_output(out) -> bool:
    """An output cuBLAS writes directly: 2-D, C- or F-contiguous."""
    return out is not None and out.ndim == 2 and (out.flags.c_contiguous or out.flags.f_contiguous)


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
        if not (_gemm_output(out) and a.ndim == b.ndim == 2):
            return super().matmul(a, b, out, alpha, beta)
        beta = 0.0 if beta is None else beta
        if not (_on_host(alpha) and _on_host(beta)):  # cuBLAS reads both from the device
            alpha, beta = self._scalar(alpha, out), self._scalar(beta, out)
        return cupy.cublas.gemm("N", "N", a, b, out=out, alpha=alpha, beta=beta)

    def _gemm(self, a, b, out):
        if _gemm_output(out) and a.ndim == b.ndim == 2:
            return cupy.cublas.gemm("N", "N", a, b, out=out)
        return super()._gemm(a, b, out)

    # ---- the fused formulas ------------------------------------------------------------------

    def dense(self, name: str, x, w, b, out=None, alpha=1.0):
        if out is None or not _feature_major(out) or not b.flags.c_contiguous:
            return super().dense(name, x, w, b, out, alpha)
        out = self.matmul(x, w, out=out, alpha=alpha)
        n, size = out.shape
        self._launch(
            "bias_act",
            out,
            kernels.grid(n * size),
            (out, b, self._int(n), self._int(size), self._int(kernels.ACTIVATIONS.index(name))),
        )
        return out

    def logits_and_error(self, kind: str, z, b, y, scale, out=None, total=None, alpha=1.0, beta=None, weights=None):
        if (
            out is None
            or not all(_feature_major(a) for a in (z, y, out))
            or not b.flags.c_contiguous
            or (total is not None and not self._bias_row(total, z))
            or (weights is not None and not weights.flags.c_contiguous)
        ):
            return super().logits_and_error(kind, z, b, y, scale, out, total, alpha, beta, weights)
        n, classes = z.shape
        mode = 0 if total is None else 1 if beta is None else 2
        self._launch(
            "output_error",
            z,
            (1,),
            (
                z,
                b,
                y,
                z if weights is None else weights,
                out,
                self._scalar(scale, z),
                z if total is None else total,
                self._scalar(alpha, z),
                self._scalar(0.0 if beta is None else beta, z),
                self._int(n),
                self._int(classes),
                self._int(kernels.OUTPUTS.index(kind)),
                self._int(mode),
                self._int(weights is not None),
            ),
        )
        return z, out, total

    def activation_grad(self, name: str, d, a, out=None):
        if out is not d or not _same_layout(d, a):
            return super().activation_grad(name, d, a, out)
        self._launch(
            "act_grad", d, kernels.grid(d.size), (d, a, self._int(d.size), self._int(kernels.ACTIVATIONS.index(name)))
        )
        return d

    def activation_grad_sum(self, name: str, d, a, out, total, alpha=1.0, beta=None):
        if out is not d or not (_feature_major(d) and _feature_major(a)) or not self._bias_row(total, d):
            return super().activation_grad_sum(name, d, a, out, total, alpha, beta)
        self._grad_sum(d, a, total, alpha, beta, kernels.ACTIVATIONS.index(name))
        return d, total

    def sum(self, x, axis: int, out=None, alpha=1.0, beta=None):
        if axis not in (0, -2) or out is None or not _feature_major(x) or not self._bias_row(out, x):
            return super().sum(x, axis, out, alpha, beta)
        self._grad_sum(x, x, out, alpha, beta, kernels.ACTIVATIONS.index("identity"))
        return out

    @staticmethod
    def _bias_row(total, d) -> bool:
        return total.shape == (1, d.shape[1]) and total.flags.c_contiguous

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
        if not _same_layout(p, g, *slots) or any(getattr(v, "ndim", 0) for v in c.values()):
            return super().optimizer_update(rule, p, g, slots, c)  # a population's per-member coefficients too
        per_step = (c["neg_lr"], c.get("neg_lr_mu", 0.0), 1.0) if rule != "adam" else (c["c2"], c["step"], c["decay"])
        self._launch(
            "opt_update",
            p,
            kernels.grid(p.size),
            (
                p,
                g,
                slots[0],
                slots[-1],
                self._int(p.size),
                self._int(kernels.RULES.index(rule)),
                *(self._real(c[k], p) for k in ("l2c", "mu", "b1", "b1c", "b2", "b2c", "eps")),
                *(self._scalar(k, p) for k in per_step),
            ),
        )
        return p, slots

    def loss_sum(self, kind: str, z, y, axis: int, total=None, weights=None, member_axis=None):
        if (
            total is None
            or member_axis is not None
            or z.ndim != 3
            or axis != 1
            or not all(a.flags.c_contiguous for a in (z, y) + (() if weights is None else (weights,)))
        ):
            return super().loss_sum(kind, z, y, axis, total, weights, member_axis)
        steps, classes, n = z.shape
        self._launch(
            "loss_sum",
            z,
            (1,),
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
            ),
        )
        return total

    # ---- a chunk's steps: scalars on the device, CUDA graphs ---------------------------------

    def step_inputs(self, per_step: list, like, keep: dict):
        """The chunk's scalars copied to the device at once (floats in like's dtype, rand keys as
        uint32) into buffers kept per chunk length; each step gets 0-d views of its row. A
        population's per-member values are copied step by step (populations run no graphs)."""
        if any(isinstance(v, numpy.ndarray) for v in per_step[0].values()):
            return super().step_inputs(per_step, like, keep)
        dtype = like.dtype
        names = tuple(per_step[0])
        ints = tuple(n for n in names if isinstance(per_step[0][n], int))
        floats = tuple(n for n in names if n not in ints)
        key = (len(per_step), names)
        if key not in keep:
            keep[key] = (
                cupy.empty((len(per_step), len(floats)), dtype=dtype),
                cupy.empty((len(per_step), max(1, len(ints))), dtype=numpy.uint32),
            )
        f, i = keep[key]
        f.set(numpy.array([[s[n] for n in floats] for s in per_step], dtype=dtype))
        if ints:
            i.set(numpy.array([[s[n] for n in ints] for s in per_step], dtype=numpy.uint32))
        return [
            {**{n: f[k, j] for j, n in enumerate(floats)}, **{n: i[k, j] for j, n in enumerate(ints)}}
            for k in range(len(per_step))
        ]

    def capture(self, fn):
        """``fn()``'s kernels captured as a CUDA graph on a stream of this op set's own."""
        streams = self.__dict__.setdefault("_streams", {})
        device = cupy.cuda.Device().id
        stream = streams.get(device)
        if stream is None:
            stream = streams[device] = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            try:
                fn()
            except BaseException:
                try:
                    stream.end_capture()
                except Exception:  # noqa: BLE001 (the capture's own error is the one to report)
                    pass
                raise
            return stream.end_capture()

    def replay(self, graph) -> None:
        graph.launch(cupy.cuda.get_current_stream())
