"""A population of K networks trained together against the same K trained one after another.

    python bench/population.py                      # A and B, K = 16, three rounds
    python bench/population.py --configs A --members 8 --rounds 5 --epochs 2

For each config (A: 784-30-10 sigmoid, batch 50; B: 784-100-10 relu, batch 128; the CPU
benchmark's, ``workload.CONFIGS``) it makes K members whose learning rates are spread on a log
scale over a decade below the config's rate (each with its own ``init_seed``), and times, in
one process on the bundled MNIST, both ways of training them: ``population.train_population``
(one step for all) and ``training.train`` for each member in turn, the whole runs (validation
after every epoch, the test set at the end), as ``xpnet train --population-seeds`` and K runs of
``xpnet train`` would do them, without process start-up and data loading (made once, outside
the timing). Within a round both run once, the order reversed every other round against drift;
the ratio is the solo time over the population time of the same round; the table gives the
medians, the total samples/s (K times the training images times the epochs, over the time) and
each member's test accuracy both ways (they must agree: the population's members are their
solo runs). Numbers go to stdout as a markdown table (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import CONFIGS  # noqa: E402

from xpnet import backends, population, training  # noqa: E402
from xpnet.files import idx  # noqa: E402
from xpnet.settings import TrainConfig  # noqa: E402


def members(key: str, count: int, epochs: int, backend: str) -> list:
    c = CONFIGS[key]
    base = TrainConfig(
        hidden=tuple(c.sizes[1:-1]),
        activation=c.activation,
        batch_size=c.batch,
        epochs=epochs,
        validation=10000,
        backend=backend,
        quiet=True,
    )
    return [replace(base, lr=float(lr), init_seed=k) for k, lr in enumerate(np.geomspace(c.lr / 10, c.lr, count))]


def quiet(line: str) -> None:
    pass


def timed(fn) -> tuple[float, list]:
    t0 = time.perf_counter()
    results = fn()
    return time.perf_counter() - t0, results


def accuracy(results) -> list:
    return [r.test_correct / r.test_total for r in results]


def bench(key: str, count: int, epochs: int, rounds: int, backend) -> dict:
    dataset = idx.load(None)
    cfgs = members(key, count, epochs, backend.name)
    n_train = len(dataset.train) - cfgs[0].validation
    solo_s, pop_s, ratios = [], [], []
    for r in range(rounds):
        order = ("solo", "population") if r % 2 == 0 else ("population", "solo")
        times = {}
        for way in order:
            if way == "solo":
                times[way], solo = timed(lambda: [training.train(c, backend, dataset, say=quiet) for c in cfgs])
            else:
                times[way], pop = timed(lambda: population.train_population(cfgs, backend, dataset, say=quiet))
        solo_s.append(times["solo"])
        pop_s.append(times["population"])
        ratios.append(times["solo"] / times["population"])
        print(
            f"[population] {key} round {r + 1}: solo {times['solo']:.2f}s, population {times['population']:.2f}s, "
            f"ratio {ratios[-1]:.2f}",
            file=sys.stderr,
            flush=True,
        )
    samples = count * n_train * epochs
    return {
        "config": key,
        "members": count,
        "epochs": epochs,
        "lr": [c.lr for c in cfgs],
        "solo_s": solo_s,
        "population_s": pop_s,
        "ratios": ratios,
        "solo_samples_per_s": samples / statistics.median(solo_s),
        "population_samples_per_s": samples / statistics.median(pop_s),
        "ratio": statistics.median(ratios),
        "solo_test_accuracy": accuracy(solo),
        "population_test_accuracy": accuracy(pop),
    }


def table(results: list, machine: str) -> list[str]:
    lines = [
        f"Machine: {machine}. Whole runs (validation each epoch, test at the end), data loaded once.",
        "",
        "| config | K | epochs | solo samples/s | population samples/s | ratio (median of rounds) | rounds | "
        "largest test-accuracy difference (points) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        diff = max(abs(a - b) for a, b in zip(r["solo_test_accuracy"], r["population_test_accuracy"])) * 100
        lines.append(
            f"| {r['config']} | {r['members']} | {r['epochs']} | {r['solo_samples_per_s']:.0f} | "
            f"{r['population_samples_per_s']:.0f} | {r['ratio']:.2f} ({', '.join(f'{x:.2f}' for x in r['ratios'])}) | "
            f"{len(r['ratios'])} | {diff:.2f} |"
        )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="A,B", help="comma-separated subset of A,B")
    p.add_argument("--members", type=int, default=16, help="K")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N with --backend cupy or torch")
    p.add_argument("--json", help="write the numbers here too")
    args = p.parse_args(argv)
    backend = backends.resolve(args.backend, args.device)
    results = [bench(k, args.members, args.epochs, args.rounds, backend) for k in args.configs.split(",")]
    machine = f"{os.cpu_count()} CPUs, {backend.name} on {backend.label}, numpy {np.__version__}"
    print("\n".join(table(results, machine)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
