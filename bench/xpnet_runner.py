"""xpnet under test, through the code path of ``xpnet train`` (``training.Run``), and the time of
its matrix multiplies alone."""

from __future__ import annotations

import numpy as np
from workload import Impl, Workload, layer_shapes

from xpnet import backends, training
from xpnet.engine import data
from xpnet.settings import TrainConfig

CPU_BACKENDS = ("numpy", "torch", "jax")


def xpnet_impl(
    work: Workload, backend_name: str, device: str = "cpu", cuda_graph: bool = True, name: str | None = None
) -> Impl:
    """xpnet on ``backend_name`` and ``device``: one pass of ``training.Run.run_epoch`` over the
    workload's n images, in the workload's order, per run. The run's initial parameters are
    xpnet's own for seed 0: the workload's. ``cuda_graph``: TrainConfig.cuda_graph (on CuPy,
    a chunk's full-batch steps replayed as one captured CUDA graph; False: launched eagerly)."""
    be = backends.resolve(backend_name, device)
    c = work.config
    cfg = TrainConfig(
        layers=c.sizes,
        activation=c.activation,
        batch_size=c.batch,
        lr=c.lr,
        lr_schedule="constant",
        validation=0,
        epochs=1,
        seed=0,
        quiet=True,
        cuda_graph=cuda_graph,
        **dict(c.recipe),
    )
    split = data.Split(work.images, work.labels)
    run = training.Run(cfg, be, data.Dataset(split, split, 10, "bench"), say=lambda line: None)
    perm = be.asarray(work.perm)

    def one() -> float:
        loss = run.run_epoch(perm) / work.n  # reads the loss back: waits for the device
        if cuda_graph and be.name == "cupy" and not run.steps.graphs:  # a chunk could not be captured
            raise RuntimeError("no CUDA graph: a chunk could not be captured, so its steps ran eagerly")
        return loss

    return Impl(name or f"xpnet {backend_name}", "xpnet", work.steps, one, backend=be)


def gemm_steps(be, sizes, batch: int):
    """A function ``run(iterations)`` that runs the matrix multiplies of that many steps alone,
    with the backend's own matmul at the step's shapes and layouts, and waits. Each hidden
    activation is stored as the step stores it (``ops.feature_major``: (size, batch), else as
    its transpose), the logits and their error class-major (classes, batch). Per layer: the
    forward product W @ A, the weight gradient d @ A^T, and W^T @ d for every layer but the
    first. On JAX the products of a step are one jitted call (the step is jitted too)."""
    xp, ops = be.xp, be.ops
    rng = np.random.default_rng(1)
    feature_major = [True] + [ops.feature_major(s, batch) for s in sizes[1:-1]] + [True]

    def rand(shape, transposed=False):
        host = rng.random(shape[::-1] if transposed else shape)
        a = be.asarray(host, "float32")
        return xp.matrix_transpose(a) if transposed else a

    triples = []  # (a, b, out): out stored as the step stores the product
    for layer, (i, o) in enumerate(layer_shapes(sizes)):
        A, d = rand((i, batch), not feature_major[layer]), rand((o, batch), not feature_major[layer + 1])
        W = rand((o, i), ops.weight_layout == "in_out")
        triples += [
            (W, A, ops.buffer((o, batch), A, transposed=not feature_major[layer + 1])),
            (d, xp.matrix_transpose(A), ops.buffer((o, i), A, transposed=ops.weight_layout == "in_out")),
        ]
        if layer > 0:
            triples.append((xp.matrix_transpose(W), d, ops.buffer((i, batch), A, transposed=not feature_major[layer])))

    def products(operands):
        return [ops.matmul(a, b, out=out) for a, b, out in operands]

    if be.name == "jax":
        import jax

        jitted = jax.jit(lambda ab: [xp.matmul(a, b) for a, b in ab])
        pairs = [(a, b) for a, b, _ in triples]

        def run(iterations: int) -> None:
            out = None
            for _ in range(iterations):
                out = jitted(pairs)
            out[-1].block_until_ready()

        return run

    def run(iterations: int) -> None:
        out = None
        for _ in range(iterations):
            out = products(triples)
        be.sync(out[-1])

    return run
