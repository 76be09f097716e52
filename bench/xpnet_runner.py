"""xpnet under test, through its public API only, and the time of its matrix multiplies alone."""

from __future__ import annotations

import numpy as np

from xpnet import backend, data, model, train

from workload import Impl, Workload, layer_shapes

CPU_BACKENDS = ("numpy", "torch", "jax")


def xpnet_impl(work: Workload, backend_name: str) -> Impl:
    """xpnet on ``backend_name`` (CPU): one ``train.run_epoch`` over the workload's n images per run."""
    be = backend.resolve(backend_name, "cpu")
    spec = work.spec
    params = model.params_to_device(be, work.init_params, "float32")
    split = data.Split(work.images, work.labels)
    dev = data.to_device(be, split, "float32", 10)
    cfg = train.TrainConfig(batch_size=work.config.batch, lr=work.config.lr)
    perm = be.asarray(work.perm)

    def run() -> float:
        nonlocal params
        params, loss_sum = train.run_epoch(params, dev, perm, spec, cfg, cfg.lr)
        return float(loss_sum) / work.n  # forces completion (sync)

    return Impl(f"xpnet {backend_name}", "xpnet", work.steps, run, backend=be)


def gemm_steps(be, sizes, batch: int):
    """A function ``run(iterations)`` that runs the matrix multiplies of that many SGD steps alone,
    with the backend's own matmul at the step's shapes and layouts, and waits: per hidden layer
    ``A @ W.T`` forward, per output layer ``W @ A.T`` (the fused step computes the logits
    class-major, its error as a (classes, batch) array); ``delta.T @ A`` for dW, and ``delta @ W``
    for dA in every layer but the first."""
    xp = be.xp
    rng = np.random.default_rng(1)

    def rand(*shape):
        return be.asarray(rng.random(shape), "float32")

    pairs = []
    layers = layer_shapes(sizes)
    for layer, (i, o) in enumerate(layers):
        A, W = rand(batch, i), rand(o, i)
        if layer == len(layers) - 1:
            pairs.append((W, xp.matrix_transpose(A)))
            delta = xp.matrix_transpose(rand(o, batch))  # a transposed view, as in the step
        else:
            pairs.append((A, xp.matrix_transpose(W)))
            delta = rand(batch, o)
        pairs.append((xp.matrix_transpose(delta), A))
        if layer > 0:
            pairs.append((delta, W))

    def run(iterations: int) -> None:
        out = None
        for _ in range(iterations):
            for a, b in pairs:
                out = xp.matmul(a, b)
        be.sync(out)

    return run
