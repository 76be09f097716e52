"""The ``Backend`` type (an array library and a device, with its op set and host transfers)
and the op set of any array (``ops_for``), made once per library."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from xpnet.backends.base import Ops
from xpnet.backends.host import host_available, library_of, to_host

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """A chosen array library and device. ``xp`` is the array-API namespace."""

    name: str
    xp: Any
    device: Any
    label: str  # human-readable device, e.g. "cpu" or "cuda:0"
    note: str = ""  # why this device was picked (for --device auto)

    @property
    def is_cuda(self) -> bool:
        return self.label.startswith("cuda")

    @property
    def ops(self) -> Ops:
        """The op set of this backend's arrays (made once per library, without making an array)."""
        return _ops(self.name if self.name in _LIBRARY_OPS else self.xp.__name__, self.xp)

    def asarray(self, host: np.ndarray, dtype: str | None = None):
        """Copy a host NumPy array to this backend's device (one transfer)."""
        if dtype is not None:
            host = np.asarray(host, dtype=dtype)
        if self.name == "cupy":
            with self.device:
                return self.xp.asarray(host)
        return self.xp.asarray(host, device=self.device)

    def to_host(self, x) -> np.ndarray:
        """Copy a device array back to a NumPy array (a sync on a GPU)."""
        return to_host(x)

    def adopt(self, x):
        """``x`` (an array of any library) in this backend's library on its device: as it is
        when already there (NumPy: on the host), else one copy, through the host."""
        if library_of(x) == self.name and (self.name == "numpy" or array_api_compat.device(x) == self.device):
            return x
        if self.name == "numpy":
            return to_host(x)
        return self.asarray(np.ascontiguousarray(to_host(x)))

    def sync(self, x=None) -> None:
        """Wait until queued device work is done (before reading a clock)."""
        if self.name == "cupy":
            self.device.synchronize()
        elif self.name == "torch" and self.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
        elif self.name == "jax" and x is not None:
            x.block_until_ready()

    def free_memory(self) -> int | None:
        """Bytes the run can still allocate where its arrays live: on a GPU its free memory plus
        what the library's pool holds unused, else the host's (``host_available``); None when
        the library cannot tell."""
        if not self.is_cuda:
            return host_available()
        try:
            if self.name == "cupy":
                cupy = importlib.import_module("cupy")
                with self.device:
                    return int(cupy.cuda.runtime.memGetInfo()[0]) + int(cupy.get_default_memory_pool().free_bytes())
            if self.name == "torch":
                import torch

                pooled = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
                return int(torch.cuda.mem_get_info(self.device)[0]) + int(pooled)
            stats = self.device.memory_stats()  # jax
            return int(stats["bytes_limit"]) - int(stats["bytes_in_use"])
        except Exception:  # noqa: BLE001 (an old library, a driver that does not say: no check rather than a crash)
            return None


_OPS: dict = {}
_LIBRARY_OPS = ("numpy", "torch", "cupy", "jax")  # the libraries with op sets of their own


def ops_for(x) -> Ops:
    """The op set for arrays like ``x``: in place for writeable NumPy, CuPy and PyTorch
    arrays, jitted for JAX, the plain array-API reference for anything else."""
    if array_api_compat.is_numpy_array(x):
        key = "numpy" if x.flags.writeable else "numpy-readonly"
    elif array_api_compat.is_torch_array(x):
        key = "torch" if not x.requires_grad else "torch-autograd"
    elif array_api_compat.is_cupy_array(x):
        key = "cupy"
    elif array_api_compat.is_jax_array(x):
        key = "jax"
    else:
        key = array_api_compat.array_namespace(x).__name__
    return _ops(key, array_api_compat.array_namespace(x) if key not in _OPS else None)


def _ops(key: str, xp) -> Ops:
    """The op set of ``key`` (a library's name, numpy-readonly, torch-autograd, or another
    namespace's name), made on first use from its namespace ``xp``."""
    ops = _OPS.get(key)
    if ops is None:
        ops = _OPS[key] = _make_ops(key, xp)
    return ops


def _make_ops(key: str, xp) -> Ops:
    if key == "numpy":
        from xpnet.backends.numpy import NumpyOps

        return NumpyOps(xp)
    if key == "torch":
        from xpnet.backends.torch import TorchOps

        return TorchOps(xp)
    if key == "cupy":
        from xpnet.backends.cupy import CupyOps

        return CupyOps(xp)
    if key == "jax":
        from xpnet.backends.jax import JaxOps

        return JaxOps(xp)
    return Ops(xp)


def reference_ops(xp=None) -> Ops:
    """The base op set (new arrays, no buffers) on NumPy arrays: the tests' reference."""
    return Ops(xp if xp is not None else array_api_compat.array_namespace(np.zeros(1)))
