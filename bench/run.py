"""CPU benchmark: xpnet against PyTorch eager, JAX jit and the seeds' naive NumPy formulation
(and, for config R, the best-cpu recipe against PyTorch eager doing the same).

    python bench/run.py            # full run (under 15 minutes on 2 cores)
    python bench/run.py --quick    # short run (under 2 minutes)
    python bench/run.py --configs A,B --repeats 3 --json results.json

Per config: one warm-up run per implementation, then ``repeats`` timed runs alternating between
implementations (A B C A B C ...); median and min-max samples/s. Writes bench/RESULTS.md and
prints the same tables; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench modules, also when imported from elsewhere

import machine  # noqa: E402
import refs  # noqa: E402
import report  # noqa: E402
import sharing  # noqa: E402
import xpnet_runner  # noqa: E402
from workload import CONFIGS, Impl, Workload, flops_per_step, make_workload  # noqa: E402

from xpnet.files import idx  # noqa: E402

GAP_S = 0.1  # pause before each timed run, so the previous library's idle worker threads stop spinning
NOISY_CORES = report.NOISY_CORES  # a timed run during which other processes used more cores is redone
RETRIES = 1  # at most this many redone runs per timed run
IDLE_WAIT_S = 5.0  # before redoing a run, wait at most this long for the other processes to stop


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def check_idle(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes over ``seconds``; warns when the machine is not idle."""
    others = machine.others_over(seconds)
    if others > NOISY_CORES:
        log(f"warning: other processes are keeping {others:.2f} cores busy; timings will be noisy")
    return others


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="xpnet CPU benchmark (MNIST MLP training throughput).")
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats (under 2 minutes)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per implementation (default 3 quick, 9 full: the medians of a full run are steadier)",
    )
    p.add_argument("--json", metavar="PATH", default=None, help="also write the raw numbers as JSON")
    p.add_argument(
        "--results", metavar="PATH", default=str(HERE / "RESULTS.md"), help="markdown output (default bench/RESULTS.md)"
    )
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS run of `python -m xpnet train`")
    p.add_argument("--no-sharing", action="store_true", help="skip config A alone / two at once / beside a busy core")
    args = p.parse_args(argv)
    args.configs = [k.strip().upper() for k in args.configs.split(",") if k.strip()]
    unknown = [k for k in args.configs if k not in CONFIGS]
    if unknown or not args.configs:
        p.error(f"--configs: unknown {','.join(unknown) or '(empty)'}; choose from {','.join(CONFIGS)}")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 9
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


# ---- building the implementations ------------------------------------------


def build_impls(work: Workload, quick: bool) -> tuple[list[Impl], dict[str, str]]:
    """The implementations of one config (xpnet backends first), and {name: why skipped}."""
    jax_ok, jax_why = refs.jax_available()
    candidates = [
        (f"xpnet {name}", lambda name=name: xpnet_runner.xpnet_impl(work, name)) for name in xpnet_runner.CPU_BACKENDS
    ]
    candidates += [
        ("PyTorch eager", lambda: refs.torch_eager(work)),
        ("JAX jit", lambda: refs.jax_jit(work)),
        ("naive order-3 NumPy", lambda: refs.naive_numpy(work, work.config.naive_steps(quick))),
    ]
    impls, skipped = [], {}
    for name, factory in candidates:
        if "jax" in name.lower() and not jax_ok:
            skipped[name] = f"import jax failed ({jax_why})"
            continue
        if name in ("JAX jit", "naive order-3 NumPy") and not work.config.plain_sgd:
            skipped[name] = "written for plain SGD only"
            continue
        try:
            impls.append(factory())
        except Exception as e:  # a missing or broken library: report it, time the others
            skipped[name] = f"{type(e).__name__}: {e}"
    return impls, skipped


# ---- timing -----------------------------------------------------------------


def wait_for_idle(max_s: float = IDLE_WAIT_S, window: float = 0.5) -> None:
    """Wait (at most ``max_s``) until other processes leave the CPU idle for ``window`` seconds."""
    deadline = time.perf_counter() + max_s
    while time.perf_counter() < deadline and machine.others_over(window) > NOISY_CORES:
        pass


