"""A Python API caller's arrays: checked, put on the backend that computes, and results given
back in the caller's array library and on its device.

Features X: an array of any array-API library (NumPy, CuPy, PyTorch, JAX, array-api-strict;
anything else ``numpy.asarray`` reads), shaped (n, features), (n, height, width) or the order-3
(n, features, 1). uint8 values are pixels and stay bytes on the device (divided by 255 a chunk
at a time, as xpnet's own data); floats, other integers and booleans become the model's float
type. Labels y: any array or sequence of n labels, read on the host.

The backend is the input's library and device unless ``backend`` / ``device`` say otherwise;
an input already there is used in place (no copy through the host).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from xpnet import backends
from xpnet.backends import Backend


@dataclass
class Features:
    """Checked features: ``x`` (n, features) on ``backend`` (uint8, or floats of the asked
    dtype), ``image_shape`` ((height, width), or (features,)), and ``home``: the caller's
    namespace and device, where results go back (``back``)."""

    x: object
    backend: Backend
    image_shape: tuple
    home: tuple

    def back(self, a):
        """A result on ``backend`` -> the same in the caller's namespace, on its device."""
        xp, dev = self.home
        if backends.library_of(a) == self.backend.name and xp is self.backend.xp and dev == self.backend.device:
            return a
        host = backends.to_host(a)
        if xp is None:
            return host
        return xp.asarray(host if host.flags.writeable else host.copy(), device=dev)  # (torch refuses read-only views)


def features(
    X,
    dtype: str,
    backend: str | None = None,
    device: str | None = None,
    tf32: bool = False,
    image_shape=None,
    expect: int | None = None,
    who: str = "MLPClassifier",
) -> Features:
    """X checked and on its backend (see the module's text); ValueError or TypeError saying
    what is wrong. ``expect``: the feature count a fitted model needs."""
    home = _home(X)
    X = _array(X, who)
    n, f, shape = _shape(X, image_shape, expect, who)
    be = choose(X, backend, device, tf32)
    x = be.adopt(X)
    x = be.xp.reshape(x, (n, f)) if len(x.shape) != 2 else x
    return Features(_numbers(be, x, dtype), be, shape, home)


def choose(X, backend: str | None, device: str | None, tf32: bool = False) -> Backend:
    """The Backend for input X: its own library and device, unless ``backend`` or ``device``
    (as ``xpnet train``'s flags) say otherwise; ValueError when that cannot be had."""
    lib, here = backends.library_of(X), backends.device_of(X)
    name = backend if backend is not None else lib if device is None or backends.runs_on(lib, device) else None
    dev = device if device is not None else here if name == lib else "auto"
    if name is not None and name == lib and dev == here:
        return backends.of_array(X, tf32)
    return backends.resolve(name, dev, tf32)


def _array(X, who: str):
    """X as an array of its library (sparse matrices refused, anything else through NumPy)."""
    if X is None:
        raise ValueError(f"{who}: X is None; expected an array of shape (n, features)")
    if hasattr(X, "toarray") or type(X).__module__.startswith(("scipy.sparse", "sparse")):
        raise TypeError(f"{who} does not take sparse input ({type(X).__name__}); convert it with X.toarray()")
    if backends.library_of(X) is None:
        try:  # another array-API library: through DLPack, else as NumPy reads it
            X = np.from_dlpack(X)
        except (AttributeError, TypeError, RuntimeError, BufferError, ValueError):
            try:
                X = np.asarray(X)
            except ValueError as e:  # rows of different lengths
                raise ValueError(f"{who}: X is not a table of numbers ({str(e).splitlines()[0]})") from None
    X = backends.plain(X)
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS":
        try:
            X = X.astype(np.float64)  # numbers stored as objects or text
        except (TypeError, ValueError) as e:  # the same kind of error, naming X
            raise type(e)(f"{who}: X holds a value that is not a number ({e})") from None
    return X


def _shape(X, image_shape, expect: int | None, who: str):
    """(n, features, image shape) of X; ValueError for shapes xpnet cannot use."""
    dims = tuple(int(d) for d in X.shape)
    if len(dims) == 1 or len(dims) == 0:
        raise ValueError(
            f"{who}: expected a 2D array (n, features), got a {len(dims)}D array of shape {dims}. "
            "Reshape your data either using array.reshape(-1, 1) if your data has a single feature "
            "or array.reshape(1, -1) if it contains a single sample."
        )
    if len(dims) > 3:
        raise ValueError(f"{who}: expected (n, features), (n, height, width) or (n, features, 1), got shape {dims}")
    order3 = len(dims) == 3 and dims[2] == 1
    f = dims[1] if order3 else int(np.prod(dims[1:]))
    if dims[0] == 0:
        raise ValueError(f"{who}: Found array with 0 sample(s) (shape={dims}) while a minimum of 1 is required.")
    if f == 0:
        raise ValueError(f"{who}: Found array with 0 feature(s) (shape={dims}) while a minimum of 1 is required.")
    if expect is not None and f != expect:
        raise ValueError(f"X has {f} features, but {who} is expecting {expect} features as input.")
    shape = (f,) if len(dims) == 2 or order3 else dims[1:]
    if image_shape is not None:
        if int(np.prod(image_shape)) != f:
            raise ValueError(
                f"{who}: image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} pixels, X has {f} features"
            )
        shape = tuple(int(s) for s in image_shape)
    return dims[0], f, shape


def _home(X) -> tuple:
    """(namespace, device) of X, where results go; (None, None) for NumPy arrays and anything
    that is not an array-API array (lists, data frames): results as NumPy arrays."""
    from array_api_compat import array_namespace, device

    if backends.library_of(X) == "numpy":
        return None, None
    try:
        return array_namespace(X), device(X)
    except TypeError:
        return None, None


