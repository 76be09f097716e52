"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's estimator interface on any array
library, trained by ``xpnet.training.train``, the loop of ``xpnet train``, on a ``Dataset`` made
of the caller's arrays (checked and placed by ``xpnet.inputs``); their parameters are the
settings of ``xpnet.settings`` marked for the API, and a few of their own. Both are ``_MLP``:
they differ only in their targets (class labels, or real values with the identity output and
the squared error) and in what scores them. scikit-learn is optional: nothing here imports it,
except to raise its NotFittedError and DataConversionWarning and to answer its tags
(``__sklearn_tags__``), which only scikit-learn asks for.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from xpnet import config, inputs, training
from xpnet.api.model import Model, callback_list, in_parameter_words, place_of
from xpnet.engine import data, model
from xpnet.files import checkpoint
from xpnet.settings import SETTINGS, TrainConfig

VALIDATION_STREAM = 0x5A11  # the host generator stream that picks fit's validation rows


class NotFittedError(ValueError, AttributeError):
    """A method that needs a fitted estimator called before ``fit`` (scikit-learn's own
    NotFittedError is raised instead where scikit-learn is installed)."""


def _not_fitted(name: str) -> Exception:
    try:
        from sklearn.exceptions import NotFittedError as error
    except ImportError:
        error = NotFittedError
    return error(
        f"This {name} instance is not fitted yet. Call 'fit' with appropriate arguments before using this estimator."
    )


# the estimators' parameters that are not training settings (or mean something else there), and their defaults
SHARED_PARAMETERS = {
    "validation": 0.0,
    "backend": None,
    "device": None,
    "image_shape": None,
    "random_state": 0,
    "verbose": 0,
}
ESTIMATOR_PARAMETERS = {"class_weight": None} | SHARED_PARAMETERS  # MLPClassifier's own
# the training settings that are MLPClassifier's parameters of the same name, default and meaning
API_SETTINGS = tuple(name for name, setting in SETTINGS.items() if setting.api)
# MLPRegressor's: the same but those about classes (its output is the identity, its loss the squared error)
REGRESSOR_SETTINGS = tuple(name for name in API_SETTINGS if name not in ("output", "label_smoothing"))
# where MLPRegressor's defaults differ from the table's (scikit-learn's MLPRegressor's: Adam at 0.001, one
# hidden layer of 100, 200 epochs; a classifier's SGD at 0.2 overshoots unscaled real targets)
REGRESSOR_DEFAULTS = {"hidden": (100,), "optimizer": "adam", "lr": 0.001, "epochs": 200}


