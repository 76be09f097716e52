"""What the tests share: the (backend, device, dtype) combinations every cross-backend test runs
on (``targets``), the emulated CuPy standing in where no real one is installed, running
``xpnet`` in a subprocess, checking a clean one-line error, writing IDX data sets, and the
byte mutations of the fuzz tests. Imported by conftest (before anything imports CuPy) and by
the test modules; no test module imports another.

Where no real CuPy is installed, ``import cupy`` is the emulated CuPy of ``tests/emulated``
(NumPy underneath, CuPy 14.2's rules enforced, kernels and host reads counted), and the CuPy
combination runs on it, on the CPU, as ``cupy-emulated`` (no ``gpu`` mark); with a real CuPy
it is ``cupy-cuda``, on the GPU.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]  # the repository
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


from xpnet import backends  # noqa: E402  (after the emulated CuPy is on the path)
from xpnet.errors import UserError  # noqa: E402

if CUPY_IS_EMULATED:  # in this process, the emulated libcublas.so stands for the one a real CuPy loads
    from cupy_backends.cuda.libs import cublas as _emulated_cublas

    from xpnet.backends import cublas as _cublas

    OPEN_LIBCUBLAS = _cublas.shared_object  # xpnet's own, for its test
    _cublas.shared_object = _emulated_cublas.shared_object

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


# ---- the command line in a subprocess ----------------------------------------------------------

ACC = re.compile(r"^test accuracy: (\d+\.\d\d)% \((\d+)/(\d+)\)$")


def xpnet(*args, cwd=None, check=True, gpu=False):
    """``python -m xpnet ARGS``; ``gpu``: with the CuPy of this test run (the emulated one, where it stands in)."""
    env = dict(os.environ, PYTHONWARNINGS="error::RuntimeWarning")
    if gpu:
        env = emulated_env(env)
    p = subprocess.run(
        [sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    if check:
        assert p.returncode == 0, p.stderr
    return p


def last_accuracy(stdout: str):
    m = ACC.match(stdout.strip().splitlines()[-1])
    assert m, stdout
    return m.group(0)


def assert_clean_error(p, *needles, code=2):
    assert p.returncode == code, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and len(err.splitlines()) == 1, p.stderr
    for needle in needles:
        assert needle in err, err


def parsers():
    """xpnet's parser and each command's."""
    from xpnet import cli

    top = cli.build_parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return [top, *commands.choices.values()]


# ---- data files ------------------------------------------------------------------------------

CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    dt = arr.dtype if arr.dtype.itemsize == 1 else arr.dtype.newbyteorder(">")
    header = bytes([0, 0, CODES[dt], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(dt).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    raw = idx_bytes(arr)
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_dataset(folder: Path, rng, n_train=600, n_test=200, shape=(8, 8), classes=3, gz=False) -> Path:
    """A learnable toy set: class k lights up band k of the image, plus noise."""
    folder.mkdir(parents=True, exist_ok=True)

    def make(n):
        labels = rng.integers(0, classes, n).astype(np.uint8)
        imgs = (rng.random((n, *shape)) * 60).astype(np.uint8)
        rows = shape[0] // classes
        for i, k in enumerate(labels):
            imgs[i, k * rows : (k + 1) * rows] = 200 + rng.integers(0, 55)
        return imgs, labels

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs, labels = make(n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", imgs, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return folder


# ---- fuzzing ---------------------------------------------------------------------------------


def mutate(raw: bytes, draw_ops) -> bytes:
    b = bytearray(raw)
    for kind, pos, val in draw_ops:
        if not b:
            break
        pos %= len(b)
        if kind == 0:
            b[pos] = val
        elif kind == 1:
            del b[pos : pos + 1 + val % 8]
        elif kind == 2:
            b[pos:pos] = bytes([val]) * (1 + val % 5)
        else:
            b = b[:pos]
    return bytes(b)


MUTATIONS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 30), st.integers(0, 255)), min_size=1, max_size=4)
