"""The population step: K networks trained by one step, each member equal to its solo run.

Each member of a population differs from the others in its scalars (learning rate, momentum,
L2, weight decay, dropout rate, max-norm, label smoothing, initial weights) and shares the batch order; after
many steps its parameters and its losses must be its solo run's, on every backend.
"""

import math

import numpy as np
import pytest

from xpnet import backends, config
from xpnet.engine import data, model, optim
from xpnet.engine.step import Net, StepOptions, Steps

N, BATCH, PER_CALL = 100, 16, 3  # 7 steps an epoch: chunks of 3, 3, and the partial batch of 4
SPEC = model.Spec((784, 24, 16, 10))  # a deeper layer: the batched GEMMs as well as the wide one

POPULATIONS = {  # members' settings, one dict each; every population shares the rest
    "sgd-lr": [{"lr": 0.02}, {"lr": 0.1}, {"lr": 0.3}],
    "sgd-l2-maxnorm": [{"lr": 0.1, "l2": 3.0}, {"lr": 0.05}, {"lr": 0.1, "max_norm": 0.9}],
    "momentum": [{"optimizer": "momentum", "momentum": 0.5}, {"optimizer": "momentum", "lr": 0.02, "l2": 2.0}],
    "nesterov": [{"optimizer": "nesterov", "lr": 0.05}, {"optimizer": "nesterov", "momentum": 0.8}],
    "adamw": [{"optimizer": "adamw", "lr": 0.003}, {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1}],
    "dropout": [{"dropout": 0.5}, {"dropout": 0.1, "lr": 0.05}, {"lr": 0.2}],
    "same-dropout": [{"dropout": 0.3, "lr": 0.05}, {"dropout": 0.3, "lr": 0.2}],
    "augment": [{"augment": "shift", "lr": 0.05}, {"augment": "shift", "lr": 0.15}],
    "smoothing": [{"label_smoothing": 0.1}, {"label_smoothing": 0.3, "lr": 0.05}, {"lr": 0.2}],
}
# six members for groups stepped side by side: in 2 groups (3 + 3) and in 3 (2 + 2 + 2) some groups'
# members agree in what the population's differ in (smoothing, dropout, L2), the others do not
LANES = [
    {"label_smoothing": 0.1, "dropout": 0.3, "lr": 0.05},
    {"label_smoothing": 0.1, "dropout": 0.3, "lr": 0.2},
    {"label_smoothing": 0.1, "dropout": 0.3, "l2": 2.0},
    {"label_smoothing": 0.2, "dropout": 0.1, "l2": 2.0, "max_norm": 0.9},
    {"lr": 0.3, "dropout": 0.5, "momentum": 0.5},
    {"lr": 0.15},
]


def member_config(opts: dict, k: int) -> config.TrainConfig:
    return config.TrainConfig(**{"lr": 0.1, "init_seed": 10 + k, **opts})


