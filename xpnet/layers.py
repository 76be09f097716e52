"""Activations and output losses with their derivatives: pure array-API functions.

Shapes here are 2-D, ``(batch, features)``; ``model.py`` presents them as the
order-3 ``(batch, features, 1)`` tensors of the public API.
Derivatives of hidden activations are written in terms of the activation's
*output* ``a``, so the backward pass needs only the stored activations.
"""

from __future__ import annotations

from array_api_compat import array_namespace


def sigmoid(z):
    """Logistic function, computed as 0.5 * (1 + tanh(z / 2)): no overflow for large |z|."""
    xp = array_namespace(z)
    return 0.5 * (1.0 + xp.tanh(0.5 * z))


def sigmoid_grad(a):
    """d sigmoid / dz given a = sigmoid(z)."""
    return a * (1.0 - a)


def tanh(z):
    return array_namespace(z).tanh(z)


def tanh_grad(a):
    """d tanh / dz given a = tanh(z)."""
    return 1.0 - a * a


def relu(z):
    return array_namespace(z).clip(z, min=0.0)


def relu_grad(a):
    """d relu / dz given a = relu(z) (0 at z = 0)."""
    xp = array_namespace(a)
    return xp.astype(a > 0, a.dtype)


# name -> (function, derivative from output)
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
}


def log_softmax(z):
    """Row-wise log-softmax of logits z: (batch, classes), stable (max subtracted)."""
    xp = array_namespace(z)
    shifted = z - xp.max(z, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax(z):
    """Row-wise softmax of logits z: (batch, classes)."""
    xp = array_namespace(z)
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def cross_entropy(z, onehot):
    """Softmax + cross-entropy on logits z: (batch, classes).

    Returns (mean loss as a 0-d device array, dLoss/dz of shape (batch, classes)).
    The gradient is the fused form (softmax(z) - onehot) / batch.
    """
    xp = array_namespace(z)
    logp = log_softmax(z)
    n = z.shape[0]
    loss = -xp.sum(onehot * logp) / n
    return loss, (xp.exp(logp) - onehot) / n


def quadratic(z, onehot):
    """Sigmoid output + quadratic cost 0.5 * ||sigmoid(z) - y||^2, mean over the batch.

    Returns (mean loss, dLoss/dz of shape (batch, classes)).
    """
    xp = array_namespace(z)
    a = sigmoid(z)
    diff = a - onehot
    n = z.shape[0]
    loss = 0.5 * xp.sum(diff * diff) / n
    return loss, diff * sigmoid_grad(a) / n


# output name -> (output activation on logits, loss-and-gradient on logits)
OUTPUTS = {
    "softmax": (softmax, cross_entropy),
    "sigmoid": (sigmoid, quadratic),
}
