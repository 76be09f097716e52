"""The IDX reader on the real MNIST files and on malformed ones; data sets and splits."""

import gzip
import hashlib

import numpy as np
import pytest

from xpnet import backends
from xpnet.engine import data
from xpnet.errors import UserError
from xpnet.files import idx

from helpers import idx_bytes, targets, write_dataset, write_idx


def test_bundled_mnist_is_complete_and_verified(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.labels.shape == (60000,) and mnist.test.labels.shape == (10000,)
    assert mnist.num_classes == 10 and mnist.num_features == 784
    assert set(np.unique(mnist.train.labels)) == set(range(10))
    # well-known facts about MNIST: first training labels, class counts
    assert list(mnist.train.labels[:8]) == [5, 0, 4, 1, 9, 2, 1, 3]
    assert np.bincount(mnist.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_checksums_match_the_shared_readme():
    sums = (idx.bundled_dir() / "SHA256SUMS").read_text()
    assert "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte" in sums
    payload = gzip.decompress((idx.bundled_dir() / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.sha256(payload).hexdigest() == "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"


def test_damaged_bundled_copy_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    for f in idx.bundled_dir().iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    raw = bytearray(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # a valid but wrong label
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setattr(idx, "bundled_dir", lambda: folder)
    with pytest.raises(UserError, match="t10k-labels.*SHA-256"):
        idx.load_mnist()


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_round_trip_every_idx_type(tmp_path, gz, dtype, rng):
    arr = (rng.random((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / "x-idx3", arr, gz)
    out = idx.read_idx(path)
    assert out.dtype.isnative and out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, arr)


def _bad(tmp_path, payload: bytes, name="bad-idx"):
    p = tmp_path / name
    p.write_bytes(payload)
    with pytest.raises(UserError) as e:
        idx.read_idx(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg
    return msg


def test_malformed_files_are_refused_with_the_file_named(tmp_path):
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    assert "magic" in _bad(tmp_path, b"\x01" + good[1:])
    assert "magic" in _bad(tmp_path, good[:2] + b"\x07" + good[3:])
    assert "too short" in _bad(tmp_path, b"\x00\x00")
    assert "truncated" in _bad(tmp_path, good[:-1])
    assert "truncated IDX header" in _bad(tmp_path, good[:9])
    assert "unexpected bytes" in _bad(tmp_path, good + b"\x00")
    assert "0 dimensions" in _bad(tmp_path, b"\x00\x00\x08\x00")
    assert "not gzip" in _bad(tmp_path, good, "x-idx3-ubyte.gz")
    assert "gzip" in _bad(tmp_path, gzip.compress(good)[:-10])
    _bad(tmp_path, gzip.compress(good)[:12] + b"garbage" * 5)  # any clean error naming the file


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match="not found"):
        idx.read_idx(tmp_path / "nope")
    with pytest.raises(UserError, match="directory"):
        idx.read_idx(tmp_path)
    with pytest.raises(UserError, match="not a directory"):
        idx.load_dir(tmp_path / "nope")
    with pytest.raises(UserError, match="missing train-images-idx3-ubyte"):
        idx.load_dir(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_custom_dataset_any_size_and_classes(tmp_path, rng, gz):
    folder = write_dataset(tmp_path / "toy", rng, shape=(9, 7), classes=3, gz=gz)
    ds = idx.load_dir(folder)
    assert ds.image_shape == (9, 7) and ds.num_features == 63 and ds.num_classes == 3
    assert len(ds.train) == 600 and len(ds.test) == 200


def test_count_mismatch_and_label_range(tmp_path, rng):
    folder = write_dataset(tmp_path / "toy", rng)
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(599, np.uint8))
    with pytest.raises(UserError, match="599 labels for the 600 images"):
        idx.load_dir(folder)
    folder = write_dataset(tmp_path / "toy2", rng, classes=3)
    labels = idx.read_idx(folder / "t10k-labels-idx1-ubyte").copy()
    labels[17] = 7
    write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte: label 7 at item 17 is outside the class range 0..2"):
        idx.load_dir(folder)
    with pytest.raises(UserError, match="outside the class range 0..1"):
        idx.load_dir(write_dataset(tmp_path / "toy3", rng, classes=3), num_classes=2)


def test_image_size_mismatch_between_train_and_test(tmp_path, rng):
    folder = write_dataset(tmp_path / "toy", rng, shape=(8, 8))
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((200, 9, 9), np.uint8))
    with pytest.raises(UserError, match="differs from the training images"):
        idx.load_dir(folder)


def test_images_must_be_bytes(tmp_path, rng):
    folder = write_dataset(tmp_path / "toy", rng)
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((600, 8, 8), ">f4"))
    with pytest.raises(UserError, match="unsigned bytes"):
        idx.load_dir(folder)


def test_validation_split_and_pixel_scaling(mnist):
    tr, val = data.split_validation(mnist.train, 10000)
    assert len(tr) == 50000 and len(val) == 10000
    assert np.array_equal(val.labels, mnist.train.labels[-10000:])
    assert data.split_validation(mnist.train, 0) == (mnist.train, None)
    with pytest.raises(UserError, match="--validation"):
        data.split_validation(mnist.train, 60000)
    be = backends.resolve("numpy", "cpu")
    x = be.to_host(data.unit_floats(be.asarray(mnist.test.images[:100].reshape(100, -1)), be.xp.float32))
    assert x.dtype == np.float32 and x.shape == (100, 784)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, mnist.test.images[:100].reshape(100, -1) / 255.0, rtol=1e-6)


@pytest.mark.parametrize("target", targets(dtype="float32"), indirect=True)
def test_device_data_stays_in_dtype(target, mnist):
    any_backend = target.backend
    split = data.Split(mnist.test.images[:64], mnist.test.labels[:64])
    dev = data.to_device(any_backend, split, "float32", 10)
    assert dev.x.dtype == any_backend.xp.uint8 and dev.onehot.dtype == any_backend.xp.float32
    assert tuple(dev.x.shape) == (64, 784) and tuple(dev.onehot.shape) == (64, 10)
    assert np.array_equal(any_backend.to_host(dev.y), mnist.test.labels[:64])
    chunks = list(dev.chunks(any_backend.xp.float32, size=50))
    assert [tuple(c[0].shape) for c in chunks] == [(50, 784), (14, 784)]
    assert chunks[0][0].dtype == any_backend.xp.float32
    np.testing.assert_allclose(
        any_backend.to_host(chunks[1][0]), mnist.test.images[50:64].reshape(14, -1) / 255.0, rtol=1e-6
    )


def test_reading_gzipped_files_leaves_no_file_open():
    import gc
    import warnings

    from xpnet.files import idx

    gc.collect()  # what earlier tests left behind is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        idx.load_mnist()
        gc.collect()
    folder = str(idx.bundled_dir())
    assert not [w for w in caught if issubclass(w.category, ResourceWarning) and folder in str(w.message)]
