"""Checkpoints: round trip across backends, atomic writes, and refusal of bad files."""

import io
import json

import numpy as np
import pytest

from xpnet import checkpoint, model, train
from xpnet.errors import UserError


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
    ref = reference.to_host(model.forward(model.params_to_device(reference.backend, host, "float64"), reference.asarray(x), spec))
    dev = model.params_to_device(target.backend, host, target.dtype)
    out = target.to_host(model.forward(dev, target.asarray(x), spec))
    np.testing.assert_allclose(out, ref, rtol=1e-10 if target.dtype == "float64" else 1e-5)
    # and back: device params -> host -> checkpoint -> identical numbers (in the device dtype)
    path2 = path.with_name("again.npz")
    checkpoint.save(path2, spec, train.params_to_host(dev), {}, {})
    for (W, b), (W2, b2) in zip(host, checkpoint.load(path2)[1]):
        assert np.array_equal(W.astype(target.dtype), W2) and np.array_equal(b.astype(target.dtype), b2)


def test_atomic_write_keeps_the_old_file_on_failure(saved, monkeypatch):
    path, spec, params = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", boom)
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
    path, spec, params = saved
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
    with pytest.raises(UserError, match="architecture"):
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
