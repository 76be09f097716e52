"""Sixteen networks trained together by one step: a learning-rate scan of 784-30-10 on MNIST
with ``xpnet.train_population``, each member the run ``xpnet.train`` with its settings would
make, then the best member's model saved and read back.

    python examples/population.py
"""

import numpy as np

import xpnet

rates = np.geomspace(0.01, 1.0, 16)
models = xpnet.train_population(
    [{"lr": float(lr), "init_seed": k} for k, lr in enumerate(rates)],
    hidden=(30,),
    batch_size=50,
    epochs=2,
    validation=10000,
    verbose=0,
)
for lr, m in zip(rates, models):
    val, test = 100 * m.history[-1]["val_accuracy"], 100 * m.test_accuracy
    print(f"lr {lr:7.4f}: validation accuracy {val:.2f}%, test {test:.2f}%")
best = max(range(len(models)), key=lambda k: models[k].history[-1]["val_accuracy"])
models[best].save("best.npz")
reloaded = 100 * xpnet.load("best.npz").test_accuracy
print(f"best by validation: lr {rates[best]:.4f}; saved best.npz; reloaded: test accuracy {reloaded:.2f}%")
