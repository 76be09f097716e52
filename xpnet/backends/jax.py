"""JAX: the base op set (JAX arrays are immutable: ops return new arrays), with the step
compiled once by ``jax.jit`` and a chunk of steps run inside one jitted ``lax.fori_loop``,
so that small layers do not pay JAX's dispatch cost per step."""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from xpnet.backends.base import Ops

# Tuning constants, measured on the CPUs of bench/RESULTS.md (the numbers are there).
FLOPS_PER_CALL = 5e9  # GEMM work per jitted call, at most (4 steps of 784-1024-1024-10 at batch 128)
MAX_STEPS_PER_CALL = 64
LOOP_UNROLL = 2  # steps per iteration of the compiled loop (chosen with bench/compare.py)


class JaxOps(Ops):
    """The reference op set on JAX arrays, plus the jitted loop over steps."""

    name = "jax"

    def slice(self, x, start, count: int, axis: int = 0):
        return lax.dynamic_slice_in_dim(x, start, count, axis)

    def steps_per_call(self, batch: int, row_bytes: int, flops_per_step: float) -> int:
        return int(min(MAX_STEPS_PER_CALL, max(1, FLOPS_PER_CALL // max(flops_per_step, 1.0))))

    def step_inputs(self, per_step: list, like, keep: dict):
        """Each scalar stacked over the chunk: floats in the model's dtype, keys as uint32; a
        population's per-member values (host arrays (K,)) as (steps, K, 1, 1)."""
        out = {}
        for name in per_step[0]:
            values = [s[name] for s in per_step]
            ints = isinstance(values[0], int) or getattr(values[0], "dtype", np.dtype("f")).kind in "iu"
            host = np.array(values, dtype=np.uint32 if ints else np.dtype(like.dtype))
            out[name] = self.xp.asarray(host.reshape(host.shape + (1, 1)) if host.ndim == 2 else host)
        return out

    def loop(self, body, count: int, carry, inputs):
        def one(i, c):
            return body(i, {name: v[i] for name, v in inputs.items()}, c)

        return lax.fori_loop(0, count, one, carry, unroll=min(LOOP_UNROLL, count))

    def compile(self, fn, static_argnames=(), donate_argnames=()):
        return jax.jit(fn, static_argnames=static_argnames, donate_argnames=donate_argnames)
