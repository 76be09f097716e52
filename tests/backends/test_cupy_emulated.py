"""xpnet's CuPy path on the emulated CuPy (tests/emulated; see helpers): what a training step
costs in kernel launches, host reads and allocations, CUDA graphs (captured once, replayed bit
for bit as the eager steps), and every CUDA source compiled by NVRTC for sm_80 and sm_90 (a
compiler library: no GPU or driver needed).

The cross-backend tests (test_ops, test_step, test_regularise, test_checkpoint, test_api, ...)
run on the emulated CuPy as their ``cupy-emulated`` target; this file holds what only CuPy has.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from xpnet import backends, population, training
from xpnet.backends import cuda_kernels
from xpnet.engine import data, model
from xpnet.settings import TrainConfig

from helpers import CUPY_IS_EMULATED

pytestmark = pytest.mark.skipif(
    not CUPY_IS_EMULATED, reason="a real CuPy is installed: these are the emulator's counts"
)

# the plain-SGD networks with a launch budget (kernels per step, after a chunk's first step)
BUDGETS = {
    "A": ({"hidden": (30,), "activation": "sigmoid", "batch_size": 50, "lr": 3.0}, 12),
    "B": ({"hidden": (100,), "activation": "relu", "batch_size": 128, "lr": 0.1}, 10),
    "default": ({}, 14),
}
RECIPES = {
    "sgd-l2": {"l2": 5.0},
    "momentum": {"optimizer": "momentum"},
    "nesterov-dropout-affine": {"optimizer": "nesterov", "dropout": 0.2, "augment": "affine"},
    "adamw-max-norm": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.05, "max_norm": 2.0},
    "elastic-label-smoothing": {"augment": "elastic", "label_smoothing": 0.1},
    "sigmoid-output": {"activation": "tanh", "output": "sigmoid", "dropout": 0.3},
}


@pytest.fixture(scope="module")
def emulation():
    import cupy

    return cupy._emulation


def _run(mnist, images: int, **settings) -> training.Run:
    cfg = TrainConfig(**{"validation": 0, "quiet": True, "lr_schedule": "cosine", "epochs": 3, **settings})
    split = data.Split(mnist.train.images[:images], mnist.train.labels[:images])
    return training.Run(
        cfg, backends.resolve("cupy", "cuda"), data.Dataset(split, split, 10, "emulated"), say=lambda line: None
    )


def _counted_epoch(run: training.Run, emulation) -> dict:
    """One epoch, counting what its steps cost (``Steps.run``: gathers, steps, the chunk's loss;
    not the epoch's one read of its loss), per step."""
    counts, real = {}, run.steps.run

    def counted(*args, **kwargs):
        before = emulation.snapshot()
        out = real(*args, **kwargs)
        for key, value in emulation.snapshot().items():
            counts[key] = counts.get(key, 0) + value - before[key]
        return out

    run.steps.run = counted
    try:
        run.run_epoch(run.backend.asarray(run.state.rng.permutation(run.n)))
    finally:
        run.steps.run = real
    run.state.epoch += 1
    return {key: value / run.per_epoch for key, value in counts.items()}


def _per_step(run: training.Run, emulation, epochs: int = 3) -> list[dict]:
    return [_counted_epoch(run, emulation) for _ in range(epochs)]


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_plain_sgd_meets_its_launch_budget_with_no_host_reads_or_allocations(mnist, emulation, name):
    """Epoch 1 runs each chunk shape eagerly, epoch 2 captures it, epoch 3 replays it: from
    then on a step costs at most the budget's kernels, no host read and no allocation, and the
    eager step (--no-cuda-graph) launches the same kernels."""
    settings, budget = BUDGETS[name]
    batch = settings.get("batch_size", 32)
    for graph in (True, False):
        run = _run(mnist, 24 * batch, cuda_graph=graph, **settings)
        epochs = _per_step(run, emulation)
        last = epochs[-1]
        assert last["launches"] <= budget, (name, graph, epochs)
        assert last["host_syncs"] == 0 and last["allocations"] == 0, (name, graph, epochs)
        assert last["graph_launches"] == (1 / run.per_epoch if graph else 0)
        if graph:
            eager_launches = last["launches"]
        else:
            assert last["launches"] == eager_launches


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_steps_without_host_reads_or_allocations(mnist, emulation, recipe):
    """After a chunk's first step no recipe reads the device or allocates, eager or replayed,
    and the epoch's partial last batch (eager) neither."""
    run = _run(mnist, 24 * 32 + 7, **RECIPES[recipe])
    last = _per_step(run, emulation)[-1]
    assert last["host_syncs"] == 0 and last["allocations"] == 0, last
    assert last["graph_launches"] > 0


@pytest.mark.parametrize("recipe", ["sgd-l2", "nesterov-dropout-affine", "adamw-max-norm", "elastic-label-smoothing"])
def test_replayed_steps_equal_eager_steps_bit_for_bit(mnist, recipe):
    """The same run with CUDA graphs and without: bit-identical parameters and losses after
    three epochs of a cosine schedule (a per-step rate, Adam's corrections and the random keys
    baked into a graph instead of read from the device would make them differ)."""
    results = []
    for graph in (True, False):
        run = _run(mnist, 12 * 32 + 5, cuda_graph=graph, **RECIPES[recipe])
        losses = []
        for _ in range(3):
            losses.append(run.run_epoch(run.backend.asarray(run.state.rng.permutation(run.n))))
            run.state.epoch += 1
        results.append((losses, training.params_to_host(run.params)))
    (losses, params), (eager_losses, eager_params) = results
    assert losses == eager_losses
    for (W, b), (We, be) in zip(params, eager_params):
        assert np.array_equal(W, We) and np.array_equal(b, be)


MEMBERS = [  # a population's members: every scalar differs somewhere
    {"lr": 0.05, "dropout": 0.2, "label_smoothing": 0.1, "init_seed": 1},
    {"lr": 0.2, "dropout": 0.4, "l2": 2.0, "init_seed": 2},
    {"lr": 0.1, "max_norm": 1.5, "init_seed": 3},
]


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adamw"])
def test_a_population_replays_cuda_graphs_without_host_reads_or_allocations(mnist, emulation, optimizer):
    """A population (784-24-16-10: the first layer one wide GEMM, the deeper ones strided-batched
    GEMMs reading the transposed operands where they lie) with per-member scalars: after the
    first epoch no host read and no allocation per step, its chunks replayed as CUDA graphs
    (per-member rates and keep rates read from the chunk's buffers), and the replayed run equal
    to the eager one bit for bit."""
    results = []
    for graph in (True, False):
        cfgs = [
            TrainConfig(
                **{
                    "validation": 0,
                    "quiet": True,
                    "lr_schedule": "cosine",
                    "epochs": 3,
                    "hidden": (24, 16),
                    "optimizer": optimizer,
                    "cuda_graph": graph,
                    **m,
                }
            )
            for m in MEMBERS
        ]
        split = data.Split(mnist.train.images[: 12 * 32 + 5], mnist.train.labels[: 12 * 32 + 5])
        run = population.PopulationRun(
            cfgs, backends.resolve("cupy", "cuda"), data.Dataset(split, split, 10, "emulated"), say=lambda line: None
        )
        epochs = _per_step(run, emulation)
        last = epochs[-1]
        assert last["host_syncs"] == 0 and last["allocations"] == 0, epochs
        assert (last["graph_launches"] > 0) == graph, epochs
        results.append([(backends.to_host(W), backends.to_host(b)) for W, b in run.state.net.layers])
    for (W, b), (We, be) in zip(*results):
        assert np.array_equal(W, We) and np.array_equal(b, be)


# populations whose members differ in more than the rate: each member's (name, its settings)
DIFFERING = {
    "sgd": lambda k: {},
    "sgd-l2": lambda k: {"l2": 0.5 * (k + 1)},
    "momentum": lambda k: {"optimizer": "momentum", "momentum": 0.8 + 0.01 * k, "l2": 0.5 * k},
    "nesterov": lambda k: {"optimizer": "nesterov", "momentum": 0.9 - 0.02 * k},
    "adamw": lambda k: {"optimizer": "adamw", "weight_decay": 0.01 * k},
}


@pytest.mark.parametrize(
    "name, optimizer",
    [("A", "sgd"), ("B", "sgd"), ("A", "sgd-l2"), ("A", "momentum"), ("B", "nesterov"), ("A", "adamw")],
)
def test_a_population_steps_in_as_many_kernels_as_one_network(mnist, emulation, name, optimizer):
    """16 members of A (or B) at rates spread over a decade, and differing in momentum, L2 or
    weight decay: the population's step is the solo step's kernels with a member axis (one wide
    GEMM, the fused bias + activation, output error and bias-update kernels over every member's
    features, strided-batched GEMMs with SGD's alpha and beta, one optimiser kernel per
    parameter reading each member's coefficients), as many per step as one network's (plain
    SGD with L2 differing: one more per weight matrix), replayed as CUDA graphs."""
    settings, budget = BUDGETS[name]
    batch = settings["batch_size"]
    base = TrainConfig(**{"validation": 0, "quiet": True, "epochs": 3, "cuda_graph": True, **settings})
    rates = np.geomspace(base.lr / 10, base.lr, 16) / (1 if optimizer == "sgd" else 100)
    cfgs = [replace(base, lr=float(lr), init_seed=k, **DIFFERING[optimizer](k)) for k, lr in enumerate(rates)]
    split = data.Split(mnist.train.images[: 24 * batch], mnist.train.labels[: 24 * batch])
    dataset = data.Dataset(split, split, 10, "emulated")
    pop = population.PopulationRun(cfgs, backends.resolve("cupy", "cuda"), dataset, say=lambda line: None)
    solo = _run(mnist, 24 * batch, cuda_graph=True, **settings, **DIFFERING[optimizer](1))
    together, alone = _per_step(pop, emulation)[-1], _per_step(solo, emulation)[-1]
    # plain SGD's decays 1 - lr * l2 / N differ per member: cuBLAS's beta is one value, so each
    # weight matrix is scaled by its members' decays first (one kernel) and the product added
    scalings = len(settings["hidden"]) + 1 if optimizer == "sgd-l2" else 0
    assert together["launches"] == alone["launches"] + scalings, (together, alone)
    assert optimizer != "sgd" or together["launches"] <= budget
    assert together["host_syncs"] == together["allocations"] == 0 and together["graph_launches"] > 0


@pytest.fixture
def fresh_ops():
    """A fresh CuPy op set for the test (its cuBLAS functions found again), and another after it."""
    backends.backend._OPS.pop("cupy", None)
    yield
    backends.backend._OPS.pop("cupy", None)


def _layers(run) -> list:
    return [(backends.to_host(W), backends.to_host(b)) for W, b in run.state.net.layers]


@pytest.mark.parametrize("why", ["no libcublas found", "a product through cupy.matmul"])
def test_steps_go_on_eagerly_where_a_chunk_cannot_be_captured(mnist, emulation, monkeypatch, fresh_ops, why):
    """CuPy 14 refuses its own cuBLAS calls during a capture (NotImplementedError). Where the
    products can only go through CuPy (libcublas not found: ``cublas.Bindings``), or a product
    falls back to ``cupy.matmul``, a run with CUDA graphs steps eagerly instead, from the
    refused chunk on: the same kernels per step, no graph, no host read, the eager run's
    parameters to the bit."""
    from xpnet.backends import cublas
    from xpnet.backends import cupy as cupy_ops

    settings = {"hidden": (24,), "batch_size": 32}
    if why == "no libcublas found":
        monkeypatch.setattr(cublas, "shared_object", lambda version: None)
    else:
        real = cupy_ops.CupyOps._cublas  # the output layer's (24, 10) weight gradient: by cupy.matmul
        monkeypatch.setattr(
            cupy_ops.CupyOps, "_cublas", lambda self, a, b, out, *c: out.size != 240 and real(self, a, b, out, *c)
        )
    backends.backend._OPS.pop("cupy", None)
    eager = _run(mnist, 12 * 32, cuda_graph=False, **settings)
    eager_epochs = _per_step(eager, emulation)
    run = _run(mnist, 12 * 32, cuda_graph=True, **settings)
    assert isinstance(run.backend.ops._blas(), cublas.Bindings if why == "no libcublas found" else cublas.Direct)
    epochs = _per_step(run, emulation)
    assert not run.steps.graphs and all(e["graph_launches"] == 0 for e in epochs)
    assert epochs[-1]["launches"] == eager_epochs[-1]["launches"] and epochs[-1]["host_syncs"] == 0
    for (W, b), (We, be) in zip(_layers(run), _layers(eager)):
        assert np.array_equal(W, We) and np.array_equal(b, be)


def test_products_call_libcublas_on_the_current_stream(mnist, emulation, fresh_ops):
    """With libcublas found (here the emulator's stand-in), every product of a step is one of
    its GEMMs, each after the handle's stream is set to the current one (inside a capture: the
    capturing stream), and a run's chunks are captured and replayed."""
    import cupy
    from cupy_backends.cuda.libs import cublas as emulated

    from xpnet.backends import cublas

    run = _run(mnist, 12 * 32, cuda_graph=True, hidden=(24,), batch_size=32)
    blas = run.backend.ops._blas()
    assert isinstance(blas, cublas.Direct) and isinstance(blas.so, emulated.SharedObject)
    epochs = _per_step(run, emulation)
    assert epochs[-1]["graph_launches"] > 0 and run.steps.graphs
    calls = blas.so.calls
    gemms = [name for name in calls if "gemm" in name]
    assert gemms and all(calls[i - 1] == "cublasSetStream_v2" for i, name in enumerate(calls) if "gemm" in name)
    assert set(gemms) <= {"cublasSgemm_v2", "cublasSgemmStridedBatched"}
    s = cupy.cuda.Stream()
    with s:
        run.backend.ops.matmul(*(cupy.ones((2, 2), "float32") for _ in range(2)), out=cupy.empty((2, 2), "float32"))
    assert emulation.handle_state(cupy.cuda.device.get_cublas_handle())["stream"] == s.ptr


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_reaches_the_products_cublas_runs(emulation, tf32):
    """--tf32 sets CuPy's compute type, which only ``cupy.matmul`` reads: xpnet's own GEMMs set
    the handle's math mode from it (TF32 tensor-op math, or the default) for float32 products,
    and leave float64 ones at the default."""
    import cupy

    from xpnet.backends import cublas

    handle = cupy.cuda.device.get_cublas_handle()
    ops = backends.resolve("cupy", "cuda", tf32=tf32).ops
    try:
        for dtype, math in (("float32", cublas.TF32_MATH if tf32 else cublas.DEFAULT_MATH), ("float64", 0)):
            a = cupy.ones((3, 3), dtype)
            ops.matmul(a, a, out=cupy.empty((3, 3), dtype))
            assert emulation.handle_state(handle)["math_mode"] == math, dtype
    finally:
        backends.resolve("cupy", "cuda")  # TF32 off again for the tests after


def test_libcublas_is_the_loaded_one_of_its_version_and_its_errors_are_raised(monkeypatch):
    """cuBLAS 13.1.0's library is opened as libcublas.so.13 without loading anything (the one
    CuPy loaded, or none); a call's non-zero status is raised, naming the function."""
    import ctypes
    import os

    from cupy_backends.cuda.libs import cublas as emulated

    from xpnet.backends import cublas

    from helpers import OPEN_LIBCUBLAS

    assert OPEN_LIBCUBLAS(130100) is None  # no libcublas.so.13 in this process, and none loaded for it
    opened = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name, mode: opened.append((name, mode)) or "library")
    assert OPEN_LIBCUBLAS(120804) == "library" and opened == [("libcublas.so.12", os.RTLD_NOLOAD)]
    so = emulated.SharedObject()
    so.cublasSgemm_v2 = lambda *args: 7  # CUBLAS_STATUS_INVALID_VALUE
    direct = cublas.Direct(so)
    assert so.cublasSgemm_v2.argtypes[0] is ctypes.c_void_p and so.cublasSgemm_v2.restype is ctypes.c_int
    with pytest.raises(RuntimeError, match="cublasSgemm_v2 failed: status 7"):
        direct.gemm("s", 1, 0, *range(13))


