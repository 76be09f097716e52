"""cupy.fft of the emulator: NumPy's fft on emulated arrays (one kernel a call)."""

import numpy as _numpy

from cupy import _array

__all__ = list(_numpy.fft.__all__)
globals().update({n: _array._generic(getattr(_numpy.fft, n)) for n in __all__})
