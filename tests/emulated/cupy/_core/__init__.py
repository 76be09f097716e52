"""cupy._core of the emulator (only what xpnet reaches into)."""

from cupy._core import _routines_linalg  # noqa: F401
