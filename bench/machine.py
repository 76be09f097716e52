"""The machine: CPU, memory, library versions, BLAS builds, the float32 GEMM roof, and the peak
RSS of an ``xpnet train`` process."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def library_versions() -> dict[str, str]:
    import array_api_compat

    import xpnet

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "jax"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as e:
            versions[name] = f"not available ({type(e).__name__})"
    versions["array-api-compat"] = array_api_compat.__version__
    versions["xpnet"] = xpnet.__version__
    return versions


def numpy_blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:
        return "unknown"
    text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    config = blas.get("openblas configuration")
    return f"{text} ({config})" if config else text


def torch_blas() -> list[str]:
    """The lines of ``torch.__config__.show()`` that mention MKL or BLAS (from its long
    "Build settings" line, only the BLAS/MKL settings), and its CPU capability line."""
    try:
        import torch
    except Exception:
        return []
    keys = ("MKL", "BLAS", "MATH KERNEL", "CPU CAPABILITY")
    out = []
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith("Build settings:"):
            settings = [s.strip() for s in line.split(":", 1)[1].split(",")]
            picked = [s for s in settings if "BLAS" in s or "MKL" in s]
            if picked:
                out.append("build settings: " + ", ".join(picked))
        elif any(k in line.upper() for k in keys):
            out.append(line)
    return out


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "versions": library_versions(),
        "numpy_blas": numpy_blas(),
        "torch_blas": torch_blas(),
    }


# ---- GEMM roof --------------------------------------------------------------


def roof_matmuls(n: int) -> dict:
    """{library: function doing one n x n float32 matmul}, for numpy and (when installed) torch
    on all cores and jax (XLA's own GEMM, jitted); the benchmark times them for the GEMM roof
    (2 n^3 FLOPs each)."""
    rng = np.random.default_rng(2)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    matmuls = {"numpy": lambda: np.matmul(a, b)}
    try:
        import torch

        torch.set_num_threads(os.cpu_count())
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        matmuls["torch"] = lambda: torch.matmul(ta, tb)
    except Exception:
        pass
    try:
        import jax
        import jax.numpy as jnp

        ja, jb, mm = jnp.asarray(a), jnp.asarray(b), jax.jit(jnp.matmul)
        matmuls["jax"] = lambda: mm(ja, jb).block_until_ready()
    except Exception:
        pass
    return matmuls


# ---- peak RSS of the CLI ----------------------------------------------------


def cli_peak_rss(extra_args: list[str]) -> dict:
    """Run ``python -m xpnet train --quiet [extra_args]`` and return its peak RSS in MB
    (10^6 bytes), measured by /usr/bin/time when present, else by getrusage(RUSAGE_CHILDREN)."""
    cmd = [sys.executable, "-m", "xpnet", "train", "--quiet", *extra_args]
    time_bin = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    t0 = time.perf_counter()
    if time_bin:
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
            proc = subprocess.run(
                [time_bin, "-f", "%M", "-o", out.name, *cmd], cwd=REPO, capture_output=True, text=True
            )
            kib = int(out.read().strip().splitlines()[-1])
        method = "/usr/bin/time -f %M"
    else:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        method = "getrusage(RUSAGE_CHILDREN).ru_maxrss"
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {
        "command": "python -m xpnet train --quiet " + " ".join(extra_args),
        "peak_rss_mb": kib * 1024 / 1e6,
        "method": method,
        "seconds": seconds,
        "last_line": last,
    }


# ---- CPU used by other processes --------------------------------------------


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by the whole machine since boot, CPU seconds used by this process).
    The difference over an interval is what other processes used; (0, own) where /proc is missing."""
    own = sum(os.times()[:2])
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, own
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), own


def tick_slack(seconds: float) -> float:
    """How many cores the /proc/stat clock-tick granularity can fake over ``seconds`` (3 ticks)."""
    return 3 / os.sysconf("SC_CLK_TCK") / max(seconds, 1e-9)


def other_cores(before: tuple[float, float], after: tuple[float, float], seconds: float) -> float:
    """Average number of cores other processes kept busy between two ``cpu_seconds`` readings."""
    if before[0] == 0.0 or seconds <= 0:
        return 0.0
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / seconds


def others_over(seconds: float) -> float:
    """Cores kept busy by other processes while this one sleeps for ``seconds``."""
    before = cpu_seconds()
    time.sleep(seconds)
    return other_cores(before, cpu_seconds(), seconds)
