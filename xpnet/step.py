"""The one training step, and the chunks of steps that run it, on every backend and recipe.

A step on a batch: augmentation, dropout masks, the forward pass, the output error, and the
backward pass, each layer's optimiser update made as soon as its gradient is known (the
layer's W is used for the error below it first). It is written once, against the op set of
``xpnet.backends``: on NumPy, CuPy and PyTorch every op writes into ``Buffers`` made once
per batch size, so a step allocates nothing; on JAX and array-api-strict the same calls
return new arrays, and on JAX the whole chunk of steps is compiled once (``ops.compile``)
and looped on the device (``ops.loop``).

Rows are gathered a chunk of batches at a time (``Chunk``): one gather and one
bytes-to-floats pass instead of one per step. The eager backends leave each step's logits
in the chunk's buffer and sum the chunk's loss once, after its steps; the others add each
step's loss as they go. Nothing is read back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import augment, model, optim, rand

DROPOUT_STREAM = 0xD0  # rand stream of hidden layer l's dropout masks: DROPOUT_STREAM + l - 1


@dataclass(frozen=True)
class Recipe:
    """What a step does besides the network's own passes."""

    hyper: optim.Hyper = optim.Hyper()
    dropout: float = 0.0  # on hidden layers
    max_norm: float = 0.0  # 0: off
    augment: str = "none"
    image_shape: tuple = ()
    seed: int = 0

    def scalars(self, spec: model.Spec, lr: float, t: int, counter: int) -> dict:
        """The host scalars of one step: the optimiser's (``lr``; ``t`` counts optimiser
        steps from 1) and the rand keys of its masks and augmentation (``counter``: the step's
        global index, so a resumed run draws the same numbers)."""
        s = self.hyper.step_scalars(lr, t)
        if self.augment != "none":
            s["aug"] = rand.key(self.seed, augment.PARAMS_STREAM, counter)
        if self.augment == "elastic":
            s["field"] = rand.key(self.seed, augment.FIELD_STREAM, counter)
        if self.dropout:
            for l in range(1, len(spec.sizes) - 1):
                s[f"drop{l}"] = rand.key(self.seed, DROPOUT_STREAM + l - 1, counter)
        return s


@dataclass
class Net:
    """The trained state on the device: layers [(W^T (in,out), b (1,out))] (``model.layers_of``)
    and the optimiser's slots [[W^T slots], [b slots]] per layer."""

    layers: list
    slots: list = field(default_factory=list)


class Buffers:
    """What a step on a batch of ``n`` writes into, made once; None entries where the op set
    makes new arrays. Each hidden layer's arrays are (n, size), stored as the op set prefers
    (``ops.feature_major``: as their (size, n) transpose); the output error class-major."""

    def __init__(self, ops, spec: model.Spec, recipe: Recipe, n: int, net: Net):
        like = net.layers[0][0]
        sizes, L = spec.sizes, len(spec.sizes) - 1
        fm = [False] + [ops.feature_major(s, n) for s in sizes[1:-1]] + [True]

        def layer(l):
            return ops.buffer((n, sizes[l]), like, transposed=fm[l])

        hidden = range(1, L)
        self.h = [None] + [layer(l) for l in hidden]
        self.errors = [None] + [layer(l) for l in hidden] + [layer(L)]
        self.a = self.masks = self.streams = None
        if recipe.dropout:
            self.a = [None] + [layer(l) for l in hidden]
            self.masks = [None] + [layer(l) for l in hidden]
            self.streams = [None] + [rand.Stream(ops, like, (n, sizes[l]), transposed=fm[l]) for l in hidden]
        self.gW = self.gb = [None] * L
        if not recipe.hyper.fused:
            self.gW = [ops.buffer(Wt.shape, Wt, transposed=ops.is_transposed(Wt)) for Wt, _ in net.layers]
            self.gb = [ops.buffer(b.shape, b) for _, b in net.layers]
        self.plan = None
        if recipe.augment != "none":
            self.plan = augment.Plan(ops, like, n, recipe.image_shape, recipe.augment)