def run_steps(backend, dtype, members: list, mnist, steps: int, population: bool, lanes: int = 1):
    """``steps`` steps on the first N MNIST images, of the members together (one population,
    stepped in ``lanes`` groups) or of each alone; (per-epoch losses (epochs, K), each member's
    host layers)."""
    ops = backend.ops
    cfgs = [member_config(m, k) for k, m in enumerate(members)]
    recipes = [config.recipe(c, N, (28, 28)) for c in cfgs]
    host = [model.init_params_host(SPEC, np.random.default_rng([c.init_seed, 0x1417])) for c in cfgs]
    X = backend.asarray(np.ascontiguousarray(mnist.train.images[:N].reshape(N, -1)))
    if population:
        groups = [(StepOptions.population(recipes), model.population_to_device(backend, host, dtype), cfgs)]
    else:
        groups = [
            (r, model.layers_of(model.params_to_device(backend, h, dtype)), [c]) for r, h, c in zip(recipes, host, cfgs)
        ]
    losses, layers = [], []
    for recipe, net_layers, group in groups:
        # the targets as a run makes them: smoothed, unless the population's members smooth them each
        Y = backend.asarray(data.one_hot(mnist.train.labels[:N], 10, dtype, recipe.target_smoothing))
        net = Net(net_layers, optim.init_slots(recipe.optimizer, ops, net_layers))
        run = Steps(ops, SPEC, recipe, X, Y, BATCH, per_call=PER_CALL, graphs=True)  # CuPy: chunks replayed
        per_epoch, t, rng, history = math.ceil(N / BATCH), 0, np.random.default_rng(0), []
        epochs = -(-steps // per_epoch)
        for epoch in range(1, epochs + 1):
            perm, total = backend.asarray(rng.permutation(N)), run.new_total()
            for first, k in run.chunks(0, min(per_epoch, steps - t)):
                rates = [
                    optim.lr_at(c.lr, "cosine", epoch - 1 + j / per_epoch, epochs)
                    for j in range(first, first + k)
                    for c in group
                ]
                rates = np.reshape(rates, (k, len(group)))
                scalars = [
                    recipe.scalars(
                        SPEC,
                        r if len(group) > 1 else float(r[0]),
                        t + 1 + i,
                        (epoch - 1) * per_epoch + first + i,
                        run.batch(first + i),
                    )
                    for i, r in enumerate(rates)
                ]
                total = run.run(net, perm, first, k, scalars, total, lanes=lanes)
                t += k
            history.append(np.atleast_1d(backends.to_host(total)))
        losses.append(np.array(history))
        host_layers = [(backends.to_host(W), backends.to_host(b)) for W, b in net.layers]
        layers += (
            [[(W[k], b[k]) for W, b in host_layers] for k in range(len(group))] if len(group) > 1 else [host_layers]
        )
    return np.concatenate(losses, axis=1), layers


@pytest.mark.parametrize("name", list(POPULATIONS))
def test_each_member_is_its_solo_run_in_float64(name, mnist):
    """200 steps: every parameter of every member within 1e-10 of its solo run's, on NumPy."""
    be = backends.resolve("numpy", "cpu")
    members = POPULATIONS[name]
    together, pop = run_steps(be, "float64", members, mnist, 200, population=True)
    alone, solo = run_steps(be, "float64", members, mnist, 200, population=False)
    np.testing.assert_allclose(together, alone, rtol=1e-10)
    for k, (mine, theirs) in enumerate(zip(pop, solo)):
        for (W, b), (W0, b0) in zip(mine, theirs):
            assert np.abs(W - W0).max() < 1e-10, (name, k)
            assert np.abs(b - b0).max() < 1e-10, (name, k)
    assert len({float(np.abs(W).sum()) for W, _ in (m[0] for m in pop)}) == len(members)  # they did differ


@pytest.mark.parametrize("name", ["sgd-lr", "adamw", "dropout", "momentum", "smoothing"])
def test_population_step_on_every_backend(target, name, mnist):
    """Two epochs of a population on each backend (the emulated CuPy too) against its members
    run alone on the same backend."""
    members = POPULATIONS[name]
    tol = {"float32": 2e-4, "float64": 1e-10}[target.dtype]
    together, pop = run_steps(target, target.dtype, members, mnist, 14, population=True)
    alone, solo = run_steps(target, target.dtype, members, mnist, 14, population=False)
    np.testing.assert_allclose(together, alone, rtol=tol)
    for mine, theirs in zip(pop, solo):
        for (W, b), (W0, b0) in zip(mine, theirs):
            np.testing.assert_allclose(W, W0, atol=tol, rtol=tol)
            np.testing.assert_allclose(b, b0, atol=tol, rtol=tol)


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adamw"])
@pytest.mark.parametrize("lanes", [2, 3])
def test_members_stepped_in_groups_side_by_side_are_their_solo_runs(optimizer, lanes, mnist):
    """A population stepped in groups of members, each group in a thread of its own
    (``Steps.lane_steps``), float64, 100 steps: every member within 1e-10 of its solo run, and
    the same numbers as the population stepped whole."""
    be = backends.resolve("numpy", "cpu")
    members = [{**m, "optimizer": optimizer} for m in LANES]
    if optimizer == "adamw":
        members = [{**m, "lr": m.get("lr", 0.1) / 30, "weight_decay": 0.05 * k} for k, m in enumerate(members)]
    split, parts = run_steps(be, "float64", members, mnist, 100, population=True, lanes=lanes)
    whole, pop = run_steps(be, "float64", members, mnist, 100, population=True)
    alone, solo = run_steps(be, "float64", members, mnist, 100, population=False)
    np.testing.assert_allclose(split, whole, rtol=1e-13)
    np.testing.assert_allclose(split, alone, rtol=1e-10)
    for k, (mine, together, theirs) in enumerate(zip(parts, pop, solo)):
        for (W, b), (W1, b1), (W0, b0) in zip(mine, together, theirs):
            assert np.abs(W - W1).max() < 1e-13 and np.abs(b - b1).max() < 1e-13, k
            assert np.abs(W - W0).max() < 1e-10 and np.abs(b - b0).max() < 1e-10, k
