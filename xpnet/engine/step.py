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

import math
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np

from xpnet.backends import threads
from xpnet.engine import augment, model, optim, rand

DROPOUT_STREAM = 0xD0  # rand stream of hidden layer i's dropout masks: DROPOUT_STREAM + i - 1
# a population's per-step scalars that some members lack, and the value that leaves them unchanged
NEUTRAL = {"decay": 1.0}


@dataclass(frozen=True)
class StepOptions:
    """What a step does besides the network's own passes: the optimiser and its settings,
    dropout, max-norm, augmentation, and the seed of its random streams."""

    optimizer: optim.Optimizer = optim.Optimizer()
    dropout: float = 0.0  # on hidden layers
    max_norm: float = 0.0  # 0: off
    augment: str = "none"
    image_shape: tuple = ()
    seed: int = 0
    members: tuple = ()  # a population's: each member's own StepOptions (``population``); () for one network
    label_smoothing: float = 0.0  # the targets': made with it (``target_smoothing``), or smoothed per member

    @cached_property
    def member_smoothing(self):
        """A population's members' label smoothing (K,) where they differ: the step then smooths
        one-hot targets per member (``Steps``); None where one value serves (the targets carry it)."""
        values = np.array([m.label_smoothing for m in self.members])
        return None if len(set(values.tolist())) <= 1 else values

    @property
    def target_smoothing(self) -> float:
        """The label smoothing the training targets are made with (``data.to_device``)."""
        return 0.0 if self.member_smoothing is not None else self.label_smoothing

    @property
    def size(self) -> int:
        """The networks trained by each step: K members, or 1."""
        return len(self.members) or 1

    @cached_property
    def member_dropout(self) -> bool:
        """Whether the members drop hidden units at different rates (their masks then differ)."""
        return len({m.dropout for m in self.members}) > 1

    @staticmethod
    def population(members) -> StepOptions:
        """The options of a population step for ``members`` (StepOptions of K >= 2 networks
        alike but in their scalars: the same optimiser, augmentation and seed, any dropout
        rates, max-norms, learning rates, momenta, decays and label smoothing). Its own fields switch the step's
        parts on (dropout and max-norm where any member has them; L2 and decay where any
        member has them); the members' values come per step (``scalars``)."""
        first = members[0]
        opt = first.optimizer
        optimizer = optim.Optimizer(
            opt.name,
            opt.momentum,
            opt.beta1,
            opt.beta2,
            opt.eps,
            max(m.optimizer.weight_decay for m in members),
            max(m.optimizer.l2 for m in members),
            opt.n_train,
        )
        return StepOptions(
            optimizer,
            max(m.dropout for m in members),
            max(m.max_norm for m in members),
            first.augment,
            first.image_shape,
            first.seed,
            tuple(members),
            first.label_smoothing,
        )

    def member_constants(self) -> dict:
        """A population member's scalars that are settings, not per-step values: the momentum,
        the L2 coefficient, max-norm's limit (inf: off) and dropout's keep rate, as its
        top 24 bits threshold and its inverse (``rand.Stream.keep_mask``)."""
        keep = 1.0 - self.dropout
        return {
            "mu": self.optimizer.momentum,
            "l2c": self.optimizer.l2 / self.optimizer.n_train,
            "max_norm": self.max_norm or math.inf,
            "keep_bits": math.ceil(keep * (1 << 24)),
            "inv_keep": 1.0 / keep,
        }

    @cached_property
    def constants(self) -> dict:
        """A population's members' settings as step scalars (``member_constants``, ``shared_or_each``)."""
        each = [m.member_constants() for m in self.members]
        return {name: shared_or_each(np.array([c[name] for c in each])) for name in each[0]}

    def scalars(self, spec: model.Spec, lr, t: int, counter: int, mass: float) -> dict:
        """The host scalars of one step on a batch of ``mass``: its rows, or with sample weights
        its rows times their mean weight (``training.Run.batch_masses``). They are the
        optimiser's (``lr``: the rate, or a population's K rates; ``t`` counts optimiser steps
        from 1), the output error's scale (``optimizer_scalars``) and the rand keys of its masks
        and augmentation (``counter``: the step's global index, so a resumed run draws the same
        numbers). Every product is taken here, on the host: the step only reads them. A
        population's are its members' (``member_scalars``) and their settings (``constants``)."""
        s = self.keys(spec, counter)
        if not self.members:
            return s | self.optimizer_scalars(lr, t, mass)
        return s | self.member_scalars(np.asarray(lr, dtype=np.float64), t, mass) | self.constants

    @cached_property
    def optimizer_groups(self) -> list:
        """The members grouped by their optimiser's settings: [(a member's options, the
        members' indices)], so that each group's scalars are one computation on their rates."""
        groups: dict = {}
        for k, m in enumerate(self.members):
            groups.setdefault(m.optimizer, (m, []))[1].append(k)
        return [(m, np.array(ks)) for m, ks in groups.values()]

    def member_scalars(self, lr, t: int, mass: float) -> dict:
        """Each member's ``optimizer_scalars`` at its rate (``lr`` (K,)), computed once per group
        of members alike (``optimizer_groups``) on their rates; a scalar some members lack takes
        the value that leaves them unchanged (``NEUTRAL``); each shared or per member
        (``shared_or_each``)."""
        out: dict = {}
        for options, ks in self.optimizer_groups:
            for name, value in options.optimizer_scalars(lr[ks], t, mass).items():
                out.setdefault(name, np.full(len(self.members), NEUTRAL.get(name, np.nan)))[ks] = value
        return {name: shared_or_each(v) for name, v in out.items()}

    def optimizer_scalars(self, lr: float, t: int, mass: float) -> dict:
        """The optimiser's scalars of step ``t`` at rate ``lr`` (``Optimizer.step_scalars``) and
        the output error's scale: 1/mass, times the rate for plain SGD, whose update is the
        gradient's own GEMM."""
        s = self.optimizer.step_scalars(lr, t)
        s["err_scale"] = (lr if self.optimizer.fused else 1.0) / mass if mass > 0 else 0.0  # no weight: no error
        return s

    def keys(self, spec: model.Spec, counter: int) -> dict:
        """The rand keys of step ``counter``'s augmentation and dropout masks."""
        s = {}
        if self.augment != "none":
            s["aug"] = rand.key(self.seed, augment.PARAMS_STREAM, counter)
        if self.augment == "elastic":
            s["field"] = rand.key(self.seed, augment.FIELD_STREAM, counter)
        if self.dropout:
            for i in range(1, len(spec.sizes) - 1):
                s[f"drop{i}"] = rand.key(self.seed, DROPOUT_STREAM + i - 1, counter)
        return s


