"""Counter-based random numbers made on the device, identical on every backend.

The array API has no random module, and copying fresh random numbers from the
host every step would cost a host-to-device transfer per step. Instead each
random number is a hash of (seed, stream, step, element index), computed with
integer array operations of the standard: the same seed gives bit-identical
dropout masks and augmentations on NumPy, CuPy, PyTorch, JAX and array-api-strict.

The hash is a 32-bit integer mixer (two multiply-xorshift rounds, in the manner
of "lowbias32"), evaluated in int64 with multipliers below 2**31, so that no
product of a 32-bit value exceeds 2**63: no backend's overflow behaviour is relied on.
"""

from __future__ import annotations

from array_api_compat import array_namespace
from array_api_compat import device as device_of

_M32 = 0xFFFFFFFF
_GOLDEN = 0x61C88647  # 2**32 - 0x9E3779B9: the golden-ratio increment, below 2**31
_C1, _C2 = 0x7FEB352D, 0x5BD1E995  # odd multipliers below 2**31


def _mix(x):
    """A 32-bit avalanche mixer on values in [0, 2**32): int64 arrays, or a Python int (the
    host-side key of a stream)."""
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    return x ^ (x >> 16)


def uniform(like, shape: tuple[int, ...], seed: int, stream: int, step: int):
    """Uniform floats in [0, 1) of ``shape``, dtype and device of ``like``.

    (seed, stream, step) pick the numbers; element k of the flattened result is
    mix(k * golden + key(seed, stream, step)) mod 2**32. Exactly reproducible on every backend.
    """
    xp = array_namespace(like)
    dev = device_of(like)
    key = _mix(seed & _M32)
    for part in (stream, step):
        key = _mix(key ^ _mix((part * _GOLDEN + 1) & _M32))
    n = 1
    for s in shape:
        n *= int(s)
    k = xp.arange(n, dtype=xp.int64, device=dev)
    bits = _mix(((k * _GOLDEN) + key) & _M32)
    # the top 24 bits make a float exactly representable in float32
    u = xp.astype(bits >> 8, like.dtype) * (1.0 / (1 << 24))
    return xp.reshape(u, shape)