def _numbers(be: Backend, x, dtype: str):
    """x (n, f) as uint8 (pixels) or ``dtype`` floats, all finite; ValueError otherwise."""
    xp = be.xp
    if x.dtype == xp.uint8:
        return x
    if xp.isdtype(x.dtype, "complex floating"):
        raise ValueError("Complex data not supported")
    if not xp.isdtype(x.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"X has dtype {x.dtype}; expected numbers (floats, integers, booleans)")
    if x.dtype != getattr(xp, dtype):
        x = xp.astype(x, getattr(xp, dtype))
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"Input X contains NaN or inf (or values too large for {dtype})")
    return x


def labels(y, n: int, who: str = "MLPClassifier", name: str = "y") -> np.ndarray:
    """y as a host array of n labels; ValueError for missing, misshapen, non-finite or
    continuous labels (a column vector is accepted with a DataConversionWarning)."""
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None")
    y = _one_kind(y, on_host(y), who)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape of y "
            "to (n_samples,), for example using ravel().",
            _conversion_warning(),
            stacklevel=3,
        )
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{who}: {name} should be a 1d array of labels, got an array of shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if np.any(y != np.round(y)):
            raise ValueError(
                "Unknown label type: continuous. A classifier takes classes: integers, strings "
                "or other discrete labels, not continuous values."
            )
    if y.dtype.kind == "c":
        raise ValueError("Unknown label type: complex")
    if y.dtype.kind == "O":
        try:
            np.unique(y)
        except TypeError as e:  # labels that cannot be sorted into classes_ (dicts, lists, None)
            raise TypeError(f"{who}: y holds labels that cannot be ordered into classes ({e})") from None
    return y


def targets(y, n: int, who: str = "MLPRegressor") -> tuple[np.ndarray, bool]:
    """A regressor's y, (n,) or (n, t), as host float64 targets (n, t) and whether it was 1-D;
    ValueError for missing, misshapen, non-numeric or non-finite targets."""
    if y is None:
        raise ValueError(f"{who} requires y to be passed, but the target y is None")
    given = on_host(y)
    not_numbers = ValueError(f"{who}: Unknown label type: y must hold real numbers, not {given.dtype} values")
    if given.dtype.kind not in "biufO":
        raise not_numbers
    try:
        as_floats = np.asarray(given, dtype=np.float64)  # objects holding numbers are numbers
    except (TypeError, ValueError):
        raise not_numbers from None
    if given.ndim not in (1, 2) or given.ndim == 2 and given.shape[1] < 1:
        raise ValueError(f"{who}: y should be (n_samples,) or (n_samples, n_targets), got shape {given.shape}")
    if given.shape[0] != n:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {given.shape[0]}]")
    out = as_floats.reshape(n, -1)
    if not np.all(np.isfinite(out)):
        raise ValueError("Input y contains NaN or infinity.")
    return out, given.ndim == 1


def _one_kind(given, y: np.ndarray, who: str) -> np.ndarray:
    """Labels ``y`` (``given`` as NumPy read it) checked to be of one kind: no None, not strings
    mixed with numbers (NumPy would make them all strings, and 9 would come back as '9')."""
    if not (isinstance(given, (list, tuple)) or y.dtype.kind == "O") or y.ndim != 1:
        return y
    values = list(given) if isinstance(given, (list, tuple)) else y.tolist()
    missing = next((i for i, v in enumerate(values) if v is None), None)
    if missing is not None:
        raise ValueError(f"{who}: y holds None at row {missing}: every sample needs a label")
    text = [isinstance(v, (str, bytes)) for v in values]
    if any(text) and not all(text):
        i, j = text.index(True), text.index(False)
        raise ValueError(
            f"{who}: y mixes text and numbers (row {i} is {values[i]!r}, row {j} is {values[j]!r}): "
            "give labels of one kind"
        )
    return np.asarray(values) if y.dtype.kind == "O" else y


def weights(sample_weight, n: int, who: str) -> np.ndarray:
    """``sample_weight`` as n finite, non-negative host floats, not all zero; ValueError naming
    it otherwise."""
    try:
        w = np.asarray(on_host(sample_weight), dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}: sample_weight holds a value that is not a number ({e})") from None
    if w.shape != (n,):
        raise ValueError(f"{who}: sample_weight has shape {w.shape}; expected ({n},), one weight per sample")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{who}: sample_weight must be finite and >= 0")
    if not np.any(w > 0):
        raise ValueError(f"{who}: sample_weight is zero for every sample: nothing to weigh")
    return w


def on_host(a) -> np.ndarray:
    """An array of any library, or a sequence, as a NumPy array."""
    return backends.to_host(backends.plain(a)) if backends.library_of(a) is not None else np.asarray(a)


def _conversion_warning():
    """scikit-learn's DataConversionWarning where scikit-learn is installed, else UserWarning."""
    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:
        return UserWarning
    return DataConversionWarning


def encode(y: np.ndarray, classes: np.ndarray, who: str = "MLPClassifier") -> np.ndarray:
    """Host labels -> their indices (int64) in the sorted ``classes``; ValueError for others."""
    codes = np.searchsorted(classes, y)
    codes = np.minimum(codes, len(classes) - 1)
    bad = classes[codes] != y
    if np.any(bad):
        raise ValueError(
            f"{who}: y holds labels not among classes_ {list(classes)[:10]}: "
            f"{sorted(set(np.asarray(y)[bad].tolist()), key=str)[:10]}"
        )
    return codes.astype(np.int64)