# a libcublas of host memory: the five functions xpnet calls, with cuBLAS's C signatures, computing
# the column-major products they name (alpha and beta read through their pointers), on the
# emulated CuPy's arrays (host memory underneath), and keeping the last stream set
FAKE_LIBCUBLAS = r"""
static long long stream_set = -1;
long long last_stream(void) { return stream_set; }
int cublasSetStream_v2(void *handle, void *stream) { stream_set = (long long)stream; return 0; }
#define GEMM(T, NAME, BATCHED)                                                                        \
int BATCHED(void *h, int ta, int tb, int m, int n, int k, const T *alpha, const T *A, int lda,        \
            long long sA, const T *B, int ldb, long long sB, const T *beta, T *C, int ldc,            \
            long long sC, int batch) {                                                              \
    for (int q = 0; q < batch; q++)                                                                \
        for (int j = 0; j < n; j++)                                                                \
            for (int i = 0; i < m; i++) {                                                          \
                double s = 0;                                                                      \
                for (int p = 0; p < k; p++)                                                        \
                    s += (double)(ta ? A[q * sA + p + (long long)i * lda] : A[q * sA + i + (long long)p * lda]) \
                       * (double)(tb ? B[q * sB + j + (long long)p * ldb] : B[q * sB + p + (long long)j * ldb]); \
                T *c = &C[q * sC + i + (long long)j * ldc];                                        \
                *c = (T)(*alpha * s + (*beta == 0 ? 0 : *beta * (double)*c));                      \
            }                                                                                      \
    return 0;                                                                                      \
}                                                                                                  \
int NAME(void *h, int ta, int tb, int m, int n, int k, const T *alpha, const T *A, int lda,           \
         const T *B, int ldb, const T *beta, T *C, int ldc) {                                      \
    return BATCHED(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);           \
}
GEMM(float, cublasSgemm_v2, cublasSgemmStridedBatched)
GEMM(double, cublasDgemm_v2, cublasDgemmStridedBatched)
"""


