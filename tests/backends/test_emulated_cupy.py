"""The CuPy 14.2 emulator's own rules (tests/emulated/cupy): each rule, with its counters."""

from __future__ import annotations

import sys
import types

import numpy
import pytest

from helpers import CUPY_IS_EMULATED

if not CUPY_IS_EMULATED:  # helpers (via conftest) puts the emulator first on sys.path where no real CuPy is installed
    pytest.skip("a real CuPy is installed: these tests are about the emulator", allow_module_level=True)

import cupy  # noqa: E402
import cupy.cublas  # noqa: E402  (as in real CuPy, `import cupy` leaves it out)
from cupy import _emulation  # noqa: E402


@pytest.fixture(autouse=True)
def fresh():
    _emulation.configure()
    _emulation.reset_counters()
    yield
    _emulation.configure()


def delta(before: dict) -> dict:
    now = _emulation.snapshot()
    return {k: now[k] - before[k] for k in now if now[k] != before[k]}


def test_exact_counts_of_a_simple_sequence():
    x = cupy.asarray(numpy.ones((4, 3), numpy.float32))  # allocation + h2d copy
    assert delta(dict.fromkeys(_emulation.snapshot(), 0)) == {"allocations": 1, "h2d_copies": 1}
    before = _emulation.snapshot()
    y = cupy.empty((4, 3), numpy.float32)  # allocation
    cupy.multiply(x, numpy.float32(2), out=y)  # launch
    y += x  # launch
    z = cupy.exp(y)  # allocation + launch
    s = cupy.sum(z, axis=0, keepdims=True)  # allocation + launch
    v = z[1:, ::2].T.reshape(2, 3)[..., None]  # views: nothing
    w = cupy.zeros((2,), numpy.float32)  # allocation + memset
    host = s.get()  # host sync
    assert delta(before) == {"allocations": 4, "launches": 4, "memsets": 1, "host_syncs": 1}
    assert host.dtype == numpy.float32 and z.dtype == numpy.float32 and w.dtype == numpy.float32
    assert v.shape == (2, 3, 1)
    numpy.testing.assert_allclose(host, numpy.full((1, 3), 4 * numpy.exp(3.0)), rtol=1e-6)
    before = _emulation.snapshot()
    t = z[1:].T  # view
    t[0, 0] = 5.0  # launch (writes through the view)
    assert float(z[1, 0]) == 5.0  # host sync
    assert numpy.shares_memory(t._a, z._a) and delta(before) == {"launches": 1, "host_syncs": 1}


def test_no_implicit_host_conversion():
    x = cupy.arange(6, dtype=numpy.float32)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        numpy.asarray(x)
    with pytest.raises(TypeError):
        numpy.add(x, numpy.ones(6, numpy.float32))  # a host operand: refused
    with pytest.raises(TypeError):
        x + numpy.ones(6)
    assert isinstance(numpy.add(x, 1), cupy.ndarray)  # dispatched to cupy.add, as CuPy does
    assert isinstance(numpy.sum(x), cupy.ndarray)
    with pytest.raises(BufferError):
        x.__dlpack__()
    assert x.__dlpack_device__() == (2, 0)
    assert not hasattr(x, "__array_namespace__")
    before = _emulation.snapshot()
    assert cupy.asnumpy(x).tolist() == list(range(6)) and x.get().dtype == numpy.float32
    assert delta(before) == {"host_syncs": 2}
    assert not isinstance(x, numpy.ndarray)


def test_devices(monkeypatch):
    assert hash is not None
    with pytest.raises(TypeError, match="unhashable"):
        hash(cupy.cuda.Device(0))
    assert cupy.cuda.Device() == cupy.cuda.Device(0) == cupy.cuda.Device(cupy.cuda.Device(0))
    assert int(cupy.cuda.Device(0)) == 0 and cupy.cuda.Device(0).compute_capability == "90"
    _emulation.configure(count=2)
    assert cupy.cuda.runtime.getDeviceCount() == 2
    x = cupy.ones((3,), numpy.float32)
    with cupy.cuda.Device(1):
        assert cupy.cuda.Device().id == 1
        y = cupy.ones((3,), numpy.float32)
        assert y.device == cupy.cuda.Device(1) and y.device.id == 1
        with pytest.raises(ValueError, match=r"resides \(0\).*current device \(1\)"):
            x + 1
    assert cupy.cuda.Device().id == 0 and x.device.id == 0
    with pytest.raises(ValueError, match=r"resides \(1\).*current device \(0\)"):
        cupy.sum(y)
    cupy.cuda.Device(1).use()
    assert cupy.cuda.runtime.getDevice() == 1
    cupy.cuda.Device(0).use()
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError):
        cupy.cuda.Device(2).use()
    before = _emulation.snapshot()
    cupy.cuda.Device(0).synchronize()
    cupy.cuda.runtime.deviceSynchronize()
    cupy.cuda.get_current_stream().synchronize()
    assert delta(before) == {"host_syncs": 3}
    monkeypatch.setenv("XPNET_EMULATED_CUPY_COUNT", "3")
    _emulation._env_config()
    assert cupy.cuda.runtime.getDeviceCount() == 3


