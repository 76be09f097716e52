"""Property-based fuzzing: the IDX reader, the image loader of predict and the checkpoint loader
take random and mutated inputs; the only outcomes are a correct result or the clean UserError."""

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet.engine import model
from xpnet.errors import UserError
from xpnet.files import checkpoint, idx, images

from helpers import MUTATIONS, idx_bytes, mutate

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


VALID_IDX = idx_bytes((np.arange(2 * 3 * 4) % 256).astype(np.uint8).reshape(2, 3, 4))


@FUZZ
@given(st.binary(max_size=64))
def test_idx_random_bytes(raw):
    try:
        arr = idx.parse_idx(raw, "fuzz")
    except UserError as e:
        assert "fuzz" in str(e)
        return
    # accepted: the header must describe exactly the bytes that were there
    ndim = raw[3]
    assert arr.ndim == ndim and 4 + 4 * ndim + arr.nbytes == len(raw)


@pytest.mark.slow
@FUZZ
@given(MUTATIONS, st.booleans())
def test_idx_mutated_files(tmp_path, ops, gz):
    raw = mutate(gzip.compress(VALID_IDX) if gz else VALID_IDX, ops)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(raw)
    try:
        arr = idx.read_idx(path)
    except UserError as e:
        assert str(path) in str(e)
        return
    assert arr.size * arr.itemsize == len(gzip.decompress(raw) if gz else raw) - 4 - 4 * arr.ndim


def _png_bytes():
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


SEEDS = [b"P5\n4 4\n255\n" + bytes(range(16)), b"P2\n2 2\n15\n0 5 10 15\n"]


@pytest.mark.slow
@FUZZ
@given(st.one_of(st.binary(max_size=80), st.tuples(st.sampled_from([0, 1, 2]), MUTATIONS)))
def test_image_loader(tmp_path, case):
    if isinstance(case, tuple):
        which, ops = case
        raw = mutate(SEEDS[which] if which < 2 else _png_bytes(), ops)
    else:
        raw = case
    path = tmp_path / "img.png"
    path.write_bytes(raw)
    try:
        x = images.load_for_model(path, (28, 28))
    except UserError as e:
        assert str(path) in str(e)
        return
    assert x.shape == (784,) and np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    spec = model.Spec((6, 4, 3))
    params = model.init_params_host(spec, np.random.default_rng(0))
    path = tmp_path_factory.mktemp("ck") / "m.npz"
    checkpoint.save(path, spec, params, {"dtype": "float32"}, {})
    return path.read_bytes()


@pytest.mark.slow
@FUZZ
@given(MUTATIONS)
def test_checkpoint_loader(tmp_path, good_checkpoint, ops):
    path = tmp_path / "m.npz"
    path.write_bytes(mutate(good_checkpoint, ops))
    try:
        spec, params, meta = checkpoint.load(path)
    except UserError as e:
        assert str(path) in str(e)
        return
    assert spec.sizes == (6, 4, 3) and params[0][0].shape == (1, 4, 6)
