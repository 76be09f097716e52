"""The CuPy backend's fused kernels: each CUDA source beside its NumPy reference.

CuPy compiles ``module_source(dtype)`` once per dtype with NVRTC (``cupy.RawModule``); the
test suite compiles the same source for sm_80 and sm_90 without a GPU, and its emulated
CuPy runs each kernel's NumPy reference (``REFERENCES``) in its place. A reference takes
the kernel's own arguments, each array as the flat memory its pointer points to and each
scalar as the NumPy scalar passed, and reads them as the CUDA code does; the arithmetic is
the base op set's (``base.Ops`` on NumPy), so each formula stays written once, there.

Layouts (all arrays contiguous): a layer's (n, size) batch is stored feature-major, as its
(size, n) transpose (``Ops.feature_major``), so element (i, f) is at ``f * n + i``; logits,
targets and the output error are stored class-major the same way, a chunk's logits as
``steps`` such blocks one after the other. Per-step scalars (learning rate, decay, the error's
scale) are read through pointers, so a replayed CUDA graph reads each step's own values.
"""

from __future__ import annotations

import numpy as np

from xpnet.backends.base import Ops

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")  # the ``act`` argument: an index into this
OUTPUTS = ("softmax", "sigmoid", "identity")  # the ``kind`` argument
RULES = ("momentum", "nesterov", "adam")  # the ``rule`` argument of opt_update
BLOCK = 256  # threads per block of every kernel

_HELPERS = r"""
__device__ __forceinline__ real minus_infinity() { return (real)-__longlong_as_double(0x7ff0000000000000LL); }
__device__ __forceinline__ real sigmoid_of(real z) {
    // base.Ops.sigmoid's: e = exp(-|z|), (z > 0 ? 1 : e) / (1 + e): one exp, no overflow, full
    // relative precision for large negative z down to the smallest normal number (CuPy compiles
    // with -ftz=true: float32's subnormals, z < -87.3, are 0), NaN kept
    real e = exp(-fabs(z));
    return (z > (real)0 ? (real)1 : e) / ((real)1 + e);
}
__device__ __forceinline__ real activate(real z, int act) {
    if (act == 0) return fmax(z, (real)0);
    if (act == 1) return tanh(z);
    if (act == 2) return sigmoid_of(z);
    return z;
}
__device__ __forceinline__ real derivative(real a, int act) {  // f'(z) written with a = f(z)
    if (act == 0) return a > (real)0 ? (real)1 : (real)0;
    if (act == 1) return (real)1 - a * a;
    if (act == 2) return ((real)1 - a) * a;
    return (real)1;
}
template <typename T>
__device__ T block_sum(T v, T* shared) {  // the sum of v over the block, in a fixed order
    __syncthreads();  // a previous call's readers are done with shared
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    return shared[0];
}
"""