def shared_or_each(values: np.ndarray):
    """A population's scalar from its members' values (K,): a number (int or float) where they
    agree, so that the step keeps its fused forms; else the host array, which
    ``ops.step_inputs`` makes a (K, 1, 1) device array."""
    return values[0].item() if (values == values[0]).all() else values


@dataclass
class Net:
    """The trained state on the device: layers [(W^T (in,out), b (1,out))] (``model.layers_of``;
    a population's [(W^T (K,in,out), b (K,1,out))], ``model.population_to_device``) and the
    optimiser's slots [[W^T slots], [b slots]] per layer, shaped like them."""

    layers: list
    slots: list = field(default_factory=list)


class Buffers:
    """What a step on a batch of ``n`` writes into, made once; None entries where the op set
    makes new arrays. Each hidden layer's arrays are (n, size) (a population's (K, n, size)),
    stored as the op set prefers (``ops.feature_major``: as their (size, n) transpose; a
    population's always so, each member's block contiguous for the batched GEMMs); the output
    error class-major. Dropout masks are (n, size), shared by a population's members unless
    their rates differ ((K, n, size))."""

    def __init__(self, ops, spec: model.Spec, recipe: StepOptions, n: int, net: Net):
        like = net.layers[0][0]
        sizes, L, K = spec.sizes, len(spec.sizes) - 1, recipe.size
        feature_major = [False] + [K > 1 or ops.feature_major(s, n) for s in sizes[1:-1]] + [True]

        def layer(i, members=K > 1):
            return ops.buffer((K, n, sizes[i]) if members else (n, sizes[i]), like, transposed=feature_major[i])

        hidden = range(1, L)
        self.h = [None] + [layer(i) for i in hidden]
        self.errors = [None] + [layer(i) for i in hidden] + [layer(L)]
        self.a = self.masks = self.streams = None
        if recipe.dropout:
            self.a = [None] + [layer(i) for i in hidden]
            self.masks = [None] + [layer(i, recipe.member_dropout) for i in hidden]
            self.streams = [None] + [rand.Stream(ops, like, (n, sizes[i]), transposed=feature_major[i]) for i in hidden]
        self.gW = self.gb = [None] * L
        if not recipe.optimizer.fused:
            self.gW = [ops.buffer(Wt.shape, Wt, transposed=ops.is_transposed(Wt)) for Wt, _ in net.layers]
            self.gb = [ops.buffer(b.shape, b) for _, b in net.layers]
        self.plan = None
        if recipe.augment != "none":
            self.plan = augment.Plan(ops, like, n, recipe.image_shape, recipe.augment)


