"""cupy.cuda of the emulator: devices, streams, graphs, runtime."""

from cupy import _emulation
from cupy.cuda import device, runtime, stream  # noqa: F401
from cupy.cuda.device import Device, get_cublas_handle, get_device_id  # noqa: F401
from cupy.cuda.stream import ExternalStream, Graph, Stream, get_current_stream  # noqa: F401


def is_available() -> bool:
    return _emulation.fail != "driver"


class MemoryPool:
    """Sizes of the emulated buffers alive (used) and released (cached as free) so far."""

    def used_bytes(self) -> int:
        return _emulation.memory["used"]

    def free_bytes(self) -> int:
        return _emulation.memory["free"]

    def total_bytes(self) -> int:
        return self.used_bytes() + self.free_bytes()

    def free_all_blocks(self, stream=None) -> None:  # noqa: F811 (CuPy's own parameter name)
        _emulation.memory["free"] = 0

    def n_free_blocks(self) -> int:
        return 0

    def set_limit(self, size=None, fraction=None) -> None:
        pass

    def get_limit(self) -> int:
        return 0