def test_elementwise_out_overlapping_in_bounds_copies_the_input():
    m = cupy.zeros((5, 8), numpy.float32)
    a, b, c = m[:, 0], m[:, 1], m[:, 2]  # strided columns: bounds overlap
    before = _emulation.snapshot()
    cupy.add(a, c, out=b)
    assert delta(before) == {"allocations": 2, "launches": 3}  # a and c copied first
    before = _emulation.snapshot()
    cupy.add(b, 1.0, out=b)  # the very same object: not copied
    assert delta(before) == {"launches": 1}
    before = _emulation.snapshot()
    b += a  # an operator with out: a copied
    assert delta(before) == {"allocations": 1, "launches": 2}
    other = cupy.zeros((5,), numpy.float32)
    before = _emulation.snapshot()
    cupy.copyto(b, other)  # no overlap, strided dst: one kernel
    cupy.copyto(other, cupy.ones((5,), numpy.float32))  # both contiguous alike: a memcpy
    assert delta(before) == {"launches": 2, "allocations": 1, "memcpys": 1}  # ones: a fill kernel
    assert other.get().tolist() == [1.0] * 5


def test_matmul_rules():
    a = cupy.ones((4, 3), numpy.float32)
    b = cupy.ones((3, 5), numpy.float32)
    before = _emulation.snapshot()
    r = a @ b
    assert delta(before) == {"allocations": 1, "launches": 1} and r.dtype == numpy.float32
    out_c = cupy.empty((4, 5), numpy.float32)
    before = _emulation.snapshot()
    cupy.matmul(a, b, out=out_c)
    assert delta(before) == {"launches": 1}
    out_t = cupy.empty((5, 4), numpy.float32).T  # F-ordered, not C-contiguous
    before = _emulation.snapshot()
    cupy.matmul(a, b, out=out_t)
    assert delta(before) == {"allocations": 1, "launches": 2}
    assert (out_t.get() == 3).all()
    strided = cupy.ones((4, 6), numpy.float32)[:, ::2]  # neither C nor F: copied
    before = _emulation.snapshot()
    cupy.matmul(strided, b, out=out_c)
    assert delta(before) == {"allocations": 1, "launches": 2}
    batch = cupy.ones((2, 4, 3), numpy.float32)
    stack = cupy.ones((2, 3, 4), numpy.float32)
    before = _emulation.snapshot()
    r3 = cupy.matmul(b.T, stack)  # 2-D (F-ordered: copied) x 3-D (broadcast: pointer arrays)
    assert r3.shape == (2, 5, 4)
    assert delta(before) == {"allocations": 1 + 3 + 1, "launches": 1 + 3 + 1}  # copy, pointers, cuBLAS
    out3 = cupy.empty((2, 4, 4), numpy.float32)
    before = _emulation.snapshot()
    cupy.matmul(stack.mT, stack, out=out3)  # a batched operand not C-contiguous: copied
    assert delta(before) == {"allocations": 1, "launches": 2}
    before = _emulation.snapshot()
    cupy.matmul(batch, stack, out=out3)  # C-contiguous stacks of one batch: one launch
    assert delta(before) == {"launches": 1}
    assert cupy.matmul(batch, b).shape == (2, 4, 5)