def train_step(
    ops,
    spec: model.Spec,
    recipe: StepOptions,
    net: Net,
    bufs: Buffers,
    x,
    y,
    s: dict,
    logits=None,
    scale=1.0,
    weights=None,
):
    """One optimiser step on the batch x (n, in) (rows: pixels times ``scale`` are the
    inputs) with targets y (n, classes) and, where given, the samples' weights (n,) (each
    sample's error times its weight; ``s["err_scale"]`` then divides by their sum); ``s``: the
    step's scalars (``StepOptions.scalars``). Updates ``net`` (in place where the op set writes
    in place). Returns the logits (n, classes), written into ``logits`` where given."""
    if bufs.plan is not None:
        x = augment.apply(ops, bufs.plan, x, s["aug"], s.get("field", 0))
    masks = None
    if recipe.dropout:
        keep = (s["keep_bits"], s["inv_keep"]) if recipe.member_dropout else 1.0 - recipe.dropout
        masks = [
            bufs.streams[i].keep_mask(ops, s[f"drop{i}"], keep, x.dtype, out=bufs.masks[i])
            for i in range(1, len(spec.sizes) - 1)
        ]
    acts, hs, z = model.forward_pass(ops, net.layers, x, spec, bufs.h, bufs.a, masks, scale, logits, output_bias=False)
    # the gradient of the mean loss is 1/n times the error's; plain SGD multiplies it by the rate
    # too, so that each update is the gradient's own GEMM: the factor (``err_scale``) goes into
    # the (small) output error, or into the update GEMMs' alpha where that is free (ops.scale_in_gemm)
    factor = s["err_scale"]
    in_gemm = ops.scale_in_gemm and isinstance(factor, (int, float))  # a GEMM's alpha is a number
    grad_scale = factor if in_gemm else 1.0
    opt = recipe.optimizer

    def bias_target(i):
        """Where layer i's bias gradient is summed, as it is computed: (array, alpha, beta)."""
        if opt.fused:  # plain SGD: into b itself, b <- b - (lr/n) sum(d)
            alpha, beta = opt.sgd_coefficients(s, False)
            return net.layers[i][1], alpha * grad_scale, beta
        return bufs.gb[i], grad_scale, None

    def update(i, e, A, bias_sum):
        _update(ops, recipe, net, bufs, s, i, e, A, grad_scale * (scale if i == 0 else 1.0), grad_scale, bias_sum)

    top = len(net.layers) - 1
    z, d, bias_sum = ops.logits_and_error(
        spec.output,
        z,
        net.layers[top][1],
        y,
        1.0 if in_gemm else factor,
        bufs.errors[-1],
        *bias_target(top),
        weights=weights,
    )
    model.backward_pass(
        ops, net.layers, acts, hs, d, spec, update, bufs.errors, masks, bias_target=bias_target, bias_sum=bias_sum
    )
    return z


