"""Portable, pickle-free checkpoints: one .npz of plain arrays plus a JSON header.

Layout: ``W0, b0, W1, b1, ...`` (order-3 shapes, as trained) and ``meta``, the
UTF-8 JSON of {format, spec, config, metrics, sha256} stored as a uint8 array.
``sha256`` covers the rest of the metadata and every parameter array's name, dtype, shape and bytes.
Files are written atomically (temporary file, fsync, rename) and loaded with
``allow_pickle=False``; anything unexpected is refused with a UserError.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError
from . import optim
from .model import Spec

FORMAT = "xpnet-checkpoint/1"


def _digest(arrays: dict[str, np.ndarray], meta: dict) -> str:
    """SHA-256 over the metadata (but its own checksum) and every array's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save(path, spec: Spec, params, config: dict, metrics: dict | None = None, state: dict | None = None,
         slots=None) -> None:
    """Save host parameters [(W, b), ...] (NumPy arrays), the spec, config, metrics and the
    training state needed to resume (epoch, step, host rng state, optimiser settings), with the
    optimiser's slot arrays ``slots`` ([[W slots, b slots], ...], as in optim.init_state)."""
    arrays = {}
    for i, (W, b) in enumerate(params):
        arrays[f"W{i}"] = np.asarray(W)
        arrays[f"b{i}"] = np.asarray(b)
    for i, pair in enumerate(slots or []):
        for name, slot in zip("Wb", pair):
            for k, a in enumerate(slot):
                arrays[f"opt{k}_{name}{i}"] = np.asarray(a)
    meta = {
        "format": FORMAT,
        "spec": {"sizes": list(spec.sizes), "activation": spec.activation, "output": spec.output, "init": spec.init},
        "config": config,
        "metrics": metrics or {},
        "state": state or {},
    }
    meta["sha256"] = _digest(arrays, meta)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    try:
        atomic_write(path, buf.getvalue())
    except OSError as e:
        raise UserError(f"{path}: cannot write checkpoint ({e.strerror or e})") from None


def load(path) -> tuple[Spec, list[tuple[np.ndarray, np.ndarray]], dict]:
    """Load and verify a checkpoint: (spec, host params, meta). Never executes code."""
    path = Path(path)
    arrays, meta = _read(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: unsupported checkpoint format {meta.get('format')!r} (this xpnet reads {FORMAT})")
    try:
        s = meta["spec"]
        spec = Spec(tuple(int(v) for v in s["sizes"]), s["activation"], s["output"], s["init"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: corrupt checkpoint architecture ({e})") from None
    for key in ("config", "metrics", "state"):
        if not isinstance(meta.get(key, {}), dict):
            raise UserError(f"{path}: corrupt checkpoint metadata ({key} is not a table)")
    opt = meta.get("state", {}).get("optimizer", {})
    n_slots = optim.SLOTS.get(opt.get("name"), 0) if isinstance(opt, dict) and isinstance(opt.get("name"), str) else 0
    has_slots = any(name.startswith("opt") for name in arrays)
    _check_arrays(path, arrays, spec, n_slots if has_slots else 0)
    if meta.get("sha256") != _digest(arrays, meta):
        raise UserError(f"{path}: checksum mismatch: the checkpoint was modified or damaged")
    layers = range(len(spec.sizes) - 1)
    params = [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in layers]
    meta["slots"] = [[[arrays[f"opt{k}_{p}{i}"] for k in range(n_slots)] for p in "Wb"] for i in layers] \
        if has_slots else None
    return spec, params, meta


def _read(path: Path) -> tuple[dict, dict]:
    """The archive's arrays and its JSON metadata, read without unpickling anything."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise UserError(f"{path}: cannot read checkpoint ({e.strerror or e})") from None
    if magic != b"PK\x03\x04":
        raise UserError(f"{path}: not an xpnet checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise UserError(f"{path}: not an xpnet checkpoint (not a readable .npz: {e})") from None
    except ValueError as e:  # object arrays need pickle: refused
        raise UserError(f"{path}: refused: holds data that would need pickle ({e})") from None
    except Exception as e:  # malformed headers inside the archive
        raise UserError(f"{path}: not an xpnet checkpoint ({type(e).__name__}: {e})") from None
    meta_raw = arrays.pop("meta", None)
    if meta_raw is None or meta_raw.dtype != np.uint8 or meta_raw.ndim != 1:
        raise UserError(f"{path}: not an xpnet checkpoint (no metadata)")
    try:
        meta = json.loads(meta_raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("metadata is not an object")
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: corrupt checkpoint metadata ({e})") from None
    return arrays, meta


def _check_arrays(path: Path, arrays: dict, spec: Spec, n_slots: int) -> None:
    """Exactly the arrays the architecture implies (and ``n_slots`` optimiser slots of each), in
    the right shapes, floats, finite."""
    expected = {}
    for i, (wshape, bshape) in enumerate(spec.param_shapes()):
        expected[f"W{i}"], expected[f"b{i}"] = wshape, bshape
    for k in range(n_slots):
        expected.update({f"opt{k}_{name}": shape for name, shape in list(expected.items()) if not name.startswith("opt")})
    if set(arrays) != set(expected):
        raise UserError(f"{path}: arrays {sorted(arrays)} do not match the architecture {list(spec.sizes)}")
    for name, shape in expected.items():
        a = arrays[name]
        if a.shape != shape or a.dtype.kind != "f":
            raise UserError(f"{path}: {name} has shape {a.shape} {a.dtype}, the architecture needs {shape} floats")
        if not np.all(np.isfinite(a)):
            raise UserError(f"{path}: {name} holds NaN or infinite values")
