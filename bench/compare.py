"""Two versions of xpnet side by side: the benchmark of a base commit (checked out in a git
worktree) and of this tree, run alternately in one session, and the ratios of their medians.

    python bench/compare.py --base 8cd2f9e --configs A,B,C,D --rounds 3
    python bench/compare.py --base 8cd2f9e --train "--preset best-cpu --epochs 1" --rounds 3

Each round runs ``bench/run.py --quick`` (or the ``xpnet train`` command) once in the base
worktree, then once here, each in a fresh process whose ``import xpnet`` is that tree's. The
table shows, per config and implementation, the median of the rounds' samples/s for both and
the ratio this/base (for ``--train``: the seconds of each epoch line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EPOCH = re.compile(r"^epoch\s+(\d+)/\d+ .* ([\d.]+)s\s+\d+ samples/s$")


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def worktree(commit: str) -> Path:
    """A checkout of ``commit`` beside the repository (made once, reused)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"xpnet-{sha}"
    if not (path / "xpnet").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(path), sha], cwd=REPO, check=True, capture_output=True
        )
    return path


def _run(tree: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, check=True)


def bench_once(tree: Path, configs: str, repeats: int) -> dict:
    """{config: {implementation: median samples/s}} from one quick benchmark run in ``tree``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        _run(
            tree,
            [
                "bench/run.py",
                "--quick",
                "--no-rss",
                "--configs",
                configs,
                "--repeats",
                str(repeats),
                "--json",
                str(out),
                "--results",
                str(Path(tmp) / "RESULTS.md"),
            ],
        )
        data = json.loads(out.read_text())
    return {c["config"]: {name: s["median_samples_per_s"] for name, s in c["impls"].items()} for c in data["configs"]}


def train_once(tree: Path, train_args: str) -> list[float]:
    """The seconds of each epoch line of one ``xpnet train`` run in ``tree``."""
    p = _run(tree, ["-m", "xpnet", "train", "--quiet", *train_args.split()])
    return [float(m.group(2)) for m in map(EPOCH.match, p.stdout.splitlines()) if m]


def table(base: list[dict], this: list[dict]) -> list[str]:
    lines = ["| config | implementation | base samples/s | this samples/s | this / base |", "|---|---|---|---|---|"]
    for key in this[0]:
        for name in this[0][key]:
            b = [r[key][name] for r in base if name in r.get(key, {})]
            t = [r[key][name] for r in this]
            if not b:
                continue
            mb, mt = statistics.median(b), statistics.median(t)
            lines.append(f"| {key} | {name} | {mb:,.0f} | {mt:,.0f} | {mt / mb:.3f} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the commit to compare with (e.g. the one before a change)")
    p.add_argument("--configs", default="A,B,C,D")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per implementation in each benchmark run")
    p.add_argument("--train", metavar="ARGS", help="time `xpnet train ARGS` epochs instead of the benchmark")
    p.add_argument("--base-train", metavar="ARGS", help="the base tree's train arguments (default: --train's)")
    args = p.parse_args(argv)
    base_tree = worktree(args.base)
    log(f"base {args.base} in {base_tree}; this tree {REPO}")
    if args.train:
        times = {"base": [], "this": []}
        for r in range(args.rounds):
            for name, tree, targs in (("base", base_tree, args.base_train or args.train), ("this", REPO, args.train)):
                times[name].append(train_once(tree, targs))
                log(f"round {r + 1}: {name} epochs {times[name][-1]} s")
        for label, part in (("first epoch", slice(0, 1)), ("later epochs", slice(1, None))):
            med = {k: statistics.median(s for run in v for s in run[part]) for k, v in times.items() if v[0][part]}
            if len(med) == 2:  # the first epoch holds one-off costs (JAX's compilation)
                print(
                    f"xpnet train {args.train}: {label}: median base {med['base']:.2f}s, this {med['this']:.2f}s, "
                    f"base / this = {med['base'] / med['this']:.2f}x"
                )
        print(json.dumps(times))
        return 0
    base, this = [], []
    for r in range(args.rounds):
        base.append(bench_once(base_tree, args.configs, args.repeats))
        this.append(bench_once(REPO, args.configs, args.repeats))
        log(f"round {r + 1}/{args.rounds} done")
    print("\n".join(table(base, this)))
    print(json.dumps({"base": base, "this": this}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
