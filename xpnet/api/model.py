"""A trained network for scripts: ``Model`` (``predict``, ``predict_proba``, ``score``, ``save``,
``to_onnx`` on arrays of any library), ``load`` (any checkpoint as a Model) and ``train``
(``xpnet train`` for scripts); ``in_parameter_words``, which every function of the Python API
wears: messages name parameters, user errors are ValueErrors.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from xpnet import backends, config, inputs, population, training
from xpnet.engine import budget, data, evaluate, model
from xpnet.errors import Stopped, UserError, parameter_words
from xpnet.files import checkpoint, onnx_export
from xpnet.settings import SETTINGS, nonempty


def in_parameter_words(function):
    """A function of the Python API: its messages name settings as parameters (``lr``, not
    ``--lr``), a bad value or file raises ValueError, and a signal's stop KeyboardInterrupt."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        with parameter_words():
            try:
                return function(*args, **kwargs)
            except UserError as e:
                raise ValueError(str(e)) from None
            except Stopped as e:  # Ctrl-C or SIGTERM: the chunk in flight finished, a checkpoint written with save=
                raise KeyboardInterrupt(f"training stopped by a signal (exit code {e.exit_code})") from None

    return call


class Model:
    """A trained network: ``predict`` and ``predict_proba`` on arrays of any library (the
    results in the input's library, on its device), ``save`` (an xpnet checkpoint) and
    ``to_onnx``. Made by ``load``, ``train`` and ``MLPClassifier.fit``.

    ``params``: [(W (1,out,in), b (1,out,1)), ...] on ``on`` (a Backend), or NumPy arrays on
    the host when ``on`` is None. ``backend`` / ``device``: where to compute (None: where each
    input is). ``classes``: the label of each output (default 0..K-1); ``regression``: a
    regressor's targets instead ({"targets": t, "flat": whether its y was 1-D}): then
    ``predict`` gives the outputs themselves and ``score`` the R², and ``classes_`` is None.
    """

    def __init__(
        self,
        spec: model.Spec,
        params,
        classes=None,
        dtype: str = "float32",
        image_shape=None,
        on=None,
        backend: str | None = None,
        device: str | None = None,
        tf32: bool = False,
        config: dict | None = None,
        history=(),
        test_accuracy: float | None = None,
        name: str = "Model",
        regression: dict | None = None,
    ):
        self.spec, self.dtype, self.name = spec, dtype, name
        self.regression = dict(regression) if regression is not None else None
        self.classes_ = None if regression else np.arange(spec.sizes[-1]) if classes is None else np.asarray(classes)
        self.n_features_in_ = spec.sizes[0]
        self.image_shape = tuple(image_shape) if image_shape else (spec.sizes[0],)
        self.backend, self.device, self.tf32 = backend, device, tf32
        self.config = dict(config or {})  # the settings it was trained with, as a checkpoint stores them
        self.history, self.test_accuracy = list(history), test_accuracy
        self._params = {place_of(on) if on is not None else "host": params}  # where they are -> parameters

    def __repr__(self) -> str:
        spec = self.spec
        return f"<xpnet.Model {spec.describe()} {self.dtype}>"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_params"] = {"host": self.host_params()}
        return state

    def host_params(self):
        """The parameters as NumPy arrays [(W (1,out,in), b (1,out,1)), ...] (copied from the
        device once)."""
        if "host" not in self._params:
            self._params["host"] = training.params_to_host(next(iter(self._params.values())))
        return self._params["host"]

    def _params_on(self, be):
        key = place_of(be)
        if key not in self._params:
            self._params[key] = model.params_to_device(be, self.host_params(), self.dtype)
        return self._params[key]

    def _features(self, X) -> inputs.Features:
        return inputs.features(
            X, self.dtype, self.backend, self.device, self.tf32, expect=self.n_features_in_, who=self.name
        )

    def _logits(self, f: inputs.Features):
        """The network's logits for checked features: (n, classes) on their backend, a chunk of
        rows at a time."""
        return evaluate.logits(self._params_on(f.backend), data.DeviceData(f.x, None), self.spec, self.dtype)

    def summary(self, batch_size: int | None = None) -> str:
        """The network, a line each: its layers' shapes and parameters, the total, and the
        memory of the parameters, the optimiser's state and a step's buffers for one batch of
        ``batch_size`` (default: the batch size it was trained with, else 32), and where it
        computes (``xpnet summary --model PATH`` prints the same)."""
        batch = batch_size or int(self.config.get("batch_size", 32))
        where = "computed where its input is" if self.backend is None else f"{self.backend} on {self.device or 'auto'}"
        optimizer = self.config.get("optimizer", "sgd")
        return "\n".join(budget.summary(self.spec, self.dtype, optimizer, batch, where))

    @in_parameter_words
    def predict_proba(self, X):
        """Class probabilities: X (n, features), (n, height, width) or (n, features, 1) ->
        (n, classes), in X's library and on its device. A sigmoid output's values are divided by
        their sum, so that each row sums to 1; an identity output's (least squares: scores, not
        probabilities) are passed through softmax. A regressor has none (ValueError)."""
        if self.regression:
            raise ValueError(f"{self.name}: a regressor predicts values, not class probabilities; use predict")
        f = self._features(X)
        z, ops, xp = self._logits(f), f.backend.ops, f.backend.xp
        with ops.errors_ignored():
            if self.spec.output == "identity":
                p = ops.softmax(z, 1)
            else:
                p = model.outputs(ops, z, self.spec)
                if self.spec.output == "sigmoid":
                    p = p / xp.sum(p, axis=1, keepdims=True)
        return f.back(p)

    @in_parameter_words
    def predict(self, X):
        """The most probable class of each row: (n,) labels from ``classes_``, in X's library
        and on its device (labels that are strings come back as a NumPy array); a regressor's
        predicted targets (n, targets), or (n,) where its y was 1-D."""
        f = self._features(X)
        if self.regression:
            z = self._logits(f)
            return f.back(z[:, 0] if self.regression["flat"] else z)
        idx = evaluate.predictions(self._params_on(f.backend), data.DeviceData(f.x, None), self.spec, self.dtype)
        if f.home[0] is None or self.classes_.dtype.kind not in "iufb":
            return self.classes_[backends.to_host(idx)]
        labels = f.backend.asarray(self.classes_)
        return f.back(f.backend.xp.take(labels, idx, axis=0))

    @in_parameter_words
    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of ``predict(X)`` against the labels y (weighted by ``sample_weight``);
        a regressor's R² (scikit-learn's ``r2_score``, its targets averaged uniformly)."""
        pred = backends.to_host(self.predict(X))
        if self.regression:
            truth, _ = inputs.targets(y, pred.shape[0], self.name)
            w = None if sample_weight is None else inputs.weights(sample_weight, pred.shape[0], self.name)
            return r2_score(truth, pred.reshape(truth.shape), w)
        y = inputs.labels(y, pred.shape[0], self.name)
        w = None if sample_weight is None else inputs.weights(sample_weight, pred.shape[0], self.name)
        return float(np.average(pred == y, weights=w))

    @in_parameter_words
    def save(self, path) -> None:
        """Write an xpnet checkpoint (the model; ``xpnet evaluate``, ``predict``, ``export`` and
        ``xpnet.load`` read it), atomically."""
        cfg = self.config | {"image_shape": list(self.image_shape), "num_classes": int(self.spec.sizes[-1])}
        default = self.regression is not None or (
            self.classes_.dtype.kind in "iu" and np.array_equal(self.classes_, np.arange(self.spec.sizes[-1]))
        )
        metrics = {"history": self.history}
        if self.test_accuracy is not None:
            metrics["test_accuracy"] = self.test_accuracy
        checkpoint.save(
            file_path(path),
            self.spec,
            self.host_params(),
            cfg,
            metrics,
            classes=None if default else self.classes_.tolist(),
            regression=self.regression,
        )

    @in_parameter_words
    def to_onnx(self, path) -> None:
        """Write the network as an ONNX graph (opset 17; see ``xpnet.files.onnx_export``): input the
        features as floats (uint8 pixels divided by 255), outputs ``probabilities`` and ``label``
        (a regressor's: ``predictions``)."""
        onnx_export.save(
            file_path(path), self.spec, self.host_params(), self.classes_, regression=self.regression is not None
        )


def r2_score(truth: np.ndarray, pred: np.ndarray, weights=None) -> float:
    """scikit-learn's coefficient of determination of host predictions (n, t) against targets
    (n, t) (``evaluate.r2_of``), each row counting as its weight where given."""
    w = np.ones(truth.shape[0]) if weights is None else weights
    mean = np.average(truth, axis=0, weights=w)
    residual = (w[:, None] * (truth - pred) ** 2).sum(axis=0)
    return evaluate.r2_of(residual, (w[:, None] * (truth - mean) ** 2).sum(axis=0))


def file_path(path, name: str = "path") -> str:
    """``path`` (a str or os.PathLike) as a str; TypeError naming ``name`` for anything else."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}={path!r}: expected a file path (a str or os.PathLike)")
    return os.fspath(path)


def place_of(be) -> tuple:
    """Where a backend's arrays live: (library, device)."""
    return be.name, str(be.device)


@in_parameter_words
def load(path) -> Model:
    """The model in an xpnet checkpoint (from ``xpnet train --save``, ``Model.save`` or
    ``MLPClassifier.save``): its parameters on the host until a ``predict`` puts them where the
    input is. ValueError naming the file when it is missing or not a valid checkpoint."""
    saved = checkpoint.load(file_path(path))
    spec, params, meta = saved
    cfg, metrics = meta.get("config", {}), meta.get("metrics", {})
    dtype = saved.dtype
    return Model(
        spec,
        params,
        meta.get("classes"),
        dtype,
        cfg.get("image_shape"),
        config=cfg,
        history=metrics.get("history", ()),
        test_accuracy=metrics.get("test_accuracy"),
        name="MLPRegressor" if "regression" in meta else "Model",
        regression=meta.get("regression"),
    )


@in_parameter_words
def train(*, callbacks=(), verbose: int = 1, **settings) -> Model:
    """``xpnet train`` for scripts: the same settings as keyword arguments (``hidden=(128,)``,
    ``epochs=5``, ``lr=0.1``, ``data_dir=...``, ``save=...``, ``log=...``, ``preset=...``,
    ``config=...`` (a TOML file), ``resume=...``: each a flag's name), the same data (the
    bundled MNIST unless ``data_dir``), lines printed (``verbose=0``: none) and the test
    accuracy at the end; ``callbacks`` as in ``MLPClassifier.fit``. Returns the trained Model
    (``test_accuracy``, ``history``). A bad setting raises ValueError (or TypeError for a
    name that is none) naming it; Ctrl-C stops as the command does (after the chunk of steps
    in flight, writing the checkpoint with ``save``), then raises KeyboardInterrupt."""
    say = _printer(verbose)
    cfg, dataset, be, result = training.train_from(_given(settings), say, callback_list(callbacks))
    return _trained(cfg, dataset, be, result)


@in_parameter_words
def train_population(members, *, callbacks=None, verbose: int = 1, **settings) -> list[Model]:
    """K networks of one shape trained together, one step for all (``xpnet.population``):
    ``members`` is a list of K >= 2 dicts, each a member's own settings (any of lr,
    lr_schedule, warmup, momentum, weight_decay, l2, dropout, max_norm, init_seed, epochs,
    early_stop, early_stop_on, save, log, plots), over the ``settings`` they share (keywords as
    ``train``'s; ``preset`` and ``config`` too). Each member trains, prints (prefixed by its
    index), saves and stops as ``train`` with its settings would, and its result equals that
    run's. ``callbacks``: None, or one list per member. Returns one Model per member, in order
    (``test_accuracy`` None for a member that diverged; its history ends there)."""
    if not isinstance(members, (list, tuple)) or not all(isinstance(m, dict) for m in members):
        raise TypeError(f"members={members!r}: expected a list of dicts, each a member's settings")
    if callbacks is not None and (not isinstance(callbacks, (list, tuple)) or len(callbacks) != len(members)):
        raise ValueError(f"callbacks: expected one list per member ({len(members)}), got {callbacks!r}")
    say = _printer(verbose)
    cfgs = [population.resolved(_given({**settings, **m})) for m in members]
    per_member = None if callbacks is None else [callback_list(c) for c in callbacks]
    dataset, be, results = population.train_from(cfgs, say, per_member)
    say(population.summary(results))
    return [_trained(c, dataset, be, r) for c, r in zip(cfgs, results)]


def _printer(verbose):
    """``say`` for ``verbose``: print each line, or nothing."""
    if verbose not in (0, 1, 2, False, True):
        raise ValueError(f"verbose={verbose!r}: expected 0 (silent) or 1 (the lines xpnet train prints)")
    return (lambda line: print(line, flush=True)) if verbose else (lambda line: None)


def _trained(cfg, dataset, be, result) -> Model:
    """The Model of a training ``result`` (``training.Result``) of ``cfg`` on ``dataset``."""
    acc = result.test_correct / result.test_total if result.test_total else None
    return Model(
        result.spec,
        result.params,
        None,
        cfg.dtype,
        dataset.image_shape,
        on=be,
        config=cfg.to_checkpoint(),
        history=result.history,
        test_accuracy=acc,
    )


RECIPE_KEYWORDS = ("preset", "config", "resume")  # where xpnet.train's settings come from, besides the settings


def _given(keywords: dict) -> dict:
    """``xpnet.train``'s keywords as the settings given, each checked as a config file's value
    is (``config.value_of``); TypeError for a keyword that is no setting."""
    given = {}
    for key, value in keywords.items():
        if key in RECIPE_KEYWORDS:
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"{key}={value!r}: expected a " + ("name" if key == "preset" else "path"))
            given[key] = nonempty(key, os.fspath(value))
        elif key in SETTINGS:
            given[key] = config.value_of(key, value)
        else:
            raise TypeError(
                f"train() got an unexpected setting {key!r}; settings are the flags of xpnet train: "
                f"{', '.join(sorted(SETTINGS))}, {', '.join(RECIPE_KEYWORDS)}"
            )
    return given


def callback_list(callbacks) -> list:
    """``callbacks`` (None, or an iterable of objects with ``on_epoch_end``) as a list."""
    if callbacks is None:
        return []
    try:
        return list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks={callbacks!r}: expected a list of objects with on_epoch_end(epoch, logs)") from None