def test_import_cupy_leaves_out_cublas():
    """As real CuPy 14: ``import cupy`` does not import the ``cupy.cublas`` submodule (code that
    calls it imports it; the first GPU run failed where xpnet did not)."""
    import subprocess

    from helpers import EMULATED_CUPY

    code = "import cupy, sys; print(hasattr(cupy, 'cublas')); import cupy.cublas; print(hasattr(cupy, 'cublas'))"
    env = {"PYTHONPATH": str(EMULATED_CUPY), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_strided_batched_gemm_binding(dtype):
    """cupy_backends' sgemm/dgemmStridedBatched: raw pointers, column-major operands with
    their transposes, leading dimensions and batch strides (0: shared), host or device alpha
    and beta, one launch, nothing allocated; a pointer outside any buffer is refused."""
    from cupy_backends.cuda.libs import cublas as lib

    rng = numpy.random.default_rng(0)
    A = rng.standard_normal((3, 4, 5)).astype(dtype)  # column-major op(A) (4, 5) per batch is A[i].T
    B = rng.standard_normal((5, 6)).astype(dtype)  # shared by the batches
    C = rng.standard_normal((3, 6, 4)).astype(dtype)  # column-major (4, 6) per batch
    a, b, c = cupy.asarray(A), cupy.asarray(B), cupy.asarray(C)
    gemm = lib.sgemmStridedBatched if dtype == numpy.float32 else lib.dgemmStridedBatched
    handle = cupy.cuda.device.get_cublas_handle()
    alpha, beta = numpy.array([2.0], dtype), numpy.array([0.5], dtype)
    before = _emulation.snapshot()
    # column-major C (4, 6) = 2 * op(A) (4, 5) @ op(B) (5, 6) + 0.5 C, where each A[i] (4, 5) is read
    # column-major as its (5, 4) transpose (ld 5, batch stride 20, op T), B (5, 6) as (6, 5) (ld 6, op T)
    gemm(
        handle,
        1,
        1,
        4,
        6,
        5,
        alpha.ctypes.data,
        a.data.ptr,
        5,
        20,
        b.data.ptr,
        6,
        0,
        beta.ctypes.data,
        c.data.ptr,
        4,
        24,
        3,
    )
    assert delta(before) == {"launches": 1}
    want = 2 * numpy.swapaxes(A @ B, 1, 2) + 0.5 * C  # c[i] holds column-major C's transpose
    numpy.testing.assert_allclose(c.get(), want, rtol=1e-5)
    lib.setPointerMode(handle, lib.CUBLAS_POINTER_MODE_DEVICE)
    try:
        d_alpha, d_beta = cupy.asarray(numpy.array(1.0, dtype)), cupy.asarray(numpy.array(0.0, dtype))
        gemm(
            handle,
            1,
            1,
            4,
            6,
            5,
            d_alpha.data.ptr,
            a.data.ptr,
            5,
            20,
            b.data.ptr,
            6,
            0,
            d_beta.data.ptr,
            c.data.ptr,
            4,
            24,
            3,
        )
    finally:
        lib.setPointerMode(handle, lib.CUBLAS_POINTER_MODE_HOST)
    numpy.testing.assert_allclose(c.get(), numpy.swapaxes(A @ B, 1, 2), rtol=1e-5)
    with pytest.raises(RuntimeError, match="past the end"):  # batch stride too large for the buffer
        gemm(
            handle,
            1,
            1,
            4,
            6,
            5,
            alpha.ctypes.data,
            a.data.ptr,
            5,
            40,
            b.data.ptr,
            6,
            0,
            beta.ctypes.data,
            c.data.ptr,
            4,
            24,
            3,
        )


def test_cublas_gemm_semantics():
    an = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    bn = numpy.arange(12, dtype=numpy.float32).reshape(4, 3)
    a, b = cupy.asarray(an), cupy.asarray(bn)
    before = _emulation.snapshot()
    c = cupy.cublas.gemm("N", "T", a, b)  # F-ordered new out
    assert delta(before) == {"allocations": 1, "launches": 1} and c.flags.f_contiguous
    numpy.testing.assert_allclose(c.get(), an @ bn.T)
    out = cupy.asarray(numpy.ones((2, 4), numpy.float32))
    cupy.cublas.gemm("N", "T", a, b, out=out, alpha=2.0, beta=numpy.float32(0.5))
    numpy.testing.assert_allclose(out.get(), 2 * an @ bn.T + 0.5)
    alpha = cupy.asarray(numpy.float32(3.0))
    before = _emulation.snapshot()
    cupy.cublas.gemm("N", "T", a, b, out=out, alpha=alpha, beta=0.0)  # beta made a device array
    assert delta(before) == {"allocations": 1, "h2d_copies": 1, "launches": 1}
    numpy.testing.assert_allclose(out.get(), 3 * an @ bn.T)
    alpha64 = cupy.asarray(numpy.float64(1.0))
    before = _emulation.snapshot()
    cupy.cublas.gemm("N", "T", a, b, out=out, alpha=alpha64, beta=0.0)  # converted to float32
    assert delta(before) == {"allocations": 2, "h2d_copies": 1, "launches": 2}
    strided_out = cupy.zeros((2, 8), numpy.float32)[:, ::2]
    before = _emulation.snapshot()
    cupy.cublas.gemm("N", "T", a, b, out=strided_out)
    assert delta(before) == {"allocations": 1, "launches": 3}  # copy out in, gemm, copy back
    numpy.testing.assert_allclose(strided_out.get(), an @ bn.T)


def test_capture_records_and_replays():
    from cupy_backends.cuda.libs import cublas as cublas_lib

    handle = cupy.cuda.device.get_cublas_handle()
    s = cupy.cuda.Stream(non_blocking=True)
    x = cupy.asarray(numpy.ones(4, numpy.float32))
    y = cupy.zeros(4, numpy.float32)
    scale = cupy.asarray(numpy.float32(2.0))  # a device scalar: read at replay
    step = 10.0  # a host scalar: baked in
    a = cupy.asarray(numpy.eye(2, dtype=numpy.float32))
    g_out = cupy.zeros((2, 2), numpy.float32)
    zero = cupy.asarray(numpy.float32(0))
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError):
        cupy.cuda.Stream.null.begin_capture()
    with s:
        s.begin_capture()
        assert s.is_capturing() and cupy.cuda.get_current_stream() is s
        cupy.multiply(x, step, out=y)
        cupy.multiply(y, scale, out=y)
        # CuPy 14's own cuBLAS calls are refused during a capture (the capture goes on) ...
        for refused in (
            lambda: cupy.cublas.gemm("N", "N", a, a, out=g_out, alpha=scale, beta=zero),
            lambda: cupy.matmul(a, a, out=g_out),
            lambda: cublas_lib.sgemm(handle, 0, 0, 2, 2, 2, scale.data.ptr, a.data.ptr, 2, a.data.ptr, 2, 0, 0, 2),
            lambda: cublas_lib.setStream(handle, s.ptr),
        ):
            with pytest.raises(NotImplementedError, match="during stream capture is currently unsupported"):
                refused()
        # ... libcublas's own GEMM runs on its handle's stream: captured there, read at replay
        lib = cublas_lib.SharedObject()
        assert lib.cublasSetStream_v2(handle, s.ptr) == 0
        cublas_lib.setPointerMode(handle, cublas_lib.CUBLAS_POINTER_MODE_DEVICE)
        ptrs = (scale.data.ptr, a.data.ptr, 2, a.data.ptr, 2, zero.data.ptr, g_out.data.ptr, 2)
        assert lib.cublasSgemm_v2(handle, 0, 0, 2, 2, 2, *ptrs) == 0
        cublas_lib.setPointerMode(handle, cublas_lib.CUBLAS_POINTER_MODE_HOST)
        graph = s.end_capture()
    assert cupy.cuda.get_current_stream() is cupy.cuda.Stream.null
    assert y.get().tolist() == [0.0] * 4  # recorded, not executed
    step = 100.0
    scale.set(numpy.array(3.0, numpy.float32))
    before = _emulation.snapshot()
    graph.launch()
    assert delta(before) == {"launches": 3, "graph_launches": 1}
    assert y.get().tolist() == [30.0] * 4  # 10 (baked) * 3 (read at replay)
    numpy.testing.assert_allclose(g_out.get(), 3 * numpy.eye(2))


