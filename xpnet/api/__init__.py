"""The Python API: ``MLPClassifier`` and ``MLPRegressor`` (scikit-learn's estimator interface, on any array library;
``estimator``), ``Model``, ``load``, ``train`` and ``train_population`` (a trained network, any checkpoint, ``xpnet
train`` for scripts, K networks trained together; ``model``)."""

from xpnet.api.estimator import MLPClassifier, MLPRegressor, NotFittedError
from xpnet.api.model import Model, load, train, train_population

__all__ = ["MLPClassifier", "MLPRegressor", "Model", "NotFittedError", "load", "train", "train_population"]
