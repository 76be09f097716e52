"""What is benchmarked: the configurations, the host data every implementation trains on,
the implementation record the timing loop drives, and the analytic FLOP count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xpnet.engine import data, model

NUM_CLASSES = 10


@dataclass(frozen=True)
class Config:
    """One benchmark configuration. Steps are per timed run; the naive reference runs fewer.
    ``recipe``: settings of ``xpnet train`` beyond plain SGD (optimizer, dropout, augment...)."""

    key: str
    sizes: tuple[int, ...]
    activation: str
    batch: int
    lr: float
    steps_full: int
    steps_quick: int
    naive_full: int
    naive_quick: int
    recipe: tuple = ()  # ((TrainConfig field, value), ...)

    @property
    def plain_sgd(self) -> bool:
        return not self.recipe

    def steps(self, quick: bool) -> int:
        return self.steps_quick if quick else self.steps_full

    def naive_steps(self, quick: bool) -> int:
        return self.naive_quick if quick else self.naive_full

    def describe(self) -> str:
        extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in self.recipe)
        return (
            f"{'-'.join(map(str, self.sizes))} {self.activation}, softmax+CE, batch {self.batch}, lr {self.lr}{extra}"
        )


# Steps per timed run: a 60k-image epoch in full mode (n = steps * batch <= 60,000); fewer in quick
# mode for C, D and R. The naive reference runs ``naive_*`` steps instead, once (plain SGD only).
CONFIGS = {
    "A": Config(
        "A",
        (784, 30, 10),
        "sigmoid",
        batch=50,
        lr=3.0,
        steps_full=1200,
        steps_quick=1200,
        naive_full=200,
        naive_quick=50,
    ),
    "B": Config(
        "B", (784, 100, 10), "relu", batch=128, lr=0.1, steps_full=468, steps_quick=468, naive_full=40, naive_quick=15
    ),
    "C": Config(
        "C",
        (784, 800, 800, 10),
        "relu",
        batch=128,
        lr=0.1,
        steps_full=468,
        steps_quick=40,
        naive_full=10,
        naive_quick=3,
    ),
    "D": Config(
        "D", (784, 800, 800, 10), "relu", batch=1024, lr=0.1, steps_full=58, steps_quick=8, naive_full=2, naive_quick=1
    ),
    # the best-cpu preset's step: Nesterov momentum, dropout, affine augmentation
    "R": Config(
        "R",
        (784, 1024, 1024, 10),
        "relu",
        batch=128,
        lr=0.05,
        steps_full=468,
        steps_quick=40,
        naive_full=0,
        naive_quick=0,
        recipe=(("optimizer", "nesterov"), ("momentum", 0.9), ("dropout", 0.2), ("augment", "affine")),
    ),
}

# GPU only (bench/gpu.py): E, a large network at a large batch, GEMM-bound on a GPU; and
# "default", the network of `xpnet train`'s default recipe at its batch (launch-bound on a GPU)
GPU_CONFIGS = {
    **{k: CONFIGS[k] for k in "ABCD"},
    "E": Config(
        "E",
        (784, 2500, 2000, 1500, 1000, 500, 10),
        "relu",
        batch=1024,
        lr=0.1,
        steps_full=58,
        steps_quick=4,
        naive_full=0,
        naive_quick=0,
    ),
    "default": Config(
        "default",
        (784, 512, 256, 10),
        "relu",
        batch=32,
        lr=0.2,
        steps_full=1875,
        steps_quick=400,
        naive_full=0,
        naive_quick=0,
    ),
}


@dataclass
class Impl:
    """One implementation of one config. ``run`` trains ``steps`` mini-batches (continuing from
    the previous run's parameters), waits for the device, and returns the mean loss of the run.
    ``warmup`` (default: ``run``) is called once before timing; ``timed_runs`` (default: the
    benchmark's repeats) caps how many timed runs it gets."""

    name: str
    kind: str  # "xpnet", "ref" (a competitor) or "naive" (a reference line only)
    steps: int
    run: Callable[[], float]
    backend: object = None  # xpnet's Backend, for the GEMM-only timing
    warmup: Callable[[], float] | None = None
    timed_runs: int | None = None


@dataclass
class Workload:
    """The host-side inputs shared by every implementation of a config.

    The first ``n = steps * batch`` training images, in the order ``perm``, and the same initial
    parameters (xpnet's own initialisation, float64 host arrays in the order-3 layout)."""

    config: Config
    steps: int
    images: np.ndarray  # (n, 28, 28) uint8, for xpnet's own data path
    x: np.ndarray  # (n, 784) float32 in [0, 1] (x / 255), for the references
    labels: np.ndarray  # (n,) int64
    onehot: np.ndarray  # (n, 10) float32
    perm: np.ndarray  # (n,) int64, the batch order of every run
    init_params: list  # [(W (1,out,in), b (1,out,1)), ...] float64

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def spec(self) -> model.Spec:
        return model.Spec(self.config.sizes, self.config.activation, "softmax")


def make_workload(config: Config, dataset: data.Dataset, quick: bool) -> Workload:
    steps = config.steps(quick)
    n = steps * config.batch
    if n > len(dataset.train):
        raise ValueError(f"config {config.key}: {steps} steps of {config.batch} need {n} images")
    images = dataset.train.images[:n]
    labels = dataset.train.labels[:n].astype(np.int64)
    x = images.reshape(n, -1).astype(np.float32) / np.float32(255.0)
    onehot = data.one_hot(labels, NUM_CLASSES, "float32")
    rng = np.random.default_rng(0)
    spec = model.Spec(config.sizes, config.activation, "softmax")
    init_params = model.init_params_host(spec, rng)
    perm = rng.permutation(n)
    return Workload(config, steps, images, x, labels, onehot, perm, init_params)


def layer_shapes(sizes) -> list[tuple[int, int]]:
    """[(in, out), ...] first layer first."""
    return list(zip(sizes[:-1], sizes[1:]))


def flops_per_step(sizes, batch: int) -> int:
    """Matrix-multiply FLOPs of one step: forward 2*B*in*out and dW 2*B*in*out for every
    layer, dA 2*B*in*out for every layer but the first."""
    return batch * model.Spec(tuple(sizes)).flops_per_sample()