def train_step(ops, spec: model.Spec, recipe: Recipe, net: Net, bufs: Buffers, x, y, s: dict,
               logits=None, scale=1.0):
    """One optimiser step on the batch x (n, in) (rows: pixels times ``scale`` are the
    inputs) with targets y (n, classes); ``s``: the step's scalars (``Recipe.scalars``).
    Updates ``net`` (in place where the op set writes in place). Returns the logits
    (n, classes), written into ``logits`` where given."""
    n = x.shape[0]
    if bufs.plan is not None:
        x = augment.apply(ops, bufs.plan, x, s["aug"], s.get("field", 0))
    masks = None
    if recipe.dropout:
        keep = 1.0 - recipe.dropout
        masks = [bufs.streams[l].keep_mask(ops, s[f"drop{l}"], keep, x.dtype, out=bufs.masks[l])
                 for l in range(1, len(spec.sizes) - 1)]
    acts, hs, z = model.forward_pass(ops, net.layers, x, spec, bufs.h, bufs.a, masks, scale, logits)
    # the gradient of the mean loss is 1/n times the error's; plain SGD multiplies it by the rate
    # too, so that each update is the gradient's own GEMM: the factor goes into the (small) output
    # error, or into the update GEMMs' alpha where that is free (ops.scale_in_gemm)
    factor = (s["lr"] if recipe.hyper.fused else 1.0) / n
    d = ops.output_error(spec.output, z, y, 1.0 if ops.scale_in_gemm else factor, 1, out=bufs.errors[-1])
    grad_scale = factor if ops.scale_in_gemm else 1.0

    def update(l, e, A):
        _update(ops, recipe, net, bufs, s, l, e, A, grad_scale * (scale if l == 0 else 1.0), grad_scale)

    model.backward_pass(ops, net.layers, acts, hs, d, spec, update, bufs.errors, masks)
    return z


def _update(ops, recipe: Recipe, net: Net, bufs: Buffers, s: dict, l: int, d, A, w_scale, b_scale) -> None:
    """Layer l's optimiser step from its error d (n, out) and input A (n, in): the gradients
    are dW^T = w_scale * A^T @ d and db = b_scale * (the sum of d over the batch)."""
    Wt, b = net.layers[l]
    hp = recipe.hyper
    if hp.fused:  # W <- decay * W - lr * dW, b <- b - lr * db, the lr already in the scales or in d
        alpha, beta = hp.sgd_coefficients(s["lr"], True)
        Wt = ops.matmul(A.T, d, out=Wt, alpha=alpha * w_scale, beta=beta)
        alpha, beta = hp.sgd_coefficients(s["lr"], False)
        b = ops.sum(d, 0, out=b, alpha=alpha * b_scale, beta=beta)
    else:
        gW = ops.matmul(A.T, d, out=bufs.gW[l], alpha=w_scale)
        gb = ops.sum(d, 0, out=bufs.gb[l], alpha=b_scale)
        sW, sb = net.slots[l]
        Wt, sW = hp.update(ops, Wt, gW, sW, s, True)
        b, sb = hp.update(ops, b, gb, sb, s, False)
        net.slots[l] = [sW, sb]
    if recipe.max_norm:
        Wt = optim.max_norm(ops, Wt, recipe.max_norm)
    net.layers[l] = (Wt, b)


class Chunk:
    """The rows of a chunk of batches, gathered at once: stored pixels (raw), as floats (x),
    targets (y as gathered, yc class-major like the logits) and the logits the steps leave
    (z); None entries where the op set makes new arrays."""

    def __init__(self, ops, like, X, Y, rows: int):
        self.raw = ops.buffer((rows, X.shape[1]), like, X.dtype)
        self.x = ops.buffer((rows, X.shape[1]), like)
        self.y = ops.buffer((rows, Y.shape[1]), like)
        self.yc = ops.buffer((rows, Y.shape[1]), like, transposed=True)
        self.z = ops.buffer((rows, Y.shape[1]), like, transposed=True)

    def rows(self, ops, rows: int) -> dict:
        """The first ``rows`` rows of each buffer (None where there are no buffers)."""
        return {name: None if buf is None else ops.slice(buf, 0, rows)
                for name, buf in (("raw", self.raw), ("x", self.x), ("y", self.y), ("yc", self.yc), ("z", self.z))}

    def logits(self, ops, start, count: int):
        """Rows start .. start+count-1 of the logits buffer (None where there is none)."""
        return None if self.z is None else ops.slice(self.z, start, count)


