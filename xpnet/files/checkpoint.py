"""Portable, pickle-free checkpoints: one .npz of plain arrays plus a JSON header.

Layout: ``W0, b0, W1, b1, ...`` (order-3 shapes, as trained), optimiser slots ``opt{k}_W{i}``,
``opt{k}_b{i}``, and ``meta``, the UTF-8 JSON of {format, spec, config, metrics, state, sha256}
stored as a uint8 array. ``sha256`` covers the rest of the metadata and every array's name, dtype,
shape and bytes: a checksum against damage, not a signature, so loading also checks every
metadata key against one schema (``_schema``) and reads each array only after its declared size
and .npy header match what the architecture implies. Anything unexpected is refused with a
one-line UserError naming the file. Saving refuses non-finite arrays (``NonFinite``) and writes
atomically (``atomic_write``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import re
import typing
import zipfile
import zlib
from pathlib import Path

import numpy as np

from xpnet import settings
from xpnet.backends import BACKENDS, DTYPES
from xpnet.engine import optim
from xpnet.engine.model import ACTIVATIONS, INITS, OUTPUTS, Spec, params_to_device
from xpnet.errors import UserError
from xpnet.files.atomic import atomic_write

FORMAT = "xpnet-checkpoint/1"
META_CAP = 16 << 20  # bytes of JSON metadata: tens of thousands of epoch records
HEADER_SLACK = 4096  # bytes a .npy header may take besides the data
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    MemoryError,
)


class NonFinite(UserError):
    """A save refused because an array holds NaN or infinite values; the file on disk is untouched."""


# ---- the metadata schema ---------------------------------------------------------------------


class _Bad(Exception):
    """Metadata that breaks the schema: which key, and what is wrong with it."""


def _show(v) -> str:
    """A value as JSON, short, for a one-line message."""
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _rule(test, what: str):
    """A rule from a predicate: ``rule(value, where)`` raises _Bad unless ``test(value)``."""

    def check(v, where):
        if not test(v):
            raise _Bad(f"{where} = {_show(v)}: expected {what}")

    return check


def _as_float(v) -> bool:
    """Whether ``v`` converts to a finite float (an int beyond 1.8e308 does not)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _number(kind, lo=None, hi=None):
    """An int (``kind`` int) or an int or float that is a finite float (``kind`` float), within [lo, hi]."""
    types = (int,) if kind is int else (int, float)

    def ok(v):
        return (
            isinstance(v, types)
            and not isinstance(v, bool)
            and (kind is int or _as_float(v))
            and (lo is None or v >= lo)
            and (hi is None or v <= hi)
        )

    span = "" if lo is None and hi is None else f" >= {lo}" if hi is None else f" in [{lo}, {hi}]"
    return _rule(ok, ("an integer" if kind is int else "a number") + span)


def _names(names):
    return _rule(lambda v: isinstance(v, str) and v in names, "one of " + ", ".join(names))


_STR = _rule(lambda v: isinstance(v, str), "a string")
_BOOL = _rule(lambda v: isinstance(v, bool), "true or false")


def _optional(rule):
    def check(v, where):
        if v is not None:
            rule(v, where)

    return check


def _list(item, min_len: int = 0):
    def check(v, where):
        if not isinstance(v, list) or len(v) < min_len:
            raise _Bad(f"{where} = {_show(v)}: expected a list of at least {min_len} items")
        for i, x in enumerate(v):
            item(x, f"{where}[{i}]")

    return check


def _table(fields: dict, required=(), then=None):
    """A JSON object whose keys are among ``fields`` (key -> rule), ``required`` ones present;
    ``then(value, where)`` checks the keys together."""

    def check(v, where):
        name = where or "metadata"
        if not isinstance(v, dict):
            raise _Bad(f"{name} = {_show(v)}: expected an object")
        for k in v:
            if k not in fields:
                raise _Bad(f"{name}: unknown key {_show(k)}")
        for k in required:
            if k not in v:
                raise _Bad(f"{name}: no {k!r}")
        for k, x in v.items():
            fields[k](x, f"{where}.{k}" if where else k)
        if then is not None:
            then(v, name)

    return check


def _rule_for(setting: settings.Setting):
    """The rule of a setting's stored value: its choices, or its type (int, float, str, bool, a
    list of ints); or null where its default is None. Its range: TrainConfig.check (``_train_config_checks``)."""
    rule = (
        _names(setting.choices)
        if setting.choices
        else {int: _number(int), float: _number(float), str: _STR, bool: _BOOL, tuple: _list(_number(int))}[
            setting.kind
        ]
    )
    return _optional(rule) if setting.default is None else rule


