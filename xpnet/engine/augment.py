"""On-device data augmentation: random shifts, affine maps and elastic distortions.

Written against the op set, so it runs where the data is and, where the library allows,
in buffers made once (``Plan``): per-sample parameters come from the counter-based
generator of ``rand`` (the same on every backend for a seed), each output pixel's source
position is computed, and the picture is resampled bilinearly with four gathers from the
images in a zero frame. Elastic distortions follow Simard et al. (2003): a uniform random
displacement field smoothed by a Gaussian of width sigma and scaled by alpha.
"""

from __future__ import annotations

import math

import numpy as np

from xpnet.backends import ops_for
from xpnet.engine import rand

KINDS = ("none", "shift", "affine", "elastic")
PARAMS_STREAM, FIELD_STREAM = 0xA11, 0xA12  # rand streams of the per-sample parameters and the elastic field
SHIFT = 2.0  # pixels, at most, each way
ROTATE = 12.0 * math.pi / 180.0  # radians, at most, each way
SCALE = 0.1  # scalings by 1 +- SCALE
SHEAR = 0.15
ALPHA, SIGMA = 34.0, 4.0  # elastic: displacement scale and Gaussian width (pixels)


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix whose product smooths a length-n signal by a normalised Gaussian."""
    i = np.arange(n)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return g / g.sum(axis=1, keepdims=True)


class Plan:
    """What augmenting batches of ``n`` images of ``image_shape`` needs, made once: constants
    (the pixel grid, the gather offsets, the smoothing matrices), the random streams and the
    buffers (None where the op set makes new arrays)."""

    def __init__(self, ops, like, n: int, image_shape, kind: str):
        if kind not in KINDS[1:]:
            raise ValueError(f"unknown augmentation {kind!r}")
        rows, cols = image_shape
        self.kind, self.n, self.rows, self.cols = kind, n, rows, cols
        P, frame = rows * cols, (rows + 3) * (cols + 3)
        grid = np.indices((rows, cols)).reshape(2, 1, P).astype(np.float64)
        self.gy = ops.constant(grid[0] - (rows - 1) / 2, like)  # (1, P) about the centre
        self.gx = ops.constant(grid[1] - (cols - 1) / 2, like)
        # flat index, in the framed batch, of each image's pixel (0, 0)
        self.offset = ops.constant(np.arange(n).reshape(n, 1) * frame + (cols + 3) + 1, like, "int64")
        self.params = rand.Stream(ops, like, (n, 6))
        self.u = ops.buffer((n, 6), like)
        # per-sample coefficients, each its own (n, 1) array: an op writing one while reading
        # another never sees its output overlap an input (CuPy would copy such an input first)
        self.coefs = [ops.buffer((n, 1), like) for _ in range(8)]
        self.sy, self.sx, self.y0, self.x0 = (ops.buffer((n, P), like) for _ in range(4))
        self.iy, self.ix = (ops.buffer((n, P), like, "int64") for _ in range(2))
        self.v = [ops.buffer((n, P), like) for _ in range(4)]
        self.framed = ops.zeros((n, rows + 3, cols + 3), like) if ops.in_place else None
        if kind == "elastic":
            self.field = rand.Stream(ops, like, (2 * n, rows, cols))
            self.f = ops.buffer((2 * n, rows, cols), like)
            self.g = ops.buffer((2 * n, rows, cols), like)
            self.gr = ops.constant(_gauss_matrix(rows, SIGMA), like)  # (rows, rows)
            self.gcT = ops.constant(_gauss_matrix(cols, SIGMA).T, like)  # (cols, cols)

    def _col(self, k: int):
        return self.coefs[k]


def apply(ops, plan: Plan, x, params_key: int, field_key: int = 0):
    """A randomly transformed copy of the batch x: (n, rows*cols) pixels (any scale: the
    resampling is linear). ``params_key``/``field_key``: rand keys of this step's streams."""
    sy, sx = _source_positions(ops, plan, x.dtype, params_key)
    if plan.kind == "elastic":
        sy, sx = _add_elastic_field(ops, plan, sy, sx, x.dtype, field_key)
    return _bilinear(ops, plan, x, sy, sx)