_SOURCES = {
    # z (size, n) <- activation(z + b) with b (size,): a layer's bias and activation after its GEMM
    "bias_act": r"""
extern "C" __global__ void bias_act(real* z, const real* b, int n, int size, int act) {
    long long count = (long long)n * size;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < count;
         k += (long long)gridDim.x * blockDim.x)
        z[k] = activate(z[k] + b[k / n], act);
}
""",
    # d (count) <- d * f'(a): the error through the activation, any layout shared by d and a
    "act_grad": r"""
extern "C" __global__ void act_grad(real* d, const real* a, int count, int act) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < count; k += gridDim.x * blockDim.x)
        d[k] = d[k] * derivative(a[k], act);
}
""",
    # one block per feature f of d (size, n): d[f] <- d[f] * f'(a[f]) (act 3: unchanged), and
    # total[f] <- beta * total[f] + alpha * sum_i d[f, i] (beta left out unless accumulate):
    # the bias gradient, and with alpha = -1, beta = 1 plain SGD's bias update
    "grad_sum": r"""
extern "C" __global__ void grad_sum(real* d, const real* a, real* total, const real* alpha, const real* beta,
                                    int n, int act, int accumulate) {
    __shared__ real shared[256];
    long long row = (long long)blockIdx.x * n;
    real partial = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        real v = d[row + i];
        if (act != 3) { v = v * derivative(a[row + i], act); d[row + i] = v; }
        partial += v;
    }
    real s = block_sum(partial, shared);
    if (threadIdx.x == 0)
        total[blockIdx.x] = (accumulate ? beta[0] * total[blockIdx.x] : (real)0) + alpha[0] * s;
}
""",
    # one block per row f of x (rows, n), each row's n values contiguous: total[f] <- sum_i x[f, i]^2
    # (max-norm's squared norm of each unit's incoming weights; cupy.sum would go through CUB,
    # which allocates its result and workspace at every call)
    "sum_squares": r"""
extern "C" __global__ void sum_squares(const real* x, real* total, int n) {
    __shared__ real shared[256];
    long long row = (long long)blockIdx.x * n;
    real partial = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        real v = x[row + i];
        partial += v * v;
    }
    real s = block_sum(partial, shared);
    if (threadIdx.x == 0) total[blockIdx.x] = s;
}
""",
    # one block per member m over the samples i of its z, d (classes, n) (members such blocks one
    # after the other) and its targets y (one block shared, y_members 1, or each member's): z <- z + b
    # (the logits), the output error d <- scale * dLoss/dz: softmax(z) - y (kind 0),
    # (a - y) a (1 - a), a = sigmoid(z) (kind 1), or z - y (2), times sample i's weight w[i] where
    # ``weighted`` (scale[m] where ``scale_each``, else scale[0]); then, unless sum_mode is 0,
    # total[c] <- beta * total[c] (sum_mode 2) + alpha * sum_i d[c, i]
    # (the bias gradient, or with total = b plain SGD's update of b, read above before it changes);
    # b and total: members rows of classes; a solo run is members = 1
    "output_error": r"""
extern "C" __global__ void output_error(real* z, const real* b, const real* y, const real* w, real* d,
                                        const real* scale, real* total, const real* alpha, const real* beta,
                                        int n, int classes, int kind, int sum_mode, int weighted,
                                        int members, int y_members, int scale_each) {
    __shared__ real shared[256];
    long long member = blockIdx.x, block = (long long)classes * n;
    if (member >= members) return;
    z += member * block;
    d += member * block;
    b += member * classes;
    if (y_members > 1) y += member * block;
    if (sum_mode != 0) total += member * classes;
    real sc = scale[scale_each ? member : 0];
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        real m = minus_infinity(), f = weighted ? sc * w[i] : sc;
        for (int c = 0; c < classes; ++c) {
            real v = z[(long long)c * n + i] + b[c];
            z[(long long)c * n + i] = v;
            m = fmax(m, v);
        }
        if (kind == 0) {
            real s = 0;
            for (int c = 0; c < classes; ++c) s += exp(z[(long long)c * n + i] - m);
            for (int c = 0; c < classes; ++c) {
                long long k = (long long)c * n + i;
                d[k] = (exp(z[k] - m) / s - y[k]) * f;
            }
        } else if (kind == 2) {
            for (int c = 0; c < classes; ++c) {
                long long k = (long long)c * n + i;
                d[k] = (z[k] - y[k]) * f;
            }
        } else {
            for (int c = 0; c < classes; ++c) {
                long long k = (long long)c * n + i;
                real a = sigmoid_of(z[k]);
                d[k] = (a - y[k]) * (((real)1 - a) * a) * f;
            }
        }
    }
    if (sum_mode == 0) return;
    for (int c = 0; c < classes; ++c) {
        real partial = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) partial += d[(long long)c * n + i];
        real s = block_sum(partial, shared);
        if (threadIdx.x == 0) total[c] = (sum_mode == 2 ? beta[0] * total[c] : (real)0) + alpha[0] * s;
    }
}
""",
    # one block per member m: total[m] += the loss summed over ``steps`` blocks of logits z
    # (steps, members, classes, n) against targets y (steps, classes, n) shared by the members
    # (y_members 1) or each member's (steps, members, classes, n) (y_members = members):
    # cross-entropy of softmax(z) (kind 0), 0.5 * (sigmoid(z) - y)^2 (1) or 0.5 * (z - y)^2 (2), each
    # sample's times its weight w (steps, n) where ``weighted``; a solo run is members = 1
    "loss_sum": r"""
extern "C" __global__ void loss_sum(const real* z, const real* y, const real* w, double* total, int steps,
                                    int classes, int n, int kind, int weighted, int members, int y_members) {
    __shared__ double shared[256];
    double partial = 0;
    long long block = (long long)classes * n;
    for (long long j = threadIdx.x; j < (long long)steps * n; j += blockDim.x) {
        long long t = ((j / n) * y_members + (y_members > 1 ? blockIdx.x : 0)) * block + j % n;  // in y
        long long base = ((j / n) * members + blockIdx.x) * block + j % n;  // in z
        double sample = 0;
        if (kind == 0) {
            real m = minus_infinity(), s = 0, dot = 0, ysum = 0;
            for (int c = 0; c < classes; ++c) m = fmax(m, z[base + (long long)c * n]);
            for (int c = 0; c < classes; ++c) {
                real v = z[base + (long long)c * n] - m;
                s += exp(v);
                dot += y[t + (long long)c * n] * v;
                ysum += y[t + (long long)c * n];
            }
            sample = (double)(ysum * log(s) - dot);  // -sum_c y (z - m - log s)
        } else {
            for (int c = 0; c < classes; ++c) {
                real v = z[base + (long long)c * n];
                real e = (kind == 2 ? v : sigmoid_of(v)) - y[t + (long long)c * n];
                sample += 0.5 * (double)(e * e);
            }
        }
        partial += weighted ? sample * (double)w[j] : sample;
    }
    double s = block_sum(partial, shared);
    if (threadIdx.x == 0) total[blockIdx.x] += s;
}
""",
    # one optimiser step of count parameters p with gradient g and slots s0 (s1): momentum and
    # nesterov (k0 = -lr, k1 = -lr * momentum), adam (k0 = c2, k1 = -lr * c1, k2 = adamw's
    # decay 1 - lr * weight_decay, or 1; b1c = 1 - b1, b2c = 1 - b2 rounded from the host's
    # doubles); l2c couples the seeds' L2 into g (weights only). The parameters are ``members``
    # blocks of count / members (a population's, one member's after another; a solo run's: one):
    # coefficient j of (l2c, mu, k0, k1, k2) is member m's at [m] where bit j of ``each`` is set,
    # else the one value at [0]
    "opt_update": r"""
extern "C" __global__ void opt_update(real* p, const real* g, real* s0, real* s1, int count, int rule,
                                      const real* l2c, const real* mu, real b1, real b1c, real b2, real b2c,
                                      real eps, const real* k0, const real* k1, const real* k2, int members,
                                      int each) {
    int per = count / members;
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < count; k += gridDim.x * blockDim.x) {
        int m = k / per;
        real gk = g[k] + l2c[each & 1 ? m : 0] * p[k];
        real c0 = k0[each & 4 ? m : 0], c1 = k1[each & 8 ? m : 0];
        if (rule < 2) {
            real v = mu[each & 2 ? m : 0] * s0[k] + gk;
            s0[k] = v;
            p[k] = rule == 0 ? p[k] + c0 * v : (p[k] + c0 * gk) + c1 * v;
        } else {
            real m1 = b1 * s0[k] + b1c * gk;
            real v = b2 * s1[k] + b2c * (gk * gk);
            s0[k] = m1;
            s1[k] = v;
            p[k] = p[k] * k2[each & 16 ? m : 0] + c1 * (m1 / (sqrt(v * c0) + eps));
        }
    }
}
""",
}

