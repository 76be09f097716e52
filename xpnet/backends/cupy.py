"""CuPy: the NumPy op set (CuPy has the same API, ``out=`` included) on the current GPU.

``backends.resolve`` makes the chosen device current for the run (array-api-compat ignores
``device=`` in CuPy's creation functions). No op synchronises with the GPU: there is no
boolean-mask assignment and nothing is read back inside a step.
"""

from __future__ import annotations

import cupy

from .numpy import NumpyOps

CHUNK_BYTES = 4 << 20  # training rows gathered at once (not yet measured on a GPU)


class CupyOps(NumpyOps):
    """In-place primitives on CuPy arrays."""

    name = "cupy"
    lib = cupy
    weight_layout = "out_in"
    chunk_bytes = CHUNK_BYTES
    take_mode = {}  # CuPy's take has no mode (it wraps) and writes into out directly
    _sum_reduce = staticmethod(cupy.sum)
    _max_reduce = staticmethod(cupy.max)

    def feature_major(self, size: int, n: int) -> bool:
        return True

    def zeros(self, shape, like, dtype=None):
        return cupy.zeros(tuple(shape), dtype=self._dtype(dtype, like))