def test_capture_refuses_allocations_and_syncs():
    s = cupy.cuda.Stream()
    x = cupy.ones((32, 10), numpy.float32)
    with s:
        s.begin_capture()
        with pytest.raises(
            cupy.cuda.runtime.CUDARuntimeError, match=r"allocation of a \(32, 10\) float32 array during stream capture"
        ):
            cupy.exp(x)
        with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="host"):
            float(x[0, 0])
        with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="invalidated"):
            s.end_capture()
    assert not s.is_capturing()
    other = cupy.cuda.Stream()
    with s:
        s.begin_capture()
        with other:  # another stream runs eagerly
            y = cupy.exp(x)
        s.end_capture().launch()
    assert y.shape == (32, 10)


@pytest.fixture
def kernels(monkeypatch):
    def axpy(n, alpha, x, y):
        y[:n] += alpha * x[:n]

    def count(n, idx, out):
        out[:n] = idx[:n] * 2

    fake = types.ModuleType("xpnet.backends.cuda_kernels")
    fake.REFERENCES = {"axpy": axpy, "count": count}
    monkeypatch.setitem(sys.modules, "xpnet.backends.cuda_kernels", fake)


CODE = r"""
typedef float real;
extern "C" __global__ void axpy(const int n, const real alpha, const real* __restrict__ x, real* y) {}
extern "C" __global__ void count(long long n, const unsigned int *idx, int* out) {}
extern "C" __global__ void missing(int n) {}
"""


