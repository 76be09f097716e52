"""The memory a run needs, estimated from its sizes before anything big is allocated, and the
check that refuses a run that cannot fit, naming the flag to change.

In bytes, with s the float dtype's size, P = sum over layers of (in + 1) * out the parameter
count, F the input size, C the class count and n the effective batch min(batch size, training
images) (a larger batch trains on all of them at once):

  parameters       P * s
  optimiser slots  k * P * s   k = optim.SLOTS: 0 sgd, 1 momentum and nesterov, 2 adam and adamw
  gradients        P * s       all but sgd (whose update is fused into the gradient's GEMM)
  a batch          ``batch_bytes``: a step's buffers (step.Buffers, step.Chunk, augment.Plan)
  evaluation       ``eval_bytes``: a chunk of images through the network
  data             ``data_bytes``: the splits on the device

Parameters, slots, gradients and evaluation grow with the layer sizes (--hidden or --layers),
a batch with --batch-size, data with --data-dir: ``check`` names the group that needs most.
"""

from __future__ import annotations

import itertools

import numpy as np

from xpnet.backends.base import Ops
from xpnet.engine import optim
from xpnet.engine.data import CHUNK_ROWS
from xpnet.engine.model import sizes_text
from xpnet.errors import UserError, named

# the flag group each part grows with
GROUPS = {
    "parameters": "sizes",
    "optimiser slots": "sizes",
    "gradients": "sizes",
    "evaluation": "sizes",
    "a batch": "batch",
    "data": "data",
}


def parameters(sizes) -> int:
    """P = sum over layers of (in + 1) * out: the weights and biases of ``sizes`` (input first)."""
    return sum((i + 1) * o for i, o in itertools.pairwise(sizes))


def batch_bytes(
    sizes, n: int, s: int, rows: int, dropout: bool = False, augment: str = "none", image_shape=(), hash_size: int = 4
) -> int:
    """A step's buffers for a batch of n, H the sum of the hidden sizes, Q = r * c pixels:

    n * s * (2H + C)                  the hidden outputs and every layer's error
    + n * H * (2s + 3 hash_size)      dropout: masked outputs, masks, the random stream
    + rows * (F + s * (F + 3C))       the chunk's ``rows`` gathered rows: stored bytes,
                                      floats, targets twice, logits
    + n * (s * (14 + 8Q + (r+3)(c+3)) + 8 * (2Q + 1) + 18 hash_size)   augmentation
    + n * Q * (4s + 6 hash_size)      elastic augmentation's field
    """
    F, C, H = sizes[0], sizes[-1], sum(sizes[1:-1])
    total = n * s * (2 * H + C) + rows * (F + s * (F + 3 * C))
    if dropout:
        total += n * H * (2 * s + 3 * hash_size)
    if augment != "none":
        r, c = image_shape
        Q = r * c
        total += n * (s * (14 + 8 * Q + (r + 3) * (c + 3)) + 8 * (2 * Q + 1) + 18 * hash_size)
        if augment == "elastic":
            total += n * Q * (4 * s + 6 * hash_size)
    return total


def eval_bytes(sizes, rows: int, s: int) -> int:
    """rows * s * (F + sum(sizes[1:])): ``rows`` images as floats and every layer's output
    (``evaluate.predictions``, a chunk at a time)."""
    return rows * s * sum(sizes)


def data_bytes(F: int, C: int, n_train: int, n_other: int, s: int) -> int:
    """(n_train + n_other) * (F + 8) + n_train * C * s: every split's uint8 pixels and int64
    labels, and the training targets (one-hot)."""
    return (n_train + n_other) * (F + 8) + n_train * C * s


