"""Sample and class weights: ``sample_weight`` in fit and partial_fit, ``class_weight`` on
MLPClassifier, ``--class-weight`` on ``xpnet train``, with scikit-learn's meaning (a step's
loss and gradient are the weighted mean over its batch). Exact where that is exact: with the
whole training set in one batch an integer weight is that many copies of the row and a zero
weight is no row, on every array library."""

import numpy as np
import pytest

from xpnet import MLPClassifier, backends
from xpnet.api.estimator import VALIDATION_STREAM
from xpnet.engine import data, evaluate, model

from helpers import COMBOS, assert_clean_error, write_idx, xpnet

FULL_BATCH = dict(hidden=(16,), epochs=4, batch_size=10**6, lr=0.5, lr_schedule="constant", dtype="float64", threads=1)
CPU_LIBRARIES = [(name, device) for name, device, needs_gpu in COMBOS if not needs_gpu]


@pytest.fixture(scope="module")
def rows(mnist):
    """600 MNIST training rows as floats (600, 784) and their labels."""
    return mnist.train.images[:600].reshape(600, -1) / 255.0, mnist.train.labels[:600]


def _params(clf) -> list[np.ndarray]:
    return [a for pair in clf._model.host_params() for a in pair]


def _assert_same_network(a, b, tol=1e-10):
    for p, q in zip(_params(a), _params(b)):
        np.testing.assert_allclose(p, q, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend,device", CPU_LIBRARIES, ids=[name for name, _ in CPU_LIBRARIES])
def test_integer_weights_train_as_repeated_rows(rows, backend, device):
    X, y = rows
    w = np.random.default_rng(1).integers(1, 4, y.shape[0])
    weighed = MLPClassifier(**FULL_BATCH, backend=backend, device=device).fit(X, y, sample_weight=w)
    again = np.repeat(np.arange(y.shape[0]), w)
    repeated = MLPClassifier(**FULL_BATCH, backend=backend, device=device).fit(X[again], y[again])
    _assert_same_network(weighed, repeated)
    np.testing.assert_allclose(weighed.loss_curve_, repeated.loss_curve_, rtol=1e-12)


@pytest.mark.parametrize("backend,device", CPU_LIBRARIES, ids=[name for name, _ in CPU_LIBRARIES])
def test_zero_weights_train_as_dropped_rows(rows, backend, device):
    X, y = rows
    keep = np.random.default_rng(2).random(y.shape[0]) < 0.7
    weighed = MLPClassifier(**FULL_BATCH, backend=backend, device=device).fit(X, y, sample_weight=keep * 1.0)
    dropped = MLPClassifier(**FULL_BATCH, backend=backend, device=device).fit(X[keep], y[keep])
    _assert_same_network(weighed, dropped)
    unweighed = MLPClassifier(**FULL_BATCH, backend=backend, device=device).fit(X, y)
    assert not np.allclose(_params(weighed)[0], _params(unweighed)[0], atol=1e-6)


def test_weights_in_mini_batches_do_not_depend_on_their_scale(rows):
    """Scaling every weight by a constant changes nothing (each step divides by its rows times
    the mean weight), in mini-batches too; uniform weights train as no weights."""
    X, y = rows
    settings = dict(hidden=(16,), epochs=2, batch_size=32, dtype="float64", threads=1)
    w = np.random.default_rng(3).random(y.shape[0]) + 0.1
    a = MLPClassifier(**settings).fit(X, y, sample_weight=w)
    b = MLPClassifier(**settings).fit(X, y, sample_weight=w * 7.0)
    _assert_same_network(a, b, 1e-9)
    _assert_same_network(
        MLPClassifier(**settings).fit(X, y, sample_weight=np.ones(600)), MLPClassifier(**settings).fit(X, y)
    )


def test_class_weight_dict_is_the_sample_weight_of_each_rows_class(rows):
    X, y = rows
    per_class = {0: 3.0, 7: 0.0, 9: 0.5}
    by_class = MLPClassifier(**FULL_BATCH, class_weight=per_class).fit(X, y)
    by_row = MLPClassifier(**FULL_BATCH).fit(X, y, sample_weight=[per_class.get(c, 1.0) for c in y])
    _assert_same_network(by_class, by_row, 1e-12)
    both = MLPClassifier(**FULL_BATCH, class_weight=per_class).fit(X, y, sample_weight=np.full(600, 2.0))
    _assert_same_network(both, by_row, 1e-12)


def test_balanced_weighs_class_c_by_n_over_classes_times_n_c():
    labels = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(data.class_weights(labels, "balanced"), [6 / 9, 6 / 3, 6 / 6])
    assert data.class_weights(labels, "none") is None
    np.testing.assert_allclose(data.class_weights(np.array([0, 2, 2]), "balanced"), [3 / 2, 1.0, 3 / 4])


def test_each_step_is_an_unbiased_estimate_of_the_weighted_mean_gradient(rows):
    """A step divides its rows' weighted error by its rows times the training set's mean
    weight, not by its own sum of weights: over every one-row batch of an epoch at a tiny
    learning rate (plain SGD, nearly linear), the network moves as one full-batch step of the
    weighted mean gradient does. A batch of light rows is not scaled up to a full step (as
    scikit-learn's per-batch normalisation would)."""
    X, y = rows
    X, y = X[:60], y[:60]
    w = np.random.default_rng(6).choice([1e-3, 1.0, 5.0], 60)
    lr = 1e-4
    settings = dict(hidden=(8,), epochs=1, lr_schedule="constant", dtype="float64", threads=1)
    start = _params(MLPClassifier(**settings, lr=lr, batch_size=60).fit(X, y, sample_weight=w))
    one_row = _params(MLPClassifier(**settings, lr=lr / 60, batch_size=1).fit(X, y, sample_weight=w))
    init = _params(MLPClassifier(**{**settings, "epochs": 0}).fit(X, y))
    for full, rowwise, first in zip(start, one_row, init):  # per-batch normalisation misses by 50-60%
        assert np.linalg.norm(rowwise - full) < 0.02 * np.linalg.norm(full - first)


def test_partial_fit_with_weights_is_fits_first_epoch(rows):
    X, y = rows
    w = np.random.default_rng(4).random(y.shape[0])
    settings = dict(hidden=(16,), epochs=1, batch_size=50, dtype="float64", threads=1)
    fitted = MLPClassifier(**settings).fit(X, y, sample_weight=w)
    partial = MLPClassifier(**settings).partial_fit(X, y, classes=np.arange(10), sample_weight=w)
    _assert_same_network(fitted, partial, 1e-12)


def test_validation_accuracy_and_loss_are_weighted(mnist):
    """``evaluate.accuracy_and_loss`` with a split's weights: the weighted accuracy and the
    weighted mean loss, as computed by hand on the host."""
    be = backends.resolve("numpy", "cpu")
    spec = model.Spec((784, 12, 10))
    params = model.params_to_device(be, model.init_params_host(spec, np.random.default_rng(0)), "float64")
    n = 3000  # more than one evaluation chunk
    split = data.Split(mnist.test.images[:n], mnist.test.labels[:n])
    w = np.random.default_rng(5).random(n)
    dev = data.to_device(be, split, "float64", weights=w)
    correct, total, loss = evaluate.accuracy_and_loss(params, dev, spec, "float64")
    z = evaluate.logits(params, dev, spec, "float64")
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    assert total == pytest.approx(w.sum())
    assert correct / total == pytest.approx(np.average(z.argmax(1) == split.labels, weights=w), rel=1e-12)
    assert loss == pytest.approx(np.average(-log_p[np.arange(n), split.labels], weights=w), rel=1e-12)


def _imbalanced(mnist, rare=12, common=400):
    """MNIST training rows with ``common`` images of digits 0-4 and ``rare`` of 5-9."""
    labels = mnist.train.labels
    pick = np.concatenate([np.flatnonzero(labels == d)[: common if d < 5 else rare] for d in range(10)])
    pick = np.random.default_rng(0).permutation(pick)
    return mnist.train.images[pick], labels[pick]


def test_balanced_class_weight_raises_balanced_accuracy_on_imbalanced_mnist(mnist):
    metrics = pytest.importorskip("sklearn.metrics")
    images, labels = _imbalanced(mnist)
    X = images.reshape(len(labels), -1) / 255.0
    settings = dict(hidden=(64,), epochs=8, batch_size=32, lr=0.1, threads=1)
    test_X, test_y = mnist.test.images.reshape(10000, -1) / 255.0, mnist.test.labels
    plain = MLPClassifier(**settings).fit(X, labels)
    balanced = MLPClassifier(**settings, class_weight="balanced").fit(X, labels)
    score = {
        name: metrics.balanced_accuracy_score(test_y, clf.predict(test_X))
        for name, clf in (("plain", plain), ("balanced", balanced))
    }
    assert score["balanced"] > score["plain"] + 0.05, score


def test_class_weight_balanced_flag_raises_test_accuracy_on_imbalanced_mnist(mnist, tmp_path):
    """``xpnet train --class-weight balanced`` on an imbalanced training set (MNIST's test set,
    nearly balanced, scores it): a higher test accuracy; the setting is stored in the checkpoint."""
    images, labels = _imbalanced(mnist)
    for name, arr in (
        ("train-images-idx3-ubyte", images),
        ("train-labels-idx1-ubyte", labels.astype(np.uint8)),
        ("t10k-images-idx3-ubyte", mnist.test.images),
        ("t10k-labels-idx1-ubyte", mnist.test.labels.astype(np.uint8)),
    ):
        write_idx(tmp_path / name, arr)
    common = ["train", "--data-dir", str(tmp_path), "--hidden", "64", "--epochs", "8", "--lr", "0.1"]
    common += ["--validation", "0", "--threads", "1"]
    accuracy = {}
    for kind in ("none", "balanced"):
        p = xpnet(*common, "--class-weight", kind, "--save", str(tmp_path / f"{kind}.npz"))
        accuracy[kind] = float(p.stdout.split("test accuracy: ")[1].split("%")[0])
    assert accuracy["balanced"] > accuracy["none"] + 5.0, accuracy
    from xpnet.files import checkpoint

    assert checkpoint.load(tmp_path / "balanced.npz").meta["config"]["class_weight"] == "balanced"


def test_class_weight_flag_refuses_an_unknown_kind():
    assert_clean_error(xpnet("train", "--class-weight", "inverse", check=False), "--class-weight", "balanced")


@pytest.mark.parametrize(
    "class_weight,error,needle",
    [
        ("inverse", ValueError, "class_weight='inverse'"),
        ([1, 2], TypeError, "class_weight=[1, 2]"),
        ({0: -1.0}, ValueError, "class_weight[0]"),
        ({0: float("nan")}, ValueError, "class_weight[0]"),
        ({0: "2"}, ValueError, "class_weight[0]"),
        ({"zero": 1.0}, ValueError, "'zero' is not a class"),
    ],
)
def test_bad_class_weight_is_refused_before_any_work(rows, class_weight, error, needle):
    X, y = rows
    with pytest.raises(error) as e:
        MLPClassifier(hidden=(4,), epochs=1, class_weight=class_weight).fit(X, y)
    assert needle in str(e.value)


def test_partial_fit_refuses_balanced(rows):
    X, y = rows
    with pytest.raises(ValueError, match="partial_fit"):
        MLPClassifier(hidden=(4,), class_weight="balanced").partial_fit(X, y, classes=np.arange(10))


@pytest.mark.parametrize(
    "sample_weight,needle",
    [
        (np.ones(5), "shape (5,)"),
        (np.full(600, -1.0), ">= 0"),
        (np.r_[np.nan, np.ones(599)], "finite"),
        (np.zeros(600), "zero for every sample"),
    ],
)
def test_bad_sample_weight_in_fit_is_refused(rows, sample_weight, needle):
    X, y = rows
    with pytest.raises(ValueError) as e:
        MLPClassifier(hidden=(4,), epochs=1).fit(X, y, sample_weight=sample_weight)
    assert "sample_weight" in str(e.value) and needle in str(e.value)


def test_a_training_split_that_weighs_nothing_is_refused(rows):
    """The weights are not all 0, but those of the rows left after the validation split are."""
    X, y = rows
    clf = MLPClassifier(hidden=(4,), epochs=1, validation=0.5, random_state=0)
    held_out = np.random.default_rng([0, VALIDATION_STREAM]).permutation(600)[-300:]  # fit's validation rows
    w = np.zeros(600)
    w[held_out] = 1.0
    with pytest.raises(ValueError, match="training split weighs 0"):
        clf.fit(X, y, sample_weight=w)