def test_raw_module_checks_signatures(kernels):
    mod = cupy.RawModule(code=CODE, options=("-std=c++17",))
    axpy = mod.get_function("axpy")
    with pytest.raises(KeyError, match="missing"):
        mod.get_function("missing")  # no NumPy reference
    with pytest.raises(ValueError, match="nope"):
        mod.get_function("nope")  # not in the code
    x = cupy.asarray(numpy.arange(6, dtype=numpy.float32).reshape(3, 2))
    y = cupy.zeros((2, 3), numpy.float32).T  # F-ordered: flat in storage order
    before = _emulation.snapshot()
    axpy((1,), (128,), (numpy.int32(6), numpy.float32(2), x, y))
    assert delta(before) == {"launches": 1}
    assert y.get().T.reshape(-1).tolist() == [0, 2, 4, 6, 8, 10]
    with pytest.raises(TypeError, match="alpha"):
        axpy((1,), (128,), (numpy.int32(6), 2.0, x, y))  # a Python float: width unknown
    with pytest.raises(TypeError, match="'n'"):
        axpy((1,), (128,), (numpy.int64(6), numpy.float32(2), x, y))
    with pytest.raises(TypeError, match="float64"):
        axpy((1,), (128,), (numpy.int32(6), numpy.float32(2), x.astype(numpy.float64), y))
    with pytest.raises(ValueError, match="contiguous"):
        axpy((1,), (128,), (numpy.int32(3), numpy.float32(2), x[:, 0], y))
    with pytest.raises(TypeError, match="4 arguments"):
        axpy((1,), (128,), (numpy.int32(6), numpy.float32(2), x))
    k = cupy.RawKernel(CODE, "count")
    idx = cupy.asarray(numpy.arange(4, dtype=numpy.uint32))
    out = cupy.zeros(4, numpy.int32)
    k((1,), (32,), (numpy.int64(4), idx, out))
    assert out.get().tolist() == [0, 2, 4, 6]
    double = cupy.RawModule(code=CODE.replace("typedef float", "typedef double"))
    with pytest.raises(TypeError):
        double.get_function("axpy")((1,), (1,), (numpy.int32(6), numpy.float32(2), x, y))