@pytest.fixture(scope="module")
def fake_libcublas(tmp_path_factory):
    """FAKE_LIBCUBLAS compiled as libcublas.so.99 and loaded, as CuPy loads its libcublas (once
    per process: a second library of that soname would not be the one found by it)."""
    import ctypes
    import os
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler (CI machines have one)"
    folder = tmp_path_factory.mktemp("libcublas")
    (folder / "fake.c").write_text(FAKE_LIBCUBLAS)
    library = folder / "libcublas.so.99"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-Wl,-soname,libcublas.so.99", "-o", library, folder / "fake.c"],
        check=True,
    )
    loaded = ctypes.CDLL(str(library), mode=os.RTLD_GLOBAL)
    loaded.last_stream.restype = ctypes.c_longlong
    return loaded


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_through_a_compiled_libcublas_with_its_c_signatures(monkeypatch, fresh_ops, fake_libcublas, dtype):
    """The products' ctypes calls, checked against C: a shared library with libcublas.so's
    soname and its five functions' C signatures (compiled here; it computes the products on
    the host memory under the emulated CuPy's arrays) is found loaded by ``shared_object`` and
    computes every product layout the step uses as NumPy does: 2-D outputs stored either way,
    transposed operands, host and device alpha and beta, a population's stacks with an operand
    the members share (batch stride 0) and as one wide GEMM; each after its stream is set."""
    import cupy
    from cupy_backends.cuda.libs import cublas as emulated

    from xpnet.backends import cublas

    from helpers import OPEN_LIBCUBLAS

    monkeypatch.setattr(emulated, "getVersion", lambda handle: 990100)
    monkeypatch.setattr(cublas, "shared_object", OPEN_LIBCUBLAS)
    ops = backends.resolve("cupy", "cuda").ops
    assert isinstance(ops._blas(), cublas.Direct)
    rng = np.random.default_rng(5)

    def stored(host, transposed):
        return cupy.asarray(np.ascontiguousarray(host.mT)).mT if transposed else cupy.asarray(host)

    def check(a_h, b_h, c_h, alpha, beta, a_t=False, b_t=False, c_t=False):
        a, b, out = stored(a_h, a_t), stored(b_h, b_t), stored(c_h, c_t)
        al, be = (v.get() if isinstance(v, cupy.ndarray) else v for v in (alpha, beta))
        want = al * np.matmul(a_h, b_h) + (0 if be is None else be * c_h)
        ops.matmul(a, b, out=out, alpha=alpha, beta=beta)
        np.testing.assert_allclose(out.get(), want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)

    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    for a_t, b_t, c_t in [(False, False, False), (True, False, True), (False, True, False), (True, True, True)]:
        for alpha, beta in [(1.0, None), (-0.5, 0.97), (2.0, 1.0)]:
            check(rand(6, 4), rand(4, 5), rand(6, 5), alpha, beta, a_t, b_t, c_t)
    scale, decay = (cupy.asarray(np.array(v, dtype)) for v in (-0.25, 0.5))  # read from the device
    check(rand(6, 4), rand(4, 5), rand(6, 5), scale, decay)
    assert emulated.getPointerMode(cupy.cuda.device.get_cublas_handle()) == emulated.CUBLAS_POINTER_MODE_DEVICE
    check(rand(3, 6, 4), rand(4, 5), rand(3, 6, 5), 1.0, None)  # one wide GEMM
    check(rand(3, 6, 4), rand(4, 5), rand(3, 6, 5), -1.0, 1.0, a_t=True)  # strided-batched, b shared
    check(rand(6, 4), rand(3, 4, 5), rand(3, 6, 5), 1.0, None, b_t=True, c_t=True)  # a shared (stride 0)
    s = cupy.cuda.Stream()
    with s:
        check(rand(2, 2), rand(2, 2), rand(2, 2), 1.0, None)
    assert fake_libcublas.last_stream() == s.ptr


