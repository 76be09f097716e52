"""Host transfers and library detection: an array's library and device as ``--backend`` and
``--device`` name them, device arrays copied to NumPy, the RAM available."""

from __future__ import annotations

import os

import array_api_compat
import numpy as np


def host_available() -> int | None:
    """Bytes of RAM available to new allocations: MemAvailable of /proc/meminfo, else the free
    pages times the page size (``os.sysconf``), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def to_host(x) -> np.ndarray:
    """Any backend's array -> NumPy array."""
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (RuntimeError, TypeError, ValueError):  # array-api-strict off its CPU device, other libraries: DLPack
        return np.from_dlpack(x)


def library_of(x) -> str | None:
    """The name (one of BACKENDS) of the library an array belongs to, or None (not an array of one)."""
    for name, test in (
        ("numpy", array_api_compat.is_numpy_array),
        ("torch", array_api_compat.is_torch_array),
        ("cupy", array_api_compat.is_cupy_array),
        ("jax", array_api_compat.is_jax_array),
    ):
        if test(x):
            return name
    try:
        xp = array_api_compat.array_namespace(x)
    except TypeError:
        return None
    return "array_api_strict" if array_api_compat.is_array_api_strict_namespace(xp) else None


def device_of(x) -> str:
    """An array's device as ``--device`` names it: cpu, cuda:N (or the library's own name for
    others, e.g. mps, which ``resolve`` refuses)."""
    name = library_of(x)
    if name == "torch":
        d = x.device
        return "cpu" if d.type == "cpu" else f"cuda:{d.index or 0}" if d.type == "cuda" else d.type
    if name == "cupy":
        return f"cuda:{x.device.id}"
    if name == "jax":
        import jax

        d = array_api_compat.device(x)
        return "cpu" if d.platform == "cpu" else f"cuda:{jax.devices(d.platform).index(d)}"
    return "cpu"


def plain(x):
    """``x`` without autograd history (a torch tensor that requires grad is detached)."""
    if array_api_compat.is_torch_array(x) and x.requires_grad:
        return x.detach()
    return x
