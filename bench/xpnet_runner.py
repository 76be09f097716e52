"""xpnet under test, through its public API only, and the time of its matrix multiplies alone."""

from __future__ import annotations

import numpy as np

from xpnet import backend, data, kernels, model, train

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
    with the backend's own matmul at the fused step's shapes and layouts, and waits. Each hidden
    activation is stored as the fused step stores it (kernels' ``feature_major``: (size, batch),
    else (batch, size)); the logits and their error class-major (classes, batch). Per layer: the
    forward product into the output's layout, ``delta^T @ A`` for dW, and ``delta @ W`` (or
    ``W^T @ delta^T``) for dA in every layer but the first."""
    xp = be.xp
    rng = np.random.default_rng(1)
    ops = {"numpy": kernels.NumpyOps, "torch": kernels.TorchOps}.get(be.name)
    layers = layer_shapes(sizes)
    fm = [False] + [ops is not None and ops.feature_major(s, batch) for s in sizes[1:-1]] + [True]

    def rand(*shape):
        return be.asarray(rng.random(shape), "float32")

    def activation(layer):  # (batch-major view, feature-major view), one of them contiguous
        size = sizes[layer]
        if fm[layer]:
            cT = rand(size, batch)
            return xp.matrix_transpose(cT), cT
        c = rand(batch, size)
        return c, xp.matrix_transpose(c)

    pairs = []
    for layer, (i, o) in enumerate(layers):
        (A, AT), (delta, deltaT), W = activation(layer), activation(layer + 1), rand(o, i)
        pairs.append((W, AT) if fm[layer + 1] else (A, xp.matrix_transpose(W)))
        pairs.append((deltaT, A))
        if layer > 0:
            pairs.append((xp.matrix_transpose(W), deltaT) if fm[layer] else (delta, W))

    def run(iterations: int) -> None:
        out = None
        for _ in range(iterations):
            for a, b in pairs:
                out = xp.matmul(a, b)
        be.sync(out)

    return run