def test_a_host_read_inside_a_captured_step_is_refused(mnist, monkeypatch):
    """What would break a replay fails the capture: a step that reads a device value back."""
    import cupy

    from xpnet.engine import step

    real = step.train_step

    def reading(*args, **kwargs):
        z = real(*args, **kwargs)
        float(z[0, 0])  # a host read: on a GPU, cudaErrorStreamCaptureUnsupported
        return z

    run = _run(mnist, 6 * 32, cuda_graph=True)
    monkeypatch.setattr(step, "train_step", reading)
    run.run_epoch(run.backend.asarray(run.state.rng.permutation(run.n)))  # eager: allowed (if slow)
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="capture"):
        run.run_epoch(run.backend.asarray(run.state.rng.permutation(run.n)))


def test_the_kernels_run_where_the_step_needs_them(mnist, emulation, monkeypatch):
    """The fused formulas run as kernels (no fallback to the primitives): every kernel of
    cuda_kernels is launched by an Adam run with max-norm, an SGD run of the default net and an
    input gradient (``imagine``'s)."""
    launched = set()
    real = emulation.reference_lookup

    def spy(name):
        fn = real(name)

        def run(*args):
            launched.add(name)
            return fn(*args)

        return run

    monkeypatch.setattr(emulation, "reference_lookup", spy)
    backends.backend._OPS.pop("cupy", None)  # a fresh op set: its kernels are looked up again
    for settings in ({"optimizer": "adam", "lr": 0.01, "max_norm": 2.0}, {}):
        run = _run(mnist, 8 * 32, **settings)
        _counted_epoch(run, emulation)
    x = run.backend.asarray(mnist.test.images[:4].reshape(4, -1, 1) / 255.0, "float32")
    model.input_grad(run.params, x, run.backend.asarray(np.eye(10)[:4, :, None], "float32"), run.spec)
    backends.backend._OPS.pop("cupy", None)
    assert launched == set(cuda_kernels.NAMES)


