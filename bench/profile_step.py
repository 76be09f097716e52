"""Which xpnet functions run in each training step, per backend: a profile of one epoch.

    python bench/profile_step.py                      # the default recipe, a Nesterov + dropout
                                                      # + augmentation run and an Adam run
    python bench/profile_step.py --images 3200

For each recipe and backend, one epoch of ``training.Run.run_epoch`` on the first ``--images``
MNIST images runs under cProfile. A function of xpnet outside ``xpnet/backends/`` called at
least once per step is a per-step function; the table shows its calls per step on numpy,
torch and array_api_strict (the same code, so the same numbers), and its calls in the JAX
epoch: the step's own functions run only while JAX traces the compiled chunk (a few times),
the host-side ones (the rate, the rand keys) once per step.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

import xpnet
from xpnet import backends, training
from xpnet.engine import data
from xpnet.files import idx
from xpnet.settings import TrainConfig

PACKAGE = Path(xpnet.__file__).resolve().parent
EAGER = ("numpy", "torch", "array_api_strict")
RECIPES = {
    "default (sgd)": {},
    "nesterov + dropout + affine": {"optimizer": "nesterov", "dropout": 0.2, "augment": "affine"},
    "adam": {"optimizer": "adam", "lr": 0.002},
}


def profile_epoch(backend: str, images: int = 1600, **settings) -> tuple[int, dict[str, int]]:
    """(steps, {module.function: calls}) of one epoch on ``backend`` (CPU), for the xpnet
    functions outside xpnet/backends/."""
    mnist = idx.load_mnist()
    split = data.Split(mnist.train.images[:images], mnist.train.labels[:images])
    cfg = TrainConfig(**{"hidden": (64, 32), "batch_size": 32, "validation": 0, "quiet": True, **settings})
    run = training.Run(
        cfg, backends.resolve(backend, "cpu"), data.Dataset(split, split, 10, "profile"), say=lambda s: None
    )
    perm = run.backend.asarray(run.state.rng.permutation(run.n))
    profile = cProfile.Profile()
    profile.enable()
    run.run_epoch(perm)
    profile.disable()
    calls = {}
    for (file, _, name), (_, n, *_rest) in pstats.Stats(profile).stats.items():
        path = Path(file).resolve()
        if path.is_relative_to(PACKAGE) and not path.is_relative_to(PACKAGE / "backends"):
            key = f"{path.relative_to(PACKAGE).with_suffix('')}.{name}".replace("/", ".")
            calls[key] = calls.get(key, 0) + n
    return run.per_epoch, calls


def per_step(steps: int, calls: dict[str, int]) -> dict[str, int]:
    """The functions called at least once per step, with their calls per step (whole calls:
    the few made once per chunk or per run are left out)."""
    return {f: n // steps for f, n in calls.items() if n >= steps}


def table(recipe: str, images: int) -> list[str]:
    settings = RECIPES[recipe]
    rows = {name: per_step(*profile_epoch(name, images, **settings)) for name in EAGER}
    _, traced = profile_epoch("jax", images, **settings)
    functions = sorted(set().union(*rows.values()))
    lines = [
        f"### {recipe}",
        "",
        "| function | " + " | ".join(f"{name}: calls per step" for name in EAGER) + " | jax: calls in the epoch |",
        "|---|" + "---|" * (len(EAGER) + 1),
    ]
    for f in functions:
        cells = [str(rows[name].get(f, 0)) for name in EAGER]
        lines.append(f"| `{f}` | " + " | ".join(cells) + f" | {traced.get(f, '**0**')} |")
    same = all(rows[name] == rows[EAGER[0]] for name in EAGER)
    lines += [
        "",
        f"Same per-step functions and counts on {', '.join(EAGER)}: {'yes' if same else '**no**'}; "
        f"all called (traced) on jax: {'yes' if set(functions) <= set(traced) else '**no**'}.",
        "",
    ]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=1600, help="training images in the profiled epoch (batch 32)")
    args = p.parse_args(argv)
    for recipe in RECIPES:
        print("\n".join(table(recipe, args.images)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
