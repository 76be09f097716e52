"""Counter-based random numbers made on the device, identical on every backend.

The array API has no random module, and copying fresh random numbers from the host every
step would cost a transfer (and a sync) per step. Instead each random number is a hash of
(key, element index): the key of a (seed, stream, step) is computed on the host (BLAKE2b,
32 bits), and each element's 32 bits are mix(k * golden ^ key), k its index in row-major
order, computed with integer array operations of the standard. The same seed gives
bit-identical dropout masks and augmentation parameters on NumPy, CuPy, PyTorch, JAX and
array-api-strict.

``mix`` is a 32-bit avalanche mixer (two multiply-xorshift rounds, in the manner of
"lowbias32"), evaluated modulo 2**32 in the op set's hash dtype: uint32 where the library
wraps it, int64 masked to 32 bits on PyTorch (multipliers below 2**31, so no int64 product
overflows). The counters ``k * golden`` are made once per shape (``counters``); a step then
costs one xor and the mixer, in place.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from xpnet.backends import ops_for

GOLDEN = 0x61C88647  # 2**32 - 0x9E3779B9: the golden-ratio increment
C1, C2 = 0x7FEB352D, 0x5BD1E995  # odd multipliers below 2**31
UNIT = 1.0 / (1 << 24)  # the top 24 bits of a hash make a float exactly representable in float32


def key(seed: int, stream: int, step: int) -> int:
    """The 32-bit key of ``stream`` at ``step`` for ``seed`` (host side)."""
    digest = hashlib.blake2b(f"{seed}/{stream}/{step}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def counters(ops, like, shape, transposed: bool = False):
    """k * golden mod 2**32 for the row-major index k of each element of ``shape``, on like's
    device in the op set's hash dtype; ``transposed``: stored as its transpose (2-D), to match
    an array stored so. Made once per shape, on the host."""
    host = (np.arange(math.prod(shape), dtype=np.uint64).reshape(shape) * GOLDEN) % (1 << 32)
    if transposed:
        return ops.constant(np.ascontiguousarray(host.T), like, ops.hash_dtype).T
    return ops.constant(host, like, ops.hash_dtype)


def bits(ops, grid, k: int, out=None, work=None):
    """mix(grid ^ k): 32 random bits per element (in the hash dtype), into ``out``."""
    x = ops.bitwise_xor(grid, k, out=out)
    t = ops.right_shift(x, 16, out=work)
    x = ops.bitwise_xor(x, t, out=x)
    x = ops.mul32(x, C1, out=x)
    t = ops.right_shift(x, 15, out=work)
    x = ops.bitwise_xor(x, t, out=x)
    x = ops.mul32(x, C2, out=x)
    t = ops.right_shift(x, 16, out=work)
    return ops.bitwise_xor(x, t, out=x)


class Stream:
    """Random numbers of one logical shape, step after step: the counters and the integer
    buffers, made once (buffers are None where the op set makes new arrays)."""

    def __init__(self, ops, like, shape, transposed: bool = False):
        self.grid = counters(ops, like, shape, transposed)
        self.x = ops.buffer(shape, self.grid, transposed=transposed)
        self.t = ops.buffer(shape, self.grid, transposed=transposed)

    def uniform(self, ops, k: int, dtype, out=None):
        """Uniform floats in [0, 1) (multiples of 2**-24) for key k, in ``dtype``."""
        b = bits(ops, self.grid, k, out=self.x, work=self.t)
        b = ops.right_shift(b, 8, out=b)
        u = ops.astype(b, dtype, out=out)
        return ops.multiply(u, UNIT, out=u)

    def keep_mask(self, ops, k: int, keep, dtype, out=None):
        """Inverted-dropout mask for key k: 1/keep where uniform < keep, else 0 (the same
        elements as ``uniform(k) < keep``, compared on the hash's top 24 bits). ``keep``: the
        rate, or a population's (ceil(keep * 2**24), 1/keep) per member, each (K, 1, 1): then
        the masks (K, *shape), every member thresholding the same numbers at its own rate."""
        b = bits(ops, self.grid, k, out=self.x, work=self.t)
        if isinstance(keep, tuple):
            top, inverse = keep
            b = ops.right_shift(b, 8, out=b)
            m = ops.less(b, top, dtype, out=out)
            return ops.multiply(m, inverse, out=m)
        m = ops.less(b, math.ceil(keep * (1 << 24)) << 8, dtype, out=out)
        return ops.multiply(m, 1.0 / keep, out=m)


def uniform(like, shape, seed: int, stream: int, step: int):
    """Uniform floats in [0, 1) of ``shape``, dtype and device of ``like`` (one-off: allocates)."""
    ops = ops_for(like)
    return Stream(ops, like, tuple(shape)).uniform(ops, key(seed, stream, step), like.dtype)