def _train_config_checks(train_config: type, table: dict, where: str) -> None:
    """What ``train_config.check`` (TrainConfig's) enforces: ranges, optimiser and schedule
    names...; its checks of the --save, --log and --plots paths aside: those files may be gone."""
    fields = {f.name for f in dataclasses.fields(train_config)}
    values = {k: v for k, v in table.items() if k in fields}
    try:
        train_config(**(values | {"save": None, "log": None, "plots": None})).check()
    except UserError as e:  # its message may quote a value: kept to one short line
        raise _Bad(f"{where}: {' '.join(str(e).splitlines())[:200]}") from None


@functools.cache
def _schema():
    """The one description of a checkpoint's metadata: every key, its type, range or names.
    Config keys, types and choices come from the settings' table; the names from xpnet's own lists."""
    size, fraction, nonneg = _number(int, 1, 2**31 - 1), _number(float, 0, 1), _number(float, 0)
    epoch, count, u128 = _number(int, 1, 2**63 - 1), _number(int, 0, 2**63 - 1), _number(int, 0, 2**128 - 1)
    spec = {
        "sizes": _list(size, 2),
        "activation": _names(ACTIVATIONS),
        "output": _names(OUTPUTS),
        "init": _names(("auto",) + INITS),
    }
    train_config = {name: _rule_for(setting) for name, setting in settings.SETTINGS.items()} | {
        "hidden": _list(size),
        "layers": _optional(_list(size, 2)),
        "image_shape": _list(size, 1),
        "num_classes": size,
    }
    epoch_record = {
        "epoch": epoch,
        "step": count,
        "loss": nonneg,
        "lr": nonneg,
        "seconds": nonneg,
        "samples_per_s": _number(float),
        "backend": _names(BACKENDS),
        "device": _STR,
        "train_accuracy": fraction,
        "val_accuracy": fraction,
        "val_r2": _number(float, hi=1),
        "val_loss": nonneg,
    }
    rng = {
        "bit_generator": _names((np.random.PCG64.__name__,)),
        "state": _table({"state": u128, "inc": u128}, ("state", "inc")),
        "has_uint32": _number(int, 0, 1),
        "uinteger": _number(int, 0, 2**32 - 1),
    }
    state = {
        "epoch": epoch,
        "step": count,
        "rng": _table(rng, tuple(rng)),
        "loss_partial": nonneg,
        "best_val": _number(float, hi=1),  # an accuracy, or a regressor's R²
        "best_val_loss": nonneg,
        "optimizer": _table({"name": _names(optim.OPTIMIZERS), "t": count}, ("name", "t")),
    }
    return _table(
        {
            "format": _names((FORMAT,)),
            "spec": _table(spec, tuple(spec)),
            "config": _table(train_config, then=functools.partial(_train_config_checks, settings.TrainConfig)),
            "metrics": _table({"history": _list(_table(epoch_record)), "test_accuracy": fraction}),
            "state": _table(state),
            "classes": _list(_rule(_is_label, "a class label: a string, an integer, a finite number or true/false"), 2),
            "regression": _table({"targets": size, "flat": _BOOL}, ("targets", "flat")),
            "sha256": _rule(lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v), "64 hex digits"),
        },
        ("format", "spec", "sha256"),
    )


def _is_label(v) -> bool:
    """Whether ``v`` may be a class label (``MLPClassifier.classes_`` in JSON)."""
    return isinstance(v, (str, bool, int)) or (isinstance(v, float) and math.isfinite(v))


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def _meta_from_json(data: bytes) -> dict:
    """The metadata parsed and checked against the schema; _Bad (one line) when it is not valid."""
    if len(data) > META_CAP:
        raise _Bad(f"corrupt checkpoint metadata (over {META_CAP} bytes)")
    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise _Bad(f"corrupt checkpoint metadata (not JSON: {str(e)[:80]})") from None
    if isinstance(meta, dict) and meta.get("format") != FORMAT:
        raise _Bad(f"unsupported checkpoint format {_show(meta.get('format'))} (this xpnet reads {FORMAT})")
    try:
        _schema()(meta, "")
    except _Bad as e:
        raise _Bad(f"corrupt checkpoint metadata ({e})") from None
    return meta


# ---- saving ----------------------------------------------------------------------------------


