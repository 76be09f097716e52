"""The op set in plain array-API code: the reference every backend is tested against.

Every op returns its result as a new array; ``out`` (and ``work`` buffers) are ignored
here, so the same code runs on immutable arrays (JAX) and on any array-API library
(array-api-strict). Backends that can write in place (NumPy, CuPy, PyTorch) override the
primitives to write into ``out`` and return it, so the formulas below run in place there,
without allocation. Callers always use the returned array: ``z = ops.exp(z, out=z)``.

Shapes: the training step works on 2-D batches, an activation of a layer of ``size`` units
for a batch of ``n`` being ``(n, size)``; reductions keep their axis (``keepdims``).

The formulas of the network (activations and their derivatives, the stable sigmoid,
softmax, the output error and the losses) are written once, here, from the primitives;
a backend may replace one by a faster library kernel (tested against this one).
"""

from __future__ import annotations

import threading

import numpy

M32 = 0xFFFFFFFF  # hashing works modulo 2**32


UNARY = ("exp", "log", "sqrt", "tanh", "cos", "sin", "abs", "negative", "floor")  # one-array elementwise ops
BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum")


def namespace_function(name: str):
    """The op ``name`` of one array: the array-API namespace's function (a new array)."""

    def op(self, x, out=None):
        return getattr(self.xp, name)(x)

    op.__name__ = op.__qualname__ = name
    return op


def library_function(name: str, arity: int = 1):
    """The op ``name`` of one array (or two operands, arrays or numbers): the library's own
    function with ``out=`` (``self.lib``)."""

    def op(self, x, out=None):
        return getattr(self.lib, name)(x, out=out)

    def op2(self, x, y, out=None):
        return getattr(self.lib, name)(x, y, out=out)

    fn = op if arity == 1 else op2
    fn.__name__ = fn.__qualname__ = name
    return fn


def is_one(x) -> bool:
    """True for the Python number 1 (a multiplication by it can be skipped); False for
    anything else, including traced or device scalars."""
    return is_number(x, 1)


def is_number(x, value) -> bool:
    """True for a Python number equal to ``value``; False for anything else, including traced
    or device scalars (comparing those would read them back)."""
    return isinstance(x, (int, float)) and x == value