def test_rest_of_the_api():
    u8 = cupy.asarray(numpy.array([0, 255], numpy.uint8))
    f = cupy.empty(2, numpy.float32)
    cupy.multiply(u8, numpy.float32(1 / 255), out=f, dtype=numpy.float32)
    assert f.get().tolist() == [0.0, 1.0]
    fz = cupy.zeros_like(cupy.empty((3, 4), numpy.float32).T)
    assert fz.flags.f_contiguous and not fz.flags.c_contiguous
    t = cupy.take(cupy.arange(5), cupy.asarray(numpy.array([-1, 5])))
    assert t.get().tolist() == [4, 0]  # indices wrap
    m = cupy.asarray(numpy.arange(6.0).reshape(2, 3))
    mx = cupy.empty((1, 3))
    assert cupy.max(m, axis=0, keepdims=True, out=mx) is mx and mx.get().tolist() == [[3, 4, 5]]
    assert cupy.sum(m, axis=1, dtype=numpy.float32).dtype == numpy.float32
    assert cupy.__version__ == "14.2.0" and cupy.float32 is numpy.float32
    props = cupy.cuda.runtime.getDeviceProperties(0)
    assert props["name"] == b"Emulated GPU (NumPy)" and props["major"] == 9
    free, total = cupy.cuda.runtime.memGetInfo()
    assert total == 80 << 30 and free <= total
    pool = cupy.get_default_memory_pool()
    assert pool.used_bytes() > 0 and pool.total_bytes() >= pool.used_bytes()
    rl = cupy._core._routines_linalg
    rl.set_compute_type(numpy.float32, rl.COMPUTE_TYPE_TF32)
    assert _emulation.compute_type_calls[-1] == (numpy.float32, 7) and rl.COMPUTE_TYPE_DEFAULT == 1
    assert isinstance(cupy.cuda.device.get_cublas_handle(), int)
    assert isinstance(m.data.ptr, int) and m.data.ptr == m.data.ptr
    assert m[0].data.ptr == m.data.ptr and m[1].data.ptr == m.data.ptr + 24
    h = numpy.full((2, 3), 7.0)
    before = _emulation.snapshot()
    m.set(h)
    assert delta(before) == {"h2d_copies": 1} and m.get().tolist() == h.tolist()
    assert len(m) == 2 and [r.shape for r in m] == [(3,), (3,)]
    assert m[cupy.asarray(numpy.array([1]))].shape == (1, 3)
    assert "7." in repr(m)


def test_failure_injection(monkeypatch):
    a = cupy.ones((2, 2), numpy.float32)
    _emulation.configure(fail="driver")
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="cudaErrorInsufficientDriver"):
        cupy.cuda.runtime.getDeviceCount()
    _emulation.configure(fail="cublas")
    with pytest.raises(RuntimeError, match="CUBLAS_STATUS_NOT_INITIALIZED"):
        a @ a
    with pytest.raises(RuntimeError, match="libcublas.so.13"):
        cupy.cublas.gemm("N", "N", a, a)
    assert cupy.maximum(a, 0).shape == (2, 2)
    _emulation.configure(fail="nvrtc")
    with pytest.raises(RuntimeError, match="libnvrtc-builtins.so.13"):
        cupy.maximum(a, 0)
    _emulation.configure(fail="wrong")
    assert (a @ a).get().tolist() == [[4, 4], [4, 4]]
    _emulation.configure()
    assert (a @ a).get().tolist() == [[2, 2], [2, 2]]
    monkeypatch.setenv("XPNET_EMULATED_CUPY_FAIL", "nvrtc")
    _emulation._env_config()
    assert _emulation.fail == "nvrtc"


def test_array_api_compat():
    import array_api_compat
    from array_api_compat.common._helpers import is_cupy_array

    _emulation.configure(count=2)
    with cupy.cuda.Device(1):
        x = cupy.asarray(numpy.arange(6, dtype=numpy.float32).reshape(2, 3))
    assert is_cupy_array(x)
    xp = array_api_compat.array_namespace(x)
    assert xp.__name__ == "array_api_compat.cupy"
    dev = array_api_compat.device(x)
    assert dev == cupy.cuda.Device(1)
    with cupy.cuda.Device(1):  # array-api-compat's creation functions ignore device= for CuPy
        z = xp.zeros((2, 3), dtype=xp.float32, device=dev)
    assert isinstance(z, cupy.ndarray) and z.device.id == 1 and z.dtype == numpy.float32
    y = xp.asarray([1.0, 2.0], device=dev)
    assert y.device.id == 1
    with cupy.cuda.Device(1):
        s = xp.sum(xp.astype(x, xp.float64), axis=1)
        assert s.dtype == numpy.float64 and s.device.id == 1
        c = xp.concat([x, x], axis=0)
        e = xp.expand_dims(x, axis=0)
        assert c.shape == (4, 3) and e.shape == (1, 2, 3) and numpy.shares_memory(e._a, x._a)
        assert xp.argmax(x, axis=1).get().tolist() == [2, 2]
        assert xp.matmul(x, xp.matrix_transpose(x)).shape == (2, 2)
        assert xp.unique_values(xp.asarray([3, 1, 3])).get().tolist() == [1, 3]
        assert xp.isdtype(x.dtype, "real floating") and xp.finfo(xp.float32).bits == 32
        assert xp.where(x > 2, x, xp.zeros_like(x)).device.id == 1
