"""Checkpoints: round trip across backends, atomic writes, and refusal of bad files."""

import copy
import io
import json
import os
import stat
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from xpnet import backends, cli, config, training
from xpnet.engine import data, model
from xpnet.errors import Diverged, UserError
from xpnet.files import atomic, checkpoint


@pytest.fixture
def saved(tmp_path, rng):
    spec = model.Spec((12, 8, 4), "tanh", "softmax")
    params = model.init_params_host(spec, rng)
    path = tmp_path / "m.npz"
    checkpoint.save(path, spec, params, {"lr": 0.1, "dtype": "float64"}, {"history": [{"epoch": 1}]})
    return path, spec, params


def test_round_trip(saved):
    path, spec, params = saved
    spec2, params2, meta = checkpoint.load(path)
    assert spec2 == spec
    assert meta["config"]["lr"] == 0.1 and meta["metrics"]["history"][0]["epoch"] == 1
    for (W, b), (W2, b2) in zip(params, params2):
        assert np.array_equal(W, W2) and np.array_equal(b, b2)
    with np.load(path, allow_pickle=False) as z:  # plain arrays, order-3 shapes
        assert z["W0"].shape == (1, 8, 12) and z["b1"].shape == (1, 4, 1)


def test_params_written_on_one_backend_load_on_another(target, saved, reference):
    path, spec, _ = saved
    _, host, _ = checkpoint.load(path)
    x = np.random.default_rng(0).random((3, 12, 1))
    ref = reference.to_host(
        model.forward(model.params_to_device(reference.backend, host, "float64"), reference.asarray(x), spec)
    )
    dev = model.params_to_device(target.backend, host, target.dtype)
    out = target.to_host(model.forward(dev, target.asarray(x), spec))
    np.testing.assert_allclose(out, ref, rtol=1e-10 if target.dtype == "float64" else 1e-5)
    # and back: device params -> host -> checkpoint -> identical numbers (in the device dtype)
    path2 = path.with_name("again.npz")
    checkpoint.save(path2, spec, training.params_to_host(dev), {}, {})
    for (W, b), (W2, b2) in zip(host, checkpoint.load(path2)[1]):
        assert np.array_equal(W.astype(target.dtype), W2) and np.array_equal(b.astype(target.dtype), b2)


