"""Reference trainers, written for this benchmark: PyTorch eager (also under torch.compile), the
whole PyTorch step captured as one CUDA graph, JAX jit, and the seeds' naive order-3 NumPy
formulation.

Each trains the workload's network (same sizes, initial parameters, batch order, learning rate)
with plain SGD in float32 and softmax + cross-entropy, and returns an ``Impl`` whose ``run``
trains ``steps`` mini-batches and reads the loss back once at the end.
"""

from __future__ import annotations

import os

import numpy as np
from workload import Impl, Workload

# ---- PyTorch eager ----------------------------------------------------------


COMPILE_NAMES = {None: "PyTorch eager", "default": "torch.compile", "reduce-overhead": "torch.compile reduce-overhead"}


def torch_eager(work: Workload, device: str = "cpu", compile_mode: str | None = None) -> Impl:
    """nn.Linear layers, autograd, torch.optim.SGD; batches gathered by index from one tensor
    holding the whole set on ``device``; the loss summed on the device, read once per run. A
    config's recipe the idiomatic PyTorch way: SGD(momentum, nesterov=True), nn.Dropout after
    each hidden activation, and the affine augmentation as F.affine_grid + F.grid_sample with
    xpnet's parameter ranges (its own random numbers: torch.rand). ``compile_mode``: the model
    and its loss under ``torch.compile`` in that mode ("default"; "reduce-overhead" replays
    CUDA graphs), the optimiser step eager."""
    import torch
    from torch import nn

    cfg, recipe = work.config, dict(work.config.recipe)
    X = torch.from_numpy(work.x).to(device)
    Y = torch.from_numpy(work.labels).to(device)
    perm = torch.from_numpy(work.perm).to(device)
    net = _torch_net(work, nn, torch, recipe.get("dropout", 0.0)).to(device)
    nesterov = recipe.get("optimizer") == "nesterov"
    opt = torch.optim.SGD(
        net.parameters(), lr=cfg.lr, momentum=recipe.get("momentum", 0.0) if nesterov else 0.0, nesterov=nesterov
    )
    ce = nn.CrossEntropyLoss()

    def loss_fn(xb, yb):
        return ce(net(xb), yb)

    if compile_mode is not None:
        loss_fn = torch.compile(loss_fn, mode=compile_mode)
    augment = _torch_affine(torch) if recipe.get("augment") == "affine" else None
    n, bs = work.n, cfg.batch

    def run() -> float:
        torch.set_num_threads(os.cpu_count())  # all cores, whatever an xpnet torch run in this process set
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            xb, yb = X.index_select(0, idx), Y.index_select(0, idx)
            if augment is not None:
                xb = augment(xb)
            loss = loss_fn(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * xb.shape[0]
        return float(loss_sum) / n

    return Impl(COMPILE_NAMES[compile_mode], "ref", work.steps, run)


def torch_cuda_graph(work: Workload, device: str = "cuda") -> Impl:
    """The whole training step (forward, backward, torch.optim.SGD's step) captured once as a
    ``torch.cuda.CUDAGraph`` and replayed per step, as the PyTorch CUDA-graphs documentation
    does for a whole network: each batch is gathered into static input and target tensors
    (``index_select(..., out=)``) before the replay; a few warm-up steps on a side stream
    before the capture, after which the initial parameters are put back. Plain SGD (stateless,
    so the optimiser step replays as it is); the loss summed on the device, read once per run."""
    import torch
    from torch import nn

    cfg = work.config
    if not cfg.plain_sgd:
        raise ValueError("written for plain SGD only")
    X = torch.from_numpy(work.x).to(device)
    Y = torch.from_numpy(work.labels).to(device)
    perm = torch.from_numpy(work.perm).to(device)
    net = _torch_net(work, nn, torch).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    ce = nn.CrossEntropyLoss()
    n, bs = work.n, cfg.batch
    static_x, static_y = X[perm[:bs]].clone(), Y[perm[:bs]].clone()
    initial = [p.detach().clone() for p in net.parameters()]

    def step():
        loss = ce(net(static_x), static_y)
        loss.backward()
        opt.step()
        return loss

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    with torch.no_grad():
        for p, p0 in zip(net.parameters(), initial):
            p.copy_(p0)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = step().detach()

    def run() -> float:
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            torch.index_select(X, 0, idx, out=static_x)
            torch.index_select(Y, 0, idx, out=static_y)
            graph.replay()
            loss_sum += static_loss * bs
        return float(loss_sum) / n

    return Impl("PyTorch CUDA graph", "ref", work.steps, run)


def _torch_affine(torch, side: int = 28):
    """Random affine maps of a batch (B, side*side): shifts up to 2 px, rotations up to 12 degrees,
    scalings of +-10% and shears up to 0.15, resampled bilinearly with zeros outside."""
    import math

    import torch.nn.functional as F

    def augment(xb):
        B = xb.shape[0]
        u = torch.rand(B, 5) * 2 - 1
        theta, s, sh = u[:, 2] * (12 * math.pi / 180), 1 + 0.1 * u[:, 3], 0.15 * u[:, 4]
        cos, sin = torch.cos(theta) / s, torch.sin(theta) / s
        # affine_grid maps output to input coordinates in [-1, 1], (x, y) order
        row_x = torch.stack([cos, sin, -u[:, 1] * 2 * 2 / side], 1)
        row_y = torch.stack([(sh - torch.sin(theta)) / s, cos, -u[:, 0] * 2 * 2 / side], 1)
        grid = F.affine_grid(torch.stack([row_x, row_y], 1), (B, 1, side, side), align_corners=False)
        return F.grid_sample(xb.view(B, 1, side, side), grid, align_corners=False).view(B, side * side)

    return augment


def _torch_net(work: Workload, nn, torch, dropout: float = 0.0):
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[work.config.activation]
    modules = []
    for layer, (W, b) in enumerate(work.init_params):
        lin = nn.Linear(W.shape[2], W.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W[0]))
            lin.bias.copy_(torch.from_numpy(b[0, :, 0]))
        modules.append(lin)
        if layer < len(work.init_params) - 1:
            modules.append(act())
            if dropout:
                modules.append(nn.Dropout(dropout))
    return nn.Sequential(*modules)