def estimate(
    sizes,
    s: int,
    optimizer: str = "sgd",
    batch: int = 1,
    n_train: int = 1,
    n_other: int = 0,
    dropout: bool = False,
    augment: str = "none",
    image_shape=(),
    hash_size: int = 4,
    chunk_bytes: int = Ops.chunk_bytes,
    members: int = 1,
) -> dict[str, int]:
    """Bytes by part (the module's table) of training ``sizes`` on n_train images (n_other more
    in validation and test) in batches of ``batch``; a chunk gathers as many batches as fit in
    ``chunk_bytes`` of stored rows (the op set's), at least one, at most the training set. A
    population of ``members`` networks has each one's parameters, slots, gradients and a
    batch's buffers (its members share the data, and are evaluated one at a time)."""
    F, C = sizes[0], sizes[-1]
    n = min(batch, n_train)
    rows = min(n_train, n * max(1, chunk_bytes // (n * (F + C * s))))
    P = parameters(sizes) * s
    K = members
    return {
        "parameters": K * P,
        "optimiser slots": K * optim.SLOTS[optimizer] * P,
        "gradients": 0 if optim.Optimizer(optimizer).fused else K * P,
        "a batch": K * batch_bytes(sizes, n, s, rows, dropout, augment, image_shape, hash_size),
        "evaluation": eval_bytes(sizes, min(CHUNK_ROWS, max(n_train, n_other)), s),
        "data": data_bytes(F, C, n_train, n_other, s),
    }


def summary(spec, dtype: str, optimizer: str, batch: int, where: str) -> list[str]:
    """A network's summary, a line each: what it is and where it runs (``where``: backend and
    device), each layer's weight shape, bias and parameters, the total, and the memory of the
    parameters, the optimiser's state (slots and gradients) and a step's buffers for one
    batch of ``batch`` (``batch_bytes``, without dropout or augmentation)."""
    s = np.dtype(dtype).itemsize
    sizes = spec.sizes
    lines = [
        f"network {spec.describe()}, {dtype}, {where}",
        f"{'layer':>5}  {'weights':>13}  {'bias':>6}  {'parameters':>12}",
    ]
    for k, (i, o) in enumerate(itertools.pairwise(sizes), 1):
        lines.append(f"{k:>5}  {f'{o} x {i}':>13}  {o:>6}  {(i + 1) * o:>12,}")
    P = parameters(sizes)
    parts = estimate(sizes, s, optimizer, batch, n_train=batch)
    state = parts["optimiser slots"] + parts["gradients"]
    lines += [
        f"{'total':>5}  {'':>13}  {'':>6}  {P:>12,}",
        f"memory: parameters {_size(P * s)}, optimiser state {_size(state)} ({optimizer}), "
        f"one batch ({batch} images) {_size(parts['a batch'])}",
    ]
    return lines


def check(need: dict[str, int], backend, flags: dict[str, str]) -> None:
    """UserError when the parts of ``need`` add up to more than ``backend.free_memory()``
    (None: unknown, no check), naming the flag text of ``flags`` ({group: text}) whose group
    needs most."""
    available, total = backend.free_memory(), sum(need.values())
    if available is None or total <= available:
        return
    group = {g: sum(b for part, b in need.items() if GROUPS[part] == g) for g in flags}
    parts = ", ".join(f"{part} {_size(b)}" for part, b in need.items() if b)
    where = f"free on {backend.label}" if backend.is_cuda else "of memory available"
    raise UserError(
        f"{flags[max(group, key=group.get)]}: the run needs about {_size(total)} ({parts}), "
        f"more than the {_size(available)} {where}"
    )


def check_run(cfg, sizes, n_train: int, n_other: int, image_shape, backend, members: int = 1) -> None:
    """``check`` for a training run of ``cfg`` with layer ``sizes`` on the backend's device (a
    population of ``members`` such networks)."""
    need = estimate(
        sizes,
        np.dtype(cfg.dtype).itemsize,
        cfg.optimizer,
        cfg.batch_size,
        n_train,
        n_other,
        cfg.dropout > 0,
        cfg.augment,
        image_shape,
        np.dtype(backend.ops.hash_dtype).itemsize,
        backend.ops.chunk_bytes,
        members,
    )
    layers = (
        f"{named('layers')} {sizes_text(cfg.layers)}"
        if cfg.layers
        else f"{named('hidden')} {sizes_text(cfg.hidden) or repr('')}"
    )
    data = f"{named('data_dir')} {cfg.data_dir}" if cfg.data_dir else "the bundled MNIST"
    check(need, backend, {"sizes": layers, "batch": f"{named('batch_size')} {cfg.batch_size}", "data": data})


def _size(b: int) -> str:
    """Bytes in binary units to three significant digits: 512 B, 1.5 KiB, 23.5 GiB, 9.09e+20 TiB."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while k < len(units) - 1 and b >= 1000 * 1024**k:
        k += 1
    return f"{b / 1024**k:.3g} {units[k]}"
