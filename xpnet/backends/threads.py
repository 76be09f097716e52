"""CPU thread pools sized to the cores this process can actually use.

A BLAS or OpenMP pool with more threads than free cores is slow out of all proportion: its
threads spin waiting for partners that are not scheduled, so every small GEMM costs a
scheduler time slice (`bench/sharing.py` measures it). So the pools
of NumPy's BLAS (through threadpoolctl) and of PyTorch (``torch.set_num_threads``) get the
cores this process may use (affinity and cgroup quota) minus those other processes kept busy,
re-measured from /proc/stat every RECHECK_SECONDS while training (no device sync: host
counters only). ``--threads N`` fixes the count instead. JAX sizes XLA's pool once, at start-up,
and GPUs need no CPU threads: those are left alone.
"""

from __future__ import annotations

import contextvars
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext

RECHECK_SECONDS = 0.2  # how often the other processes' load is re-measured while training
SAMPLE_SECONDS = 0.05  # the first measurement, before training starts
SIZED = ("numpy", "torch", "array_api_strict")  # backends whose CPU pools are sized here


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _busy_and_own() -> tuple[float, float] | None:
    """(seconds all CPUs were busy, seconds this process ran) since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = (sum(fields[:8]) - idle) / tick  # user..steal
    t = os.times()
    return busy, t.user + t.system


class Threads:
    """The CPU thread count of a run: fixed (``fixed`` > 0) or following the free cores."""

    def __init__(self, backend: str, fixed: int = 0, clock=time.monotonic):
        self.backend, self.fixed, self.clock = backend, fixed, clock
        self.cores = usable_cores()
        self.count = None  # the count last applied
        self._mark = None  # (time, busy, own) at the last measurement

    def start(self) -> None:
        """Apply the fixed count, or measure the others' load briefly and size the pools."""
        if self.backend not in SIZED:
            return
        if self.fixed:
            self._apply(self.fixed)
            return
        self._mark = self._read()
        time.sleep(SAMPLE_SECONDS)
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        """Every RECHECK_SECONDS: the cores the other processes kept busy since the last
        measurement, and the pools resized to the rest (at least one thread)."""
        if self.fixed or self.backend not in SIZED or self._mark is None:
            return
        now = self.clock()
        if not force and now - self._mark[0] < RECHECK_SECONDS:
            return
        mark = self._read()
        if mark[1] is not None and self._mark[1] is not None and mark[0] > self._mark[0]:
            others = ((mark[1] - self._mark[1]) - (mark[2] - self._mark[2])) / (mark[0] - self._mark[0])
            self._apply(max(1, min(self.cores, self.cores - round(max(0.0, others)))))
        self._mark = mark

    def _read(self):
        counters = _busy_and_own()
        return (self.clock(),) + (counters if counters is not None else (None, None))

    def _apply(self, count: int) -> None:
        if count == self.count:
            return
        self.count = count
        if self.backend == "torch":
            import torch

            torch.set_num_threads(count)
        else:
            _blas_limit(count)


_controller = None
_pool, _pool_size = None, 0  # the threads of ``at_once``, made on first use (and grown)


def _blas_controller():
    """threadpoolctl's controller of this process's pools (made once), or None without it."""
    global _controller
    try:
        import threadpoolctl
    except ImportError:
        return None
    if _controller is None:
        _controller = threadpoolctl.ThreadpoolController()
    return _controller


def _blas_limit(count: int) -> None:
    """NumPy's BLAS pool to ``count`` threads (threadpoolctl; nothing when it is missing)."""
    controller = _blas_controller()
    if controller is not None:
        controller.limit(limits=count, user_api="blas")


def at_once(tasks: list) -> list:
    """Run the callables side by side, the first in this thread and each other in a thread of
    its own, and wait for all of them; meanwhile NumPy's BLAS pool is one thread (each task's
    products on its own core: pools of several threads per task would spin, as above). Each
    runs in a copy of the caller's context (NumPy's error state with it). Returns their results
    in order; raises the first task's error once every task has ended."""
    global _pool, _pool_size
    if _pool_size < len(tasks) - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool_size = max(1, len(tasks) - 1)
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="xpnet-lane")
    controller = _blas_controller()
    with nullcontext() if controller is None else controller.limit(limits=1, user_api="blas"):
        futures = [_pool.submit(contextvars.copy_context().run, task) for task in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            wait(futures)
    return [first] + [f.result() for f in futures]
