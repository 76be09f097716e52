"""A fully connected network: initialisation, forward and backward passes, by hand, on the op set.

Public shapes follow the order-3 convention of the seeds:
  activations  x, a:  (batch, features, 1)
  weights      W:     (1, out, in)
  biases       b:     (1, out, 1)
  gradients    same shapes as the parameters.
Inside, a network is its ``layers``: 2-D views of the parameters, W^T (in, out) and
b (1, out), and the passes work on 2-D batches, an activation of a batch of n being
(n, features): Z = A @ W^T + b, one GEMM per layer for the whole batch.
``params`` is a list of ``(W, b)`` pairs in the public shapes, first layer first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xpnet.backends import ops_for

ACTIVATIONS = ("sigmoid", "tanh", "relu")
# the output layer and its loss: softmax + cross-entropy, sigmoid + quadratic cost, or identity + squared
# error (a regressor's, or least-squares classification); the formulas are the op set's (``output_error``,
# ``loss_sum``)
OUTPUTS = ("softmax", "sigmoid", "identity")
INITS = ("normal", "xavier", "he")


@dataclass(frozen=True)
class Spec:
    """The architecture: layer sizes (input first), hidden activation, output, initialisation."""

    sizes: tuple[int, ...]
    activation: str = "relu"
    output: str = "softmax"
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

    def describe(self) -> str:
        """The network in one phrase, as every message names it: ``784-512-256-10 relu/softmax``."""
        return f"{'-'.join(map(str, self.sizes))} {self.activation}/{self.output}"

    @property
    def resolved_init(self) -> str:
        if self.init != "auto":
            return self.init
        return "he" if self.activation == "relu" else "xavier"

    def param_shapes(self) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
        """[(W shape, b shape), ...] in the order-3 convention."""
        return [((1, o, i), (1, o, 1)) for i, o in zip(self.sizes[:-1], self.sizes[1:])]

    def flops_per_sample(self) -> int:
        """Matrix-multiply FLOPs of one training sample: forward and dW 2*in*out per layer,
        dA 2*in*out for every layer but the first."""
        per_layer = [2 * i * o for i, o in zip(self.sizes[:-1], self.sizes[1:])]
        return 2 * sum(per_layer) + sum(per_layer[1:])


def init_params_host(spec: Spec, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Initial parameters as float64 NumPy arrays, drawn from the host generator ``rng``.

    normal: W, b ~ N(0, 1) (the seeds); xavier: W ~ N(0, 2/(fan_in+fan_out)), b = 0;
    he: W ~ N(0, 2/fan_in), b = 0. The same rng state gives the same numbers on every backend.
    """
    kind = spec.resolved_init
    params = []
    for wshape, bshape in spec.param_shapes():
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


def params_to_device(backend, host_params, dtype: str):
    """Host [(W (1,out,in), b (1,out,1))] -> the same on the backend's device, in ``dtype``.

    Each W is stored in the layout the backend's GEMMs prefer (``ops.weight_layout``): a
    contiguous (out, in), or a contiguous (in, out) seen through its transpose.
    """
    out = []
    transposed = backend.ops.weight_layout == "in_out"
    for W, b in host_params:  # fresh copies: training updates them in place
        W = np.asarray(W)
        if transposed:
            Wt = backend.asarray(np.array(W[0].T, dtype=dtype, order="C", copy=True))
            Wd = backend.xp.expand_dims(Wt.T, axis=0)
        else:
            Wd = backend.asarray(np.array(W, dtype=dtype, order="C", copy=True))
        out.append((Wd, backend.asarray(np.array(b, dtype=dtype, copy=True))))
    return out


def population_to_device(backend, members, dtype: str):
    """K members' host parameters, each [(W (1,out,in), b (1,out,1))], -> a population's
    layers [(W^T (K,in,out), b (K,1,out))] on the backend's device, in ``dtype``. Each W is a
    contiguous (K, out, in) seen through its transpose: the members' first-layer weights side
    by side as one (K*out, in) matrix (the wide GEMM against their shared input), and every
    member's block contiguous for the batched GEMMs of the deeper layers."""
    layers = []
    for per_member in zip(*members):
        W = np.concatenate([np.asarray(w) for w, _ in per_member]).astype(dtype)
        b = np.concatenate([np.asarray(b) for _, b in per_member]).astype(dtype)
        layers.append((backend.asarray(np.ascontiguousarray(W)).mT, backend.asarray(np.ascontiguousarray(b)).mT))
    return layers