NVRTC_COMPILE = """
import json, sys
from cuda.bindings import nvrtc
from xpnet.backends import cuda_kernels
dtype, arch = sys.argv[1:]
err, program = nvrtc.nvrtcCreateProgram(cuda_kernels.module_source(dtype).encode(), b"xpnet_kernels.cu", 0, [], [])
options = [("--gpu-architecture=" + arch).encode(), b"-std=c++14", b"-ftz=true", b"--device-as-default-execution-space"]
(result,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
_, size = nvrtc.nvrtcGetProgramLogSize(program)
log = b" " * size
nvrtc.nvrtcGetProgramLog(program, log)
_, cubin = nvrtc.nvrtcGetCUBINSize(program)
ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
print(json.dumps({"created": err == ok, "compiled": result == ok,
                  "log": log.decode(errors="replace").replace(chr(0), "").strip(), "cubin_bytes": cubin}))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_every_cuda_source_compiles_with_nvrtc(dtype, arch):
    """NVRTC (cuda-bindings with the nvidia-cuda-nvrtc wheel; a compiler library, no GPU)
    compiles the kernels' module as CuPy's RawModule would (xpnet's option and those CuPy 14.2
    adds to every compile: ``cupy/cuda/compiler.py``), for A100 and H100/H200: in a process of
    its own (cuda-bindings is not imported into the test run)."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", NVRTC_COMPILE, dtype, arch], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["created"] and result["compiled"], result["log"]
    assert result["cubin_bytes"] > 0


def test_every_kernel_has_its_reference_and_source():
    source = cuda_kernels.module_source("float32")
    assert set(cuda_kernels.REFERENCES) == set(cuda_kernels.NAMES)
    for name in cuda_kernels.NAMES:
        assert f'extern "C" __global__ void {name}(' in source


def test_the_op_set_is_made_once_without_touching_the_device(emulation):
    """``Backend.ops`` once made an array and copied it from the host at every access."""
    be = backends.resolve("cupy", "cuda")
    ops = be.ops
    emulation.reset_counters()
    assert all(be.ops is ops for _ in range(3))
    assert not any(emulation.snapshot().values())