def measure(fn, label: str, say=log) -> tuple[float, object, float]:
    """Time ``fn()`` after a short pause: (seconds, its result, cores other processes kept busy).
    A run during which other processes used more than NOISY_CORES (plus what the clock-tick
    granularity can fake) is discarded and redone once the machine is idle again (waiting at
    most IDLE_WAIT_S), up to RETRIES times; the last one is kept, with a warning."""
    for attempt in range(RETRIES + 1):
        if attempt:
            wait_for_idle()
        time.sleep(GAP_S)
        gc.collect()
        cpu0, t0 = machine.cpu_seconds(), time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        measured = machine.other_cores(cpu0, machine.cpu_seconds(), seconds)
        others = max(0.0, measured - machine.tick_slack(seconds))  # beyond what tick granularity can fake
        if others <= NOISY_CORES:
            break
        again = "run discarded, running it again" if attempt < RETRIES else "kept (out of retries)"
        say(f"  warning: other processes kept {others:.2f} cores busy during {label} ({seconds:.2f}s); {again}")
    return seconds, value, others


def time_alternating(impls: list[Impl], repeats: int, say=log) -> dict[str, dict]:
    """One warm-up run each, then ``repeats`` rounds of one timed run each, in turn (an
    implementation with ``timed_runs`` set sits out the rounds after its last run)."""
    runs = {impl.name: {"seconds": [], "losses": [], "other_cores": []} for impl in impls}
    for impl in impls:
        t0 = time.perf_counter()
        runs[impl.name]["warmup_loss"] = (impl.warmup or impl.run)()
        say(f"  warm-up {impl.name}: {time.perf_counter() - t0:.2f}s")
    for r in range(repeats):
        for impl in impls:
            if r >= (impl.timed_runs or repeats):
                continue
            seconds, loss, others = measure(impl.run, impl.name, say)
            runs[impl.name]["seconds"].append(seconds)
            runs[impl.name]["losses"].append(loss)
            runs[impl.name]["other_cores"].append(others)
        say(
            f"  round {r + 1}/{repeats}: "
            + ", ".join(f"{name} {v['seconds'][-1]:.2f}s" for name, v in runs.items() if len(v["seconds"]) == r + 1)
        )
    return runs


def impl_stats(impl: Impl, batch: int, run: dict) -> dict:
    samples = impl.steps * batch
    rates = [samples / s for s in run["seconds"]]
    median_s = statistics.median(run["seconds"])
    return {
        "kind": impl.kind,
        "steps": impl.steps,
        "samples_per_run": samples,
        "seconds": run["seconds"],
        "samples_per_s": rates,
        "median_samples_per_s": samples / median_s,
        "min_samples_per_s": min(rates),
        "max_samples_per_s": max(rates),
        "step_s": median_s / impl.steps,
        "other_cores": run["other_cores"],  # cores other processes kept busy, per timed run
        # the first full run's mean loss: the warm-up, or the first timed run after a different warm-up
        "first_loss": run["losses"][0] if impl.warmup else run["warmup_loss"],
        "last_loss": run["losses"][-1],
    }


