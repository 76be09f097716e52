"""The Python API: ``MLPClassifier`` and ``MLPRegressor`` (scikit-learn's estimator interface, on any array library;
``estimator``), ``Model``, ``load`` and ``train`` (a trained network, any checkpoint, ``xpnet
train`` for scripts; ``model``)."""

from xpnet.api.estimator import MLPClassifier, MLPRegressor, NotFittedError
from xpnet.api.model import Model, load, train

__all__ = ["MLPClassifier", "MLPRegressor", "Model", "NotFittedError", "load", "train"]
