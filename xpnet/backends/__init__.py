"""Array libraries: command-line flags -> (namespace, device, op set); host<->device; sync.

This package is the only place that names an array library. Everything else gets its
namespace from its arrays (``array_api_compat.array_namespace``) and its op set from
``ops_for(array)``, and uses only the standard's functions and the op set's methods.
Host-side NumPy outside this package is limited to files, initialisation and checkpoints:
reading IDX files and images (data.py, images.py), initial weights and batch order from the
host generator (model.py, training.py), checkpoints (checkpoint.py), constants made once
(augment.py, rand.py) and pictures (plots.py).

Modules: ``base`` (the op set in plain array-API code, the reference), ``numpy`` (in place
with ``out=``; CuPy shares it), ``cupy``, ``torch``, ``jax`` (the step jitted, a chunk of
steps per call).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from ..errors import UserError, named
from .base import Ops

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
DTYPES = ("float32", "float64")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:(\d+))$")
_CUDA_HINT = (
    "install CuPy with its CUDA libraries: pip install 'xpnet[cuda13]' (CUDA 13 driver) or "
    "'xpnet[cuda12]' (CUDA 12 driver), or run with --device cpu"
)
# what a failing probe's message names -> the part of CUDA that is missing or broken
_CUDA_PARTS = (
    ("cublas", "cuBLAS (CUDA's matrix library)"),
    ("nvrtc", "NVRTC (CUDA's runtime compiler)"),
    ("curand", "cuRAND"),
    ("cudart", "the CUDA runtime"),
    ("libcuda", "the NVIDIA driver"),
    ("driver", "the NVIDIA driver"),
)


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
    """The name in BACKENDS of the library an array belongs to, or None (not an array of one)."""
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


def of_array(x, tf32: bool = False) -> Backend:
    """The Backend of an existing array (one of BACKENDS): its library, on its device."""
    name = library_of(x)
    if name is None:
        raise UserError(f"no xpnet backend for arrays of type {type(x).__name__}")
    be = resolve(name, device_of(x), tf32)
    if name == "array_api_strict":  # its several CPU devices
        d = array_api_compat.device(x)
        be = Backend(be.name, be.xp, d, be.label if d == be.device else str(d))
    return be


def plain(x):
    """``x`` without autograd history (a torch tensor that requires grad is detached)."""
    if array_api_compat.is_torch_array(x) and x.requires_grad:
        return x.detach()
    return x


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
        from .numpy import NumpyOps

        return NumpyOps(xp)
    if key == "torch":
        from .torch import TorchOps

        return TorchOps(xp)
    if key == "cupy":
        from .cupy import CupyOps

        return CupyOps(xp)
    if key == "jax":
        from .jax import JaxOps

        return JaxOps(xp)
    return Ops(xp)


def reference_ops(xp=None) -> Ops:
    """The base op set (new arrays, no buffers) on NumPy arrays: the tests' reference."""
    return Ops(xp if xp is not None else array_api_compat.array_namespace(np.zeros(1)))


def _namespace_of(module) -> Any:
    probe = module.zeros(1) if not hasattr(module, "asarray") else module.asarray([0.0])
    return array_api_compat.array_namespace(probe)


def _cuda_index(device: str) -> int:
    m = _DEVICE_RE.match(device)
    return int(m.group(2)) if m and m.group(2) else 0


def _cupy_status(index: int = 0):
    """(cupy module, None) when CUDA device ``index`` is usable through CuPy, else (None, reason).

    Usable means: CuPy imports, the driver answers, and on the device a tiny matrix product
    (cuBLAS) and a compiled elementwise kernel (NVRTC) run and give the right answer."""
    try:
        cupy = importlib.import_module("cupy")
    except ModuleNotFoundError as e:
        if e.name == "cupy":
            return None, "CuPy is not installed"
        return None, f"CuPy failed to import: {_missing_part(e)}"
    except Exception as e:  # a broken CuPy install (missing CUDA libraries, ...)
        return None, f"CuPy failed to import: {_missing_part(e)}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, driver too old, ...
        return None, f"the CUDA driver does not answer ({type(e).__name__}: {e})"
    if count == 0:
        return None, "no CUDA device found"
    if index >= count:
        return None, f"cuda:{index} does not exist (this machine has {count} CUDA device(s))"
    try:
        with cupy.cuda.Device(index):
            a = cupy.full((2, 2), 2.0, dtype=cupy.float32)
            got = float((a @ a).sum().item())  # cuBLAS
            got += float(cupy.maximum(a - 1.0, 0.0).sum().item())  # an NVRTC-compiled kernel
    except Exception as e:
        return None, f"CUDA device {index} is not usable: {_missing_part(e)}"
    if got != 36.0:
        return None, f"CUDA device {index} computes wrong results (a 2x2 test gave {got}, expected 36)"
    return cupy, None


def _missing_part(e: BaseException) -> str:
    """The CUDA part a failure names (cuBLAS, NVRTC, ...), with the error's own words."""
    text = f"{type(e).__name__}: {e}"
    for key, part in _CUDA_PARTS:
        if key in text.lower():
            return f"{part} is missing or broken ({text})"
    return text