# ---- JAX jit ----------------------------------------------------------------


def jax_available() -> tuple[bool, str]:
    """(True, version) when ``import jax`` works, else (False, why not)."""
    try:
        import jax
    except Exception as e:  # ImportError, or a broken install
        return False, f"{type(e).__name__}: {e}"
    return True, jax.__version__


def jax_jit(work: Workload) -> Impl:
    """A jitted step (params, xb, yb) -> (params, loss) using jax.value_and_grad; batches gathered
    with jnp.take from device arrays holding the whole set (jnp.take: a fancy-indexing ``X[idx]``
    costs over ten times as much in eager JAX); the loss summed on the device."""
    import jax
    import jax.numpy as jnp

    cfg = work.config
    act = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}[cfg.activation]
    lr = cfg.lr

    def loss_fn(params, xb, yb):
        a = xb
        for W, b in params[:-1]:
            a = act(a @ W.T + b)
        W, b = params[-1]
        logp = jax.nn.log_softmax(a @ W.T + b, axis=1)
        return -jnp.mean(jnp.sum(yb * logp, axis=1))

    @jax.jit
    def step(params, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

    params = [(jnp.asarray(W[0], jnp.float32), jnp.asarray(b[0, :, 0], jnp.float32)) for W, b in work.init_params]
    X, Y = jnp.asarray(work.x), jnp.asarray(work.onehot)
    batches = list(jnp.asarray(work.perm.reshape(work.steps, cfg.batch)))  # one index array per step

    def run() -> float:
        nonlocal params
        loss_sum = jnp.zeros((), jnp.float32)
        for idx in batches:
            params, loss = step(params, jnp.take(X, idx, axis=0), jnp.take(Y, idx, axis=0))
            loss_sum = loss_sum + loss * cfg.batch
        return float(loss_sum) / work.n

    return Impl("JAX jit", "ref", work.steps, run)


# ---- the seeds' naive order-3 NumPy formulation -----------------------------


def naive_numpy(work: Workload, steps: int) -> Impl:
    """Activations (B, features, 1), weights (1, out, in), biases (1, out, 1). Forward: B
    broadcast matrix-vector products ``W @ a + b``. Backward: per-sample outer products
    ``delta @ a.transpose(0, 2, 1)`` of shape (B, out, in), then summed over the batch.

    Slow, so it gets ``steps`` steps (fewer than the others), one timed run, and a warm-up of
    one step on 16 images (which warms the code paths without a full batch's large temporaries)."""
    cfg = work.config
    act, dact = _NAIVE_ACTIVATIONS[cfg.activation]
    X3 = work.x.reshape(work.n, -1, 1)
    Y3 = work.onehot.reshape(work.n, -1, 1)
    params = [(W.astype(np.float32), b.astype(np.float32)) for W, b in work.init_params]
    lr = np.float32(cfg.lr)

    def train_step(a, y) -> float:
        bs = a.shape[0]
        acts = [a]
        for W, b in params[:-1]:
            a = act(W @ a + b)
            acts.append(a)
        W, b = params[-1]
        z = W @ a + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float((y * logp).sum()) / bs
        delta = (np.exp(logp) - y) / np.float32(bs)
        for layer in range(len(params) - 1, -1, -1):
            W, b = params[layer]
            a = acts[layer]
            dW = (delta @ a.transpose(0, 2, 1)).sum(axis=0, keepdims=True)
            db = delta.sum(axis=0, keepdims=True)
            if layer > 0:
                delta = (W.transpose(0, 2, 1) @ delta) * dact(a)
            W -= lr * dW
            b -= lr * db
        return loss

    def train(steps: int, bs: int) -> float:
        total = 0.0
        with np.errstate(over="ignore"):
            for s in range(steps):
                idx = work.perm[s * bs : (s + 1) * bs]
                total += train_step(X3[idx], Y3[idx])
        return total / steps

    return Impl(
        "naive order-3 NumPy",
        "naive",
        steps,
        lambda: train(steps, cfg.batch),
        warmup=lambda: train(1, 16),
        timed_runs=1,
    )


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


_NAIVE_ACTIVATIONS = {
    "sigmoid": (_sigmoid, lambda a: a * (1 - a)),
    "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
    "tanh": (np.tanh, lambda a: 1 - a * a),
}