def gemm_only(impl: Impl, work: Workload, stats: dict, repeats: int, seconds: float) -> None:
    """Adds the step's GEMMs timed alone (the fastest of ``repeats`` runs of about ``seconds``
    each, after a warm-up) and the rest: the median step time minus that."""
    run = xpnet_runner.gemm_steps(impl.backend, work.config.sizes, work.config.batch)
    run(1)  # warm-up
    t0 = time.perf_counter()
    run(1)
    iterations = max(3, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    fn = functools.partial(run, iterations)
    timings = [measure(fn, f"{impl.name} GEMMs alone") for _ in range(repeats)]
    best = min(timings, key=lambda t: t[0])
    stats["gemm_step_s"] = best[0] / iterations
    stats["gemm_other_cores"] = best[2]
    stats["non_gemm_step_s"] = stats["step_s"] - stats["gemm_step_s"]


def gemm_roof(n: int, repeats: int = 3) -> dict[str, float]:
    """Best GFLOP/s of an n x n float32 matmul per library (after a warm-up)."""
    roof = {}
    for name, matmul in machine.roof_matmuls(n).items():
        matmul()
        best = min(measure(matmul, f"{name} {n}x{n} matmul")[0] for _ in range(repeats))
        roof[name] = 2 * n**3 / best / 1e9
    return roof


# ---- one config -------------------------------------------------------------


def bench_config(key: str, dataset, quick: bool, repeats: int, roof_gflops: float) -> dict:
    config = CONFIGS[key]
    work = make_workload(config, dataset, quick)
    log(f"config {key}: {config.describe()}; {work.steps} steps x {config.batch} = {work.n} images per run")
    impls, skipped = build_impls(work, quick)
    for name, why in skipped.items():
        log(f"  skipped {name}: {why}")
    runs = time_alternating(impls, repeats)
    stats = {impl.name: impl_stats(impl, config.batch, runs[impl.name]) for impl in impls}
    for impl in impls:
        if impl.kind == "xpnet":
            gemm_only(impl, work, stats[impl.name], repeats, 0.2 if quick else 0.5)
    result = {
        "config": key,
        "description": config.describe(),
        "sizes": list(config.sizes),
        "activation": config.activation,
        "batch": config.batch,
        "lr": config.lr,
        "steps": work.steps,
        "samples_per_run": work.n,
        "naive_steps": config.naive_steps(quick),
        "flops_per_step": flops_per_step(config.sizes, config.batch),
        "impls": stats,
        "skipped": skipped,
    }
    result["summary"] = summarize(result, roof_gflops)
    result["max_other_cores"] = max(max(s["other_cores"] + [s.get("gemm_other_cores", 0.0)]) for s in stats.values())
    del impls, work
    gc.collect()
    return result


def summarize(result: dict, roof_gflops: float) -> dict:
    """The ratios, GFLOP/s and overheads of the best xpnet backend."""
    impls = result["impls"]

    def best(kind):
        names = [n for n, s in impls.items() if s["kind"] == kind]
        return max(names, key=lambda n: impls[n]["median_samples_per_s"]) if names else None

    xp_name, ref_name = best("xpnet"), best("ref")
    xp = impls[xp_name]
    rate = xp["median_samples_per_s"]
    gflops = result["flops_per_step"] / xp["step_s"] / 1e9
    out = {
        "xpnet_best": xp_name,
        "xpnet_samples_per_s": rate,
        "best_ref": ref_name,
        "gflops": gflops,
        "roof_gflops": roof_gflops,
        "roof_fraction": gflops / roof_gflops,
        "non_gemm_step_s": xp.get("non_gemm_step_s"),
        "step_s": xp["step_s"],
    }
    if "PyTorch eager" in impls:
        out["vs_pytorch"] = rate / impls["PyTorch eager"]["median_samples_per_s"]
    if ref_name:
        out["vs_best_ref"] = rate / impls[ref_name]["median_samples_per_s"]
    naive = [s for s in impls.values() if s["kind"] == "naive"]
    if naive:
        out["naive_slowdown"] = rate / naive[0]["median_samples_per_s"]
    return out


# ---- main -------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    mode = "quick" if args.quick else "full"
    log(f"mode {mode}, configs {','.join(args.configs)}, {args.repeats} timed runs per implementation")
    info = machine.machine_info()
    info["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    info["other_cores_at_start"] = check_idle()
    n = 2048 if args.quick else 4096
    dataset = idx.load_mnist()
    results, roofs = [], {}
    for key in args.configs:  # the roof is measured just before each config: the machine's speed drifts
        log(f"GEMM roof: {n}x{n} float32 matmul with numpy and torch")
        roofs[key] = gemm_roof(n)
        log("  " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in roofs[key].items()))
        results.append(bench_config(key, dataset, args.quick, args.repeats, max(roofs[key].values())))
    rss = None
    if not args.no_rss:
        extra = ["--epochs", "1"] if args.quick else []
        log(f"peak RSS: python -m xpnet train --quiet {' '.join(extra)}".rstrip())
        rss = machine.cli_peak_rss(extra)
        log(f"  {rss['peak_rss_mb']:.1f} MB in {rss['seconds']:.1f}s")
    shared = None
    if not args.no_sharing:
        log("sharing the cores: config A alone, two at once, beside a busy core")
        shared = sharing.measure(say=log)
    info["other_cores_at_end"] = check_idle()
    everything = {
        "mode": mode,
        "repeats": args.repeats,
        "gap_s": GAP_S,
        "retries": RETRIES,
        "idle_wait_s": IDLE_WAIT_S,
        "machine": info,
        "gemm_roof": {"n": n, "per_config": roofs},
        "configs": results,
        "peak_rss": rss,
        "sharing": shared,
        "seconds": time.perf_counter() - started,
    }
    text = report.render(everything)
    print(text)
    Path(args.results).write_text(text)
    log(f"wrote {args.results}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
        log(f"wrote {args.json}")
    log(f"done in {everything['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
