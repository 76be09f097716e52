"""xpnet on a CUDA GPU, in one command, within a time budget: the machine, the GPU tests, the
benchmark against PyTorch CUDA eager, torch.compile and a captured CUDA graph, and end-to-end
training. Results are written after every config and every part (a run killed at its limit
leaves what it did): --out DIR (gpu.json, gpu.md) and bench/RESULTS-gpu.md.

    python bench/gpu.py --out $OUT              # everything, on cuda:0, in at most --budget 480 s
    python bench/gpu.py --parts bench --configs A,default --repeats 3
    python bench/gpu.py --emulate               # the same parts on the emulated CuPy, on the CPU
    python bench/gpu.py --device cpu --quick --parts bench --no-compile   # the plumbing, on a laptop

Parts: ``tests`` (pytest: the ``gpu``-marked tests, then the cross-backend tests on the real
CuPy, ``-k cupy-cuda``; with --emulate ``-k cupy-emulated``), ``bench`` (configs A-E and
default: xpnet on cupy with and without CUDA graphs, torch and jax, against PyTorch eager,
torch.compile mode="reduce-overhead" and the PyTorch step captured as a CUDA graph: samples/s
and kernels per step; the float32 GEMM roof in the same run), ``train`` (``xpnet train`` with
the default recipe) and ``best`` (``--preset best-gpu``). An implementation that fails is
recorded with its reason and the others still run; what the budget leaves no time for is
recorded as skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.util
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EMULATED = ROOT / "tests" / "emulated"  # its cupy package is the emulated CuPy (NumPy underneath)
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
if "--emulate" in sys.argv[1:]:  # before anything imports cupy
    sys.path.insert(0, str(EMULATED))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX shares the GPU with CuPy and PyTorch

import refs  # noqa: E402
import run as cpu_bench  # noqa: E402
import xpnet_runner  # noqa: E402
from workload import GPU_CONFIGS, Impl, flops_per_step, make_workload  # noqa: E402

from xpnet.files import idx  # noqa: E402

if "--emulate" in sys.argv[1:]:  # the emulator's libcublas stand-in for the one a real CuPy loads
    from cupy_backends.cuda.libs import cublas as _emulated_cublas

    from xpnet.backends import cublas as _cublas

    _cublas.shared_object = _emulated_cublas.shared_object

PARTS = ("tests", "bench", "train", "best", "population")
# each part's share of the budget left
PART_WEIGHTS = {"tests": 3, "bench": 4, "train": 1, "best": 2, "population": 1.5}
# --emulate: the tests last, with what the others leave (the emulated suite takes longer than the budget)
EMULATED_PARTS, EMULATED_WEIGHTS = (
    ("bench", "train", "best", "population", "tests"),
    {"tests": 1.5, "bench": 3, "train": 5, "best": 1.5, "population": 1.5},
)
# bench/population.py's arguments: K = 16 members of A against 16 solo runs (emulated: 2, for the time)
POPULATION_ARGS = ["--configs", "A", "--members", "16", "--rounds", "1"]
EMULATED_POPULATION_ARGS = ["--configs", "A", "--members", "2", "--rounds", "1"]
SPENT = "time budget spent"
TEST_WORKERS = 8  # pytest-xdist workers of the tests part, where xdist is installed
ROOF_N = 8192
LIBRARIES = ("numpy", "cupy", "torch", "jax", "jaxlib", "array_api_compat", "array_api_strict", "xpnet")
# what xpnet on CuPy must reach on plain SGD after a chunk's first step (checked with --emulate)
LAUNCH_BUDGETS = {"A": 12, "B": 10, "default": 14}
EMULATED_STEPS = 240  # --emulate: at most this many steps per run (a few chunks), to fit the time
EMULATED_BEST = ["--epochs", "1", "--hidden", "100,100"]  # best-gpu's recipe on a small network, to fit the time
log = cpu_bench.log


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="xpnet GPU checks and benchmark, within a time budget")
    p.add_argument("--device", default=None, help="cuda:N (default cuda:0), or cpu to try the plumbing without a GPU")
    p.add_argument(
        "--parts",
        default=None,
        help="comma-separated subset of "
        + ",".join(PARTS)
        + " (default: all, in that order; with --emulate the tests last)",
    )
    p.add_argument(
        "--configs",
        default=None,
        help="benchmark configs, any of "
        + ",".join(GPU_CONFIGS)
        + " (default: all; with --emulate those with launch budgets first)",
    )
    p.add_argument(
        "--budget", type=float, default=None, help="seconds for everything (default 480; 170 with --emulate)"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (1 with --emulate)")
    p.add_argument("--quick", action="store_true", help="fewer steps (C, D, E, default) for a fast look")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile reference")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the train part (default: the recipe's)")
    p.add_argument("--best-epochs", type=int, default=None, help="epochs of the best-gpu run (default: the preset's)")
    p.add_argument(
        "--emulate",
        action="store_true",
        help="on the emulated CuPy (tests/emulated), on the CPU: counts per step, not timings",
    )
    p.add_argument("--out", default=str(HERE / "out"), help="folder for gpu.json and gpu.md (default bench/out)")
    p.add_argument(
        "--results",
        default=None,
        help="markdown report (default bench/RESULTS-gpu.md; with --emulate none beyond --out)",
    )
    args = p.parse_args(argv)
    parts = args.parts or ",".join(EMULATED_PARTS if args.emulate else PARTS)
    args.parts = [x.strip() for x in parts.split(",") if x.strip()]
    names = {k.lower(): k for k in GPU_CONFIGS}  # A-E in any case, and default
    order = [*LAUNCH_BUDGETS, *(k for k in GPU_CONFIGS if k not in LAUNCH_BUDGETS)] if args.emulate else GPU_CONFIGS
    configs = [x.strip() for x in (args.configs or ",".join(order)).split(",") if x.strip()]
    bad = [x for x in args.parts if x not in PARTS] + [x for x in configs if x.lower() not in names]
    if bad:
        p.error(f"unknown part or config: {', '.join(bad)}")
    args.configs = [names[x.lower()] for x in configs]
    if args.emulate:
        args.quick, args.repeats = True, 1
        args.device = args.device or "cuda"  # the emulator answers for it
    args.device = args.device or "cuda:0"
    if args.budget is None:
        args.budget = 170.0 if args.emulate else 480.0
    if args.results is None and not args.emulate:
        args.results = str(HERE / "RESULTS-gpu.md")
    return args


class Budget:
    """A deadline: the seconds left, and a share of them for one part."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def spent(self) -> bool:
        return self.left() <= 0

    def share(self, fraction: float) -> Budget:
        return Budget(max(0.0, self.left()) * fraction)


