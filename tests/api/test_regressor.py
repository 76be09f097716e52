"""MLPRegressor: the identity output with the squared error through the one training step, on
every array library; one or several targets; R² as its score and validation score; sample
weights; partial_fit; checkpoints, ``xpnet.load`` and ONNX; and against scikit-learn's own
MLPRegressor on the diabetes data."""

import warnings

import numpy as np
import pytest

import xpnet
from xpnet import MLPRegressor
from xpnet.api.estimator import VALIDATION_STREAM

from helpers import COMBOS, assert_clean_error
from helpers import xpnet as run_xpnet

CPU_LIBRARIES = [(name, device) for name, device, needs_gpu in COMBOS if not needs_gpu]
QUICK = dict(hidden=(16,), epochs=30, lr=0.01, threads=1)


@pytest.fixture(scope="module")
def problem():
    """200 rows of 5 features and two smooth targets of them (200, 2)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    Y = np.stack([np.sin(X[:, 0]) + 0.5 * X[:, 1], X[:, 2] * X[:, 3] - X[:, 4]], axis=1)
    return X, Y


def _params(est) -> list[np.ndarray]:
    return [a for pair in est._model.host_params() for a in pair]


@pytest.mark.parametrize("backend,device", CPU_LIBRARIES, ids=[name for name, _ in CPU_LIBRARIES])
def test_fits_one_or_several_targets_and_answers_in_the_inputs_library(problem, backend, device):
    """On every library: y (n,) gives (n,) predictions, y (n, t) gives (n, t); the fit beats
    predicting the mean (R² well above 0) and agrees with NumPy's within float32 rounding."""
    X, Y = problem
    be = xpnet.api.model.backends.resolve(backend, device)
    Xd = be.asarray(X, "float32")
    yd = be.asarray(Y[:, 0], "float32")  # targets in the same library, on the same device
    one = MLPRegressor(**QUICK).fit(Xd, yd)
    pred = one.predict(Xd)
    assert type(pred) is type(Xd) and tuple(pred.shape) == (200,)
    assert one.score(Xd, yd) > 0.5 and one.n_outputs_ == 1
    two = MLPRegressor(**QUICK).fit(Xd, Y)
    assert tuple(two.predict(Xd).shape) == (200, 2) and two.n_outputs_ == 2
    assert two.score(X, Y) > 0.3
    on_numpy = MLPRegressor(**QUICK).fit(X.astype(np.float32), Y)
    np.testing.assert_allclose(
        xpnet.api.model.backends.to_host(two.predict(Xd)), on_numpy.predict(X.astype(np.float32)), atol=2e-3
    )


def test_the_loss_is_half_the_squared_error_and_the_score_is_sklearns_r2(problem):
    metrics = pytest.importorskip("sklearn.metrics")
    X, Y = problem
    reg = MLPRegressor(**QUICK, dtype="float64").fit(X, Y)
    pred = reg.predict(X)
    assert reg.score(X, Y) == pytest.approx(metrics.r2_score(Y, pred), rel=1e-12)
    w = np.random.default_rng(1).random(200)
    assert reg.score(X, Y, sample_weight=w) == pytest.approx(metrics.r2_score(Y, pred, sample_weight=w), rel=1e-12)
    constant = np.full(200, 3.0)  # a constant target: 1 only where matched exactly (scikit-learn's rule)
    assert reg._model.score(X[:, :5], np.c_[constant, constant]) == metrics.r2_score(np.c_[constant, constant], pred)
    full = MLPRegressor(hidden=(8,), epochs=1, batch_size=10**6, lr=1e-12, dtype="float64", threads=1).fit(X, Y)
    z = full.predict(X)  # one step of a tiny rate: the recorded loss is that of the initial network
    assert full.loss_curve_[0] == pytest.approx(0.5 * np.sum((z - Y) ** 2) / 200, rel=1e-6)


def test_validation_scores_are_the_r2_of_the_held_out_rows_and_early_stopping_watches_them(problem):
    X, Y = problem
    reg = MLPRegressor(**{**QUICK, "epochs": 12}, dtype="float64", validation=0.25).fit(X, Y)
    held = np.random.default_rng([0, VALIDATION_STREAM]).permutation(200)[-50:]
    assert len(reg.validation_scores_) == 12 and reg.best_validation_score_ == max(reg.validation_scores_)
    assert reg.validation_scores_[-1] == pytest.approx(reg.score(X[held], Y[held]), rel=1e-9)
    assert all(np.isfinite(reg.validation_loss_curve_)) and reg.best_loss_ is None
    stopped = MLPRegressor(hidden=(16,), epochs=400, lr=0.05, validation=0.25, early_stop=3, threads=1).fit(X, Y)
    assert stopped.n_iter_ < 400
    best = int(np.argmax(stopped.validation_scores_))
    assert stopped.score(X[held], Y[held]) == pytest.approx(stopped.validation_scores_[best], abs=1e-4)