def _digest(arrays: dict[str, np.ndarray], meta: dict) -> str:
    """SHA-256 over the metadata (but its own checksum) and every array's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(
    path,
    spec: Spec,
    params,
    config: dict,
    metrics: dict | None = None,
    state: dict | None = None,
    slots=None,
    classes: list | None = None,
    regression: dict | None = None,
) -> None:
    """Save host parameters [(W, b), ...] (NumPy arrays), the spec, config, metrics and the
    training state needed to resume (epoch, step, host rng state, optimiser settings), with the
    optimiser's slot arrays ``slots`` ([[W slots, b slots], ...], as in optim.init_state), and
    the labels of the outputs when they are not 0..K-1 (``classes``, JSON scalars), or for a
    regressor its targets ({"targets": t, "flat": whether y was 1-D}).
    Raises NonFinite, writing nothing, when an array or a metadata number is NaN or infinite."""
    arrays = {}
    for i, (W, b) in enumerate(params):
        arrays[f"W{i}"] = np.asarray(W)
        arrays[f"b{i}"] = np.asarray(b)
    for i, pair in enumerate(slots or []):
        for name, slot in zip("Wb", pair):
            for k, a in enumerate(slot):
                arrays[f"opt{k}_{name}{i}"] = np.asarray(a)
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise NonFinite(f"{path}: not saved: {name} holds NaN or infinite values")
    meta = {
        "format": FORMAT,
        "spec": {"sizes": list(spec.sizes), "activation": spec.activation, "output": spec.output, "init": spec.init},
        "config": config,
        "metrics": metrics or {},
        "state": state or {},
    }
    if classes is not None:
        meta["classes"] = list(classes)
    if regression is not None:
        meta["regression"] = dict(regression)
    meta["sha256"] = _digest(arrays, meta)
    try:
        text = json.dumps(meta, allow_nan=False).encode()
    except ValueError:
        raise NonFinite(f"{path}: not saved: the metadata holds NaN or infinite numbers") from None
    try:
        _meta_from_json(text)  # never write what load would refuse
    except _Bad as e:
        raise ValueError(f"{path}: checkpoint metadata breaks the schema: {e}") from None
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(text, dtype=np.uint8), **arrays)
    try:
        atomic_write(path, buf.getvalue())
    except OSError as e:
        raise UserError(f"{path}: cannot write checkpoint ({e.strerror or e})") from None


class Saved(typing.NamedTuple):
    """A checkpoint as loaded, or a run's state as one would hold it (``training.start_state``
    goes on from either): the architecture, the parameters on the host and the metadata."""

    spec: Spec
    params: list  # [(W (1, out, in), b (1, out, 1)), ...] NumPy arrays, first layer first
    meta: dict  # the schema-checked metadata; "slots": the optimiser's arrays, or None

    @property
    def dtype(self) -> str:
        """The dtype the network was trained in: its settings', else its parameters' (float32
        for a model saved from other floats)."""
        stored = self.meta.get("config", {}).get("dtype")
        if stored in DTYPES:
            return stored
        kind = str(self.params[0][0].dtype)
        return kind if kind in DTYPES else "float32"

    def params_on(self, backend, dtype: str | None = None) -> tuple[list, str]:
        """(the parameters on ``backend``'s device in ``dtype`` or the training dtype, that dtype)."""
        dtype = dtype or self.dtype
        return params_to_device(backend, self.params, dtype), dtype


def load(path) -> Saved:
    """Load and verify a checkpoint. Never executes code; reads no more bytes than the
    architecture in its (schema-checked) metadata implies."""
    path = Path(path)
    _check_magic(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = _members(path, zf)
            if "meta" not in members:
                raise UserError(f"{path}: not an xpnet checkpoint (no metadata)")
            raw = _read_npy(path, zf, members.pop("meta"), "meta", ("uint8",))
            try:
                meta = _meta_from_json(raw.tobytes())
            except _Bad as e:
                raise UserError(f"{path}: {e}") from None
            s = meta["spec"]
            spec = Spec(tuple(s["sizes"]), s["activation"], s["output"], s["init"])
            if "classes" in meta and len(meta["classes"]) != spec.sizes[-1]:
                raise UserError(f"{path}: {len(meta['classes'])} class labels for {spec.sizes[-1]} outputs")
            regression = meta.get("regression")
            if regression is not None and (
                "classes" in meta or spec.output != "identity" or regression["targets"] != spec.sizes[-1]
            ):
                raise UserError(
                    f"{path}: a regressor needs the identity output, {spec.sizes[-1]} targets and no class labels"
                )
            opt = meta.get("state", {}).get("optimizer", {}).get("name")
            n_slots = optim.SLOTS[opt] if opt and any(name.startswith("opt") for name in members) else 0
            expected = _expected_shapes(spec, n_slots)
            if set(members) != set(expected):
                names = [name[:40] for name in sorted(members)[:20]]
                raise UserError(f"{path}: arrays {names} do not match the architecture {list(spec.sizes)}")
            arrays = {name: _read_npy(path, zf, members[name], name, DTYPES, shape) for name, shape in expected.items()}
    except _READ_ERRORS as e:
        raise UserError(
            f"{path}: not an xpnet checkpoint (not a readable .npz: {type(e).__name__}: {str(e)[:120]})"
        ) from None
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise UserError(f"{path}: {name} holds NaN or infinite values")
    if meta["sha256"] != _digest(arrays, meta):
        raise UserError(f"{path}: checksum mismatch: the checkpoint was modified or damaged")
    layers = range(len(spec.sizes) - 1)
    params = [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in layers]
    meta["slots"] = (
        [[[arrays[f"opt{k}_{p}{i}"] for k in range(n_slots)] for p in "Wb"] for i in layers] if n_slots else None
    )
    return Saved(spec, params, meta)


def _check_magic(path: Path) -> None:
    """A readable file that starts as a zip archive does."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise UserError(f"{path}: cannot read checkpoint ({e.strerror or e})") from None
    if magic != b"PK\x03\x04":
        raise UserError(f"{path}: not an xpnet checkpoint (not an .npz archive)")


def _members(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name: each a stored or deflated ``NAME.npy``, named once,
    with sizes the archive can hold."""
    size = path.stat().st_size
    out = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise UserError(f"{path}: not an xpnet checkpoint (member {name[:60]!r} is not a .npy array)")
        if name[:-4] in out:
            raise UserError(f"{path}: not an xpnet checkpoint (member {name[:60]!r} appears twice)")
        if info.flag_bits & 1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UserError(
                f"{path}: not an xpnet checkpoint (member {name[:60]!r} is encrypted or compressed "
                f"with an unsupported method)"
            )
        if info.compress_size > size or (
            info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size
        ):
            raise UserError(
                f"{path}: not an xpnet checkpoint (member {name[:60]!r} declares sizes the file cannot hold)"
            )
        out[name[:-4]] = info
    return out


def _expected_shapes(spec: Spec, n_slots: int) -> dict[str, tuple]:
    """Every array's name and shape: the parameters and ``n_slots`` optimiser slots of each."""
    expected = {}
    for i, (wshape, bshape) in enumerate(spec.param_shapes()):
        expected[f"W{i}"], expected[f"b{i}"] = wshape, bshape
    for k in range(n_slots):
        expected.update(
            {f"opt{k}_{name}": shape for name, shape in list(expected.items()) if not name.startswith("opt")}
        )
    return expected


def _read_npy(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, dtypes, shape=None) -> np.ndarray:
    """Member ``name``: a .npy of one of ``dtypes`` and exactly ``shape`` (None: 1-D, at most
    META_CAP items). Its declared size is checked before anything is decompressed, its header
    before anything is allocated."""
    itemsize = max(np.dtype(d).itemsize for d in dtypes)
    limit = HEADER_SLACK + itemsize * (math.prod(shape) if shape is not None else META_CAP)
    if info.file_size > limit:
        raise UserError(
            f"{path}: refused: {name} would inflate to {info.file_size} bytes, its shape allows at most {limit}"
        )
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise UserError(f"{path}: {name} is a .npy of unsupported version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        got, fortran, dtype = read_header(f, max_header_size=HEADER_SLACK)
        if dtype.hasobject:
            raise UserError(f"{path}: refused: {name} holds Python objects, which would need pickle")
        if dtype.name not in dtypes or (got != shape if shape is not None else len(got) != 1 or got[0] > META_CAP):
            need = (
                f"the architecture needs {shape} floats"
                if shape is not None
                else f"expected a 1-D uint8 array of at most {META_CAP} bytes"
            )
            raise UserError(f"{path}: {name} has shape {got} {dtype}, {need}")
        nbytes = math.prod(got) * dtype.itemsize
        if info.file_size - f.tell() != nbytes:
            raise UserError(f"{path}: {name} is truncated or has extra bytes")
        buf = np.empty(nbytes, np.uint8)
        if f.readinto(memoryview(buf)) != nbytes or f.read(1):  # reading to the end checks the CRC
            raise UserError(f"{path}: {name} is truncated or has extra bytes")
    return buf.view(dtype).reshape(got, order="F" if fortran else "C")
