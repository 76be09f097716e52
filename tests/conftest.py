"""One parametrisation of every (backend, device, dtype) combination, used by every
cross-backend test: ``targets(...)`` gives the pytest params (optionally filtered) and the
``target`` fixture resolves one, skipped with the reason where unusable.

CPU backends (numpy, array_api_strict, torch, jax) must be installed for the test run: a
missing one fails instead of skipping, so CI cannot silently lose coverage. GPU
combinations carry the ``gpu`` mark and skip where no GPU is usable. NumPy float64 on the
reference op set (``reference`` fixture) is the reference: never the backend under test.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import pytest

from xpnet import backends
from xpnet.errors import UserError

# (backend, device, needs a GPU)
COMBOS = [
    ("numpy", "cpu", False),
    ("array_api_strict", "cpu", False),
    ("torch", "cpu", False),
    ("jax", "cpu", False),
    ("cupy", "cuda", True),
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
            out.append(pytest.param((name, device, dt, needs_gpu), id=f"{name}-{device}-{dt}", marks=marks))
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