def test_integer_weights_train_as_repeated_rows(problem):
    X, Y = problem
    w = np.random.default_rng(2).integers(1, 4, 200)
    settings = dict(hidden=(8,), epochs=5, batch_size=10**6, lr=0.01, dtype="float64", threads=1)
    weighed = MLPRegressor(**settings).fit(X, Y, sample_weight=w)
    again = np.repeat(np.arange(200), w)
    repeated = MLPRegressor(**settings).fit(X[again], Y[again])
    for p, q in zip(_params(weighed), _params(repeated)):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)


def test_partial_fit_calls_equal_fit_epochs(problem):
    X, Y = problem
    settings = dict(hidden=(8,), epochs=3, lr=0.01, dtype="float64", threads=1)
    fitted = MLPRegressor(**settings).fit(X, Y[:, 0])
    partial = MLPRegressor(**settings)
    for _ in range(3):
        partial.partial_fit(X, Y[:, 0])
    for p, q in zip(_params(fitted), _params(partial)):
        assert np.array_equal(p, q)
    with pytest.raises(ValueError, match="y has 2 targets, the first call's had 1"):
        partial.partial_fit(X, Y)


def test_checkpoint_load_and_onnx_keep_it_a_regressor(problem, tmp_path):
    X, Y = problem
    reg = MLPRegressor(**QUICK).fit(X.astype(np.float32), Y[:, 1])
    reg.save(tmp_path / "reg.npz")
    loaded = xpnet.load(tmp_path / "reg.npz")
    np.testing.assert_array_equal(loaded.predict(X.astype(np.float32)), reg.predict(X.astype(np.float32)))
    assert loaded.classes_ is None and loaded.predict(X).shape == (200,)
    assert loaded.score(X, Y[:, 1]) == pytest.approx(reg.score(X, Y[:, 1]), rel=1e-6)
    with pytest.raises(ValueError, match="a regressor predicts values, not class probabilities"):
        loaded.predict_proba(X)
    ort = pytest.importorskip("onnxruntime")
    reg.to_onnx(tmp_path / "reg.onnx")
    session = ort.InferenceSession(str(tmp_path / "reg.onnx"))
    (out,) = session.run(None, {"input": X.astype(np.float32)})
    assert [o.name for o in session.get_outputs()] == ["predictions"]
    np.testing.assert_allclose(out[:, 0], reg.predict(X.astype(np.float32)), rtol=1e-5, atol=1e-5)
    p = run_xpnet("export", "--model", str(tmp_path / "reg.npz"), "--onnx", str(tmp_path / "cli.onnx"))
    assert p.returncode == 0
    for command in ("evaluate", "predict"):
        extra = ["some.png"] if command == "predict" else []
        p = run_xpnet(command, "--model", str(tmp_path / "reg.npz"), *extra, check=False)
        assert_clean_error(p, "a regressor", f"xpnet {command} needs a classifier")


@pytest.mark.parametrize(
    "y,needle",
    [
        (np.array(["a"] * 200), "Unknown label type"),
        (np.r_[np.nan, np.zeros(199)], "NaN or infinity"),
        (np.zeros((200, 2, 2)), "(n_samples,) or (n_samples, n_targets)"),
        (np.zeros(7), "inconsistent numbers of samples"),
    ],
)
def test_bad_targets_are_refused_in_one_line(problem, y, needle):
    X, _ = problem
    with pytest.raises(ValueError) as e:
        MLPRegressor(**QUICK).fit(X, y)
    assert needle in str(e.value)


def test_parameters_leave_out_the_classifiers_and_take_sklearns_defaults():
    params = MLPRegressor().get_params()
    assert not {"output", "label_smoothing", "class_weight"} & set(params)
    assert (params["hidden"], params["optimizer"], params["lr"], params["epochs"]) == ((100,), "adam", 0.001, 200)
    with pytest.raises(TypeError):
        MLPRegressor(output="softmax")


@pytest.mark.slow
def test_diabetes_r2_at_least_sklearns_mlp_regressor():
    """5-fold R² of StandardScaler + MLPRegressor on load_diabetes, the same folds and hidden
    sizes: xpnet's (200 epochs of Adam at 0.01, batches of 32) at least scikit-learn's (Adam at
    0.01 until it converges, up to 2000 iterations)."""
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPRegressor as SklearnMLP
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert sklearn
    X, y = load_diabetes(return_X_y=True)
    folds = KFold(5, shuffle=True, random_state=0)
    theirs = SklearnMLP(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=2000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # their ConvergenceWarning, where it comes
        sk = cross_val_score(make_pipeline(StandardScaler(), theirs), X, y, cv=folds).mean()
    ours = cross_val_score(make_pipeline(StandardScaler(), MLPRegressor(hidden=(32,), lr=0.01)), X, y, cv=folds).mean()
    assert ours >= sk, (ours, sk)
    assert ours > 0.4