def member_layers(layers, k: int):
    """Member k's layers [(W^T (in,out), b (1,out))] of a population's (``population_to_device``): views."""
    return [(Wt[k], b[k]) for Wt, b in layers]


def layers_of(params):
    """Public [(W (1,out,in), b (1,out,1))] -> [(W^T (in,out), b (1,out))]: views."""
    return [(W[0, ...].T, b[0, ...].T) for W, b in params]


def params_of(layers):
    """[(W^T (in,out), b (1,out))] -> the public order-3 shapes: views. Works for anything
    shaped like the layers (gradients, optimiser slots)."""
    xp = ops_for(layers[0][0]).xp
    return [(xp.expand_dims(Wt.T, axis=0), xp.expand_dims(b.T, axis=0)) for Wt, b in layers]


# ---- the passes, on 2-D batches, on the op set ---------------------------------------------


def forward_pass(ops, layers, x, spec: Spec, h=None, a=None, masks=None, scale=1.0, logits=None, output_bias=True):
    """Forward pass of the batch x (n, in).

    ``scale``: what the first layer still multiplies x by (pixels stored as bytes).
    ``masks``: dropout masks (n, size) per hidden layer, already scaled by 1/keep, or None.
    ``h``, ``a``, ``logits``: buffers to write each hidden layer's output, its masked output
    and the logits into (lists indexed by layer; None: new arrays).
    ``output_bias``: False leaves the output layer's bias out of the logits (the training step
    adds it with the output error, ``Ops.logits_and_error``).
    Returns (each layer's input [x, A1, ...], hidden outputs before their masks [h1, ...],
    logits (n, classes)).
    """
    act, acts, hs = x, [x], []
    for i, (Wt, b) in enumerate(layers[:-1]):
        z = ops.dense(
            spec.activation, act, Wt, b, out=h[i + 1] if h is not None else None, alpha=scale if i == 0 else 1.0
        )
        hs.append(z)
        act = z if masks is None else ops.multiply(z, masks[i], out=a[i + 1] if a is not None else None)
        acts.append(act)
    Wt, b = layers[-1]
    alpha = scale if len(layers) == 1 else 1.0
    z = ops.affine(act, Wt, b, out=logits, alpha=alpha) if output_bias else ops.matmul(act, Wt, out=logits, alpha=alpha)
    return acts, hs, z


def backward_pass(
    ops,
    layers,
    acts,
    hs,
    d,
    spec: Spec,
    consume,
    errors=None,
    masks=None,
    input_grad=False,
    bias_target=None,
    bias_sum=None,
):
    """Backward pass from the output error d = dLoss/dZ (n, classes), top layer first.

    For each layer: dA = d @ W (with the layer's W before ``consume`` may change it), then
    ``consume(layer, d, A, bias_sum)`` receives the layer's error and input, whose gradients
    are dW^T = A^T @ d and db = the sum of d over the batch; then the error of the layer below,
    dA (times its dropout mask) times the activation's derivative.
    ``bias_target(layer)``: (array, alpha, beta) into which that layer's bias gradient is summed
    with the derivative (``Ops.activation_grad_sum``: array <- beta * array + alpha * db), then
    given to ``consume`` as ``bias_sum``; None: ``bias_sum`` is None. The top layer's
    ``bias_sum`` is the argument (summed with the output error, ``Ops.logits_and_error``).
    ``errors``: buffers (n, size) per layer for those errors (None: new arrays).
    Returns dLoss/dx (n, in) when ``input_grad``, else None.
    """
    for i in range(len(layers) - 1, -1, -1):
        Wt, _ = layers[i]
        dA = None
        if i > 0 or input_grad:
            dA = ops.matmul(d, Wt.mT, out=errors[i] if errors is not None and i > 0 else None)
        consume(i, d, acts[i], bias_sum)
        if i == 0:
            return dA
        if masks is not None:
            dA = ops.multiply(dA, masks[i - 1], out=dA)
        if bias_target is None:
            d = ops.activation_grad(spec.activation, dA, hs[i - 1], out=dA)
        else:
            d, bias_sum = ops.activation_grad_sum(spec.activation, dA, hs[i - 1], dA, *bias_target(i - 1))
    return None


