"""cupy.cuda.device: Device (unhashable, compared by id, a context manager that makes it current)."""

from __future__ import annotations

from cupy import _emulation


class Device:
    __hash__ = None  # CuPy 14.2's Device defines __eq__ without __hash__

    def __init__(self, device=None):
        if device is None:
            self.id = _emulation.current_device()
        else:
            self.id = int(device.id if isinstance(device, Device) else device)
        self._saved = []

    def use(self):
        _emulation.set_device(self.id)
        return self

    def __enter__(self):
        self._saved.append(_emulation.current_device())
        self.use()
        return self

    def __exit__(self, *exc):
        _emulation.set_device(self._saved.pop())

    def synchronize(self) -> None:
        _emulation.host_sync(f"Device({self.id}).synchronize()")

    @property
    def compute_capability(self) -> str:
        return "90"

    @property
    def mem_info(self) -> tuple:
        from cupy.cuda import runtime

        return runtime.memGetInfo()

    def __int__(self):
        return self.id

    __index__ = __int__

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def get_device_id() -> int:
    return _emulation.current_device()


def get_cublas_handle() -> int:
    """The current thread's handle on the current device (one per device here)."""
    return _emulation.cublas_handle()
