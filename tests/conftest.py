"""One parametrisation of every (backend, device, dtype) combination, used by every
cross-backend test: ``targets(...)`` gives the pytest params (optionally filtered) and the
``target`` fixture resolves one, skipped with the reason where unusable.

CPU backends (numpy, array_api_strict, torch, jax) must be installed for the test run: a
missing one fails instead of skipping, so CI cannot silently lose coverage. GPU
combinations carry the ``gpu`` mark and skip where no GPU is usable. NumPy float64 on the
reference op set (``reference`` fixture) is the reference: never the backend under test.

Where no real CuPy is installed, ``import cupy`` is the emulated CuPy of ``tests/emulated``
(NumPy underneath, CuPy 14.2's rules enforced, kernels and host reads counted), and the CuPy
combination runs on it, on the CPU, as ``cupy-emulated`` (no ``gpu`` mark); with a real CuPy
it is ``cupy-cuda``, on the GPU.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

EMULATED_CUPY = Path(__file__).resolve().parent / "emulated"
if importlib.util.find_spec("cupy") is None:
    sys.path.insert(0, str(EMULATED_CUPY))
CUPY_IS_EMULATED = Path(importlib.util.find_spec("cupy").origin).is_relative_to(EMULATED_CUPY)



def emulated_env(env: dict) -> dict:
    """``env`` for a subprocess that imports CuPy as this test run does (the emulated one, when
    it stands in: the emulator's folder first on PYTHONPATH)."""
    if not CUPY_IS_EMULATED:
        return env
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(EMULATED_CUPY), env.get("PYTHONPATH")]))}


from xpnet import backends  # noqa: E402
from xpnet.errors import UserError  # noqa: E402

# (backend, device, needs a GPU)
COMBOS = [
    ("numpy", "cpu", False),
    ("array_api_strict", "cpu", False),
    ("torch", "cpu", False),
    ("jax", "cpu", False),
    ("cupy", "cuda", not CUPY_IS_EMULATED),
    ("torch", "cuda", True),
]
DTYPES = ("float32", "float64")
RTOL = {"float32": 2e-5, "float64": 1e-12}  # one op against the reference


@dataclass(frozen=True)
class Target:
    """A resolved backend and the dtype to test it in."""

    backend: backends.Backend
    dtype: str

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def ops(self):
        return self.backend.ops

    @property
    def xp(self):
        return self.backend.xp

    def asarray(self, host, dtype: str | None = None):
        """A copy of host data on the device, floats in this target's dtype (or ``dtype``)."""
        host = np.array(host, copy=True)
        if dtype is None and host.dtype.kind == "f":
            dtype = self.dtype
        return self.backend.asarray(host, dtype)

    def to_host(self, x) -> np.ndarray:
        return backends.to_host(x)


def targets(dtype: str | None = None, names=None, gpu: bool = True):
    """pytest params of (backend, device, dtype), filtered by dtype, backend names, and
    whether GPU combinations are wanted."""
    out = []
    for name, device, needs_gpu in COMBOS:
        if (names is not None and name not in names) or (needs_gpu and not gpu):
            continue
        for dt in DTYPES if dtype is None else (dtype,):
            marks = [pytest.mark.gpu] if needs_gpu else []
            where = "emulated" if name == "cupy" and CUPY_IS_EMULATED else device
            out.append(pytest.param((name, device, dt, needs_gpu), id=f"{name}-{where}-{dt}", marks=marks))
    return out


def resolve_target(name: str, device: str, dtype: str, needs_gpu: bool) -> Target:
    """A Target, or a skip (GPU combinations) or failure (required CPU backends) saying why not."""
    if needs_gpu and importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    try:
        be = backends.resolve(name, device)
    except UserError as e:
        if not needs_gpu:
            raise
        pytest.skip(str(e))
    return Target(be, dtype)


@pytest.fixture(params=targets())
def target(request) -> Target:
    """Every (backend, device, dtype) usable here (parametrize indirectly to filter)."""
    return resolve_target(*request.param)


@pytest.fixture(scope="session")
def reference() -> Target:
    """NumPy float64: the reference the other backends are compared with."""
    return Target(backends.resolve("numpy", "cpu"), "float64")


@pytest.fixture(scope="session")
def mnist():
    from xpnet import data

    return data.load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
