"""xpnet: multilayer perceptrons for MNIST-style data, written once against the Python array API.

The Python API (``xpnet.api``), loaded on first use so that ``import xpnet`` stays light (no
scikit-learn, no array library but NumPy's): ``MLPClassifier``, ``MLPRegressor``, ``Model``, ``load(path)``,
``train(**settings)`` and ``train_population([...], **settings)``; and ``show_versions()``, the report for bug
reports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from xpnet.version import __version__

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "Model",
    "load",
    "show_versions",
    "train",
    "train_population",
    "__version__",
]

if TYPE_CHECKING:
    from xpnet.api import MLPClassifier, MLPRegressor, Model, load, train, train_population
    from xpnet.environment import show_versions


def __getattr__(name: str):
    if name in ("MLPClassifier", "MLPRegressor", "Model", "load", "train", "train_population"):
        return getattr(importlib.import_module(".api", __name__), name)
    if name == "show_versions":
        return importlib.import_module(".environment", __name__).show_versions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
