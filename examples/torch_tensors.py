"""Train on torch tensors where they are (a CUDA GPU if there is one, else the CPU): the
results come back as tensors on the same device.

    python examples/torch_tensors.py
"""

import torch

import xpnet

device = "cuda" if torch.cuda.is_available() else "cpu"
generator = torch.Generator().manual_seed(0)
X = torch.rand(3000, 20, generator=generator).to(device)
y = (X[:, 0] > X[:, 1]).long()

clf = xpnet.MLPClassifier(hidden=(32,), epochs=10).fit(X[:2500], y[:2500])
proba = clf.predict_proba(X[2500:])
print(f"probabilities: a {type(proba).__module__}.{type(proba).__name__} on {proba.device}, shape {tuple(proba.shape)}")
print(f"held-out accuracy: {clf.score(X[2500:], y[2500:]):.3f}")