class Steps:
    """The training steps of one run: batches of ``batch_size`` rows of X (N, in) (uint8
    pixels or floats) with targets Y (N, classes), in an epoch's order ``perm``, a chunk of
    steps per call (``per_call``: the op set's choice unless given); a batch larger than N
    is all N rows. Holds the buffers (per batch size) and, on JAX, the compiled chunk."""

    def __init__(self, ops, spec: model.Spec, recipe: Recipe, X, Y, batch_size: int, per_call: int | None = None):
        self.ops, self.spec, self.recipe = ops, spec, recipe
        self.X, self.Y, self.batch_size = X, Y, min(batch_size, X.shape[0])  # buffers are sized by it
        row_bytes = X.shape[1] * _itemsize(ops, X) + Y.shape[1] * _itemsize(ops, Y)
        self.per_call = per_call or ops.steps_per_call(self.batch_size, row_bytes, spec.flops_per_sample() * self.batch_size)
        self._buffers, self._chunk = {}, None
        self._run = ops.compile(self._steps, static_argnames=("k", "bs"), donate_argnames=("state",))

    def chunks(self, first: int, last: int):
        """(first step, count) of the calls covering steps first .. last-1 of an epoch: full
        chunks of ``per_call`` steps, and the epoch's partial last batch on its own."""
        n, bs = self.X.shape[0], self.batch_size
        full = n // bs  # steps with a full batch
        s = first
        while s < last:
            k = 1 if s >= full else min(self.per_call, full - s, last - s)
            yield s, k
            s += k

    def run(self, net: Net, perm, first: int, k: int, scalars: list) -> object:
        """Steps first .. first+k-1 (one chunk, from ``chunks``) with their host scalars;
        updates ``net``; returns the chunk's summed loss (0-d device array, not read)."""
        ops = self.ops
        bs = min(self.batch_size, self.X.shape[0] - first * self.batch_size)
        if bs not in self._buffers:  # made here, outside any trace: concrete arrays
            self._buffers[bs] = Buffers(ops, self.spec, self.recipe, bs, net)
        if self._chunk is None:
            rows = min(self.per_call * self.batch_size, self.X.shape[0])  # a chunk's steps never pass the epoch's end
            self._chunk = Chunk(ops, net.layers[0][0], self.X, self.Y, rows)
        inputs = ops.step_inputs(scalars, self.Y.dtype)
        zero = ops.zeros((), self.Y)
        (net.layers, net.slots), loss = self._run((net.layers, net.slots), self.X, self.Y, perm, first, inputs,
                                                  zero, k=k, bs=bs)
        return loss

    def _steps(self, state, X, Y, perm, first, inputs, loss, k: int, bs: int):
        """The chunk: gather k * bs rows of perm from ``first * bs``, then k steps."""
        ops, spec, rows = self.ops, self.spec, k * bs
        bufs, c = self._buffers[bs], self._chunk
        idx, part = ops.slice(perm, first * bs, rows), c.rows(ops, rows)
        x, scale = ops.unit_floats(ops.take(X, idx, out=part["raw"]), Y.dtype, out=part["x"])
        y = ops.copy(ops.take(Y, idx, out=part["y"]), out=part["yc"])

        def body(i, s, carry):
            layers, slots, loss = carry
            net = Net(list(layers), [list(p) for p in slots])
            y_i = ops.slice(y, i * bs, bs)
            z = train_step(ops, spec, self.recipe, net, bufs, ops.slice(x, i * bs, bs), y_i, s,
                           c.logits(ops, i * bs, bs), scale)
            if not ops.in_place:
                loss = loss + ops.loss_sum(spec.output, z, y_i, 1)
            return net.layers, net.slots, loss

        layers, slots, loss = ops.loop(body, k, (state[0], state[1], loss), inputs)
        if ops.in_place:  # the logits of the whole chunk, once
            loss = ops.loss_sum(spec.output, part["z"], y, 1)
        return (layers, slots), loss


def _itemsize(ops, a) -> int:
    xp = ops.xp
    info = xp.finfo if xp.isdtype(a.dtype, "real floating") else xp.iinfo
    return info(a.dtype).bits // 8