def _estimator_init(parameters: dict):
    """An ``__init__`` that stores each of ``parameters`` (name -> default) as an attribute of the
    same name, with their signature (what scikit-learn's ``get_params`` and ``clone`` read)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [inspect.Parameter("self", kind)] + [inspect.Parameter(name, kind, default=d) for name, d in parameters.items()]
    )

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name in parameters:
            setattr(self, name, bound.arguments[name])

    __init__.__signature__ = signature
    return __init__


class _MLP:
    """What MLPClassifier and MLPRegressor share: scikit-learn's estimator protocol, ``fit`` and
    ``partial_fit`` through ``training.train`` on the input's library and device, the held-out
    validation rows, the seed, the fitted ``Model``. A subclass says what its targets are
    (``_fit_targets``, ``_num_outputs``), what else its run's settings hold (``_own_settings``),
    which epoch record scores it on the validation split (``SCORE_KEY``) and its tags."""

    SETTING_PARAMETERS: tuple = ()  # the training settings that are its parameters
    SCORE_KEY = ""  # the epoch record's validation score

    # ---- scikit-learn's estimator protocol, without scikit-learn ------------------------------

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters and their values."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters by name; returns the estimator."""
        names = self._get_param_names()
        for key, value in params.items():
            if key not in names:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. Valid parameters are: {names!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_model")

    def __getstate__(self):
        state = self.__dict__.copy()
        if state.get("_state") is not None:  # device arrays and a live generator: as a checkpoint would hold them
            state["_resume"], state["_state"] = self._host_state(), None
        return state

    # ---- training -----------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight, callbacks):
        """``fit``: a fresh network on X and y's targets for ``epochs`` epochs."""
        self._check_params()
        f = self._features(X)
        targets, weights, outputs = self._fit_targets(y, f.x.shape[0], sample_weight)
        seed = self._seed()
        x, targets, weights, n_val = self._held_out(f, targets, weights, seed)
        cfg = self._config(seed, n_val, f.backend)
        for name in ("_model", "_state", "_resume", "classes_", "n_outputs_"):
            self.__dict__.pop(name, None)
        result = self._train(cfg, f, x, targets, weights, outputs, callbacks, state=None, resume=None, epochs=None)
        self._fitted(cfg, f, outputs, result, seed, list(result.history))
        return self

    def _partial_fit(self, f: inputs.Features, targets, weights, outputs, first: bool, callbacks):
        """``partial_fit``: one epoch on the checked features and targets, going on from the
        previous call's state (a first call starts a fresh network)."""
        seed = self._seed() if first else self._seed_used
        cfg = self._config(seed, 0, f.backend)
        state, resume = self._continued(cfg, f, outputs, first)
        if not first and cfg.lr_schedule == "cosine" and self.n_iter_ >= cfg.epochs:
            warnings.warn(
                f"partial_fit: epoch {self.n_iter_ + 1} is past epochs={cfg.epochs}: the cosine schedule's "
                "learning rate is 0 there; use lr_schedule='constant' for open-ended training",
                stacklevel=3,
            )
        result = self._train(cfg, f, f.x, targets, weights, outputs, callbacks, state=state, resume=resume, epochs=1)
        self._fitted(cfg, f, outputs, result, seed, list(result.history))
        return self

    def _continued(self, cfg: TrainConfig, f: inputs.Features, outputs, first: bool):
        """(state, resume) to go on from: the previous call's TrainState where it is on this
        backend, else its host copy (after pickling, or on another backend)."""
        if first:
            return None, None
        spec = config.resolve_spec(cfg, f.x.shape[1], self._num_outputs(outputs))
        if spec != self._model.spec:
            raise ValueError(
                f"partial_fit: the network would be {spec.describe()}, the first call's is "
                f"{self._model.spec.describe()}; call fit to start over"
            )
        if self.__dict__.get("_state") is not None and self._state_on == place_of(f.backend):
            return self._state, None
        return None, self.__dict__.get("_resume") or self._host_state()

    def _train(self, cfg, f: inputs.Features, x, targets, weights, outputs, callbacks, state, resume, epochs):
        """training.train on the data set of x (n, features), targets (label codes (n,) or real
        values (n, t)) and row weights (n,) or None."""
        images = f.backend.xp.reshape(x, (x.shape[0], *f.image_shape))  # a view: what augmentation needs to know
        dataset = data.Dataset(
            data.Split(images, targets, weights), None, self._num_outputs(outputs), "the arrays given to fit"
        )
        say = (lambda line: print(line, flush=True)) if self.verbose else (lambda line: None)
        return training.train(
            cfg,
            f.backend,
            dataset,
            say=say,
            callbacks=callback_list(callbacks),
            state=state,
            resume=resume,
            epochs=epochs,
        )

    def _fitted(self, cfg, f: inputs.Features, outputs, result, seed: int, history: list) -> None:
        self.n_features_in_ = int(f.x.shape[1])
        self.history_, self.loss_curve_, self.n_iter_ = history, [e["loss"] for e in history], len(history)
        validated = bool(history) and self.SCORE_KEY in history[-1]
        # scikit-learn's names: the validation score per epoch and its best (None without a
        # validation split), the lowest training loss (None with one); and the validation loss per epoch
        self.validation_scores_ = [e[self.SCORE_KEY] for e in history] if validated else None
        self.best_validation_score_ = max(self.validation_scores_) if validated else None
        self.best_loss_ = None if validated else min(self.loss_curve_, default=None)
        self.validation_loss_curve_ = [e.get("val_loss", float("nan")) for e in history] if validated else None
        self._seed_used, self._cfg = seed, cfg
        self._state, self._state_on, self._resume = result.state, place_of(f.backend), None
        self._model = Model(
            result.spec,
            result.params,
            outputs if isinstance(outputs, np.ndarray) else None,
            cfg.dtype,
            f.image_shape,
            on=f.backend,
            backend=self.backend,
            device=self.device,
            tf32=self.tf32,
            config=cfg.to_checkpoint(),
            history=history,
            name=type(self).__name__,
            regression=None if isinstance(outputs, np.ndarray) else outputs,
        )

    def _sample_weights(self, sample_weight, n: int) -> np.ndarray | None:
        """``sample_weight`` checked as n host floats, or None."""
        return None if sample_weight is None else inputs.weights(sample_weight, n, type(self).__name__)

    def _host_state(self) -> checkpoint.Saved:
        """The training state as a loaded checkpoint holds it."""
        st = self._state
        state, slots = training.saved_state(self._cfg, st, st.epoch, 0, st.rng.bit_generator.state, 0.0)
        params = training.params_to_host(model.params_of(st.net.layers))
        return checkpoint.Saved(
            self._model.spec, params, {"state": state, "slots": slots, "metrics": {"history": list(st.history)}}
        )

    # ---- settings -----------------------------------------------------------------------------

    def _check_params(self) -> None:
        """The parameters' values, checked as ``xpnet train`` checks its flags (ValueError)."""
        v = self.validation
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < 1):
            raise ValueError(f"validation={v!r}: expected a fraction of the data, 0 <= validation < 1")
        if self.early_stop and not v:
            raise ValueError("early_stop needs validation > 0 (the fraction of the data held out to watch)")
        if self.verbose not in (0, 1, 2, False, True):
            raise ValueError(f"verbose={self.verbose!r}: expected 0, 1 or 2")
        self._config(0, 1 if v else 0, None)

    def _own_settings(self) -> dict:
        """The run's settings that are not parameters of the same name (by subclass)."""
        return {}

    def _config(self, seed: int, n_val: int, be) -> TrainConfig:
        """The TrainConfig of a run on ``n_val`` held-out rows (none: no early stopping either,
        as in partial_fit) and backend ``be``."""
        values = {name: config.value_of(name, getattr(self, name)) for name in self.SETTING_PARAMETERS}
        values["early_stop"] = values["early_stop"] if n_val else 0
        cfg = TrainConfig(
            **values,
            **self._own_settings(),
            seed=seed,
            validation=n_val,
            quiet=self.verbose < 2,
            backend=be.name if be is not None else None,
            device=be.label if be is not None else "auto",
        )
        cfg.check()
        if cfg.augment != "none" and self.image_shape is not None and len(self.image_shape) != 2:
            raise ValueError(f"image_shape={self.image_shape!r}: expected (height, width)")
        return cfg

    def _seed(self) -> int:
        """The seed of a fit from ``random_state``."""
        rs = self.random_state
        if rs is None:
            return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"random_state={rs}: expected an integer >= 0, None, or a NumPy generator")
            return int(rs)
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**31))
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**31))
        raise ValueError(f"random_state={rs!r}: expected an integer >= 0, None, or a NumPy generator")

    def _features(self, X, expect=None) -> inputs.Features:
        dtype = config.value_of("dtype", self.dtype)  # np.float32 as "float32" (checked by _check_params)
        f = inputs.features(
            X, dtype, self.backend, self.device, self.tf32, self.image_shape, expect, type(self).__name__
        )
        if self.augment != "none" and len(f.image_shape) != 2:
            raise ValueError(
                f"augment={self.augment!r} needs image-shaped input: X of shape (n, height, width), "
                "or image_shape=(height, width)"
            )
        return f

    def _held_out(self, f: inputs.Features, targets: np.ndarray, weights, seed: int):
        """(rows, targets, weights, n_val): with ``validation``, the rows (and their targets and
        weights) in a random order (from the seed) whose last n_val are held out; else as given."""
        n = targets.shape[0]
        if not self.validation:
            return f.x, targets, weights, 0
        n_val = int(round(self.validation * n))
        if not 0 < n_val < n:
            raise ValueError(
                f"validation={self.validation}: holds out {n_val} of the {n} samples; "
                f"needs at least 1 and fewer than {n}"
            )
        perm = np.random.default_rng([seed, VALIDATION_STREAM]).permutation(n)
        rows = f.backend.xp.take(f.x, f.backend.asarray(perm), axis=0)
        return rows, targets[perm], None if weights is None else weights[perm], n_val

    # ---- the fitted model ---------------------------------------------------------------------

    def _fitted_model(self) -> Model:
        if not hasattr(self, "_model"):
            raise _not_fitted(type(self).__name__)
        return self._model

    def predict(self, X):
        """The prediction for each row of X, in X's library and on its device: a classifier's
        label (n,), a regressor's targets (n,) (or (n, targets) where y had several)."""
        return self._fitted_model().predict(X)

    def score(self, X, y, sample_weight=None) -> float:
        """A classifier's mean accuracy, a regressor's R² (scikit-learn's ``r2_score``), of
        ``predict(X)`` against y (weighted by ``sample_weight``)."""
        return self._fitted_model().score(X, y, sample_weight)

    def save(self, path) -> None:
        """Write the fitted network as an xpnet checkpoint (``xpnet.load`` reads it back)."""
        self._fitted_model().save(path)

    def to_onnx(self, path) -> None:
        """Write the fitted network as an ONNX graph (see ``Model.to_onnx``)."""
        self._fitted_model().to_onnx(path)