def _source_positions(ops, plan: Plan, dtype, k: int):
    """Each output pixel's source row and column (n, P): the inverse of a per-sample map
    (shift; affine: rotation, scaling and shear about the centre, then the shift)."""
    u = plan.params.uniform(ops, k, dtype, out=plan.u)
    u = ops.multiply(u, 2.0, out=u)
    u = ops.subtract(u, 1.0, out=u)  # (n, 6) in [-1, 1)
    col = [ops.slice(u, j, 1, axis=1) for j in range(5)]
    oy = ops.add(ops.multiply(col[0], -SHIFT, out=plan._col(6)), (plan.rows - 1) / 2, out=plan._col(6))
    ox = ops.add(ops.multiply(col[1], -SHIFT, out=plan._col(7)), (plan.cols - 1) / 2, out=plan._col(7))
    if plan.kind == "shift":
        return ops.add(plan.gy, oy, out=plan.sy), ops.add(plan.gx, ox, out=plan.sx)
    inv_s = ops.divide(
        1.0, ops.add(ops.multiply(col[3], SCALE, out=plan._col(0)), 1.0, out=plan._col(0)), out=plan._col(0)
    )
    theta = ops.multiply(col[2], ROTATE, out=plan._col(1))
    sin = ops.sin(theta, out=plan._col(2))
    cos = ops.cos(theta, out=plan._col(1))
    a = ops.multiply(cos, inv_s, out=plan._col(3))  # a = d = cos / s
    c = ops.multiply(sin, inv_s, out=plan._col(4))
    b = ops.multiply(
        ops.subtract(ops.multiply(col[4], SHEAR, out=plan._col(5)), sin, out=plan._col(5)), inv_s, out=plan._col(5)
    )  # (shear - sin) / s
    t = plan.y0  # scratch
    sy = ops.add(
        ops.add(ops.multiply(a, plan.gy, out=plan.sy), ops.multiply(b, plan.gx, out=t), out=plan.sy), oy, out=plan.sy
    )
    sx = ops.add(
        ops.add(ops.multiply(c, plan.gy, out=plan.sx), ops.multiply(a, plan.gx, out=t), out=plan.sx), ox, out=plan.sx
    )
    return sy, sx


def _add_elastic_field(ops, plan: Plan, sy, sx, dtype, k: int):
    """sy, sx plus alpha * (Gaussian-smoothed uniform noise in [-1, 1)), one field each."""
    n, rows, cols = plan.n, plan.rows, plan.cols
    f = plan.field.uniform(ops, k, dtype, out=plan.f)  # (2n, rows, cols)
    f = ops.multiply(f, 2.0 * ALPHA, out=f)
    f = ops.subtract(f, ALPHA, out=f)
    g = ops.matmul(plan.gr, f, out=plan.g)  # smoothed down each column
    g2 = ops.xp.reshape(g, (2 * n * rows, cols))
    f2 = ops.matmul(g2, plan.gcT, out=None if plan.f is None else ops.xp.reshape(plan.f, (2 * n * rows, cols)))
    field = ops.xp.reshape(f2, (2 * n, rows * cols))
    sy = ops.add(sy, ops.slice(field, 0, n), out=sy)
    sx = ops.add(sx, ops.slice(field, n, n), out=sx)
    return sy, sx


def _bilinear(ops, plan: Plan, x, sy, sx):
    """Sample the images x (n, P) at source positions sy, sx (n, P); zero outside.
    Positions are clipped to the frame [-1, size] (beyond it every corner is zero anyway)."""
    xp, rows, cols = ops.xp, plan.rows, plan.cols
    sy = ops.clip(sy, -1.0, float(rows), out=sy)
    sx = ops.clip(sx, -1.0, float(cols), out=sx)
    y0 = ops.floor(sy, out=plan.y0)
    x0 = ops.floor(sx, out=plan.x0)
    wy = ops.subtract(sy, y0, out=sy)
    wx = ops.subtract(sx, x0, out=sx)
    idx = ops.astype(y0, "int64", out=plan.iy)
    idx = ops.multiply(idx, cols + 3, out=idx)
    idx = ops.add(idx, ops.astype(x0, "int64", out=plan.ix), out=idx)
    idx = ops.add(idx, plan.offset, out=idx)  # top-left corner, as a flat index into the framed batch
    flat = xp.reshape(ops.pad(x, rows, cols, out=plan.framed), (-1,))
    flat_idx = xp.reshape(idx, (-1,))
    corner = []
    for j, shift in enumerate((0, 1, cols + 3, cols + 4)):  # (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1)
        src = flat if shift == 0 else flat[shift:]
        out = None if plan.v[j] is None else xp.reshape(plan.v[j], (-1,))
        corner.append(xp.reshape(ops.take(src, flat_idx, out=out), x.shape))
    v00, v01, v10, v11 = corner
    top = ops.add(ops.multiply(ops.subtract(v01, v00, out=v01), wx, out=v01), v00, out=v01)
    bottom = ops.add(ops.multiply(ops.subtract(v11, v10, out=v11), wx, out=v11), v10, out=v11)
    return ops.add(ops.multiply(ops.subtract(bottom, top, out=bottom), wy, out=bottom), top, out=bottom)


def augment(x, kind: str, image_shape, seed: int, step: int):
    """A randomly transformed copy of the batch x: (B, rows*cols) floats (one-off: makes a Plan).
    The same (seed, step) gives the same batch on every backend."""
    if kind == "none":
        return x
    ops = ops_for(x)
    plan = Plan(ops, x, x.shape[0], image_shape, kind)
    return apply(ops, plan, x, rand.key(seed, PARAMS_STREAM, step), rand.key(seed, FIELD_STREAM, step))