NAMES = tuple(_SOURCES)


def module_source(dtype) -> str:
    """The CUDA source of every kernel for float32 or float64 (``real``)."""
    real = {"float32": "float", "float64": "double"}[np.dtype(dtype).name]
    return f"typedef {real} real;\n" + _HELPERS + "".join(_SOURCES.values())


def grid(count: int, cap: int = 4096) -> tuple[int]:
    """Blocks of BLOCK threads covering ``count`` elements (grid-stride loops beyond ``cap``)."""
    return (max(1, min(cap, -(-count // BLOCK))),)


# ---- the NumPy references ----------------------------------------------------------------

_REF = Ops(__import__("array_api_compat").array_namespace(np.zeros(1)))


def _ref_bias_act(z, b, n, size, act):
    Z = z[: size * n].reshape(size, n).T  # (n, size)
    Z[...] = _REF.activate(ACTIVATIONS[act], _REF.add(Z, b[:size].reshape(1, size)))


def _ref_act_grad(d, a, count, act):
    d[:count] = _REF.activation_grad(ACTIVATIONS[act], d[:count], a[:count])


def _ref_grad_sum(d, a, total, alpha, beta, n, act, accumulate):
    rows = total.shape[0]  # one block per element of total
    D = d[: rows * n].reshape(rows, n)
    if act != 3:
        D[...] = _REF.activation_grad(ACTIVATIONS[act], D, a[: rows * n].reshape(rows, n))
    t = total.reshape(rows, 1)
    t[...] = _REF.sum(D, 1, out=t, alpha=alpha[0], beta=beta[0] if accumulate else None)


def _ref_sum_squares(x, total, n):
    rows = total.shape[0]  # one block per element of total
    total[:rows] = _REF.sum_squares(x[: rows * n].reshape(rows, n), 1).reshape(rows)


def _ref_output_error(
    z, b, y, w, d, scale, total, alpha, beta, n, classes, kind, sum_mode, weighted, members, y_members, scale_each
):
    block = classes * n
    for m in range(members):
        Z = z[m * block : (m + 1) * block].reshape(classes, n)
        Z[...] = _REF.add(Z, b[m * classes : (m + 1) * classes].reshape(classes, 1))
        Y = y[(m if y_members > 1 else 0) * block :][:block].reshape(classes, n)
        D = d[m * block : (m + 1) * block].reshape(classes, n)
        D[...] = _REF.output_error(OUTPUTS[kind], Z, Y, scale[m if scale_each else 0], 0)
        if weighted:
            D[...] = _REF.multiply(D, w[:n].reshape(1, n))
        if sum_mode:
            t = total[m * classes : (m + 1) * classes].reshape(classes, 1)
            t[...] = _REF.sum(D, 1, out=t, alpha=alpha[0], beta=beta[0] if sum_mode == 2 else None)


def _ref_loss_sum(z, y, w, total, steps, classes, n, kind, weighted, members, y_members):
    count = steps * classes * n
    Z = z[: count * members].reshape(steps, members, classes, n)
    Y = y[: count * y_members].reshape(steps, y_members, classes, n)
    weights = w[: steps * n].reshape(steps, 1, n) if weighted else None
    total[:members] += _REF.loss_sum(OUTPUTS[kind], Z, Y, 2, None, weights, member_axis=1)


def _ref_opt_update(p, g, s0, s1, count, rule, l2c, mu, b1, b1c, b2, b2c, eps, k0, k1, k2, members, each):
    per = count // members

    def coefficient(v, bit):  # each member's (members, 1), or the one value
        return v[:members].reshape(members, 1) if each & bit else v[0]

    c = {"l2c": coefficient(l2c, 1), "mu": coefficient(mu, 2), "b1": b1, "b1c": b1c, "b2": b2, "b2c": b2c, "eps": eps}
    k = {key: coefficient(v, bit) for key, v, bit in (("k0", k0, 4), ("k1", k1, 8), ("k2", k2, 16))}
    c |= {"neg_lr": k["k0"], "neg_lr_mu": k["k1"]} if rule < 2 else {"c2": k["k0"], "step": k["k1"], "decay": k["k2"]}

    def blocks(a):  # the members' blocks of a's first count elements, (members, per)
        return a[:count].reshape(members, per)

    slots = [blocks(s0)] if rule < 2 else [blocks(s0), blocks(s1)]
    new_p, new_slots = _REF.optimizer_update(RULES[rule], blocks(p), blocks(g).copy(), slots, c)
    blocks(p)[...] = new_p
    for old, new in zip(slots, new_slots):
        old[...] = new


REFERENCES = {name: globals()[f"_ref_{name}"] for name in NAMES}