def test_atomic_write_keeps_the_old_file_on_failure(saved, monkeypatch):
    path, spec, params = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(UserError, match="cannot write"):
        checkpoint.save(path, spec, params, {}, {})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def _meta(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(z["meta"].tobytes())


def test_refuses_tampered_truncated_and_foreign_files(saved, tmp_path):
    path, _, params = saved
    good = path.read_bytes()

    _rewrite(path, W0=params[0][0] + 1e-3)
    with pytest.raises(UserError, match="checksum"):
        checkpoint.load(path)

    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="not an xpnet checkpoint"):
        checkpoint.load(path)

    path.write_bytes(b"hello")
    with pytest.raises(UserError, match="not an xpnet checkpoint"):
        checkpoint.load(path)

    path.write_bytes(good)
    _rewrite(path, W1=np.zeros((1, 5, 8)))
    with pytest.raises(UserError, match="W1 has shape"):
        checkpoint.load(path)

    path.write_bytes(good)
    _rewrite(path, b0=np.full((1, 8, 1), np.nan))
    with pytest.raises(UserError, match="NaN"):
        checkpoint.load(path)

    path.write_bytes(good)
    meta = _meta(path)
    meta["format"] = "xpnet-checkpoint/99"
    _rewrite(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(UserError, match="unsupported checkpoint format"):
        checkpoint.load(path)

    path.write_bytes(good)
    meta = _meta(path)
    meta["config"]["lr"] = 99.0  # metadata is covered by the checksum too
    _rewrite(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(UserError, match="checksum"):
        checkpoint.load(path)

    path.write_bytes(good)
    meta = _meta(path)
    meta["spec"]["activation"] = "swish"
    _rewrite(path, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(UserError, match="spec.activation"):
        checkpoint.load(path)

    path.write_bytes(good)
    _rewrite(path, meta=None)
    with pytest.raises(UserError, match="no metadata"):
        checkpoint.load(path)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.savez(buf, meta=np.array([{"x": 1}], dtype=object))
    path.write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="pickle"):
        checkpoint.load(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not found"):
        checkpoint.load(tmp_path / "none.npz")


# ---- malformed archives: refused with one line naming the file, before reading too much ------


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _members(path) -> dict:
    """A checkpoint's members as {zip name: bytes}."""
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def _one_line_error(path, needle):
    with pytest.raises(UserError) as e:
        checkpoint.load(path)
    message = str(e.value)
    assert str(path) in message and "\n" not in message and needle in message, message


def _meta_member(text: str) -> bytes:
    return _npy(np.frombuffer(text.encode(), np.uint8))


MALFORMED = {  # name -> (change to the members, expected words)
    "meta not a .npy": (lambda m: m | {"meta": json.dumps({"format": checkpoint.FORMAT}).encode()}, "is not a .npy"),
    "extra non-.npy member": (lambda m: m | {"notes.txt": b"hello"}, "notes.txt"),
    "meta nested 200,000 deep": (lambda m: m | {"meta.npy": _meta_member("[" * 200_000 + "]" * 200_000)}, "not JSON"),
    "meta holds NaN": (
        lambda m: m | {"meta.npy": _meta_member('{"format": "xpnet-checkpoint/1", "x": NaN}')},
        "NaN is not a number",
    ),
    "meta a list": (lambda m: m | {"meta.npy": _meta_member("[1, 2]")}, "metadata = a list"),
    "meta of floats": (lambda m: m | {"meta.npy": _npy(np.zeros(4))}, "meta has shape"),
    "W0 in float16": (lambda m: m | {"W0.npy": _npy(np.zeros((1, 8, 12), np.float16))}, "W0 has shape"),
    "W0 of ints": (lambda m: m | {"W0.npy": _npy(np.zeros((1, 8, 12), np.int64))}, "W0 has shape"),
    "W0 truncated": (lambda m: m | {"W0.npy": m["W0.npy"][:-8]}, "W0 is truncated"),
    "W0 with trailing bytes": (lambda m: m | {"W0.npy": m["W0.npy"] + b"\0" * 8}, "extra bytes"),
    "b1 missing": (lambda m: {k: v for k, v in m.items() if k != "b1.npy"}, "do not match the architecture"),
    "unexpected slot": (lambda m: m | {"opt0_W0.npy": m["W0.npy"]}, "do not match the architecture"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_archives_are_refused_in_one_line(saved, case):
    path = saved[0]
    change, needle = MALFORMED[case]
    _write_zip(path, change(_members(path)))
    _one_line_error(path, needle)


def test_duplicate_and_foreign_compression_members_are_refused(saved):
    path = saved[0]
    good = _members(path)
    _write_zip(path, good)
    with zipfile.ZipFile(path, "a") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr("W0.npy", good["W0.npy"])
    _one_line_error(path, "appears twice")
    _write_zip(path, good, zipfile.ZIP_BZIP2)
    _one_line_error(path, "unsupported method")


def test_deflated_and_fortran_order_arrays_still_load(saved):
    path, spec, params = saved
    members = _members(path)
    members["W0.npy"] = _npy(np.asfortranarray(params[0][0]))  # same values, column-major bytes
    _write_zip(path, members, zipfile.ZIP_DEFLATED)
    spec2, params2, _ = checkpoint.load(path)
    assert spec2 == spec and all(
        np.array_equal(a, b) for pair, pair2 in zip(params, params2) for a, b in zip(pair, pair2)
    )


def test_a_zip_bomb_is_refused_before_decompressing(saved):
    """W0.npy: 1 GiB of zeros deflated to a few MB, its .npy header claiming a matching shape."""
    path = saved[0]
    members = _members(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, raw in members.items():
            if name != "W0.npy":
                zf.writestr(name, raw)
        with zf.open("W0.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (1, 8, 1 << 24)})
            zeros = bytes(1 << 20)
            for _ in range(1024):
                f.write(zeros)
    assert path.stat().st_size < 8 << 20
    tracemalloc.start()
    try:
        _one_line_error(path, "W0 would inflate to 1073741")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_oversized_metadata_is_refused_before_decompressing(saved):
    path = saved[0]
    members = _members(path)
    members["meta.npy"] = _meta_member(
        '{"format": "xpnet-checkpoint/1", "pad": "' + " " * (checkpoint.META_CAP + 2 * checkpoint.HEADER_SLACK) + '"}'
    )
    _write_zip(path, members, zipfile.ZIP_DEFLATED)
    _one_line_error(path, "meta would inflate")


# ---- metadata: every key checked against the schema, even with a matching checksum ------------


@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory):
    """The arrays and metadata of a checkpoint as training writes it (momentum slots, state, history)."""
    spec = model.Spec((6, 4, 3))
    params = model.init_params_host(spec, np.random.default_rng(0))
    slots = [[[np.ones_like(W)], [np.ones_like(b)]] for W, b in params]
    cfg = config.TrainConfig(hidden=(4,), optimizer="momentum", epochs=3).to_dict() | {
        "image_shape": [2, 3],
        "num_classes": 3,
    }
    state = {
        "epoch": 2,
        "step": 0,
        "rng": np.random.default_rng(0).bit_generator.state,
        "loss_partial": 0.0,
        "best_val": 0.5,
        "optimizer": {"name": "momentum", "t": 10},
    }
    history = [
        {
            "epoch": 1,
            "step": 5,
            "loss": 0.5,
            "lr": 0.1,
            "seconds": 1.0,
            "samples_per_s": 100.0,
            "backend": "numpy",
            "device": "cpu",
            "train_accuracy": 0.5,
            "val_accuracy": 0.5,
        }
    ]
    path = tmp_path_factory.mktemp("full") / "m.npz"
    checkpoint.save(path, spec, params, cfg, {"history": history, "test_accuracy": 0.9}, state, slots)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(arrays.pop("meta").tobytes())


def _write_resigned(path, arrays: dict, meta: dict) -> None:
    """The checkpoint with ``meta`` and its checksum recomputed: only the schema can refuse it."""
    meta = meta | {"sha256": checkpoint._digest(arrays, meta)}
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    path.write_bytes(buf.getvalue())


def _set(doc, keys, value):
    for k in keys[:-1]:
        doc = doc[k]
    doc[keys[-1]] = value


@pytest.mark.parametrize(
    "keys,value,needle",
    [
        (("config", "lr"), "0.1", "config.lr"),
        (("config", "hidden"), "512", "config.hidden"),
        (("config", "hidden"), [4, 0], "config.hidden[1]"),
        (("config", "data_dir"), 7, "config.data_dir"),
        (("config", "tf32"), 1, "config.tf32"),
        (("config", "image_shape"), [-2, 3], "config.image_shape[0]"),
        (("config", "num_classes"), 0, "config.num_classes"),
        (("config", "dropout"), 3.0, "--dropout"),
        (("config", "lr"), 10**400, "config.lr"),
        (("config", "optimizer"), "lbfgs", "config.optimizer"),
        (("config", "lr_schedule"), "cosine\nsteps", "config.lr_schedule"),
        (("config", "activation"), "swish", "config.activation"),
        (("config", "backend"), "tensorflow", "config.backend"),
        (("config", "colour"), "red", 'unknown key "colour"'),
        (("state", "step"), -1, "state.step"),
        (("state", "epoch"), -3, "state.epoch"),
        (("state", "epoch"), 2.0, "state.epoch"),
        (("state", "optimizer", "name"), "adagrad", "state.optimizer.name"),
        (("state", "rng", "state", "state"), 2**200, "state.rng.state.state"),
        (("state", "rng", "bit_generator"), "MT19937", "state.rng.bit_generator"),
        (("spec", "sizes"), [6, "4", 3], "spec.sizes[1]"),
        (("spec", "sizes"), [6], "spec.sizes"),
        (("spec", "output"), "linear", "spec.output"),
        (("metrics", "history", 0, "loss"), float("nan"), "not JSON"),
        (("metrics", "history", 0, "epoch"), None, "metrics.history[0].epoch"),
        (("metrics", "test_accuracy"), 1.5, "metrics.test_accuracy"),
        (("metrics",), [], "metrics = a list"),
    ],
)
def test_metadata_of_wrong_type_or_range_is_refused_despite_a_good_checksum(
    tmp_path, full_checkpoint, keys, value, needle
):
    arrays, meta = full_checkpoint
    path = tmp_path / "m.npz"
    _write_resigned(path, arrays, meta)
    assert checkpoint.load(path)[2]["state"]["epoch"] == 2  # the untouched file loads
    meta = copy.deepcopy(meta)
    _set(meta, keys, value)
    _write_resigned(path, arrays, meta)
    _one_line_error(path, needle)


def _paths(doc, prefix=()):
    """Every key path in a JSON document, the document's own () first."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _get(doc, keys):
    for k in keys:
        doc = doc[k]
    return doc


NAMES = st.sampled_from(["relu", "softmax", "he", "adam", "sgd", "cosine", "affine", "float64", "numpy", "PCG64", ""])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**130), 2**130) | st.floats() | st.text(max_size=8) | NAMES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _like(v):
    """Values of v's JSON type: what a plausible edit of v writes."""
    if isinstance(v, bool):
        return st.booleans()
    if isinstance(v, (int, float)):
        return st.integers(-3, 2**40) if isinstance(v, int) else st.floats(-2, 1e6)
    return NAMES | st.text(max_size=4) if isinstance(v, str) else JSON


NUMPY = backends.resolve("numpy", "cpu")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_metadata_mutations_with_a_recomputed_checksum(tmp_path, full_checkpoint, data_):
    """Whatever the metadata says, load refuses it in one line or accepts it, and what it accepts,
    resuming (config, training state, optimiser slots) takes or refuses in one line too."""
    arrays, meta = full_checkpoint
    meta = copy.deepcopy(meta)
    for _ in range(data_.draw(st.integers(1, 3))):
        op = data_.draw(st.sampled_from(["set", "nudge", "delete", "add"]))
        if op == "add":
            table = data_.draw(st.sampled_from([p for p in _paths(meta) if isinstance(_get(meta, p), dict)]))
            _get(meta, table)[data_.draw(st.text(max_size=6))] = data_.draw(JSON)
            continue
        where = data_.draw(st.sampled_from([p for p in _paths(meta) if p]))
        parent = _get(meta, where[:-1])
        if op == "delete":
            del parent[where[-1]]
        else:
            parent[where[-1]] = data_.draw(JSON if op == "set" else _like(parent[where[-1]]))
    path = tmp_path / "m.npz"
    _write_resigned(path, arrays, meta)
    try:
        spec = checkpoint.load(path)[0]
    except UserError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        event("refused by load")
        return
    args = cli.build_parser().parse_args(["train", "--resume", str(path)])
    try:
        cfg, resume = config.resolve(vars(args))
        training.start_state(cfg, spec, NUMPY, resume)
        event("loaded and resumed")
    except UserError as e:
        assert "\n" not in str(e)
        event("loaded, refused by resume")


# ---- saving: only finite arrays, the umask's mode, through symlinks, no stale temporaries ------


@pytest.mark.parametrize("where", ["W1", "opt0_b0", "loss_partial"])
def test_non_finite_arrays_or_numbers_are_never_saved(saved, where):
    path, spec, params = saved
    before = path.read_bytes()
    params = [(W.copy(), b.copy()) for W, b in params]
    slots = [[[np.zeros_like(W)], [np.zeros_like(b)]] for W, b in params]
    state = {"optimizer": {"name": "momentum", "t": 1}, "loss_partial": 0.0}
    if where == "W1":
        params[1][0][0, 0, 0] = np.inf
    elif where == "opt0_b0":
        slots[0][1][0][0, 0, 0] = np.nan
    else:
        state["loss_partial"] = np.nan
    with pytest.raises(
        checkpoint.NonFinite, match=f"not saved: {'the metadata' if where == 'loss_partial' else where} holds NaN"
    ):
        checkpoint.save(path, spec, params, {}, {}, state, slots)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_training_never_replaces_the_last_good_checkpoint_with_non_finite_weights(mnist, tmp_path, monkeypatch):
    split = data.Split(mnist.train.images[:640], mnist.train.labels[:640])
    path = tmp_path / "m.npz"
    cfg = training.TrainConfig(hidden=(8,), epochs=3, batch_size=64, validation=0, quiet=True, save=str(path))
    real, calls = training.params_to_host, []

    def poisoned(params):  # the weights sent to the second save (after epoch 2) hold a NaN
        host = [(W.copy(), b.copy()) for W, b in real(params)]
        calls.append(1)
        if len(calls) == 2:
            host[0][0][0, 0, 0] = np.nan
        return host

    monkeypatch.setattr(training, "params_to_host", poisoned)
    with pytest.raises(
        Diverged, match=r"epoch 3, step 0: the weights or the loss are not finite.* holds the last good epoch"
    ):
        training.train(cfg, NUMPY, data.Dataset(split, split, 10, "small"), say=lambda s: None)
    meta = checkpoint.load(path)[2]
    assert meta["state"]["epoch"] == 2 and len(meta["metrics"]["history"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_saved_file_mode_follows_the_umask_or_the_file_it_replaces(saved):
    path, spec, params = saved
    old = os.umask(0o027)
    try:
        fresh = path.with_name("fresh.npz")
        checkpoint.save(fresh, spec, params, {}, {})
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
        os.umask(0o002)
        checkpoint.save(fresh.with_name("shared.npz"), spec, params, {}, {})
        assert stat.S_IMODE(fresh.with_name("shared.npz").stat().st_mode) == 0o664
        os.chmod(path, 0o604)
        checkpoint.save(path, spec, params, {}, {})
        assert stat.S_IMODE(path.stat().st_mode) == 0o604
    finally:
        os.umask(old)


def test_save_through_a_symlink_writes_its_target(saved, tmp_path):
    _, spec, params = saved
    (tmp_path / "real").mkdir()
    target, link = tmp_path / "real" / "t.npz", tmp_path / "link.npz"
    link.symlink_to(target)  # dangling: the first save creates the target
    for _ in range(2):
        checkpoint.save(link, spec, params, {"lr": 0.5}, {})
        assert link.is_symlink() and os.readlink(link) == str(target)
        assert checkpoint.load(target)[2]["config"]["lr"] == 0.5
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["t.npz"]


def test_temporaries_of_a_writer_killed_mid_save_are_removed_by_the_next_save(saved):
    path, spec, params = saved
    script = (
        "import sys, time\nfrom xpnet.files import atomic\n"
        "def hang(fd):\n    print('writing', flush=True)\n    time.sleep(120)\n"
        "atomic.os.fsync = hang\natomic.atomic_write(sys.argv[1], b'x' * 1000)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
    finally:
        p.kill()
        p.communicate()
    left = [q.name for q in path.parent.iterdir() if q.name != path.name]
    assert len(left) == 1 and left[0].startswith(f".{path.name}.") and left[0].endswith(".tmp"), left
    checkpoint.save(path, spec, params, {}, {})
    assert [q.name for q in path.parent.iterdir()] == [path.name]


def test_only_stale_temporaries_of_the_same_target_are_removed(saved):
    path, spec, params = saved
    folder, host = path.parent, atomic.HOST
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    old = time.time() - 2 * atomic.STALE_AFTER
    names = {  # name -> (age, removed?)
        f".m.npz.{host}.{p.pid}.0badc0de.tmp": (None, True),  # its writer's pid is gone
        f".m.npz.{host}.{os.getpid()}.0badc0de.tmp": (None, False),  # a live writer
        f".m.npz.{host}.{os.getpid()}.1badc0de.tmp": (time.time() - 2 * atomic.PID_REUSE_AFTER, True),  # pid reused
        f".m.npz.otherhost.{os.getpid()}.0badc0de.tmp": (None, False),  # another machine's: too young to tell
        f".m.npz.otherhost.{p.pid}.1badc0de.tmp": (old, True),
        ".m.npz.abc_1234.tmp": (old, True),  # the older mkstemp names
        ".m.npz.abc_5678.tmp": (None, False),
        f".other.npz.{host}.{p.pid}.0badc0de.tmp": (None, False),  # another target's
        f".m.npz.{host}.{p.pid}.0badc0de.tmp.keep": (old, False),  # not a temporary's name
    }
    for name, (age, _) in names.items():
        (folder / name).write_bytes(b"x")
        if age is not None:
            os.utime(folder / name, (age, age))
    checkpoint.save(path, spec, params, {}, {})
    assert sorted(q.name for q in folder.iterdir()) == sorted(
        [path.name] + [n for n, (_, gone) in names.items() if not gone]
    )
