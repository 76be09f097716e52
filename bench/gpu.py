"""xpnet on a CUDA GPU, in one command: the machine, the `gpu` tests, the benchmark against
PyTorch CUDA eager and torch.compile, and end-to-end training; writes bench/RESULTS-gpu.md.

    python bench/gpu.py                         # everything, on cuda:0 (about 10 minutes at most)
    python bench/gpu.py --parts bench --configs A,E --repeats 3
    python bench/gpu.py --device cpu --quick --parts bench --no-compile   # the plumbing, on a laptop

Parts: ``tests`` (``pytest -m gpu``: each gpu-marked test, the GPU-vs-CPU cross-checks among
them), ``bench`` (configs A-E: xpnet on cupy, torch and jax against PyTorch eager, torch.compile
and torch.compile mode="reduce-overhead", samples/s and kernels per step; the float32 GEMM roof
measured in the same run), ``train`` (``xpnet train`` with the default recipe) and ``best``
(``--preset best-gpu``). Uses the CuPy, PyTorch and JAX already installed; a library that is
missing or fails is reported and skipped, the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import refs  # noqa: E402
import run as cpu_bench  # noqa: E402
import xpnet_runner  # noqa: E402
from workload import GPU_CONFIGS, Impl, Workload, flops_per_step, make_workload  # noqa: E402

from xpnet import data  # noqa: E402

PARTS = ("tests", "bench", "train", "best")
XPNET_BACKENDS = ("cupy", "torch", "jax")
ROOF_N = 8192
LIBRARIES = ("numpy", "cupy", "torch", "jax", "jaxlib", "array_api_compat", "array_api_strict", "xpnet")
log = cpu_bench.log


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="xpnet GPU checks and benchmark (writes bench/RESULTS-gpu.md)")
    p.add_argument("--device", default="cuda:0", help="cuda:N, or cpu to try the plumbing without a GPU")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    p.add_argument("--configs", default=",".join(GPU_CONFIGS), help="benchmark configs (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation")
    p.add_argument("--quick", action="store_true", help="fewer steps (C, D, E) for a fast look")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile references")
    p.add_argument("--best-epochs", type=int, default=None, help="epochs of the best-gpu run (default: the preset's)")
    p.add_argument("--results", default=str(HERE / "RESULTS-gpu.md"))
    p.add_argument("--json", default=None, help="also write the raw numbers as JSON")
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    args.configs = [x.strip().upper() for x in args.configs.split(",") if x.strip()]
    bad = [x for x in args.parts if x not in PARTS] + [x for x in args.configs if x not in GPU_CONFIGS]
    if bad:
        p.error(f"unknown part or config: {', '.join(bad)}")
    return args


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
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
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


# ---- the tests ----------------------------------------------------------------


def gpu_tests(timeout_s: int = 420) -> dict:
    """``pytest -m gpu`` in a subprocess: the summary line, the failures, the time taken."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-rfE"],
                           cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
        lines = (r.stdout + r.stderr).strip().splitlines()
        summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped)", ln)), "no summary")
        failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
        return {"rc": r.returncode, "summary": summary.strip("= "), "failures": failures,
                "tail": lines[-30:] if r.returncode else [], "seconds": time.perf_counter() - t0}
    except subprocess.TimeoutExpired:
        return {"rc": None, "summary": f"timed out after {timeout_s}s", "failures": [], "tail": [],
                "seconds": time.perf_counter() - t0}


# ---- the benchmark --------------------------------------------------------------


def build_impls(work: Workload, device: str, compile_refs: bool) -> tuple[list[Impl], dict[str, str]]:
    """xpnet on each backend and the PyTorch references on ``device``; {name: why skipped}."""
    backends = XPNET_BACKENDS if device.startswith("cuda") else xpnet_runner.CPU_BACKENDS
    candidates = [(f"xpnet {b}", lambda b=b: xpnet_runner.xpnet_impl(work, b, device)) for b in backends]
    modes = [None] + (["default", "reduce-overhead"] if compile_refs else [])
    candidates += [(refs.COMPILE_NAMES[m], lambda m=m: refs.torch_eager(work, device, m)) for m in modes]
    impls, skipped = [], {}
    for name, factory in candidates:
        try:
            impls.append(factory())
        except Exception as e:  # a missing or broken library: report it, time the others
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    return impls, skipped


def kernels_per_step(impl: Impl) -> float | None:
    """CUDA kernels launched per step during one run, counted by the PyTorch profiler (CUPTI
    sees every kernel of the process: CuPy's and XLA's too); None where it cannot count."""
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            impl.run()
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA" and not e.name.startswith(("Memcpy", "Memset"))]
        return len(kernels) / impl.steps
    except Exception as e:
        log(f"  kernels per step of {impl.name}: not counted ({type(e).__name__}: {e})")
        return None


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
        fn()
        best = min(cpu_bench.measure(fn, f"{name} {n}x{n} matmul")[0] for _ in range(repeats))
        roof[name] = 2 * n**3 / best / 1e12
    return roof


def bench_config(key: str, dataset, args) -> dict:
    config = GPU_CONFIGS[key]
    work = make_workload(config, dataset, args.quick)
    log(f"config {key}: {config.describe()}; {work.steps} steps x {config.batch} per run")
    impls, skipped = build_impls(work, args.device, not args.no_compile)
    for name, why in skipped.items():
        log(f"  skipped {name}: {why}")
    runs = cpu_bench.time_alternating(impls, args.repeats)
    stats = {impl.name: cpu_bench.impl_stats(impl, config.batch, runs[impl.name]) for impl in impls}
    if args.device.startswith("cuda"):
        for impl in impls:
            stats[impl.name]["kernels_per_step"] = kernels_per_step(impl)
    flops = flops_per_step(config.sizes, config.batch)
    for s in stats.values():
        s["tflops"] = flops / s["step_s"] / 1e12
    return {"config": key, "description": config.describe(), "steps": work.steps, "batch": config.batch,
            "flops_per_step": flops, "impls": stats, "skipped": skipped}