def gradients(ops, layers, acts, hs, d, spec: Spec, masks=None, input_grad=False):
    """The backward pass collecting [(dW^T (in,out), db (1,out)), ...] first layer first
    (and dLoss/dx (n, in) when ``input_grad``)."""
    grads = [None] * len(layers)

    def keep(i, e, A, bias_sum):
        grads[i] = (ops.matmul(A.mT, e), ops.sum(e, -2))

    dx = backward_pass(ops, layers, acts, hs, d, spec, keep, masks=masks, input_grad=input_grad)
    return (grads, dx) if input_grad else grads


# ---- the public order-3 API --------------------------------------------------------------


def _rows(x):
    """(batch, features, 1) -> (batch, features): a view."""
    return x[:, :, 0]


def _logits(params, x, spec: Spec):
    ops = ops_for(params[0][0])
    return ops, forward_pass(ops, layers_of(params), _rows(x), spec)


def outputs(ops, z, spec: Spec):
    """The output layer's activation of logits z (n, out): softmax, sigmoid, or z itself (identity)."""
    if spec.output == "identity":
        return z
    return ops.softmax(z, 1) if spec.output == "softmax" else ops.sigmoid(z)


def forward(params, x, spec: Spec):
    """Network output (probabilities): x (batch, in, 1) -> (batch, out, 1)."""
    ops, (_, _, z) = _logits(params, x, spec)
    return ops.xp.expand_dims(outputs(ops, z, spec), axis=2)


def logits(params, x, spec: Spec):
    """Pre-activation output: x (batch, in, 1) -> (batch, out, 1)."""
    ops, (_, _, z) = _logits(params, x, spec)
    return ops.xp.expand_dims(z, axis=2)


def _loss_and_backward(params, x, y, spec: Spec, masks=None, input_grad=False):
    ops = ops_for(params[0][0])
    layers = layers_of(params)
    acts, hs, z = forward_pass(ops, layers, _rows(x), spec, masks=masks)
    y2 = _rows(y)
    n = x.shape[0]
    loss = ops.loss_sum(spec.output, z, y2, 1) / n
    d = ops.output_error(spec.output, z, y2, 1.0 / n, 1)
    return ops, loss, gradients(ops, layers, acts, hs, d, spec, masks=masks, input_grad=input_grad)


def loss_and_grads(params, x, y, spec: Spec, masks=None):
    """Mean loss and gradients for x (batch, in, 1) with targets y (batch, out, 1).
    ``masks``: dropout masks (batch, size) per hidden layer, scaled by 1/keep, or None.

    Returns (loss 0-d array, [(dW (1,out,in), db (1,out,1)), ...]).
    """
    ops, loss, grads = _loss_and_backward(params, x, y, spec, masks)
    return loss, params_of(grads)


def input_grad(params, x, y, spec: Spec):
    """dLoss/dx for x (batch, in, 1) and targets y (batch, out, 1): (batch, in, 1)."""
    ops, _, (_, dx) = _loss_and_backward(params, x, y, spec, input_grad=True)
    return ops.xp.expand_dims(dx, axis=2)


def predict_2d(params, A, spec: Spec):
    """Predicted class indices for A: (n, in): (n,) int64 device array."""
    ops = ops_for(params[0][0])
    _, _, z = forward_pass(ops, layers_of(params), A, spec)
    return ops.xp.argmax(z, axis=1)


def sizes_text(sizes) -> str:
    """Layer sizes as a flag writes them: (784, 100, 10) -> "784,100,10"."""
    return ",".join(map(str, sizes))
