"""Sharing the cores: config A trained alone, two trainings at once, and beside a busy neighbour.

    python bench/sharing.py                  # xpnet numpy, xpnet torch, PyTorch eager
    python bench/sharing.py --worker "xpnet numpy"   # one worker: prints its seconds per epoch

Each case starts fresh worker processes (as two runs side by side or a sweep with two workers
would be); a worker builds config A's workload, runs one warm-up epoch, then times ``EPOCHS``
epochs and prints the median seconds per epoch. The busy neighbour is a process spinning on
one core. Ratios are against the same implementation alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

IMPLS = ("xpnet numpy", "xpnet torch", "PyTorch eager")
EPOCHS = 3
SPIN = "import time\nwhile True: pass"


def worker(name: str) -> float:
    """Median seconds per epoch of config A for ``name`` in this process."""
    import refs
    import xpnet_runner
    from workload import CONFIGS, make_workload

    from xpnet.files import idx

    work = make_workload(CONFIGS["A"], idx.load_mnist(), quick=True)
    impl = refs.torch_eager(work) if name == "PyTorch eager" else xpnet_runner.xpnet_impl(work, name.split()[1])
    impl.run()
    times = []
    for _ in range(EPOCHS):
        t0 = time.perf_counter()
        impl.run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _start(name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", name], stdout=subprocess.PIPE, text=True
    )


def _seconds(procs) -> list[float]:
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=600)
        out.append(float(text.strip().splitlines()[-1]))
    return out


def case(name: str, copies: int, neighbour: bool) -> list[float]:
    """Seconds per epoch of each of ``copies`` workers started together (beside a spinning
    process when ``neighbour``)."""
    spin = subprocess.Popen([sys.executable, "-c", SPIN]) if neighbour else None
    try:
        if spin is not None:
            time.sleep(0.5)
        return _seconds([_start(name) for _ in range(copies)])
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()


def measure(impls=IMPLS, say=print) -> dict:
    """{impl: {"alone": s, "two at once": [s, s], "busy neighbour": s, ratios}} per epoch."""
    results = {}
    for name in impls:
        alone = case(name, 1, False)[0]
        pair = case(name, 2, False)
        busy = case(name, 1, True)[0]
        results[name] = {
            "alone_s": alone,
            "pair_s": pair,
            "neighbour_s": busy,
            "pair_ratio": max(pair) / alone,
            "neighbour_ratio": busy / alone,
        }
        say(
            f"  {name}: alone {alone:.3f}s, two at once {pair[0]:.3f}s / {pair[1]:.3f}s "
            f"({results[name]['pair_ratio']:.2f}x), busy neighbour {busy:.3f}s "
            f"({results[name]['neighbour_ratio']:.2f}x)"
        )
    return results


def render(results: dict) -> list[str]:
    out = [
        "## Sharing the cores: config A alone, two at once, beside a busy neighbour",
        "",
        "Fresh worker processes, each: one warm-up epoch of config A, then the median of "
        f"{EPOCHS} timed epochs. `two at once`: two workers started together (the slower one "
        "counts); `busy neighbour`: one worker beside a process spinning on one core. xpnet "
        "sizes its thread pools to the cores free of other work (`backends/threads.py`); "
        "PyTorch eager runs with `torch.set_num_threads(os.cpu_count())`.",
        "",
        "| implementation | alone s/epoch | two at once s/epoch (slower) | vs alone "
        "| busy neighbour s/epoch | vs alone |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        out.append(
            f"| {name} | {r['alone_s']:.3f} | {max(r['pair_s']):.3f} | {r['pair_ratio']:.2f}x "
            f"| {r['neighbour_s']:.3f} | {r['neighbour_ratio']:.2f}x |"
        )
    return out + [""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.worker:
        print(worker(args.worker))
        return 0
    results = measure([s.strip() for s in args.impls.split(",") if s.strip()])
    print("\n".join(render(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
