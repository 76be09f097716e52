"""A fully connected network: initialisation, forward and backward passes, by hand.

Public shapes follow the order-3 convention of the seeds:
  activations  x, a:  (batch, features, 1)
  weights      W:     (1, out, in)
  biases       b:     (1, out, 1)
  gradients    same shapes as the parameters.
Inside, every layer is one 2-D GEMM on free reshapes of those tensors:
``Z = A @ W[0].T + b[0].T`` with A: (batch, in), instead of ``batch`` broadcast
matrix-vector products ``W @ x``.

``params`` is a list of ``(W, b)`` pairs, first layer first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace

from .layers import ACTIVATIONS, OUTPUTS

INITS = ("normal", "xavier", "he")


@dataclass(frozen=True)
class Spec:
    """The architecture: layer sizes (input first), hidden activation, output, initialisation."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    output: str = "softmax"  # softmax + cross-entropy, or sigmoid + quadratic cost
    init: str = "auto"  # auto picks he for relu, xavier otherwise

    def __post_init__(self):
        if len(self.sizes) < 2 or any(int(s) < 1 for s in self.sizes):
            raise ValueError(f"layer sizes must be >= 2 positive integers, got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output {self.output!r}")
        if self.init not in INITS + ("auto",):
            raise ValueError(f"unknown init {self.init!r}")

    @property
    def resolved_init(self) -> str:
        if self.init != "auto":
            return self.init
        return "he" if self.activation == "relu" else "xavier"

    def param_shapes(self) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """[(W shape, b shape), ...] in the order-3 convention."""
        return [((1, o, i), (1, o, 1)) for i, o in zip(self.sizes[:-1], self.sizes[1:])]