# ---- end-to-end training ------------------------------------------------------------


def train_run(extra: list[str], device: str, timeout_s: int) -> dict:
    """``python -m xpnet train --device DEVICE EXTRA``: wall time, exit code, the result line."""
    cmd = [sys.executable, "-m", "xpnet", "train", "--device", device, *extra]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
        lines = (r.stdout + r.stderr).strip().splitlines()
        result = next((ln for ln in reversed(lines) if ln.startswith("test accuracy")), lines[-1] if lines else "")
        return {"command": " ".join(cmd[1:]), "rc": r.returncode, "seconds": time.perf_counter() - t0,
                "result": result, "first_lines": lines[:3]}
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd[1:]), "rc": None, "seconds": timeout_s, "result": f"timed out after {timeout_s}s"}


# ---- the report ------------------------------------------------------------------------


def render(everything: dict) -> str:
    info = everything["machine"]
    out = ["# xpnet GPU benchmark and checks", "",
           f"- date: {everything['date']}; command: `python bench/gpu.py {everything['argv']}`; took {everything['seconds']:.0f}s",
           f"- device: {info.get('gpu', info['device'])}; nvidia-smi: {info['nvidia_smi']}",
           f"- CUDA: torch built for {info.get('torch_cuda')}, CuPy runtime {info.get('cupy_cuda_runtime')} / driver {info.get('cupy_cuda_driver')}",
           f"- python {info['python']} ({info['platform']}); " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
           ""]
    if "tests" in everything:
        t = everything["tests"]
        out += ["## gpu-marked tests (`python -m pytest -m gpu`)", "",
                f"{t['summary']} in {t['seconds']:.0f}s (exit code {t['rc']})", ""]
        out += [f"- {f}" for f in t["failures"]] + ([""] if t["failures"] else [])
    if "bench" in everything:
        out += _render_bench(everything["bench"])
    for key, title in (("train", "`xpnet train` (default recipe)"), ("best", "`xpnet train --preset best-gpu`")):
        if key in everything:
            r = everything[key]
            out += [f"## {title}", "", f"`{r['command']}`: exit {r['rc']}, {r['seconds']:.0f}s wall time: `{r['result']}`", ""]
    return "\n".join(out) + "\n"


def _render_bench(bench: dict) -> list[str]:
    roof = bench["roof_tflops"]
    best_roof = max(roof.values()) if roof else float("nan")
    out = ["## Benchmark", "",
           f"float32 GEMM roof ({ROOF_N}x{ROOF_N} matmul, TF32 off, best of 5): "
           + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in roof.items()) + ". "
           "Each run is one pass over the config's images (the CPU benchmark's method: warm-up, then "
           "timed runs alternating between implementations; medians). Kernels per step counted by the "
           "PyTorch profiler (CUPTI) over one run.", ""]
    for res in bench["configs"]:
        impls = res["impls"]
        eager = impls.get("PyTorch eager", {}).get("median_samples_per_s")
        out += [f"### {res['config']}: {res['description']}", "",
                "| implementation | samples/s (median) | min - max | vs PyTorch eager | us/step | TFLOP/s (% roof) | kernels/step | first-run loss |",
                "|---|---|---|---|---|---|---|---|"]
        for name, s in impls.items():
            ratio = f"{s['median_samples_per_s'] / eager:.2f}x" if eager else "-"
            k = s.get("kernels_per_step")
            out.append(f"| {name} | {s['median_samples_per_s']:,.0f} | {s['min_samples_per_s']:,.0f} - {s['max_samples_per_s']:,.0f} "
                       f"| {ratio} | {s['step_s'] * 1e6:,.0f} | {s['tflops']:.2f} ({s['tflops'] / best_roof:.0%}) "
                       f"| {'-' if k is None else f'{k:.1f}'} | {s['first_loss']:.4f} |")
        out += [f"| {name} | skipped: {why} | | | | | | |" for name, why in res["skipped"].items()]
        out.append("")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    everything = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "argv": " ".join(sys.argv[1:] if argv is None else argv), "machine": machine(args.device)}
    log(f"machine: {everything['machine'].get('gpu', args.device)}; {everything['machine']['nvidia_smi']}")
    if "tests" in args.parts:
        log("pytest -m gpu")
        everything["tests"] = gpu_tests()
        log(f"  {everything['tests']['summary']}")
    if "bench" in args.parts:
        dataset = data.load_mnist()
        log(f"GEMM roof on {args.device}")
        roof = gemm_roof(args.device, ROOF_N if args.device.startswith("cuda") else 1024)
        log("  " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in roof.items()))
        everything["bench"] = {"roof_tflops": roof, "configs": [bench_config(k, dataset, args) for k in args.configs]}
    if "train" in args.parts:
        log("xpnet train (default recipe)")
        everything["train"] = train_run([], args.device, 300)
        log(f"  {everything['train']['result']} ({everything['train']['seconds']:.0f}s)")
    if "best" in args.parts:
        extra = ["--preset", "best-gpu"] + (["--epochs", str(args.best_epochs)] if args.best_epochs else [])
        log(f"xpnet train {' '.join(extra)}")
        everything["best"] = train_run(extra, args.device, 540)
        log(f"  {everything['best']['result']} ({everything['best']['seconds']:.0f}s)")
    everything["seconds"] = time.perf_counter() - started
    text = render(everything)
    print(text)
    Path(args.results).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2, default=str))
    log(f"wrote {args.results} in {everything['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
