"""The fixtures every test may use: ``target`` (each (backend, device, dtype) combination of
``helpers.targets``, resolved, skipped with the reason where unusable), ``reference`` (NumPy
float64, never the backend under test), ``mnist`` and ``rng``. The combinations and the
emulated CuPy are in ``helpers`` (imported first: it puts the emulated CuPy on the path where
no real one is installed).

CPU backends (numpy, array_api_strict, torch, jax) must be installed for the test run: a
missing one fails instead of skipping, so CI cannot silently lose coverage. GPU
combinations carry the ``gpu`` mark and skip where no GPU is usable.
"""

from __future__ import annotations

# isort: off
from helpers import Target, resolve_target, targets  # first: the emulated CuPy on the path before xpnet loads

# isort: on
import numpy as np
import pytest

from xpnet import backends


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
    from xpnet.files import idx

    return idx.load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
