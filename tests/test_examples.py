"""Each script of examples/ runs to the end and prints what its docstring promises."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# each example and a line its output must hold
EXPECTED = {
    "numpy_arrays.py": "the same predictions",
    "torch_tensors.py": "probabilities: a torch.Tensor on",
    "onnx_round_trip.py": "onnxruntime agrees with xpnet on 100.0% of 1000 images",
    "sweep.py": "test accuracy: ",
    "weights_and_regression.py": "diabetes, 5-fold R²: 0.",
    "population.py": "best by validation: lr ",
}


def test_every_example_is_run():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert EXPECTED[name] in done.stdout, done.stdout