def _update(
    ops, recipe: StepOptions, net: Net, bufs: Buffers, s: dict, i: int, d, A, w_scale, b_scale, bias_sum
) -> None:
    """Layer i's optimiser step from its error d (n, out) and input A (n, in): the gradients
    are dW^T = w_scale * A^T @ d and db = b_scale * (the sum of d over the batch); ``bias_sum``:
    the bias's sum already taken where the backward pass fused it (``bias_target``), else None."""
    Wt, b = net.layers[i]
    opt = recipe.optimizer
    if opt.fused:  # W <- decay * W - lr * dW, b <- b - lr * db, the lr already in the scales or in d
        alpha, beta = opt.sgd_coefficients(s, True)
        Wt = ops.matmul(A.mT, d, out=Wt, alpha=alpha * w_scale, beta=beta)
        if bias_sum is None:
            alpha, beta = opt.sgd_coefficients(s, False)
            bias_sum = ops.sum(d, -2, out=b, alpha=alpha * b_scale, beta=beta)
        b = bias_sum
    else:
        gW = ops.matmul(A.mT, d, out=bufs.gW[i], alpha=w_scale)
        gb = bias_sum if bias_sum is not None else ops.sum(d, -2, out=bufs.gb[i], alpha=b_scale)
        sW, sb = net.slots[i]
        Wt, sW = opt.update(ops, Wt, gW, sW, s, True)
        b, sb = opt.update(ops, b, gb, sb, s, False)
        net.slots[i] = [sW, sb]
    if recipe.max_norm:
        Wt = optim.max_norm(ops, Wt, s.get("max_norm", recipe.max_norm))
    net.layers[i] = (Wt, b)


class Chunk:
    """The rows of a chunk of batches, gathered at once: stored pixels (raw), as floats (x),
    targets (y) and, with sample weights W, the rows' weights (w); and, step by step, the
    targets and the logits the steps leave, each step's (classes, batch) block contiguous
    (``blocks``), so that every product writes its output directly, and where a population's
    members smooth their labels differently, each member's targets (ys). None entries where
    the op set makes new arrays."""

    def __init__(self, ops, like, X, Y, W, rows: int, members: int = 1, smoothed: bool = False):
        self.raw = ops.buffer((rows, X.shape[1]), like, X.dtype)
        self.x = ops.buffer((rows, X.shape[1]), like)
        self.y = ops.buffer((rows, Y.shape[1]), like)
        self.w = None if W is None else ops.buffer((rows,), like)
        self.yc = ops.buffer((rows * Y.shape[1],), like)
        self.z = ops.buffer((members * rows * Y.shape[1],), like)
        self.ys = ops.buffer((members * rows * Y.shape[1],), like) if smoothed else None  # each member's targets

    def rows(self, ops, rows: int) -> dict:
        """The first ``rows`` rows of raw, x, y and w (None where there are no buffers)."""
        return {
            name: None if buf is None else ops.slice(buf, 0, rows)
            for name, buf in (("raw", self.raw), ("x", self.x), ("y", self.y), ("w", self.w))
        }

    @staticmethod
    def blocks(ops, flat, k: int, bs: int, classes: int, members: int = 1):
        """k blocks (k, classes, bs) (a population's (k, K, classes, bs)) at the start of the
        flat buffer ``flat``."""
        shape = (k, classes, bs) if members == 1 else (k, members, classes, bs)
        return ops.xp.reshape(ops.slice(flat, 0, math.prod(shape)), shape)


