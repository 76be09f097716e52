"""cupy.cuda.runtime (cupy_backends.cuda.api.runtime) of the emulated GPUs."""

from __future__ import annotations

from cupy import _emulation
from cupy._emulation import CUDARuntimeError  # noqa: F401

is_hip = False
TOTAL_MEMORY = 80 << 30
streamCaptureModeGlobal, streamCaptureModeThreadLocal, streamCaptureModeRelaxed = 0, 1, 2


def getDeviceCount() -> int:
    if _emulation.fail == "driver":
        raise CUDARuntimeError(
            "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"
        )
    return _emulation.count


def getDevice() -> int:
    return _emulation.current_device()


def setDevice(device: int) -> None:
    _emulation.set_device(int(device))


def getDeviceProperties(device: int) -> dict:
    if not 0 <= device < _emulation.count:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {
        "name": b"Emulated GPU (NumPy)",
        "totalGlobalMem": TOTAL_MEMORY,
        "major": 9,
        "minor": 0,
        "multiProcessorCount": 132,
        "warpSize": 32,
        "pciBusID": device,
    }


def memGetInfo() -> tuple:
    return TOTAL_MEMORY - _emulation.memory["used"], TOTAL_MEMORY


def runtimeGetVersion() -> int:
    return 13000


def driverGetVersion() -> int:
    return 13000


def deviceSynchronize() -> None:
    _emulation.host_sync("cudaDeviceSynchronize")
