"""A sweep's wall time with one worker and with several: ``xpnet sweep run --workers J``.

    python bench/sweep.py                       # 12 trials; --workers 1, 1 with --threads 1, and 2; three rounds
    python bench/sweep.py --rounds 5 --runs "--workers 1;--workers 2" --trials 12

Each round makes a fresh study per worker count (SQLite, in a temporary folder) over the same
12-point grid of a small network on the bundled MNIST (784-128-10 or 784-256-10, lr 0.05/0.1/0.2,
batch 32/64, 3 epochs; grid sampler, no pruner: every run trains the same 12 trials), and
times the whole command, process start-up and data loading included. Within a round each run
(a set of ``sweep run`` flags) runs once, the order reversed every other round against drift;
the ratio is each run's time over the first's in the same round, and the summary gives the
medians; "cores busy" is the CPU time of the command's processes over its wall time. Before
each round, two processes spinning a Python loop at once against one alone say how much of a
second core the machine gives now (a shared virtual machine's neighbours take some), hence the
best ratio two workers could reach.

``--space small``: a random search of 784-30-10 networks (batch 50, 3 epochs; learning rate
log-uniform on [0.01, 1], dropout uniform on [0, 0.3]), the kind of study ``--population K`` is
for: ``python bench/sweep.py --space small --trials 32 --runs "--workers 2;--population 16"``.
Each run's line also gives the best validation accuracy its study found.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """
[train]
epochs = 3
validation = 10000

[sweep]
sampler = "grid"
pruner = "none"

[sweep.params]
lr = [0.05, 0.1, 0.2]
hidden = ["128", "256"]
batch-size = [32, 64]
"""

SMALL = """
[train]
epochs = 3
validation = 10000
batch-size = 50
hidden = [30]

[sweep]
sampler = "random"
pruner = "none"

[sweep.params]
lr = {low = 0.01, high = 1.0, log = true}
dropout = {low = 0.0, high = 0.3}
"""
SPACES = {"grid": SPACE, "small": SMALL}


def xpnet(*args, cwd) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if p.returncode != 0:
        sys.exit(f"xpnet {' '.join(map(str, args))} failed:\n{p.stderr}")
    return p


def timed_sweep(folder: Path, name: str, trials: int, flags: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of all its processes, the best validation accuracy found) of
    ``xpnet sweep run --trials N FLAGS`` on a fresh study."""
    xpnet("sweep", "create", "--study", name, "--space", "space.toml", cwd=folder)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = xpnet("sweep", "run", "--study", name, "--trials", trials, *flags, cwd=folder)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = sum(line.startswith("trial ") and " complete " in line for line in p.stdout.splitlines())
    if done < trials:
        sys.exit(f"{name}: {done} of {trials} trials complete:\n{p.stdout}")
    best = json.loads(xpnet("sweep", "show", "--study", name, "--json", cwd=folder).stdout)["best"]["val_accuracy"]
    return seconds, cpu, best


SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(20_000_000): x += i\nprint(time.perf_counter() - t)"


def cpu_scaling(count: int) -> float:
    """Seconds of ``count`` processes spinning the same Python loop at once over one alone: 1.0
    when the machine runs them all in parallel; what a virtual machine's neighbours leave."""

    def spin(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    return spin(count) / spin(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument(
        "--runs",
        default="--workers 1;--workers 1 --threads 1;--workers 2",
        help="';'-separated sets of sweep run flags; the first is the baseline",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--space", choices=sorted(SPACES), default="grid", help="the study's search space (above)")
    args = ap.parse_args()
    runs = [r.strip() for r in args.runs.split(";")]
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f}: other processes are using the CPU", file=sys.stderr)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores ({cpu}); {args.trials} trials per sweep")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "space.toml").write_text(SPACES[args.space])
        for r in range(args.rounds):
            x = cpu_scaling(2)
            print(
                f"round {r + 1}: 2 processes spinning at once each take {x:.2f}x one alone (best "
                f"2-worker ratio about {x / 2:.2f}x)"
            )
            order = runs if r % 2 == 0 else runs[::-1]
            measured = {run: timed_sweep(folder, f"r{r}-{i}", args.trials, run.split()) for i, run in enumerate(order)}
            times = {run: wall for run, (wall, _, _) in measured.items()}
            rounds.append(times)
            print(
                f"round {r + 1}: "
                + ", ".join(
                    f"{run}: {times[run]:.1f} s ({times[run] / times[runs[0]]:.2f}x; "
                    f"{measured[run][1] / times[run]:.2f} cores busy; best val acc {100 * measured[run][2]:.2f}%)"
                    for run in runs
                ),
                flush=True,
            )
    print(
        "median: "
        + ", ".join(
            f"{run}: {statistics.median(t[run] for t in rounds):.1f} s "
            f"(ratio {statistics.median(t[run] / t[runs[0]] for t in rounds):.2f}x)"
            for run in runs
        )
    )


if __name__ == "__main__":
    main()