def reason(e: BaseException, stage: str) -> str:
    """``stage: Type: first line of the message``, at most 200 characters."""
    lines = str(e).strip().splitlines()
    return f"{stage}: {type(e).__name__}: {lines[0] if lines else ''}"[:200]


def subprocess_env(emulate: bool) -> dict:
    """The environment of the subprocess parts: with --emulate, tests/emulated first on PYTHONPATH."""
    env = dict(os.environ)
    if emulate:
        env["PYTHONPATH"] = os.pathsep.join([str(EMULATED)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_command(cmd: list[str], timeout_s: float, env: dict) -> tuple[int | None, list[str], float]:
    """``cmd`` in ROOT, in its own process group, killed with its children at the timeout:
    (exit code or None when timed out, the output's lines so far, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = p.communicate(timeout=max(1.0, timeout_s))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = None
    return rc, (out or "").strip().splitlines(), time.perf_counter() - t0


# ---- the machine ------------------------------------------------------------


def machine(device: str) -> dict:
    """GPU name, driver, memory (nvidia-smi), CUDA versions, Python and library versions."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "device": device, "versions": {}}
    for name in LIBRARIES:
        try:
            info["versions"][name] = importlib.import_module(name).__version__
        except Exception as e:  # not installed, or broken: say so
            info["versions"][name] = f"unavailable ({type(e).__name__})"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        info["nvidia_smi"] = out.strip()
    except (OSError, subprocess.SubprocessError) as e:
        info["nvidia_smi"] = f"unavailable ({type(e).__name__})"
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(_index(device))
            info["gpu"] = f"{props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.1f} GiB"
    except Exception as e:
        info["torch_cuda"] = f"unavailable ({type(e).__name__})"
    try:
        import cupy

        info["cupy_cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cupy_cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    except Exception as e:
        info["cupy_cuda_runtime"] = f"unavailable ({type(e).__name__})"
    return info


def _index(device: str) -> int:
    return int(device.split(":")[1]) if ":" in device else 0


def emulator():
    """``cupy._emulation`` (reset_counters, snapshot) when ``import cupy`` is the emulated CuPy, else None."""
    try:
        return importlib.import_module("cupy._emulation")
    except Exception:
        return getattr(sys.modules.get("cupy"), "_emulation", None)


# ---- the tests ----------------------------------------------------------------


def tests_part(budget: Budget, emulate: bool) -> dict:
    """pytest in subprocesses, one selection after the other, each within what is left of the
    part's budget: the summary line, the failures, the time taken."""
    selections = [["-k", "cupy-emulated"]] if emulate else [["-m", "gpu"], ["-m", "not gpu", "-k", "cupy-cuda"]]
    # on the GPU machine (16 cores) pytest-xdist's workers share the GPU: the suite in seconds, not minutes
    parallel = [] if emulate or importlib.util.find_spec("xdist") is None else ["-n", str(TEST_WORKERS)]
    runs = []
    for sel in selections:
        cmd = [sys.executable, "-m", "pytest", *sel, *parallel, "-p", "no:cacheprovider", "-q", "-rfE", "--tb=line"]
        entry = {"command": shlex.join(["pytest", *cmd[3:]])}
        if budget.spent():
            runs.append(entry | {"skipped": SPENT})
            continue
        log(entry["command"])
        rc, lines, seconds = run_command(cmd, budget.left(), subprocess_env(emulate))
        summary = next(
            (
                ln
                for ln in reversed(lines)
                if re.search(r"\d+ (passed|failed|errors?|skipped|deselected)|no tests ran", ln)
            ),
            "no summary",
        )
        if rc is None:  # the progress characters so far: . passed, F failed, E error, s skipped
            progress = "".join(
                re.sub(r"\s*\[\s*\d+%\]$", "", ln) for ln in lines if re.fullmatch(r"[.FEsxX]+(\s*\[\s*\d+%\])?", ln)
            )
            marks = ", ".join(
                f"{progress.count(c)} {w}"
                for c, w in ((".", "passed"), ("F", "failed"), ("E", "errors"), ("s", "skipped"))
                if c in progress
            )
            summary = f"timed out after {seconds:.0f}s (the budget left); so far: {marks or summary}"
        entry |= {
            "rc": rc,
            "summary": summary.strip("= "),
            "seconds": seconds,
            "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))],
            # --tb=line: each failure's file, line and error, what a diagnosis needs first
            "errors": sorted({ln for ln in lines if re.match(r"^/\S+:\d+: ", ln)})[:60],
            "tail": lines[-30:] if rc not in (0, 5) else [],
        }  # 5: nothing selected
        log(f"  {entry['summary']}")
        runs.append(entry)
    return {"runs": runs}


# ---- the benchmark --------------------------------------------------------------


def candidates(work, args) -> list[tuple[str, object]]:
    """(name, factory) of each implementation of one config on ``args.device``."""
    device, cuda = args.device, args.device.startswith("cuda")
    cupy = [
        ("xpnet cupy", lambda: xpnet_runner.xpnet_impl(work, "cupy", device)),
        (
            "xpnet cupy eager",
            lambda: xpnet_runner.xpnet_impl(work, "cupy", device, cuda_graph=False, name="xpnet cupy eager"),
        ),
    ]
    if args.emulate:
        return cupy
    others = ("torch", "jax") if cuda else xpnet_runner.CPU_BACKENDS
    out = (cupy if cuda else []) + [
        (f"xpnet {b}", lambda b=b: xpnet_runner.xpnet_impl(work, b, device)) for b in others
    ]
    out.append(("PyTorch eager", lambda: refs.torch_eager(work, device)))
    if not args.no_compile:
        mode = "reduce-overhead"
        out.append((refs.COMPILE_NAMES[mode], lambda: refs.torch_eager(work, device, mode)))
    if cuda:
        out.append(("PyTorch CUDA graph", lambda: refs.torch_cuda_graph(work, device)))
    return out


def once(fn, label, say=log) -> tuple[float, object, float]:
    """One run, timed, without run.py's idle checks (for the emulator, whose times mean nothing)."""
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value, 0.0


def time_guarded(factories, repeats: int, budget: Budget, timer, counters) -> tuple[list[Impl], dict, dict, dict]:
    """run.py's method (a warm-up run each, then ``repeats`` rounds of one timed run each, in
    turn), with each implementation's failure recorded and the others going on, and the budget
    checked before each construction and each run. ``counters``: the emulator's, reset before
    and read after xpnet cupy's first timed run. Returns (impls timed, runs, failed, skipped)."""
    impls, runs, failed, skipped = [], {}, {}, {}
    for name, factory in factories:
        if budget.spent():
            skipped[name] = SPENT
            continue
        stage = "construction"
        try:
            impl = factory()
            stage, t0 = "warm-up", time.perf_counter()
            warm = (impl.warmup or impl.run)()
            log(f"  warm-up {name}: {time.perf_counter() - t0:.2f}s")
        except Exception as e:  # a missing or broken library, or xpnet failing: report it, time the others
            failed[name] = reason(e, stage)
            log(f"  {name} failed: {failed[name]}")
            continue
        impls.append(impl)
        runs[name] = {"seconds": [], "losses": [], "other_cores": [], "warmup_loss": warm}
    for r in range(repeats):
        for impl in list(impls):
            if r >= (impl.timed_runs or repeats) or budget.spent():
                continue
            count = counters is not None and r == 0 and impl.name.startswith("xpnet cupy")
            try:
                if count:
                    counters.reset_counters()
                seconds, loss, others = timer(impl.run, impl.name)
                if count:
                    runs[impl.name]["emulator"] = dict(counters.snapshot())
            except Exception as e:
                failed[impl.name] = reason(e, "timing" if not count else "timing and counting")
                log(f"  {impl.name} failed: {failed[impl.name]}")
                impls.remove(impl)
                continue
            for key, value in (("seconds", seconds), ("losses", loss), ("other_cores", others)):
                runs[impl.name][key].append(value)
        log(
            f"  round {r + 1}/{repeats}: "
            + ", ".join(
                f"{i.name} {runs[i.name]['seconds'][-1]:.2f}s" for i in impls if len(runs[i.name]["seconds"]) == r + 1
            )
        )
    for impl in [i for i in impls if not runs[i.name]["seconds"]]:
        skipped[impl.name] = SPENT + " (after its warm-up)"
        impls.remove(impl)
    return impls, runs, failed, skipped


def kernels_per_step(impl: Impl) -> float:
    """CUDA kernels launched per step during one run, counted by the PyTorch profiler (CUPTI
    sees every kernel of the process: CuPy's and XLA's too)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        impl.run()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA" and not e.name.startswith(("Memcpy", "Memset"))]
    return len(kernels) / impl.steps


def gemm_roof(device: str, n: int, repeats: int = 5) -> dict[str, float]:
    """Best TFLOP/s of an n x n float32 matmul (full float32: TF32 off) per library on ``device``."""
    import numpy as np

    rng = np.random.default_rng(2)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    fns = {}
    try:
        import torch

        if device.startswith("cuda"):
            torch.backends.cuda.matmul.fp32_precision = "ieee"
        ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        fns["torch"] = lambda: (torch.matmul(ta, tb), sync())
    except Exception as e:
        log(f"  roof: torch unavailable ({type(e).__name__})")
    if device.startswith("cuda"):
        try:
            import cupy

            with cupy.cuda.Device(_index(device)):
                ca, cb = cupy.asarray(a), cupy.asarray(b)
            fns["cupy"] = lambda: (ca @ cb, cupy.cuda.Device(_index(device)).synchronize())
        except Exception as e:
            log(f"  roof: cupy unavailable ({type(e).__name__})")
    roof = {}
    for name, fn in fns.items():
        try:
            fn()
            best = min(cpu_bench.measure(fn, f"{name} {n}x{n} matmul")[0] for _ in range(repeats))
            roof[name] = 2 * n**3 / best / 1e12
        except Exception as e:
            log(f"  roof: {name} failed ({reason(e, 'matmul')})")
    return roof


def bench_config(key: str, dataset, args, budget: Budget) -> dict:
    config = GPU_CONFIGS[key]
    if args.emulate:  # a few chunks are enough to count
        config = dataclasses.replace(config, steps_quick=min(config.steps_quick, EMULATED_STEPS))
    work = make_workload(config, dataset, args.quick)
    log(f"config {key}: {config.describe()}; {work.steps} steps x {config.batch} per run")
    timer = once if args.emulate else cpu_bench.measure
    counters = emulator() if args.emulate else None
    impls, runs, failed, skipped = time_guarded(candidates(work, args), args.repeats, budget, timer, counters)
    flops = flops_per_step(config.sizes, config.batch)
    stats = {}
    for impl in impls:
        s = stats[impl.name] = cpu_bench.impl_stats(impl, config.batch, runs[impl.name])
        s["tflops"] = flops / s["step_s"] / 1e12
        if "emulator" in runs[impl.name]:
            s["emulator_counts_per_run"] = runs[impl.name]["emulator"]
            s |= {f"{k}_per_step": v / impl.steps for k, v in runs[impl.name]["emulator"].items()}
        if args.device.startswith("cuda") and not args.emulate:
            if budget.spent():
                s["kernels_note"] = SPENT
                continue
            try:
                s["kernels_per_step"] = kernels_per_step(impl)
            except Exception as e:  # recorded; the timings stand
                s["kernels_note"] = reason(e, "kernel counting")
                log(f"  kernels per step of {impl.name}: {s['kernels_note']}")
    return {
        "config": key,
        "description": config.describe(),
        "steps": work.steps,
        "batch": config.batch,
        "flops_per_step": flops,
        "impls": stats,
        "failed": failed,
        "skipped": skipped,
    }


def bench_part(args, budget: Budget, everything: dict, save) -> None:
    n = ROOF_N if args.device.startswith("cuda") else 1024
    bench = everything["bench"] = {"roof_n": n, "roof_tflops": {}, "configs": []}
    dataset = idx.load_mnist()
    if not args.emulate:  # the emulator's matmul is NumPy's: no roof to measure
        log(f"GEMM roof on {args.device}")
        bench["roof_tflops"] = gemm_roof(args.device, n)
        log("  " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in bench["roof_tflops"].items()))
    for key in args.configs:
        if budget.spent():
            bench["configs"].append({"config": key, "skipped_config": SPENT})
        else:
            bench["configs"].append(bench_config(key, dataset, args, budget))
        save()


def counts_table(everything: dict) -> list[dict]:
    """The emulator's counts per step of each config and implementation, with the budgets of
    plain SGD: launches (A, B, default), 0 host syncs and 0 allocations; PASS or FAIL."""
    rows = []
    for res in everything.get("bench", {}).get("configs", []):
        if everything["emulate"]:  # what was not counted, and why
            rows += [
                {
                    "config": res["config"],
                    "implementation": name,
                    "launches_per_step": None,
                    "host_syncs_per_step": None,
                    "allocations_per_step": None,
                    "verdict": f"{what}: {why}",
                }
                for what in ("failed", "skipped")
                for name, why in res.get(what, {}).items()
            ]
        for name, s in res.get("impls", {}).items():
            if "launches_per_step" not in s:
                continue
            row = {
                "config": res["config"],
                "implementation": name,
                "steps": s["steps"],
                **{
                    k: s.get(k)
                    for k in (
                        "launches_per_step",
                        "host_syncs_per_step",
                        "allocations_per_step",
                        "h2d_copies_per_step",
                        "graph_launches_per_step",
                    )
                },
                "launch_budget": LAUNCH_BUDGETS.get(res["config"]),
                "per_run": s["emulator_counts_per_run"],
            }
            per_run = s["emulator_counts_per_run"]  # less the epoch's own loss accumulator and its one read of the loss
            checks = [round(max(0, per_run.get(k, 0) - 1) / s["steps"], 2) <= 0 for k in ("host_syncs", "allocations")]
            if row["launch_budget"] is not None:
                checks.append(round(row["launches_per_step"], 2) <= row["launch_budget"])
            row["verdict"] = "PASS" if all(checks) else "FAIL"
            rows.append(row)
    return rows


# ---- end-to-end training ------------------------------------------------------------


def train_run(extra: list[str], args, budget: Budget, note: str = "") -> dict:
    """``python -m xpnet train --device DEVICE EXTRA`` within the part's budget: wall time, exit
    code, the result line."""
    cmd = [sys.executable, "-m", "xpnet", "train", "--device", args.device, *extra]
    entry = {"command": shlex.join(["xpnet", *cmd[3:]]), "note": note}
    if budget.spent():
        return entry | {"skipped": SPENT}
    log(entry["command"])
    rc, lines, seconds = run_command(cmd, budget.left(), subprocess_env(args.emulate))
    result = next((ln for ln in reversed(lines) if ln.startswith("test accuracy")), lines[-1] if lines else "")
    if rc is None:
        result = f"timed out after {seconds:.0f}s (the budget left); last: {result}"
    log(f"  {result} ({seconds:.0f}s)")
    return entry | {
        "rc": rc,
        "seconds": seconds,
        "result": result,
        "first_lines": lines[:3],
        "tail": lines[-15:] if rc != 0 else [],
    }


def population_part(args, budget: Budget) -> dict:
    """``bench/population.py`` on CuPy: a population of A against its members run one after
    another (the table it prints), within the part's budget."""
    extra = EMULATED_POPULATION_ARGS if args.emulate else POPULATION_ARGS
    cmd = [sys.executable, str(HERE / "population.py"), "--backend", "cupy", "--device", args.device, *extra]
    entry = {"command": shlex.join(["python", "bench/population.py", *cmd[2:]])}
    log(entry["command"])
    rc, lines, seconds = run_command(cmd, budget.left(), subprocess_env(args.emulate))
    return entry | {"rc": rc, "seconds": seconds, "lines": lines[-8:]}


# ---- the report ------------------------------------------------------------------------


def render(everything: dict) -> str:
    info = everything["machine"]
    out = ["# xpnet GPU benchmark and checks", ""]
    if everything["emulate"]:
        out += [
            "**Emulated CuPy on the CPU (`--emulate`): the times and samples/s below are not timings "
            "(NumPy underneath); the counts per step are the point.**",
            "",
        ]
    out += [
        f"- date: {everything['date']}; command: `python bench/gpu.py {everything['argv']}`; "
        f"{everything['seconds']:.0f}s of a {everything['budget_s']:.0f}s budget"
        + ("" if everything.get("finished") else " (not finished: written as it went)"),
        f"- device: {info.get('gpu', info['device'])}; nvidia-smi: {info['nvidia_smi']}",
        f"- CUDA: torch built for {info.get('torch_cuda')}, CuPy runtime {info.get('cupy_cuda_runtime')} "
        f"/ driver {info.get('cupy_cuda_driver')}",
        f"- python {info['python']} ({info['platform']}); "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
    ]
    for part in PARTS:
        for key, what in (("skipped", "skipped"), ("error", "failed")):
            if key in everything.get(part, {}):
                out += [f"## {part}: {what} ({everything[part][key]})", ""]
    if "runs" in everything.get("tests", {}):
        out += ["## Tests", ""]
        for t in everything["tests"]["runs"]:
            if "skipped" in t:
                out += [f"- `{t['command']}`: skipped ({t['skipped']})"]
                continue
            out += [f"- `{t['command']}`: {t['summary']} in {t['seconds']:.0f}s (exit code {t['rc']})"]
            out += [f"  - {f}" for f in t["failures"]]
            if t.get("errors"):
                out += ["  - where (`--tb=line`, each distinct line once):"] + [f"    - `{e}`" for e in t["errors"]]
        out.append("")
    if "configs" in everything.get("bench", {}):
        out += _render_bench(everything["bench"], everything["emulate"])
    if everything.get("counts"):
        out += _render_counts(everything["counts"])
    for key, title in (("train", "`xpnet train` (default recipe)"), ("best", "`xpnet train --preset best-gpu`")):
        r = everything.get(key)
        if r and "command" in r:
            out += [f"## {title}", ""]
            if "skipped" in r:
                out += [f"`{r['command']}`: skipped ({r['skipped']})", ""]
                continue
            out += [
                f"`{r['command']}`: exit {r['rc']}, {r['seconds']:.0f}s wall time: `{r['result']}`"
                + (f" ({r['note']})" if r["note"] else ""),
                "",
            ]
            out += ["```", *r["tail"], "```", ""] if r.get("tail") else []
    r = everything.get("population")
    if r and "command" in r:
        out += ["## Populations (`bench/population.py`)", ""]
        out += [f"`{r['command']}`: exit {r['rc']}, {r['seconds']:.0f}s", ""]
        out += [*r["lines"], ""]
    return "\n".join(out) + "\n"


def _render_bench(bench: dict, emulate: bool) -> list[str]:
    roof = bench["roof_tflops"]
    best_roof = max(roof.values()) if roof else None
    out = ["## Benchmark", ""]
    if roof:
        out += [
            f"float32 GEMM roof ({bench['roof_n']}x{bench['roof_n']} matmul, TF32 off, best of 5): "
            + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in roof.items())
            + "."
        ]
    out += [
        "Each run is one pass over the config's images (the CPU benchmark's method: warm-up, then "
        "timed runs alternating between implementations; medians). "
        + (
            "Counts per step: the emulated CuPy's, over xpnet's first timed run, divided by its steps."
            if emulate
            else "Kernels per step counted by the PyTorch profiler (CUPTI) over one run."
        ),
        "",
    ]
    for res in bench["configs"]:
        if "skipped_config" in res:
            out += [f"### {res['config']}: skipped ({res['skipped_config']})", ""]
            continue
        impls = res["impls"]
        eager = impls.get("PyTorch eager", {}).get("median_samples_per_s")
        rate = "samples/s (emulated: not a timing)" if emulate else "samples/s (median)"
        out += [
            f"### {res['config']}: {res['description']}",
            "",
            f"| implementation | {rate} | min - max | vs PyTorch eager | us/step | TFLOP/s (% roof) "
            "| kernels/step | first-run loss |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, s in impls.items():
            ratio = f"{s['median_samples_per_s'] / eager:.2f}x" if eager else "-"
            k = s.get("kernels_per_step", s.get("launches_per_step"))
            kernels = f"{k:.1f}" if k is not None else s.get("kernels_note", "-")
            pct = f" ({s['tflops'] / best_roof:.0%})" if best_roof else ""
            out.append(
                f"| {name} | {s['median_samples_per_s']:,.0f} | {s['min_samples_per_s']:,.0f} - "
                f"{s['max_samples_per_s']:,.0f} | {ratio} | {s['step_s'] * 1e6:,.0f} | {s['tflops']:.2f}{pct} "
                f"| {kernels} | {s['first_loss']:.4f} |"
            )
        out += [f"| {name} | failed: {why} | | | | | | |" for name, why in res["failed"].items()]
        out += [f"| {name} | skipped: {why} | | | | | | |" for name, why in res["skipped"].items()]
        out.append("")
    return out


def _render_counts(rows: list[dict]) -> list[str]:
    def f(x):
        return "-" if x is None else f"{x:.2f}"

    out = [
        "## Counts per step on the emulated CuPy, against the budgets of plain SGD",
        "",
        "A full run's counts divided by its steps (the totals per run beside them); the verdict compares "
        "them at two decimals, host syncs and allocations less one per run (the epoch's loss accumulator "
        "and its one read of the loss, `training.Run.run_epoch`'s, not a step's); budgets: "
        "launches at most 12 (A), 10 (B), 14 (default); "
        "0 host syncs and 0 allocations for every config.",
        "",
        "| config | implementation | steps | launches/step (budget) | host syncs/step | allocations/step "
        "| h2d copies/step | graph launches/step | syncs, allocations per run | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "steps" not in r:
            out.append(f"| {r['config']} | {r['implementation']} | | | | | | | | {r['verdict']} |")
            continue
        budget = "" if r["launch_budget"] is None else f" (<= {r['launch_budget']})"
        out.append(
            f"| {r['config']} | {r['implementation']} | {r['steps']} | {f(r['launches_per_step'])}{budget} "
            f"| {f(r['host_syncs_per_step'])} | {f(r['allocations_per_step'])} | {f(r['h2d_copies_per_step'])} "
            f"| {f(r['graph_launches_per_step'])} | {r['per_run'].get('host_syncs')}, "
            f"{r['per_run'].get('allocations')} | {r['verdict']} |"
        )
    return out + [""]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.emulate and str(EMULATED) not in sys.path:  # main() called with argv: still before any import of cupy
        sys.path.insert(0, str(EMULATED))
    budget = Budget(args.budget)
    started = time.perf_counter()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    everything = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "emulate": args.emulate,
        "budget_s": args.budget,
        "seconds": 0.0,
        "machine": machine(args.device),
    }
    log(
        f"machine: {everything['machine'].get('gpu', args.device)}; {everything['machine']['nvidia_smi']}; "
        f"budget {args.budget:.0f}s"
    )

    def save() -> str:
        everything["seconds"] = time.perf_counter() - started
        everything["counts"] = counts_table(everything)
        text = render(everything)
        for path, content in (
            (out_dir / "gpu.json", json.dumps(everything, indent=2, default=str)),
            (out_dir / "gpu.md", text),
            *([(Path(args.results), text)] if args.results else []),
        ):
            tmp = path.with_name(path.name + ".tmp")  # whole files only, even when killed while writing
            tmp.write_text(content)
            tmp.replace(path)
        return text

    save()
    epochs = ["--epochs", "1"] if args.emulate else (["--epochs", str(args.epochs)] if args.epochs else [])
    if args.emulate:
        best_extra, best_note = (
            ["--preset", "best-gpu", *EMULATED_BEST],
            "emulated: 1 epoch of hidden 100,100, to fit the time",
        )
    else:
        best_extra = ["--preset", "best-gpu"] + (["--epochs", str(args.best_epochs)] if args.best_epochs else [])
        best_note = ""
    for i, part in enumerate(args.parts):
        if budget.spent():
            everything[part] = {"skipped": SPENT}
            save()
            continue
        weights = [(EMULATED_WEIGHTS if args.emulate else PART_WEIGHTS)[p] for p in args.parts[i:]]
        share = budget.share(weights[0] / sum(weights))
        log(f"part {part}: {share.left():.0f}s of the {budget.left():.0f}s left")
        try:
            if part == "tests":
                everything["tests"] = tests_part(share, args.emulate)
            elif part == "bench":
                bench_part(args, share, everything, save)
            elif part == "train":
                everything["train"] = train_run(epochs, args, share, "emulated: 1 epoch" if args.emulate else "")
            elif part == "best":
                everything["best"] = train_run(best_extra, args, share, best_note)
            else:
                everything["population"] = population_part(args, share)
        except Exception as e:  # a part's own failure (not an implementation's): recorded, the others run
            everything[part] = everything.get(part) or {}
            everything[part]["error"] = reason(e, part)
            log(f"part {part} failed: {everything[part]['error']}")
        save()
    everything["finished"] = True
    text = save()
    print(text)
    log(
        f"wrote {out_dir / 'gpu.json'}, {out_dir / 'gpu.md'}"
        + (f", {args.results}" if args.results else "")
        + f" in {everything['seconds']:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