def _import(name: str, pip_name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UserError(f"{named('backend')} {name}: {name} is not installed (pip install {pip_name})") from None


def resolve(backend: str | None = None, device: str = "auto", tf32: bool = False) -> Backend:
    """Map ``--backend``, ``--device`` and ``--tf32`` to a Backend, or raise UserError saying why not.

    backend None means: CuPy on CUDA when usable (or asked for), else NumPy. On a GPU, device N
    is made the current device (every allocation of the run goes there) and float32 matrix
    products use TensorFloat-32 only when ``tf32`` is given.
    """
    if not _DEVICE_RE.match(device or ""):
        raise UserError(f"{named('device')} {device!r}: expected auto, cpu, cuda or cuda:N")
    if backend is not None and backend not in BACKENDS:
        raise UserError(f"{named('backend')} {backend!r}: expected one of {', '.join(BACKENDS)}")
    wants_cuda = device.startswith("cuda")
    index = _cuda_index(device)

    if backend is None:
        if device == "cpu":
            backend = "numpy"
        else:
            cupy, why = _cupy_status(index)
            if cupy is not None:
                backend = "cupy"
            elif wants_cuda:
                raise UserError(f"{named('device')} {device}: no usable GPU: {why}; {_CUDA_HINT}")
            else:
                return _numpy(note=f"auto: {why}, using the CPU")

    if backend == "numpy":
        if wants_cuda:
            raise UserError(
                f"{named('device')} {device}: the numpy backend runs on the CPU only; use "
                f"{named('backend')} cupy or torch"
            )
        return _numpy(note="auto: numpy runs on the CPU" if device == "auto" else "")
    if backend == "array_api_strict":
        if wants_cuda:
            raise UserError(f"{named('device')} {device}: the array_api_strict backend runs on the CPU only")
        strict = _import("array_api_strict", "array-api-strict")
        return Backend("array_api_strict", strict, strict.Device("CPU_DEVICE"), "cpu")
    if backend == "cupy":
        return _cupy(device, index, tf32)
    if backend == "torch":
        return _torch(device, index, wants_cuda, tf32)
    return _jax(device, index, wants_cuda, tf32)


def _numpy(note: str = "") -> Backend:
    return Backend("numpy", _namespace_of(np), "cpu", "cpu", note)


def _cupy(device: str, index: int, tf32: bool) -> Backend:
    if device == "cpu":
        raise UserError(f"{named('device')} cpu: the cupy backend runs on CUDA GPUs only; use {named('backend')} numpy")
    cupy, why = _cupy_status(index)
    if cupy is None:
        raise UserError(f"{named('backend')} cupy: no usable GPU: {why}; {_CUDA_HINT}")
    dev = cupy.cuda.Device(index)
    dev.use()  # array-api-compat ignores device= in CuPy's creation functions: make it current
    _cupy_tf32(cupy, tf32)
    return Backend("cupy", _namespace_of(cupy), dev, f"cuda:{index}", _gpu_note(cupy, index))


def _cupy_tf32(cupy, on: bool) -> None:
    """CuPy's float32 matrix products in TF32 or in full float32 (CuPy reads CUPY_TF32 once,
    at its first float32 product; set_compute_type overrides it)."""
    os.environ["CUPY_TF32"] = "1" if on else "0"
    linalg = getattr(getattr(cupy, "_core", None), "_routines_linalg", None)
    if linalg is not None and hasattr(linalg, "set_compute_type"):
        kind = getattr(linalg, "COMPUTE_TYPE_TF32", 7) if on else getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)
        linalg.set_compute_type(np.float32, kind)


def _torch(device: str, index: int, wants_cuda: bool, tf32: bool) -> Backend:
    torch = _import("torch", "torch")
    cuda_ok = torch.cuda.is_available()
    if wants_cuda and not cuda_ok:
        raise UserError(
            f"{named('device')} {device}: torch sees no usable CUDA device (CPU-only build or no "
            f"GPU); use {named('device')} cpu"
        )
    if wants_cuda and index >= torch.cuda.device_count():
        raise UserError(
            f"{named('device')} {device}: does not exist (torch sees {torch.cuda.device_count()} CUDA device(s))"
        )
    use_cuda = wants_cuda or (device == "auto" and cuda_ok)
    label = f"cuda:{index}" if use_cuda else "cpu"
    note = "auto: torch sees no CUDA device, using the CPU" if device == "auto" and not use_cuda else ""
    if use_cuda:
        torch.cuda.set_device(index)  # tensors made without a device= land on GPU N too
        precision = "tf32" if tf32 else "ieee"
        if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
            torch.backends.cuda.matmul.fp32_precision = precision
        else:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    return Backend("torch", _namespace_of(torch), torch.device(label), label, note)


def _jax(device: str, index: int, wants_cuda: bool, tf32: bool) -> Backend:
    # JAX would take 75% of the GPU's memory at start-up; allocate as needed instead (read
    # when JAX first starts its GPU client; a value the user set is kept)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = _import("jax", "jax")
    jax.config.update("jax_enable_x64", True)  # float64 runs need it
    kind = "gpu" if wants_cuda else "cpu"
    if device == "auto":
        kind = "gpu" if _jax_has_gpu(jax) else "cpu"
    try:
        devices = jax.devices(kind)
    except RuntimeError as e:
        raise UserError(f"{named('device')} {device}: jax has no usable {kind} device ({e})") from None
    if index >= len(devices):
        raise UserError(f"{named('device')} {device}: does not exist (jax sees {len(devices)} GPU device(s))")
    if kind == "gpu":  # XLA multiplies float32 in TF32 on GPUs unless asked for full precision
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    label = f"cuda:{index}" if kind == "gpu" else "cpu"
    return Backend("jax", _namespace_of(importlib.import_module("jax.numpy")), devices[index], label)


def _jax_has_gpu(jax) -> bool:
    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False


def _gpu_note(cupy, index: int) -> str:
    try:
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return ""
