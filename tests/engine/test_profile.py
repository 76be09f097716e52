"""One step for every backend: a profile of an epoch shows the same xpnet functions (outside
xpnet/backends/) running per step on numpy, torch and array_api_strict, and traced on JAX."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import profile_step  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(profile_step.RECIPES))
def test_the_same_step_runs_on_every_backend(recipe):
    settings = profile_step.RECIPES[recipe]
    runs = {
        name: profile_step.per_step(*profile_step.profile_epoch(name, 640, **settings)) for name in profile_step.EAGER
    }
    reference = runs["numpy"]
    assert reference["engine.step.train_step"] == 1 and reference["engine.model.forward_pass"] == 1
    assert reference["engine.model.backward_pass"] == 1 and reference["engine.step._update"] == 3
    for name, calls in runs.items():
        assert calls == reference, name
    _, traced = profile_step.profile_epoch("jax", 640, **settings)
    assert set(reference) <= set(traced)
    assert traced["engine.step.train_step"] < 5  # traced per compilation, not run per step (20 steps here)