class Ops:
    """Primitives and formulas on the arrays of one array-API namespace ``xp``."""

    name = "array-api"
    in_place = False  # whether ops write into ``out``; False: no buffers are made at all
    hash_dtype = "uint32"  # integer dtype of rand's hashing (products taken modulo 2**32)
    weight_layout = "out_in"  # how weights are stored: W (out, in) contiguous, or "in_out": W^T
    chunk_bytes = 512 << 10  # training rows (as stored) gathered at once
    lanes = False  # whether a population's members may be stepped in groups side by side, one thread each
    # (``Steps.run``): an op set that writes in place and whose kernels release the GIL on the CPU
    scale_in_gemm = False  # put the error's 1/n (and SGD's rate) into the update GEMMs' alpha (free with
    # alpha, as in torch's addmm) rather than into the output error (one small pass)

    def __init__(self, xp):
        self.xp = xp

    # ---- memory ---------------------------------------------------------------------------

    def buffer(self, shape, like, dtype=None, transposed: bool = False):
        """An uninitialised array of ``shape`` (stored as its transpose when ``transposed``)
        on like's device, for ops to write into; None here: ops make new arrays."""
        return None

    def zeros(self, shape, like, dtype=None):
        """A zero-filled array of ``shape`` in like's dtype (or ``dtype``) on like's device."""
        from array_api_compat import device

        return self.xp.zeros(shape, dtype=self._dtype(dtype, like), device=device(like))

    def zeros_like(self, x):
        """Zeros shaped, typed and (where the library keeps it) laid out like x."""
        return self.xp.zeros_like(x)

    def constant(self, host, like, dtype=None):
        """A host NumPy array as an array of this namespace on like's device (made once)."""
        from array_api_compat import device

        return self.xp.asarray(host, dtype=self._dtype(dtype, like), device=device(like))

    def work(self, shape, like, slot: str = "t"):
        """A scratch array for use inside one op, shaped ``shape`` on like's device and in its
        dtype (laid out like ``like`` when the shapes match), made on first use and kept, one
        per thread (ops called side by side, ``threads.at_once``, do not share it); None where
        ops make new arrays."""
        if not self.in_place:
            return None
        cache = self.__dict__.setdefault("_work", {})
        transposed = shape == like.shape and self.is_transposed(like)
        key = (shape, like.dtype, self.device_key(like), slot, transposed, threading.get_ident())
        buf = cache.get(key)
        if buf is None:
            buf = cache[key] = self.buffer(tuple(shape), like, transposed=transposed)
        return buf

    def is_transposed(self, a) -> bool:
        """A 2-D array whose columns, not rows, are contiguous (stored as its transpose)."""
        return False

    def device_key(self, x):
        """A hashable name of x's device, for caches (a library's device object may not be hashable)."""
        return getattr(x, "device", None)

    def feature_major(self, size: int, n: int) -> bool:
        """Store a hidden layer's (n, size) activations as their (size, n) transpose (True) or
        as they are: a per-library tuning choice (the BLAS's speed); no effect here."""
        return True

    def errors_ignored(self):
        """A context in which floating-point overflow does not warn: a diverging run is caught
        by its non-finite loss, and a model's overflowing outputs show as such. Of the array
        libraries only NumPy warns, and those built on it (array-api-strict, read-only arrays)."""
        return numpy.errstate(all="ignore")

    def _dtype(self, dtype, like):
        if dtype is None:
            return like.dtype
        return getattr(self.xp, dtype) if isinstance(dtype, str) else dtype

    # ---- elementwise ----------------------------------------------------------------------

    def add(self, x, y, out=None):
        return x + y

    def subtract(self, x, y, out=None):
        return x - y

    def multiply(self, x, y, out=None):
        return x * y

    def divide(self, x, y, out=None):
        return x / y

    def maximum(self, x, y, out=None):
        return self.xp.maximum(x, y)

    def minimum(self, x, y, out=None):
        return self.xp.minimum(x, y)

    # functions of one array: the namespace's own (their ``out`` ignored)
    exp, log, sqrt, tanh, cos, sin, abs, negative, floor = (namespace_function(name) for name in UNARY)

    def clip(self, x, lo, hi, out=None):
        """min(max(x, lo), hi) (no boolean-mask assignment: no device sync)."""
        return self.xp.minimum(self.xp.maximum(x, lo), hi)

    def greater(self, x, y, out=None):
        """1 where x > y else 0, in x's dtype."""
        return self.xp.astype(x > y, x.dtype)

    def less(self, x, y, dtype, out=None):
        """1 where x < y else 0, in ``dtype``."""
        return self.xp.astype(x < y, self._dtype(dtype, x))

    def astype(self, x, dtype, out=None):
        return self.xp.astype(x, self._dtype(dtype, x))

    def copy(self, x, out=None):
        return x

    def axpy(self, alpha, x, y):
        """y + alpha * x (in place into y where the backend can)."""
        return y + (x if is_one(alpha) else alpha * x)

    def axpby(self, alpha, x, beta, y):
        """alpha * x + beta * y (in place into y where the backend can)."""
        return (x if is_one(alpha) else alpha * x) + (y if is_one(beta) else beta * y)

    # ---- integers, for rand ---------------------------------------------------------------

    def bitwise_xor(self, x, y, out=None):
        return x ^ y

    def right_shift(self, x, bits: int, out=None):
        return self.xp.bitwise_right_shift(x, bits)

    def mul32(self, x, c: int, out=None):
        """x * c modulo 2**32, for c < 2**31 (uint32 wraps; a wider type is masked)."""
        r = x * c
        return r if x.dtype == self.xp.uint32 else r & M32

    # ---- gathers, reductions, products ----------------------------------------------------

    def take(self, x, idx, out=None):
        """x[idx] along axis 0 (rows of a 2-D array, items of a 1-D one)."""
        return self.xp.take(x, idx, axis=0)

    def sum(self, x, axis: int, out=None, alpha=1.0, beta=None):
        """alpha * sum(x, axis) (keepdims), plus beta * out when beta is given."""
        r = self.xp.sum(x, axis=axis, keepdims=True)
        return self._scaled(r, out, alpha, beta)

    def max(self, x, axis: int, out=None):
        return self.xp.max(x, axis=axis, keepdims=True)

    def sum_squares(self, x, axis: int, out=None):
        """sum(x * x, axis) (keepdims)."""
        return self.xp.sum(x * x, axis=axis, keepdims=True)

    def matmul(self, a, b, out=None, alpha=1.0, beta=None):
        """alpha * a @ b, plus beta * out when beta is given (a GEMM with alpha and beta)."""
        return self._scaled(self.xp.matmul(a, b), out, alpha, beta)

    def affine(self, x, w, b, out=None, alpha=1.0):
        """alpha * x @ w + b, the row b broadcast over x's rows: one layer's pre-activations."""
        r = self.xp.matmul(x, w)
        return (r if is_one(alpha) else alpha * r) + b

    def _scaled(self, r, out, alpha, beta):
        if not is_one(alpha):
            r = alpha * r
        if beta is not None:
            r = r + (out if is_one(beta) else beta * out)
        return r

    def pad(self, x, rows: int, cols: int, out=None):
        """Images x (B, rows*cols) in a zero frame, one pixel before and two after each row
        and column: (B, rows+3, cols+3). ``out``'s frame must already be zero."""
        xp = self.xp
        img = xp.reshape(x, (x.shape[0], rows, cols))
        zr = xp.zeros((x.shape[0], 1, cols), dtype=x.dtype, device=_device(x))
        img = xp.concat([zr, img, zr, zr], axis=1)
        zc = xp.zeros((x.shape[0], rows + 3, 1), dtype=x.dtype, device=_device(x))
        return xp.concat([zc, img, zc, zc], axis=2)

    def slice(self, x, start, count: int, axis: int = 0):
        """``count`` items of a 1-D or 2-D x from ``start`` along ``axis`` (0 or 1)."""
        if axis == 0:
            return x[start : start + count, ...]
        return x[:, start : start + count]

    # ---- running a chunk of steps ---------------------------------------------------------

    def steps_per_call(self, batch: int, row_bytes: int, flops_per_step: float) -> int:
        """Steps per chunk: as many batches as fit in ``chunk_bytes`` of stored rows (>= 1)."""
        return max(1, self.chunk_bytes // max(1, batch * row_bytes))

    def step_inputs(self, per_step: list, like, keep: dict):
        """A chunk's host scalars ([{name: float or int key}] per step) as its loop reads them
        (``keep``: the caller's dict for buffers made once); a population's per-member values
        (host arrays (K,)) as (K, 1, 1) arrays on like's device (floats in its dtype, integers
        in the hash dtype)."""
        if not any(isinstance(v, numpy.ndarray) for v in per_step[0].values()):
            return per_step
        return [{name: self._member_values(v, like) for name, v in s.items()} for s in per_step]

    def _member_values(self, v, like):
        if not isinstance(v, numpy.ndarray):
            return v
        dtype = self.hash_dtype if v.dtype.kind in "iu" else None
        return self.constant(v.reshape(-1, 1, 1), like, dtype)

    graphs = False  # whether ``capture`` records a chunk of steps for replay (CUDA graphs)

    def capture(self, fn):
        """``fn()``'s device work recorded, not run, for ``replay``; None where the library has no graphs."""
        return None

    def replay(self, graph) -> None:
        """Run the work ``capture`` recorded."""
        raise NotImplementedError

    def loop(self, body, count: int, carry, inputs):
        """carry = body(i, inputs of step i, carry) for i < count: a Python loop."""
        for i in range(count):
            carry = body(i, inputs[i], carry)
        return carry

    def compile(self, fn, static_argnames=(), donate_argnames=()):
        """``fn`` as it is (JAX: compiled once per static arguments)."""
        return fn

    # ---- the network's formulas -----------------------------------------------------------

    def sigmoid(self, z, out=None):
        """1 / (1 + exp(-z)), evaluated with one exp, e = exp(-|z|), as max(e, [z > 0]) / (1 + e):
        e / (1 + e) for z <= 0 and 1 / (1 + e) for z > 0 (e is 1 at z = 0). No overflow, full
        relative precision for large negative z (torch.sigmoid's accuracy), and NaN stays NaN."""
        t = self.work(z.shape, z)
        t = self.abs(z, out=t)
        t = self.negative(t, out=t)
        t = self.exp(t, out=t)
        out = self.greater(z, 0.0, out=out)
        out = self.maximum(out, t, out=out)
        t = self.add(t, 1.0, out=t)
        return self.divide(out, t, out=out)

    def activate(self, name: str, z, out=None):
        """The hidden activation of pre-activations z: relu, tanh or sigmoid."""
        if name == "relu":
            return self.maximum(z, 0.0, out=out)
        if name == "tanh":
            return self.tanh(z, out=out)
        return self.sigmoid(z, out=out)

    def activation_grad(self, name: str, d, a, out=None):
        """d * f'(z), written with the activation's output a = f(z): relu' = (a > 0),
        tanh' = 1 - a^2, sigmoid' = a (1 - a)."""
        t = self.work(a.shape, a)
        if name == "relu":
            t = self.greater(a, 0.0, out=t)
        elif name == "tanh":
            t = self.multiply(a, a, out=t)
            t = self.subtract(1.0, t, out=t)
        else:
            t = self.subtract(1.0, a, out=t)
            t = self.multiply(t, a, out=t)
        return self.multiply(d, t, out=out)

    def softmax(self, z, axis: int, out=None):
        """exp(z - max) / sum(exp(z - max)) along ``axis``."""
        axis %= z.ndim
        shape = tuple(1 if k == axis else s for k, s in enumerate(z.shape))
        m = self.max(z, axis, out=self.work(shape, z, "row"))
        out = self.subtract(z, m, out=out)
        out = self.exp(out, out=out)
        s = self.sum(out, axis, out=m)
        return self.divide(out, s, out=out)

    def log_softmax(self, z, axis: int):
        """z - max - log(sum(exp(z - max))) along ``axis`` (allocates: not for the step)."""
        xp = self.xp
        shifted = z - xp.max(z, axis=axis, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))

    def output_error(self, kind: str, z, y, scale, axis: int, out=None):
        """scale * dLoss/dz for logits z and targets y, classes along ``axis``.
        softmax + cross-entropy: softmax(z) - y; sigmoid + quadratic cost: (a - y) a (1 - a);
        identity + squared error: z - y."""
        if kind == "softmax":
            out = self.softmax(z, axis, out=out)
            out = self.subtract(out, y, out=out)
        elif kind == "identity":
            out = self.subtract(z, y, out=out)
        else:
            out = self.sigmoid(z, out=out)
            t = self.work(z.shape, z, "u")
            t = self.subtract(1.0, out, out=t)
            t = self.multiply(t, out, out=t)
            out = self.subtract(out, y, out=out)
            out = self.multiply(out, t, out=out)
        return out if is_one(scale) else self.multiply(out, scale, out=out)

    def loss_sum(self, kind: str, z, y, axis: int, total=None, weights=None, member_axis=None):
        """The loss summed over a batch (0-d): cross-entropy -sum(y log softmax(z)), the
        quadratic cost 0.5 * sum((sigmoid(z) - y)^2) or the squared error 0.5 * sum((z - y)^2);
        with ``weights`` (broadcasting against z without ``axis``: one per sample) each
        sample's loss times its weight; with ``member_axis`` (an axis of z other than ``axis``,
        a population's members) summed per member instead: (K,); with ``total`` (a 0-d or (K,)
        float64 array), total plus it (in place where the op set writes in place). Allocates
        here; called once per chunk."""
        xp = self.xp
        if kind == "softmax":
            per_sample = -xp.sum(y * self.log_softmax(z, axis), axis=axis)
        else:
            diff = (z if kind == "identity" else self.sigmoid(z)) - y
            per_sample = 0.5 * xp.sum(diff * diff, axis=axis)
        if weights is not None:
            per_sample = per_sample * weights
        if member_axis is None:
            r = xp.sum(per_sample)
        else:
            kept = member_axis % z.ndim - (member_axis % z.ndim > axis % z.ndim)  # its index once ``axis`` is summed
            r = xp.sum(per_sample, axis=tuple(i for i in range(per_sample.ndim) if i != kept))
        return r if total is None else self.add(total, self.astype(r, "float64"), out=total)

    # ---- fused formulas: written here from the primitives; a backend may run each as one kernel

    def dense(self, name: str, x, w, b, out=None, alpha=1.0):
        """activation(alpha * x @ w + b): a hidden layer's output (n, out) from its input x (n, in)."""
        z = self.affine(x, w, b, out=out, alpha=alpha)
        return self.activate(name, z, out=z)

    def logits_and_error(self, kind: str, z, b, y, scale, out=None, total=None, alpha=1.0, beta=None, weights=None):
        """(z + b, e = scale * dLoss/dz of it, total): the output layer's logits from its product z
        (n, classes), in place where the op set writes in place, their error (``output_error``),
        each sample's row times its weight where ``weights`` (n,) are given, and, where ``total``
        is given (1, classes), total = beta * total + alpha * e summed over the batch (the bias
        gradient, or plain SGD's bias update; else None)."""
        z = self.add(z, b, out=z)
        e = self.output_error(kind, z, y, scale, -1, out=out)
        if weights is not None:
            e = self.multiply(e, self.xp.expand_dims(weights, axis=-1), out=e)
        return z, e, None if total is None else self.sum(e, -2, out=total, alpha=alpha, beta=beta)

    def activation_grad_sum(self, name: str, d, a, out, total, alpha=1.0, beta=None):
        """(e = d * f'(a) (``activation_grad``, into out), total = beta * total + alpha * e summed
        over the batch (1, size)): a hidden layer's error and its bias gradient (or, with
        alpha = -lr and beta = 1, plain SGD's bias update)."""
        e = self.activation_grad(name, d, a, out=out)
        return e, self.sum(e, -2, out=total, alpha=alpha, beta=beta)

    def optimizer_update(self, rule: str, p, g, slots: list, c: dict):
        """One optimiser step of parameter p with gradient g (g may be overwritten) and its
        slots; returns (new p, new slots). ``c``: the coefficients (``optim.Optimizer.coefficients``):
        g <- g + l2c * p (the seeds' L2; weights only), then
        momentum: v <- mu v + g, p <- p + neg_lr v; nesterov: also, p <- p + neg_lr g + neg_lr_mu v;
        adam: m <- b1 m + b1c g, v <- b2 v + b2c g^2 (b1c = 1 - b1, b2c = 1 - b2, taken on the host),
        p <- decay p + step m / (sqrt(c2 v) + eps) (step = -lr / (1 - b1^t), c2 = 1 / (1 - b2^t),
        decay = adamw's 1 - lr * weight_decay, else 1)."""
        if not is_number(c["l2c"], 0):
            g = self.axpy(c["l2c"], p, g)
        if rule in ("momentum", "nesterov"):
            v = self.axpby(1.0, g, c["mu"], slots[0])
            if rule == "nesterov":
                p = self.axpy(c["neg_lr"], g, p)
                p = self.axpy(c["neg_lr_mu"], v, p)
            else:
                p = self.axpy(c["neg_lr"], v, p)
            return p, [v]
        m = self.axpby(c["b1c"], g, c["b1"], slots[0])
        g2 = self.multiply(g, g, out=g)
        v = self.axpby(c["b2c"], g2, c["b2"], slots[1])
        d = self.multiply(v, c["c2"], out=g2)
        d = self.sqrt(d, out=d)
        d = self.add(d, c["eps"], out=d)
        d = self.divide(m, d, out=d)
        if not is_one(c["decay"]):
            p = self.multiply(p, c["decay"], out=p)
        p = self.axpy(c["step"], d, p)
        return p, [m, v]

    def unit_floats(self, pixels, dtype, out=None):
        """Stored pixels (uint8) -> (floats, the factor still to apply): here x / 255 and 1.
        Floats pass through."""
        xp = self.xp
        if xp.isdtype(pixels.dtype, "real floating"):
            return pixels, 1.0
        return xp.astype(pixels, self._dtype(dtype, pixels)) * (1.0 / 255.0), 1.0


def _device(x):
    from array_api_compat import device

    return device(x)
