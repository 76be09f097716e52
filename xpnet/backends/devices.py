"""Device resolution: ``--backend`` and ``--device`` (or an existing array) to a ``Backend``,
with CUDA probed once per device (CuPy, its driver, cuBLAS and NVRTC) so that an unusable GPU
is one line saying which part is missing."""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

import array_api_compat
import numpy as np

from xpnet.backends.backend import BACKENDS, Backend
from xpnet.backends.host import device_of, library_of
from xpnet.errors import UserError, named

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


def runs_on(library: str | None, device: str) -> bool:
    """Whether an array library can compute on ``device`` (auto, cpu, cuda, cuda:N)."""
    if library in ("numpy", "array_api_strict"):
        return device in ("auto", "cpu")
    if library == "cupy":
        return device != "cpu"
    return library in ("torch", "jax")


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