class MLPClassifier(_MLP):
    """A multilayer-perceptron classifier with scikit-learn's estimator interface, trained by
    xpnet's one training step on the array library of its input (NumPy, CuPy, PyTorch, JAX,
    array-api-strict), on the input's device.

    Every setting of ``xpnet train`` that is not about files has a parameter of the same name
    and meaning (see ``xpnet train --help``): ``hidden`` (hidden sizes), ``activation``,
    ``output``, ``init``, ``optimizer``, ``lr``, ``lr_schedule``, ``warmup``, ``momentum``,
    ``weight_decay``, ``batch_size``, ``epochs``, ``l2``, ``dropout``, ``max_norm``,
    ``label_smoothing``, ``augment``, ``early_stop``, ``early_stop_on``, ``dtype``, ``backend``,
    ``device``, ``tf32``, ``cuda_graph``, ``threads``. Besides:

    - ``class_weight``: None (every class weighs 1), ``"balanced"`` (class c weighs
      n / (classes * n_c) over the n rows trained on, as ``--class-weight balanced``), or a
      dict {label: weight} (labels left out weigh 1); a row's weight is its class's times its
      ``sample_weight`` (``fit``, ``partial_fit``);
    - ``validation``: the fraction of the rows given to ``fit`` held out to report validation
      accuracy and to pick the epoch with ``early_stop`` (rows drawn at random with
      ``random_state``; 0: none);
    - ``backend`` / ``device``: None (default) computes where the input is; otherwise as the
      flags (``backend="torch", device="cuda"``), the input copied there once;
    - ``image_shape``: (height, width) of flat input rows, for ``augment`` (input shaped
      (n, height, width) says it by itself);
    - ``random_state``: the seed (int, default 0 as ``xpnet train``; None: a fresh one per fit;
      a NumPy RandomState or Generator: a seed drawn from it);
    - ``verbose``: 0 silent, 1 the per-epoch lines of ``xpnet train``, 2 also a progress bar.

    Inputs X: (n, features), (n, height, width) or (n, features, 1); floats, or uint8 pixels
    (divided by 255 on the device). Labels: any (strings, integers that are not 0..K-1):
    ``classes_`` holds them sorted. Results (``predict``, ``predict_proba``) come back in the
    input's library and on its device. Fitted attributes: ``classes_``, ``n_features_in_``,
    ``n_iter_`` (epochs run), ``history_`` (each epoch's record), ``loss_curve_``; with
    ``validation``: ``validation_scores_`` (each epoch's validation accuracy),
    ``best_validation_score_``, ``validation_loss_curve_`` (each epoch's validation loss), and
    without: ``best_loss_`` (the lowest training loss), as scikit-learn names them.
    """

    SETTING_PARAMETERS = API_SETTINGS
    SCORE_KEY = "val_accuracy"
    __init__ = _estimator_init({name: SETTINGS[name].default for name in API_SETTINGS} | ESTIMATOR_PARAMETERS)

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            array_api_support=True,
            input_tags=InputTags(three_d_array=True),
        )

    @in_parameter_words
    def fit(self, X, y, sample_weight=None, callbacks=None):
        """Train a fresh network on X with labels y for ``epochs`` epochs (fewer with
        ``early_stop``). ``sample_weight`` (n,): each row's weight in the loss (finite, >= 0;
        scikit-learn's meaning: the objective is the weighted mean loss, an integer weight
        counts as that many copies of the row, a zero weight as no row; each step divides by
        its rows times the mean weight); the validation split's rows keep theirs in its accuracy
        and loss. ``callbacks``: objects with ``on_epoch_end(epoch, logs)`` (and optionally
        ``on_train_begin(run)``, ``on_train_end(result)``; see ``xpnet.callbacks``), any of
        which may return True to stop after that epoch. Returns the estimator."""
        return self._fit(X, y, sample_weight, callbacks)

    def _fit_targets(self, y, n: int, sample_weight):
        """(label codes (n,), row weights (n,) or None, classes) of fit's y."""
        y = inputs.labels(y, n, type(self).__name__)
        classes = np.unique(y)
        if classes.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__}: y has only one class ({classes[0]!r}); a classifier needs at least 2 classes"
            )
        codes = inputs.encode(y, classes)
        return codes, self._row_weights(sample_weight, codes, classes), classes

    @staticmethod
    def _num_outputs(classes) -> int:
        return int(classes.shape[0])

    @in_parameter_words
    def partial_fit(self, X, y, classes=None, sample_weight=None, callbacks=None):
        """One epoch on X, y, going on from the previous call's network, optimiser state and
        step count (a first call starts a fresh network). ``classes``: every label there will
        be, required on the first call. ``sample_weight``: as ``fit``'s (``class_weight``
        "balanced" is refused here: one call's rows do not say the classes' frequencies; give
        a dict). Learning rates follow ``lr_schedule`` over ``epochs`` epochs, one per call:
        past ``epochs`` calls a cosine schedule stays at 0, so use ``lr_schedule="constant"``
        for open-ended training. No validation split is held out."""
        self._check_params()
        if isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit (one call's rows do not give the "
                "classes' frequencies); pass a dict {label: weight}, for example n / (classes * n_c) over all the data"
            )
        first = not hasattr(self, "_model")
        classes = self._partial_classes(classes, first)
        f = self._features(X, expect=None if first else self.n_features_in_)
        codes = inputs.encode(inputs.labels(y, f.x.shape[0], type(self).__name__), classes, type(self).__name__)
        weights = self._row_weights(sample_weight, codes, classes)
        return self._partial_fit(f, codes, weights, classes, first, callbacks)

    def _partial_classes(self, classes, first: bool) -> np.ndarray:
        """The classes of a partial_fit call: given on the first, the same (or none) later."""
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            given = inputs.on_host(classes)
            classes = np.unique(inputs.labels(given, given.size, type(self).__name__, "classes"))
            if classes.shape[0] < 2:
                raise ValueError("partial_fit: classes must hold at least 2 classes")
            return classes
        if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"partial_fit: classes={np.unique(np.asarray(classes)).tolist()} is not classes_ of the "
                f"first call, {self.classes_.tolist()}"
            )
        return self.classes_

    def _row_weights(self, sample_weight, codes: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
        """Each row's weight (n,) float64 from ``sample_weight`` and a dict ``class_weight``
        ("balanced" is weighed by the run, over the rows it trains on); None: every row 1."""
        weights = self._sample_weights(sample_weight, codes.shape[0])
        if not isinstance(self.class_weight, dict):
            return weights
        index = {label: i for i, label in enumerate(classes.tolist())}
        per_class = np.ones(classes.shape[0])
        for label, weight in self.class_weight.items():
            key = label.item() if isinstance(label, np.generic) else label
            if key not in index:
                raise ValueError(
                    f"class_weight: {label!r} is not a class of y (classes: {classes.tolist()[:10]}"
                    f"{' ...' if classes.shape[0] > 10 else ''})"
                )
            per_class[index[key]] = weight
        by_row = per_class[codes]
        return by_row if weights is None else by_row * weights

    def _fitted(self, cfg, f, classes, result, seed, history) -> None:
        self.classes_ = classes
        super()._fitted(cfg, f, classes, result, seed, history)

    def _check_params(self) -> None:
        _check_class_weight(self.class_weight)
        super()._check_params()

    def _own_settings(self) -> dict:
        return {"class_weight": "balanced" if isinstance(self.class_weight, str) else "none"}

    def predict_proba(self, X):
        """The probability of each class (``classes_`` order) for each row of X: (n, classes)."""
        return self._fitted_model().predict_proba(X)


class MLPRegressor(_MLP):
    """A multilayer-perceptron regressor with scikit-learn's estimator interface: the network of
    ``MLPClassifier`` with an identity output trained on the squared error, 0.5 * sum over the
    targets of (prediction - y)^2 averaged over the rows (scikit-learn's loss), on the array
    library and device of its input.

    Parameters: those of ``MLPClassifier`` except ``output``, ``label_smoothing`` and
    ``class_weight``, with scikit-learn's MLPRegressor's defaults where they differ from a
    classifier's: ``hidden=(100,)``, ``optimizer="adam"``, ``lr=0.001``, ``epochs=200``.
    ``early_stop`` (with ``validation``) watches the validation R² (``early_stop_on="accuracy"``,
    the score) or the validation loss (``"loss"``).

    y: (n,) or (n, targets) real values; ``predict`` answers in the same shape, in the input's
    library and on its device; ``score`` is the R² (scikit-learn's ``r2_score``, targets averaged
    uniformly). Fitted attributes: ``n_outputs_``, ``n_features_in_``, ``n_iter_``,
    ``history_``, ``loss_curve_``; with ``validation``: ``validation_scores_`` (each epoch's
    validation R²), ``best_validation_score_``, ``validation_loss_curve_``; without:
    ``best_loss_``. Checkpoints (``save``, ``xpnet.load``) and ONNX export (``to_onnx``: the
    output ``predictions``) keep it a regressor.
    """

    SETTING_PARAMETERS = REGRESSOR_SETTINGS
    SCORE_KEY = "val_r2"
    __init__ = _estimator_init(
        {name: REGRESSOR_DEFAULTS.get(name, SETTINGS[name].default) for name in REGRESSOR_SETTINGS} | SHARED_PARAMETERS
    )

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(
            estimator_type="regressor",
            target_tags=TargetTags(required=True, single_output=True, multi_output=True),
            regressor_tags=RegressorTags(),
            array_api_support=True,
            input_tags=InputTags(three_d_array=True),
        )

    @in_parameter_words
    def fit(self, X, y, sample_weight=None, callbacks=None):
        """Train a fresh network on X with targets y, (n,) or (n, targets), for ``epochs``
        epochs (fewer with ``early_stop``); ``sample_weight`` and ``callbacks`` as in
        ``MLPClassifier.fit``. Returns the estimator."""
        return self._fit(X, y, sample_weight, callbacks)

    def _fit_targets(self, y, n: int, sample_weight):
        """(targets (n, t) float64, row weights (n,) or None, the outputs' description) of y."""
        values, flat = inputs.targets(y, n, type(self).__name__)
        return values, self._sample_weights(sample_weight, n), {"targets": int(values.shape[1]), "flat": flat}

    @staticmethod
    def _num_outputs(outputs) -> int:
        return outputs["targets"]

    @in_parameter_words
    def partial_fit(self, X, y, sample_weight=None, callbacks=None):
        """One epoch on X, y, going on from the previous call's network, optimiser state and
        step count (a first call starts a fresh network); y has the first call's number of
        targets. As ``MLPClassifier.partial_fit`` otherwise."""
        self._check_params()
        first = not hasattr(self, "_model")
        f = self._features(X, expect=None if first else self.n_features_in_)
        values, weights, outputs = self._fit_targets(y, f.x.shape[0], sample_weight)
        if not first and outputs["targets"] != self.n_outputs_:
            raise ValueError(f"partial_fit: y has {outputs['targets']} targets, the first call's had {self.n_outputs_}")
        return self._partial_fit(f, values, weights, outputs, first, callbacks)

    def _fitted(self, cfg, f, outputs, result, seed, history) -> None:
        self.n_outputs_ = outputs["targets"]
        super()._fitted(cfg, f, outputs, result, seed, history)

    def _own_settings(self) -> dict:
        return {"output": "identity"}


def _check_class_weight(class_weight) -> None:
    """None, "balanced", or a dict of finite weights >= 0 (ValueError/TypeError naming it)."""
    if class_weight is None or (isinstance(class_weight, str) and class_weight == "balanced"):
        return
    if not isinstance(class_weight, dict):
        raise (ValueError if isinstance(class_weight, str) else TypeError)(
            f"class_weight={class_weight!r}: expected None, 'balanced' or a dict {{label: weight}}"
        )
    for label, weight in class_weight.items():
        number = isinstance(weight, (int, float, np.integer, np.floating)) and not isinstance(weight, bool)
        if not number or not (np.isfinite(weight) and weight >= 0):
            raise ValueError(f"class_weight[{label!r}] = {weight!r}: expected a finite number >= 0")


def _same(a, b) -> bool:
    """Whether a parameter's value is its default (for the repr)."""
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False
