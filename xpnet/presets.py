"""Named training recipes (``--preset NAME``, listed by ``xpnet presets``).

Each preset is a set of TrainConfig fields; flags given on the command line and
values from ``--config FILE.toml`` override them. The seed presets reproduce the
networks of the from-scratch documents xpnet grew from.
"""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    "default": {
        "about": "xpnet's default: 784-512-256-10 relu, softmax/cross-entropy, cosine lr 0.2, batch 32, 20 epochs",
        "config": {},
    },
    "nielsen": {
        "about": "784-30-10 sigmoid with sigmoid output and quadratic cost, N(0,1) init, lr 3.0, batch 10, 30 epochs "
        "(the Nielsen-style seeds)",
        "config": {
            "hidden": (30,),
            "activation": "sigmoid",
            "output": "sigmoid",
            "init": "normal",
            "lr": 3.0,
            "lr_schedule": "constant",
            "batch_size": 10,
            "epochs": 30,
        },
    },
    "order3": {
        "about": "784-30-10 sigmoid, softmax/cross-entropy with L2 5.0, N(0,1) init, lr 3.0, batch 50, 10 epochs, "
        "50k/10k split (the order-3 tensor seed)",
        "config": {
            "hidden": (30,),
            "activation": "sigmoid",
            "output": "softmax",
            "init": "normal",
            "lr": 3.0,
            "lr_schedule": "constant",
            "batch_size": 50,
            "epochs": 10,
            "l2": 5.0,
            "validation": 10000,
        },
    },
    "deep-sigmoid": {
        "about": "784-500-500-10 sigmoid, softmax/cross-entropy, Xavier-normal init, lr 0.001, one image per step, "
        "2 epochs on all 60,000 training images (the 784-500-500-10 NumPy seed; reported ~90%, see README)",
        "config": {
            "hidden": (500, 500),
            "activation": "sigmoid",
            "output": "softmax",
            "init": "xavier",
            "lr": 0.001,
            "lr_schedule": "constant",
            "batch_size": 1,
            "epochs": 2,
            "validation": 0,
        },
    },
    "single-example": {
        "about": "784-28-10 sigmoid with quadratic cost, N(0,1) init, lr 0.25, one image per step, 1 epoch "
        "(the network of the single-example walkthrough seed)",
        "config": {
            "hidden": (28,),
            "activation": "sigmoid",
            "output": "sigmoid",
            "init": "normal",
            "lr": 0.25,
            "lr_schedule": "constant",
            "batch_size": 1,
            "epochs": 1,
        },
    },
    "best-cpu": {
        "about": "784-1024-1024-10 relu, dropout 0.2, affine augmentation on the device, Nesterov momentum, "
        "cosine lr 0.05 with 1 warm-up epoch, batch 128, 100 epochs (its accuracy and time: docs/benchmarks.md)",
        "config": {
            "hidden": (1024, 1024),
            "activation": "relu",
            "output": "softmax",
            "optimizer": "nesterov",
            "momentum": 0.9,
            "lr": 0.05,
            "lr_schedule": "cosine",
            "warmup": 1.0,
            "batch_size": 128,
            "epochs": 100,
            "dropout": 0.2,
            "augment": "affine",
        },
    },
    "best-gpu": {
        "about": "784-2500-2000-1500-1000-500-10 relu (Ciresan et al., 2010), elastic distortions, dropout 0.1, "
        "Nesterov momentum, cosine lr 0.03, batch 256, 200 epochs: for a GPU",
        "config": {
            "hidden": (2500, 2000, 1500, 1000, 500),
            "activation": "relu",
            "output": "softmax",
            "optimizer": "nesterov",
            "momentum": 0.9,
            "lr": 0.03,
            "lr_schedule": "cosine",
            "warmup": 2.0,
            "batch_size": 256,
            "epochs": 200,
            "dropout": 0.1,
            "augment": "elastic",
        },
    },
}


def get(name: str) -> dict:
    """The config fields of preset ``name``; KeyError if there is none."""
    return dict(PRESETS[name]["config"])
