"""CPU thread pools follow the cores free of other work (backends/threads.py)."""

from __future__ import annotations

import time

import pytest

from xpnet.backends import threads


class _Counters:
    """Scripted /proc/stat readings: the busy seconds of all CPUs and of this process."""

    def __init__(self):
        self.t, self.busy, self.own = 0.0, 0.0, 0.0

    def advance(self, seconds, others_cores, own_cores=1.0):
        self.t += seconds
        self.busy += seconds * (others_cores + own_cores)
        self.own += seconds * own_cores


@pytest.fixture
def scripted(monkeypatch):
    c = _Counters()
    monkeypatch.setattr(threads, "_busy_and_own", lambda: (c.busy, c.own))
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads.time, "sleep", lambda s: c.advance(s, 0.0))
    applied = []
    monkeypatch.setattr(threads, "_blas_limit", applied.append)
    return c, applied


def test_pools_follow_the_cores_other_processes_leave_free(scripted):
    c, applied = scripted
    t = threads.Threads("numpy", clock=lambda: c.t)
    t.start()
    assert applied == [4]  # an idle machine: every usable core
    c.advance(threads.RECHECK_SECONDS / 2, others_cores=3.0)
    t.tick()
    assert applied == [4]  # not yet time to re-measure
    c.advance(threads.RECHECK_SECONDS * 1.01, others_cores=3.0)
    t.tick()
    assert applied == [4, 1]  # three cores busy elsewhere (over the whole interval)
    c.advance(threads.RECHECK_SECONDS * 2, others_cores=1.2)
    t.tick()
    assert applied == [4, 1, 3]
    c.advance(threads.RECHECK_SECONDS * 1.01, others_cores=9.0)  # never below one thread
    t.tick()
    assert applied == [4, 1, 3, 1]


def test_fixed_threads_and_gpu_backends_are_left_alone(scripted):
    c, applied = scripted
    fixed = threads.Threads("numpy", fixed=2, clock=lambda: c.t)
    fixed.start()
    c.advance(threads.RECHECK_SECONDS * 2, others_cores=4.0)
    fixed.tick()
    assert applied == [2]
    for name in ("cupy", "jax"):
        t = threads.Threads(name, clock=lambda: c.t)
        t.start()
        c.advance(threads.RECHECK_SECONDS * 2, others_cores=4.0)
        t.tick()
    assert applied == [2]


def test_torch_pool_is_resized(scripted, monkeypatch):
    torch = pytest.importorskip("torch")
    c, _ = scripted
    before = torch.get_num_threads()
    try:
        t = threads.Threads("torch", clock=lambda: c.t)
        t.start()
        c.advance(threads.RECHECK_SECONDS * 1.01, others_cores=3.0)
        t.tick()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_blas_limit_reaches_numpys_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    controller = threadpoolctl.ThreadpoolController()
    before = [p.num_threads for p in controller.select(user_api="blas").lib_controllers]
    try:
        threads._blas_limit(1)
        assert [
            p.num_threads for p in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers
        ] == [1] * len(before)
    finally:
        controller.limit(limits=max(before), user_api="blas")


def test_usable_cores_is_at_least_one_and_at_most_the_affinity():
    import os

    assert 1 <= threads.usable_cores() <= len(os.sched_getaffinity(0))


def test_at_once_runs_tasks_side_by_side_with_one_blas_thread_each():
    """Each task in a thread of its own (the first in the caller's), all running at the same
    time; NumPy's BLAS pool one thread meanwhile and as it was after; the caller's NumPy error
    state in every task; results in order; a task's error raised once all have ended."""
    import threading

    import numpy as np

    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    original = blas_threads()
    try:
        threads._blas_limit(2)
        before = blas_threads()
        barrier = threading.Barrier(3, timeout=10)  # passes only if all three run at once

        def task(k):
            barrier.wait()
            return k, threading.get_ident(), blas_threads(), np.geterr()["over"]

        with np.errstate(over="raise"):
            results = threads.at_once([lambda k=k: task(k) for k in range(3)])
        assert [k for k, *_ in results] == [0, 1, 2]
        assert len({ident for _, ident, _, _ in results}) == 3 and results[0][1] == threading.get_ident()
        assert all(b == [1] * len(before) for _, _, b, _ in results)
        assert [over for *_, over in results] == ["raise"] * 3
        assert blas_threads() == before

        ended = []

        def failing():
            raise ValueError("lane 0")

        def slow():
            time.sleep(0.2)
            ended.append(True)

        with pytest.raises(ValueError, match="lane 0"):
            threads.at_once([failing, slow])
        assert ended == [True]  # waited for
        assert blas_threads() == before
    finally:
        threads._blas_limit(max(original))


def test_scratch_arrays_are_each_thread_s_own():
    """Ops called side by side (``at_once``) do not share a scratch array (``Ops.work``)."""
    import numpy as np

    from xpnet import backends

    ops = backends.resolve("numpy", "cpu").ops
    like = np.zeros((3, 4), np.float32)
    mine = ops.work((3, 4), like)
    here, there = threads.at_once([lambda: ops.work((3, 4), like), lambda: ops.work((3, 4), like)])
    assert here is mine and there is not mine and there.shape == (3, 4)
    # laid out like their array, whichever thread asks
    for like in (np.zeros(5, np.float32), np.zeros((3, 4), np.float32), np.zeros((4, 3), np.float32).T):
        for work in threads.at_once([lambda like=like: ops.work(like.shape, like)] * 2):
            assert work.shape == like.shape and work.strides == like.strides