class Steps:
    """The training steps of one run: batches of ``batch_size`` rows of X (N, in) (uint8
    pixels or floats) with targets Y (N, classes) and, where given, the rows' weights W (N,)
    (floats of Y's dtype), in an epoch's order ``perm``, a chunk of
    steps per call (``per_call``: the op set's choice unless given); a batch larger than N
    is all N rows. Holds the buffers (per batch size), on JAX the compiled chunk, and with
    ``graphs`` on an op set that has them (CuPy) each chunk shape's captured CUDA graph."""

    def __init__(
        self,
        ops,
        spec: model.Spec,
        recipe: StepOptions,
        X,
        Y,
        batch_size: int,
        per_call: int | None = None,
        graphs: bool = False,
        W=None,
    ):
        self.ops, self.spec, self.recipe = ops, spec, recipe
        self.X, self.Y, self.W, self.batch_size = X, Y, W, min(batch_size, X.shape[0])  # buffers are sized by it
        row_bytes = X.shape[1] * _itemsize(ops, X) + Y.shape[1] * _itemsize(ops, Y)
        self.members = recipe.size
        self.per_call = per_call or ops.steps_per_call(
            self.batch_size, row_bytes, spec.flops_per_sample() * self.batch_size * self.members
        )
        self.graphs = graphs and ops.graphs
        self._buffers, self._chunk, self._inputs, self._graphs, self._lanes = {}, None, {}, {}, {}
        self.smoothing = None  # per-member label smoothing: (1 - s, s / classes), each (K, 1, 1), Y one-hot
        if recipe.member_smoothing is not None:
            s = recipe.member_smoothing.reshape(-1, 1, 1)
            self.smoothing = (ops.constant(1.0 - s, Y), ops.constant(s / Y.shape[1], Y))
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

    def batch(self, step: int) -> int:
        """The number of rows of step ``step`` of an epoch (the last may be partial)."""
        return min(self.batch_size, self.X.shape[0] - step * self.batch_size)

    def new_total(self):
        """A zero float64 device array for an epoch's summed loss (``run`` adds to it): 0-d, or
        a population's (K,), one per member."""
        return self.ops.zeros(() if self.members == 1 else (self.members,), self.Y, "float64")

    def run(self, net: Net, perm, first: int, k: int, scalars: list, total, lanes: int = 1):
        """Steps first .. first+k-1 (one chunk, from ``chunks``) with their host scalars;
        updates ``net``; returns ``total`` (from ``new_total``) plus the chunk's summed loss, in
        place where the op set writes in place (a device array, not read). ``lanes`` > 1 (a
        population of at least 2 * lanes members, on an op set with ``lanes``): the members
        stepped in that many groups side by side (``lane_steps``)."""
        if lanes > 1:
            return self._run_lanes(net, perm, first, k, scalars, total, lanes)
        ops = self.ops
        bs = self.batch(first)
        if bs not in self._buffers:  # made here, outside any trace: concrete arrays
            self._buffers[bs] = Buffers(ops, self.spec, self.recipe, bs, net)
        if self._chunk is None:
            rows = min(self.per_call * self.batch_size, self.X.shape[0])  # a chunk's steps never pass the epoch's end
            self._chunk = Chunk(
                ops, net.layers[0][0], self.X, self.Y, self.W, rows, self.members, self.smoothing is not None
            )
        inputs = ops.step_inputs(scalars, self.Y, self._inputs)
        (net.layers, net.slots), total = self._run(
            (net.layers, net.slots), self.X, self.Y, self.W, perm, first, inputs, total, k=k, bs=bs
        )
        return total

    def _run_lanes(self, net: Net, perm, first: int, k: int, scalars: list, total, lanes: int):
        """``run`` of each group of members (``lane_steps``) on views of their slice of the net,
        the scalars and ``total``, side by side, one thread each (``threads.at_once``)."""
        tasks = []
        for members, part in self.lane_steps(lanes):
            view = Net(
                [(W[members], b[members]) for W, b in net.layers],
                [[[s[members] for s in sW], [s[members] for s in sb]] for sW, sb in net.slots],
            )
            theirs = [{n: v[members] if isinstance(v, np.ndarray) else v for n, v in s.items()} for s in scalars]
            tasks.append(partial(part.run, view, perm, first, k, theirs, total[members]))
        threads.at_once(tasks)
        return total

    def lane_steps(self, count: int) -> list:
        """The population's members in ``count`` groups of consecutive members, each stepped by
        a Steps of its own, a population of its members (their own step options and buffers;
        the op set's scratch arrays are per thread) that writes into the population's arrays:
        [(the members' slice, Steps)], made once per count. Each member's step is the
        one it has in the whole population: the per-step scalars are the population's, sliced,
        and where the targets are one-hot for per-member label smoothing each group smooths them."""
        lanes = self._lanes.get(count)
        if lanes is None:
            assert self.ops.in_place and self.members >= 2 * count, (self.ops.name, self.members, count)
            lanes = self._lanes[count] = []
            for members in member_groups(self.members, count):
                part = Steps(
                    self.ops,
                    self.spec,
                    StepOptions.population(self.recipe.members[members]),
                    self.X,
                    self.Y,
                    self.batch_size,
                    self.per_call,
                    W=self.W,
                )
                if self.smoothing is not None:
                    part.smoothing = tuple(a[members] for a in self.smoothing)
                lanes.append((members, part))
        return lanes

    def _steps(self, state, X, Y, W, perm, first, inputs, total, k: int, bs: int):
        """The chunk: gather k * bs rows of perm from ``first * bs``, then k steps."""
        ops, spec, rows, classes, K = self.ops, self.spec, k * bs, Y.shape[1], self.members
        members = None if K == 1 else 0  # a population's member axis of each step's logits
        bufs, c = self._buffers[bs], self._chunk
        idx, part = ops.slice(perm, first * bs, rows), c.rows(ops, rows)
        x, scale = ops.unit_floats(ops.take(X, idx, out=part["raw"]), Y.dtype, out=part["x"])
        y = ops.take(Y, idx, out=part["y"])
        w = None if W is None else ops.take(W, idx, out=part["w"])
        if ops.in_place:  # each step's targets and logits class-major, in blocks
            yb, zb = c.blocks(ops, c.yc, k, bs, classes), c.blocks(ops, c.z, k, bs, classes, K)
            yb = ops.copy(ops.xp.permute_dims(ops.xp.reshape(y, (k, bs, classes)), (0, 2, 1)), out=yb)
            if self.smoothing is not None:  # (k, K, classes, bs): each member's smoothed targets
                yb = self._smoothed(ops.xp.expand_dims(yb, axis=1), c.blocks(ops, c.ys, k, bs, classes, K))

        def body(i, s, carry):
            layers, slots, loss = carry
            net = Net(list(layers), [list(p) for p in slots])
            x_i = ops.slice(x, i * bs, bs)
            w_i = None if w is None else ops.slice(w, i * bs, bs)
            if ops.in_place:
                train_step(ops, spec, self.recipe, net, bufs, x_i, yb[i].mT, s, zb[i].mT, scale, w_i)
            else:
                y_i = ops.slice(y, i * bs, bs)
                if self.smoothing is not None:
                    y_i = self._smoothed(y_i)  # (K, bs, classes)
                z = train_step(ops, spec, self.recipe, net, bufs, x_i, y_i, s, None, scale, w_i)
                step_loss = ops.loss_sum(spec.output, z, y_i, -1, weights=w_i, member_axis=members)
                loss = loss + ops.astype(step_loss, "float64")
            return net.layers, net.slots, loss

        layers, slots, total = self._loop(body, k, bs, (state[0], state[1], total), inputs)
        if ops.in_place:  # the loss of the whole chunk, once, from the logits its steps left
            if K == 1:
                wb = None if w is None else ops.xp.reshape(w, (k, bs))
                total = ops.loss_sum(spec.output, zb, yb, 1, total=total, weights=wb)
            else:  # (k, K, classes, bs) logits against (k, 1, classes, bs) targets (or each member's)
                wb = None if w is None else ops.xp.reshape(w, (k, 1, bs))
                yk = yb if self.smoothing is not None else ops.xp.expand_dims(yb, axis=1)
                total = ops.loss_sum(spec.output, zb, yk, 2, total=total, weights=wb, member_axis=1)
        return (layers, slots), total

    def _smoothed(self, y, out=None):
        """One-hot targets y (..., 1 or n, classes, ...) smoothed by each member's label
        smoothing: y (1 - s) + s / classes, the member axis third from the end."""
        keep, spread = self.smoothing
        ops = self.ops
        return ops.add(ops.multiply(y, keep, out=out), spread, out=out)

    def _loop(self, body, k: int, bs: int, carry, inputs):
        """``ops.loop`` over the chunk's steps; with graphs, a chunk of full batches of each
        length is run eagerly the first time (every buffer and constant made), captured the
        second, and replayed from then on (its per-step scalars read from ``inputs``' buffers);
        where the op set could not capture it (``capture`` gave None), eagerly from then on."""
        ops = self.ops
        if not self.graphs or bs != self.batch_size:
            return ops.loop(body, k, carry, inputs)
        if k not in self._graphs:
            self._graphs[k] = None
            return ops.loop(body, k, carry, inputs)
        if self._graphs[k] is None:
            self._graphs[k] = ops.capture(lambda: ops.loop(body, k, carry, inputs))
            if self._graphs[k] is None:  # the library could not capture it: eager steps from now on
                self.graphs = False
                return ops.loop(body, k, carry, inputs)
        ops.replay(self._graphs[k])
        return carry


def member_groups(members: int, count: int) -> list:
    """``members`` split into ``count`` groups of consecutive members, as even as can be: slices."""
    bounds = [members * i // count for i in range(count + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def _itemsize(ops, a) -> int:
    xp = ops.xp
    info = xp.finfo if xp.isdtype(a.dtype, "real floating") else xp.iinfo
    return info(a.dtype).bits // 8