def init_params_host(spec: Spec, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Initial parameters as float64 NumPy arrays, drawn from the host generator ``rng``.

    normal: W, b ~ N(0, 1) (the seeds); xavier: W ~ N(0, 2/(fan_in+fan_out)), b = 0;
    he: W ~ N(0, 2/fan_in), b = 0. The same rng state gives the same numbers on every backend.
    """
    kind = spec.resolved_init
    params = []
    for (wshape, bshape) in spec.param_shapes():
        _, fan_out, fan_in = wshape
        if kind == "normal":
            w = rng.standard_normal(wshape)
            b = rng.standard_normal(bshape)
        else:
            scale = np.sqrt(2.0 / (fan_in + fan_out)) if kind == "xavier" else np.sqrt(2.0 / fan_in)
            w = rng.standard_normal(wshape) * scale
            b = np.zeros(bshape)
        params.append((w, b))
    return params


def _as2d(x):
    """(batch, features, 1) -> (batch, features): a free reshape."""
    xp = array_namespace(x)
    return xp.reshape(x, (x.shape[0], x.shape[1]))


def _as3d(x):
    """(batch, features) -> (batch, features, 1): a free reshape."""
    xp = array_namespace(x)
    return xp.reshape(x, (x.shape[0], x.shape[1], 1))


def _wb2d(W, b):
    """(1, out, in), (1, out, 1) -> W^T (in, out), b (1, out): free reshapes.

    Which of W and W^T is contiguous depends on the backend (see ``params_to_device``);
    matmul takes either without a copy.
    """
    xp = array_namespace(W, b)
    return xp.matrix_transpose(xp.reshape(W, (W.shape[1], W.shape[2]))), xp.reshape(b, (1, b.shape[1]))


def _layer(A, W, b):
    """One affine layer on 2-D data: A (batch, in) -> Z (batch, out) = A @ W^T + b."""
    xp = array_namespace(A)
    Wt, b2 = _wb2d(W, b)
    return xp.matmul(A, Wt) + b2


def _public_w(Wt):
    """Contiguous W^T (in, out) -> the public (1, out, in) view of it."""
    xp = array_namespace(Wt)
    return xp.reshape(xp.matrix_transpose(Wt), (1, Wt.shape[1], Wt.shape[0]))


def params_to_device(backend, host_params, dtype: str):
    """Host [(W (1,out,in), b (1,out,1))] -> the same on the backend's device, in ``dtype``.

    Each W is stored in the backend's faster layout (``backend.weight_layout``): a contiguous
    (in, out) array returned as its (1, out, in) transposed view, or a contiguous (1, out, in).
    """
    out = []
    for W, b in host_params:  # fresh copies: training updates them in place
        W = np.asarray(W)
        if backend.weight_layout == "out_in":
            Wd = backend.asarray(np.array(W, dtype=dtype, order="C", copy=True))
        else:
            Wd = _public_w(backend.asarray(np.array(W[0].T, dtype=dtype, order="C", copy=True)))
        out.append((Wd, backend.asarray(np.array(b, dtype=dtype, copy=True))))
    return out


def forward_2d(params, A, spec: Spec, masks=None):
    """Forward pass on 2-D input A: (batch, in).

    ``masks``: optional dropout masks, one (batch, hidden) array per hidden layer, already
    scaled by 1/keep; each hidden output is multiplied by its mask before the next layer.
    Returns (layer inputs [A0=input, A1, ..., A_{L-1}], output logits Z_L: (batch, out)).
    """
    acts, _, Z = _forward(params, A, spec, masks)
    return acts, Z


def _forward(params, A, spec: Spec, masks=None):
    """forward_2d, also returning the hidden outputs before their dropout masks (or None)."""
    act = ACTIVATIONS[spec.activation][0]
    acts, hs = [A], [] if masks is not None else None
    for i, (W, b) in enumerate(params[:-1]):
        A = act(_layer(A, W, b))
        if masks is not None:
            hs.append(A)
            A = A * masks[i]
        acts.append(A)
    W, b = params[-1]
    return acts, hs, _layer(A, W, b)


def backward_2d(params, acts, delta, spec: Spec, input_grad: bool = False, masks=None, hs=None):
    """Backward pass from dLoss/dZ_L = delta: (batch, out).

    ``masks`` as given to forward_2d, ``hs`` the hidden outputs before them. Returns [(dW (1,out,in), db (1,out,1)), ...] first layer
    first, and, when ``input_grad``, dLoss/dA0: (batch, in) as a second value.
    """
    xp = array_namespace(delta)
    dact = ACTIVATIONS[spec.activation][1]
    grads = []
    for layer in range(len(params) - 1, -1, -1):
        W, b = params[layer]
        A = acts[layer]
        dWt = xp.matmul(xp.matrix_transpose(A), delta)  # (in, out), contiguous
        db = xp.sum(delta, axis=0)  # (out,)
        grads.append((_public_w(dWt), xp.reshape(db, b.shape)))
        if layer > 0 or input_grad:
            Wt, _ = _wb2d(W, b)
            dA = xp.matmul(delta, xp.matrix_transpose(Wt))  # (batch, in)
            if layer > 0 and masks is not None:  # A = h * m
                delta = dA * masks[layer - 1] * dact(hs[layer - 1])
            else:
                delta = dA * dact(A) if layer > 0 else dA
    grads.reverse()
    return (grads, delta) if input_grad else grads


def loss_and_grads_2d(params, A, onehot, spec: Spec, masks=None):
    """Mean loss (0-d device array) and parameter gradients for a 2-D batch A: (batch, in)."""
    acts, hs, Z = _forward(params, A, spec, masks)
    loss, delta = OUTPUTS[spec.output][1](Z, onehot)
    return loss, backward_2d(params, acts, delta, spec, masks=masks, hs=hs)


# ---- the public order-3 API -------------------------------------------------


def forward(params, x, spec: Spec):
    """Network output (probabilities): x (batch, in, 1) -> (batch, out, 1)."""
    _, Z = forward_2d(params, _as2d(x), spec)
    return _as3d(OUTPUTS[spec.output][0](Z))


def logits(params, x, spec: Spec):
    """Pre-activation output: x (batch, in, 1) -> (batch, out, 1)."""
    return _as3d(forward_2d(params, _as2d(x), spec)[1])


def loss_and_grads(params, x, y, spec: Spec):
    """Mean loss and gradients for x (batch, in, 1) with one-hot targets y (batch, out, 1).

    Returns (loss 0-d array, [(dW (1,out,in), db (1,out,1)), ...]).
    """
    return loss_and_grads_2d(params, _as2d(x), _as2d(y), spec)


def input_grad(params, x, y, spec: Spec):
    """dLoss/dx for x (batch, in, 1) and one-hot targets y (batch, out, 1): (batch, in, 1)."""
    acts, Z = forward_2d(params, _as2d(x), spec)
    _, delta = OUTPUTS[spec.output][1](Z, _as2d(y))
    _, dx = backward_2d(params, acts, delta, spec, input_grad=True)
    return _as3d(dx)


def predict_2d(params, A, spec: Spec):
    """Predicted class indices for A: (n, in): (n,) int64 device array."""
    xp = array_namespace(A)
    return xp.argmax(forward_2d(params, A, spec)[1], axis=1)
