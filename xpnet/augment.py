"""On-device data augmentation: random shifts, affine maps and elastic distortions.

Written against the array API so it runs where the data is: per-sample parameters
come from the counter-based generator of ``rand`` (the same on every backend for a
seed), each output pixel's source position is computed, and the picture is
resampled with bilinear interpolation by four gathers (``xp.take``), zero outside.
Elastic distortions follow Simard et al. (2003): a uniform random displacement
field smoothed by a Gaussian of width sigma and scaled by alpha.
"""

from __future__ import annotations

import math

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from . import rand

KINDS = ("none", "shift", "affine", "elastic")
_STREAM = 0xA11  # rand stream of augmentation parameters


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix whose product smooths a length-n signal by a normalised Gaussian."""
    i = np.arange(n)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return g / g.sum(axis=1, keepdims=True)


_CONSTANTS = {}  # (namespace, dtype, device, rows, cols, sigma) -> device arrays made once


def _constants(x, rows: int, cols: int, sigma: float):
    """The pixel grid about the centre, gy and gx (1, rows*cols), and the Gaussian smoothing
    matrices (rows, rows) and (cols, cols)^T, on x's device in x's dtype: computed on the host
    once per process, not copied to the device every step."""
    xp, dev = array_namespace(x), device_of(x)
    key = (xp.__name__, str(x.dtype), str(dev), rows, cols, sigma)
    if key not in _CONSTANTS:
        grid = np.indices((rows, cols)).reshape(2, -1).astype(np.float64)
        host = (grid[0:1] - (rows - 1) / 2, grid[1:2] - (cols - 1) / 2,
                _gauss_matrix(rows, sigma), _gauss_matrix(cols, sigma).T)
        _CONSTANTS[key] = tuple(xp.asarray(a, dtype=x.dtype, device=dev) for a in host)
    return _CONSTANTS[key]


def _bilinear(x, sy, sx, rows: int, cols: int):
    """Sample images x (B, rows*cols) at source positions sy, sx (B, rows*cols); zero outside."""
    xp = array_namespace(x)
    B = x.shape[0]
    y0, x0 = xp.floor(sy), xp.floor(sx)
    wy, wx = sy - y0, sx - x0
    y0 = xp.astype(y0, xp.int64)
    x0 = xp.astype(x0, xp.int64)
    flat = xp.reshape(x, (B * rows * cols,))
    base = xp.reshape(xp.arange(B, dtype=xp.int64, device=device_of(x)) * (rows * cols), (B, 1))
    out = xp.zeros_like(x)
    for dy, dx, w in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < rows) & (xx >= 0) & (xx < cols)
        idx = base + xp.clip(yy, min=0, max=rows - 1) * cols + xp.clip(xx, min=0, max=cols - 1)
        vals = xp.reshape(xp.take(flat, xp.reshape(idx, (-1,))), x.shape)
        out = out + xp.where(inside, w * vals, xp.zeros_like(vals))
    return out


def augment(x, kind: str, image_shape, seed: int, step: int, *, shift: float = 2.0, rotate: float = 12.0,
            scale: float = 0.1, shear: float = 0.15, alpha: float = 34.0, sigma: float = 4.0):
    """A randomly transformed copy of the batch x: (B, rows*cols) floats in [0, 1].

    shift: translations up to ``shift`` pixels; affine: also rotations up to ``rotate``
    degrees, scalings by 1 +- ``scale`` and shears up to ``shear``; elastic: an affine map
    plus an elastic field (``alpha``, ``sigma``). The same (seed, step) gives the same batch
    on every backend.
    """
    if kind == "none":
        return x
    xp = array_namespace(x)
    B = x.shape[0]
    rows, cols = image_shape
    u = rand.uniform(x, (B, 6), seed, _STREAM, step) * 2.0 - 1.0  # (B, 6) in [-1, 1)
    col = lambda k: xp.reshape(u[:, k], (B, 1))  # noqa: E731
    ty, tx = shift * col(0), shift * col(1)
    if kind == "shift":
        a, b_, c, d = 1.0, 0.0, 0.0, 1.0
    else:
        theta = col(2) * (rotate * math.pi / 180.0)
        s = 1.0 + scale * col(3)
        sh = shear * col(4)
        # inverse map output -> source: rotation, scale and shear about the centre
        a, b_ = xp.cos(theta) / s, (-xp.sin(theta) + sh) / s
        c, d = xp.sin(theta) / s, xp.cos(theta) / s
    gy, gx, gr, gc = _constants(x, rows, cols, sigma)
    sy = a * gy + b_ * gx + (rows - 1) / 2 - ty
    sx = c * gy + d * gx + (cols - 1) / 2 - tx
    if kind == "elastic":
        field = rand.uniform(x, (2 * B, rows, cols), seed, _STREAM + 1, step) * 2.0 - 1.0
        smooth = xp.matmul(xp.matmul(gr, field), gc) * alpha  # (2B, rows, cols)
        sy = sy + xp.reshape(smooth[:B, ...], (B, rows * cols))
        sx = sx + xp.reshape(smooth[B:, ...], (B, rows * cols))
    return _bilinear(x, sy, sx, rows, cols)
