"""cupy.linalg of the emulator: NumPy's linalg on emulated arrays (one kernel a call)."""

import numpy as _numpy

from cupy import _array

__all__ = [n for n in _numpy.linalg.__all__ if n != "LinAlgError"]
LinAlgError = _numpy.linalg.LinAlgError
globals().update({n: _array._generic(getattr(_numpy.linalg, n)) for n in __all__})
matmul = _array.matmul
