"""Choosing a GPU without one: the CuPy usability check, --device cuda:N and --tf32, run
against a stand-in ``cupy`` module (written to a temporary folder and imported in place of
the real one) and against torch and JAX with their CUDA queries patched.

What each stand-in fails at is chosen by the environment variable FAKE_CUPY_FAIL: import
(a CUDA library missing at import), driver, cublas, nvrtc, wrong (bad arithmetic), or nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

from xpnet import backends
from xpnet.errors import UserError

ROOT = Path(__file__).resolve().parents[2]

FAKE_CUPY = textwrap.dedent('''
    """A stand-in for CuPy: NumPy arrays, a configurable failure, and a record of calls."""
    import os
    import types
    import numpy

    FAIL = os.environ.get("FAKE_CUPY_FAIL", "")
    if FAIL == "import":
        raise ImportError("libcudart.so.13: cannot open shared object file: No such file or directory")
    COUNT = int(os.environ.get("FAKE_CUPY_COUNT", "2"))
    float32 = numpy.float32
    current = []  # devices made current with Device(i).use()
    compute_types = []  # (dtype, kind) given to set_compute_type

    class _Array(numpy.ndarray):
        def __matmul__(self, other):
            if FAIL == "cublas":
                raise RuntimeError("CUBLAS_STATUS_NOT_INITIALIZED: libcublas.so.13 not found")
            return numpy.matmul(numpy.asarray(self), numpy.asarray(other)) * (2 if FAIL == "wrong" else 1)

    def full(shape, value, dtype=None):
        return numpy.full(shape, value, dtype=dtype).view(_Array)

    def maximum(x, y):
        if FAIL == "nvrtc":
            raise RuntimeError("nvrtc: error: failed to open libnvrtc-builtins.so.13")
        return numpy.maximum(x, y)

    def asarray(x):
        return numpy.asarray(x)

    def zeros(shape, dtype=None):
        return numpy.zeros(shape, dtype=dtype)

    class Device:
        def __init__(self, index=0):
            self.id = index
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def use(self):
            current.append(self.id)
        def synchronize(self):
            pass

    def _device_count():
        if FAIL == "driver":
            raise RuntimeError(
                "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"
            )
        return COUNT

    def _properties(index):
        return {"name": b"Fake GPU"}

    def _set_compute_type(dtype, kind):
        compute_types.append((numpy.dtype(dtype).name, kind))

    cuda = types.SimpleNamespace(Device=Device, runtime=types.SimpleNamespace(
        getDeviceCount=_device_count, getDeviceProperties=_properties))
    _core = types.SimpleNamespace(_routines_linalg=types.SimpleNamespace(
        set_compute_type=_set_compute_type, COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7))
''')


@pytest.fixture
def fake_cupy(tmp_path, monkeypatch):
    """Import the stand-in as ``cupy``; returns a function(fail, count) that (re)imports it."""
    (tmp_path / "cupy.py").write_text(FAKE_CUPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CUPY_TF32", raising=False)

    def load(fail: str = "", count: int = 2):
        monkeypatch.setenv("FAKE_CUPY_FAIL", fail)
        monkeypatch.setenv("FAKE_CUPY_COUNT", str(count))
        monkeypatch.delitem(sys.modules, "cupy", raising=False)
        if fail == "import":
            return None
        import cupy

        return cupy

    yield load
    sys.modules.pop("cupy", None)


@pytest.mark.parametrize(
    ("fail", "count", "device", "expected"),
    [
        (
            "import",
            2,
            "cuda",
            "CuPy failed to import: the CUDA runtime is missing or broken (ImportError: libcudart.so.13",
        ),
        ("driver", 2, "cuda", "the CUDA driver does not answer"),
        ("", 0, "cuda", "no CUDA device found"),
        ("", 2, "cuda:2", "cuda:2 does not exist (this machine has 2 CUDA device(s))"),
        ("cublas", 2, "cuda", "CUDA device 0 is not usable: cuBLAS (CUDA's matrix library) is missing or broken"),
        ("nvrtc", 2, "cuda:1", "CUDA device 1 is not usable: NVRTC (CUDA's runtime compiler) is missing or broken"),
        ("wrong", 2, "cuda", "CUDA device 0 computes wrong results"),
    ],
)
def test_unusable_cupy_is_refused_naming_what_is_missing(fake_cupy, fail, count, device, expected):
    fake_cupy(fail, count)
    for backend in ("cupy", None):
        with pytest.raises(UserError) as e:
            backends.resolve(backend, device)
        message = str(e.value)
        assert expected in message, message
        assert "pip install 'xpnet[cuda13]'" in message and "\n" not in message
    if device == "cuda":  # auto falls back to the CPU, saying why
        be = backends.resolve(None, "auto")
        assert be.name == "numpy" and be.note.startswith(f"auto: {expected.split(' (')[0]}"), be.note


def test_missing_cupy_says_install_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ModuleNotFoundError(name="cupy")
    with pytest.raises(UserError, match="no usable GPU: CuPy is not installed; install CuPy with its CUDA libraries"):
        backends.resolve("cupy", "cuda")


@pytest.mark.parametrize("tf32", [False, True])
def test_cupy_device_n_is_made_current_and_tf32_is_set(fake_cupy, tf32):
    cupy = fake_cupy("", 2)
    be = backends.resolve(None, "cuda:1", tf32=tf32)
    assert (be.name, be.label, be.note) == ("cupy", "cuda:1", "Fake GPU")
    assert cupy.current == [1]
    assert cupy.compute_types == [("float32", 7 if tf32 else 1)]
    assert os.environ["CUPY_TF32"] == ("1" if tf32 else "0")


def test_command_line_names_the_missing_library(fake_cupy, tmp_path):
    """End to end: `xpnet train --device cuda` with cuBLAS missing exits 2 with one line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "FAKE_CUPY_FAIL": "cublas"}
    r = subprocess.run(
        [sys.executable, "-m", "xpnet", "train", "--device", "cuda", "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "--device cuda: no usable GPU: CUDA device 0 is not usable: cuBLAS" in r.stderr


@pytest.fixture
def torch_with_two_gpus(monkeypatch):
    """torch as if it saw two CUDA devices; records set_device and restores the precision."""
    torch = pytest.importorskip("torch")
    made_current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    before = torch.backends.cuda.matmul.fp32_precision
    yield torch, made_current
    torch.backends.cuda.matmul.fp32_precision = before


@pytest.mark.parametrize("tf32", [False, True])
def test_torch_cuda_n_is_made_current_and_tf32_is_set(torch_with_two_gpus, tf32):
    torch, made_current = torch_with_two_gpus
    be = backends.resolve("torch", "cuda:1", tf32=tf32)
    assert (be.label, str(be.device)) == ("cuda:1", "cuda:1")
    assert made_current == [1]
    assert torch.backends.cuda.matmul.fp32_precision == ("tf32" if tf32 else "ieee")
    with pytest.raises(UserError, match=r"--device cuda:2: does not exist \(torch sees 2 CUDA device\(s\)\)"):
        backends.resolve("torch", "cuda:2")


def test_torch_on_the_cpu_leaves_gpu_settings_alone(torch_with_two_gpus):
    torch, made_current = torch_with_two_gpus
    before = torch.backends.cuda.matmul.fp32_precision
    assert backends.resolve("torch", "cpu", tf32=True).label == "cpu"
    assert made_current == [] and torch.backends.cuda.matmul.fp32_precision == before


def test_jax_does_not_preallocate_and_multiplies_in_full_float32_on_gpus(monkeypatch):
    jax = pytest.importorskip("jax")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    cpu = jax.devices("cpu")[0]
    monkeypatch.setattr(jax, "devices", lambda kind=None: [cpu, cpu])  # stands in for two GPUs
    before = jax.config.jax_default_matmul_precision
    try:
        for tf32, precision in ((False, "highest"), (True, "tensorfloat32")):
            be = backends.resolve("jax", "cuda:1", tf32=tf32)
            assert be.label == "cuda:1" and jax.config.jax_default_matmul_precision == precision
    finally:
        jax.config.update("jax_default_matmul_precision", before)
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")  # the user's own choice is kept
    backends.resolve("jax", "cpu")
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"


def test_cuda_extras_bring_cupy_with_its_cuda_libraries():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["cuda12"] == ["cupy-cuda12x[ctk]>=14"]
    assert extras["cuda13"] == ["cupy-cuda13x[ctk]>=14"]


def test_tf32_flag_reaches_the_config_and_defaults_off():
    from xpnet import cli, config

    parser = cli.build_parser()
    for argv, expected in ((["train"], False), (["train", "--tf32"], True)):
        cfg, _ = config.resolve(vars(parser.parse_args(argv)))
        assert cfg.tf32 is expected
    assert parser.parse_args(["evaluate", "--model", "m.npz", "--tf32"]).tf32 is True


def test_ctrl_c_during_start_up_is_one_line_and_exit_130():
    """A KeyboardInterrupt while the command's modules are imported (as Ctrl-C during a slow
    start-up gives) ends with one line and 130, no traceback."""
    hook = textwrap.dedent("""
        import sys
        class Interrupt:
            def find_spec(self, name, path=None, target=None):
                if name == "xpnet.cli":
                    raise KeyboardInterrupt
        sys.meta_path.insert(0, Interrupt())
        from xpnet.__main__ import run
        sys.exit(run())
    """)
    r = subprocess.run([sys.executable, "-c", hook], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert (r.returncode, r.stderr) == (130, "xpnet: interrupted\n")


def test_every_subpackage_is_in_the_distribution():
    """A non-editable install ships exactly pyproject's packages: each folder of xpnet with an
    __init__.py must be listed (xpnet.backends once was not)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "xpnet").rglob("__init__.py")}
    assert found <= listed, found - listed
