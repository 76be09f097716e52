"""Train on NumPy arrays with the scikit-learn interface, save the model and load it back.

python examples/numpy_arrays.py
"""

import tempfile
from pathlib import Path

import numpy as np

import xpnet

rng = np.random.default_rng(0)
X = rng.random((3000, 20), dtype=np.float32)
y = np.where(X[:, 0] + X[:, 1] > X[:, 2] + X[:, 3], "up", "down")  # any labels: strings here

clf = xpnet.MLPClassifier(hidden=(32,), epochs=10, validation=0.1).fit(X[:2500], y[:2500])
print(f"held-out accuracy: {clf.score(X[2500:], y[2500:]):.3f}")
print(f"predictions: {clf.predict(X[2500:2505]).tolist()}")

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "model.npz"
    clf.save(path)
    model = xpnet.load(path)
    assert (model.predict(X[2500:]) == clf.predict(X[2500:])).all()
    print(f"reloaded {model}: the same predictions")
