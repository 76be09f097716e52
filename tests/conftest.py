"""The backend fixture: every (backend, device) combination, skipped with a reason where unusable.

CPU backends (numpy, array_api_strict, torch, jax) must be installed for the test run:
a missing one fails instead of skipping, so CI cannot silently lose coverage.
GPU combinations carry the ``gpu`` mark and skip where no GPU is usable.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from xpnet import backend as backends
from xpnet.errors import UserError

# (backend, device, needs a GPU, required on every machine)
COMBOS = [
    ("numpy", "cpu", False, True),
    ("array_api_strict", "cpu", False, True),
    ("torch", "cpu", False, True),
    ("jax", "cpu", False, True),
    ("cupy", "cuda", True, False),
    ("torch", "cuda", True, False),
]


def _param(name, device, gpu, required):
    marks = [pytest.mark.gpu] if gpu else []
    return pytest.param((name, device, required), id=f"{name}-{device}", marks=marks)


BACKEND_PARAMS = [_param(*c) for c in COMBOS]
CPU_REQUIRED = [_param(*c) for c in COMBOS if c[3]]


def get_backend(name: str, device: str, required: bool = False):
    """A resolved Backend, or a skip (or a failure for a required CPU backend) saying why not."""
    if not required and importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    try:
        be = backends.resolve(name, device)
    except UserError as e:
        if required:
            raise
        pytest.skip(str(e))
    return be


@pytest.fixture(params=BACKEND_PARAMS)
def any_backend(request):
    """Every backend/device combination that is usable here."""
    return get_backend(*request.param)


@pytest.fixture(scope="session")
def reference():
    return backends.resolve("numpy", "cpu")


@pytest.fixture(scope="session")
def mnist():
    from xpnet import data

    return data.load_mnist()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
