"""Pictures in and out. Every image depth and mode reaches ``predict`` as [0, 1] grey, each file
read once; every picture output is checked before the work; ``plot --log`` checks each line.
The only outcomes are a result or one clean line with exit code 2, never a traceback."""

import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from xpnet import cli
from xpnet.errors import UserError
from xpnet.files import idx, images, plots

from helpers import MUTATIONS, assert_clean_error, mutate, xpnet

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# An 8x8 test card of grey levels 0, 1/3, 2/3 and 1 (0, 85, 170, 255 in 8 bits).
GREY = np.kron(np.array([[0, 1], [2, 3]]) / 3, np.ones((4, 4)))
U8 = np.round(GREY * 255).astype(np.uint8)


def _pgm16(grey, maxval=65535) -> bytes:
    return f"P5 {grey.shape[1]} {grey.shape[0]} {maxval}\n".encode() + np.round(grey * maxval).astype(">u2").tobytes()


def _palette() -> Image.Image:
    im = Image.new("P", GREY.shape[::-1])
    im.putdata((U8 // 85).ravel().tolist())
    im.putpalette([v for k in range(4) for v in (85 * k,) * 3])
    return im


# name: (Pillow image or raw bytes, file name, the grey levels read_gray must give)
CASES = {
    "1-bit PNG": (Image.fromarray(GREY > 0.5), "a.png", (GREY > 0.5) * 1.0),
    "8-bit grey PNG": (Image.fromarray(U8), "a.png", GREY),
    "palette PNG": (_palette(), "a.png", GREY),
    "RGB PNG": (Image.fromarray(U8).convert("RGB"), "a.png", GREY),
    "RGBA PNG, transparent = white paper": (
        Image.fromarray(np.dstack([U8] * 3 + [np.where(U8 == 0, 0, 255).astype(np.uint8)])),
        "a.png",
        np.where(U8 == 0, 1.0, GREY),
    ),
    "LA PNG": (Image.fromarray(U8).convert("LA"), "a.png", GREY),
    "CMYK TIFF": (Image.fromarray(U8).convert("RGB").convert("CMYK"), "a.tif", GREY),
    "16-bit PNG": (Image.fromarray(np.round(GREY * 65535).astype(np.uint16)), "a.png", GREY),
    "16-bit big-endian TIFF": (Image.fromarray(np.round(GREY * 65535).astype(">u2")), "a.tif", GREY),
    "32-bit int TIFF of 16-bit data": (Image.fromarray(np.round(GREY * 65535).astype(np.int32)), "a.tif", GREY),
    "32-bit int TIFF of 8-bit data": (Image.fromarray(U8.astype(np.int32)), "a.tif", GREY),
    "float TIFF in [0, 1]": (Image.fromarray(GREY.astype(np.float32)), "a.tif", GREY),
    "float TIFF in [0, 255]": (Image.fromarray((GREY * 255).astype(np.float32)), "a.tif", GREY),
    "16-bit PGM": (_pgm16(GREY), "a.pgm", GREY),
    "PGM of maxval 3": (b"P2 8 8 3\n" + " ".join(map(str, (U8 // 85).ravel())).encode(), "a.pgm", GREY),
}


def _write(tmp_path, source, name):
    path = tmp_path / name
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        source.save(path)
    return path


@pytest.mark.parametrize("case", CASES)
def test_every_depth_and_mode_is_read_as_unit_grey(tmp_path, case):
    source, name, want = CASES[case]
    got = images.read_gray(_write(tmp_path, source, name))
    np.testing.assert_allclose(got, want, atol=0.5 / 255)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    xpnet("train", "--hidden", "32", "--epochs", "1", "--validation", "0", "--save", path, "--quiet")
    return path


def test_a_digit_predicts_alike_in_every_depth(tmp_path, trained):
    """The same MNIST test digit as 8-bit, 16-bit, 32-bit int and float files, at the model's
    size and at twice it (the crop-and-centre path), and through a pipe: one answer."""
    digit = idx.load().test.images[0]  # a 7
    files = []
    for scale in (1, 2):
        grey = np.kron(digit / 255.0, np.ones((scale, scale)))
        for i, im in enumerate(
            [
                Image.fromarray(np.round(grey * 255).astype(np.uint8)),
                Image.fromarray(np.round(grey * 65535).astype(np.uint16)),
                Image.fromarray(np.round(grey * 65535).astype(np.int32)),
                Image.fromarray(grey.astype(np.float32)),
            ]
        ):
            files.append(tmp_path / f"d{scale}_{i}.{'png' if i < 2 else 'tif'}")
            im.save(files[-1])
        inputs = [images.load_for_model(f, (28, 28)) for f in files[-4:]]
        for x in inputs[1:]:
            np.testing.assert_allclose(x, inputs[0], atol=1e-6)
    r = subprocess.run(
        [
            "bash",
            "-c",
            f'"{sys.executable}" -m xpnet predict --model "{trained}" "$@" <(cat "{files[1]}")',
            "-",
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    answers = [line.rsplit(": ", 1)[1].split()[0] for line in r.stdout.splitlines()[1:]]
    assert answers == ["7"] * (len(files) + 1), r.stdout


def test_a_pipe_is_read_once(tmp_path):
    if not os.path.isdir("/dev/fd"):
        pytest.skip("no /dev/fd")
    buf = io.BytesIO()
    Image.fromarray(np.round(GREY * 65535).astype(np.uint16)).save(buf, format="PNG")
    r, w = os.pipe()
    try:
        os.write(w, buf.getvalue())  # small: fits in the pipe's buffer
        os.close(w)
        np.testing.assert_allclose(images.read_gray(f"/dev/fd/{r}"), GREY, atol=1e-6)
    finally:
        os.close(r)


def _float_tiff(value) -> Image.Image:
    a = GREY.astype(np.float32)
    a[3, 3] = value
    return Image.fromarray(a)


BAD_PIXELS = {
    "float nan": (_float_tiff(np.nan), "b.tif", "finite"),
    "float +inf": (_float_tiff(np.inf), "b.tif", "finite"),
    "float -inf": (_float_tiff(-np.inf), "b.tif", "finite"),
    "float negative": (_float_tiff(-0.25), "b.tif", "negative"),
    "float beyond 32 bits": (_float_tiff(1e12), "b.tif", "beyond"),
    "int negative": (Image.fromarray(np.full((4, 4), -5, np.int32)), "b.tif", "negative"),
    "PGM nan": (b"P2 2 2 255\n0 nan 3 4\n", "b.pgm", "finite"),
    "PGM inf": (b"P2 2 2 255\n0 inf 3 4\n", "b.pgm", "finite"),
    "PGM 1e400": (b"P2 2 2 255\n0 1e400 3 4\n", "b.pgm", "finite"),
    "PGM above maxval": (b"P2 2 2 255\n0 300 3 4\n", "b.pgm", "outside 0..255"),
    "PGM negative": (b"P2 2 2 255\n0 -1 3 4\n", "b.pgm", "outside 0..255"),
    "16-bit PGM above maxval": (_pgm16(np.ones((2, 2))).replace(b"65535", b"1000"), "b.pgm", "outside 0..1000"),
}


@pytest.mark.parametrize("case", BAD_PIXELS)
def test_pixels_that_are_no_grey_level_are_refused(tmp_path, case):
    source, name, needle = BAD_PIXELS[case]
    path = _write(tmp_path, source, name)
    with pytest.raises(UserError, match=needle) as e:
        images.read_gray(path)
    assert str(path) in str(e.value)


def test_predict_refuses_a_nan_image_in_one_line(tmp_path, trained):
    path = _write(tmp_path, _float_tiff(np.nan), "nan.tif")
    assert_clean_error(xpnet("predict", "--model", trained, path, check=False), "nan.tif", "finite")


def _seed(im, fmt) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [
    _seed(CASES[k][0], fmt)
    for k, fmt in (
        ("16-bit PNG", "PNG"),
        ("float TIFF in [0, 1]", "TIFF"),
        ("32-bit int TIFF of 8-bit data", "TIFF"),
        ("palette PNG", "GIF"),
        ("RGBA PNG, transparent = white paper", "PNG"),
        ("LA PNG", "TIFF"),
        ("RGB PNG", "BMP"),
        ("8-bit grey PNG", "JPEG"),
    )
] + [_pgm16(GREY)]


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.tuples(st.sampled_from(range(len(SEEDS))), MUTATIONS)))
def test_damaged_images_give_grey_or_one_clean_error(tmp_path, case):
    raw = case if isinstance(case, bytes) else mutate(SEEDS[case[0]], case[1])
    path = tmp_path / "img"
    path.write_bytes(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would be a second line on stderr
            x = images.load_for_model(path, (28, 28))
    except UserError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert x.shape == (784,) and np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1


# --- picture outputs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_args(tmp_path_factory, trained):
    """Arguments of each drawing command, but --out."""
    log = tmp_path_factory.mktemp("log") / "run.jsonl"
    log.write_text('{"epoch": 1, "loss": 0.5, "val_accuracy": 0.9}\n{"epoch": 2, "loss": 0.3, "val_accuracy": 0.95}\n')
    return {
        "show": ["show", "--count", "5"],
        "plot": ["plot", "--log", str(log)],
        "imagine": ["imagine", "--model", str(trained), "--steps", "2", "3"],
    }


def _main(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


BAD_OUTS = {
    "unknown format": ("x.xyz", "unknown picture format"),
    "no extension": ("x", "no extension"),
    "TeX-only format": ("x.pgf", "unknown picture format"),
    "a directory": (".", "is a directory"),
    "a missing folder": ("nope/x.png", "not an existing folder"),
    "a file as folder": ("f/x.png", "not an existing folder"),
    "an unwritable place": ("/proc/x.png", "cannot create a file"),
}


@pytest.mark.parametrize("command", ["show", "plot", "imagine"])
@pytest.mark.parametrize("case", BAD_OUTS)
def test_bad_out_is_refused_before_the_work(tmp_path, capsys, run_args, command, case):
    name, needle = BAD_OUTS[case]
    if name.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    (tmp_path / "f").write_text("")
    out = name if name.startswith("/") else tmp_path / name
    rc, stdout, err = _main(capsys, *run_args[command], "--out", out)
    assert rc == 2 and stdout == "", (stdout, err)
    assert len(err.strip().splitlines()) == 1 and f"--out {out}" in err and needle in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path, capsys, run_args):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, stdout, err = _main(capsys, *run_args["show"], "--out", ro / "x.png")
        assert rc == 2 and stdout == "" and "cannot create a file" in err
        rc, stdout, err = _main(capsys, "train", "--epochs", "0", "--plots", ro)
        assert rc == 2 and stdout == "" and "--plots" in err
    finally:
        ro.chmod(0o700)


def test_train_plots_into_an_unwritable_folder_is_refused_before_training(capsys):
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    rc, stdout, err = _main(capsys, "train", "--epochs", "1", "--plots", "/proc")
    assert rc == 2 and stdout == "" and "--plots /proc" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["show", "plot", "imagine"])
def test_every_format_and_the_real_name_are_reported(tmp_path, capsys, run_args, command):
    for name, magic in (("x.PDF", b"%PDF"), ("x.svg", b"<?xml"), ("x.png", b"\x89PNG")):
        rc, stdout, err = _main(capsys, *run_args[command], "--out", tmp_path / name)
        assert rc == 0 and stdout.splitlines()[-1].startswith(f"wrote {tmp_path / name}"), (stdout, err)
        assert (tmp_path / name).read_bytes().startswith(magic)


@pytest.mark.parametrize("command", ["show", "plot", "imagine"])
def test_a_drawing_failure_is_one_line_after_the_result(tmp_path, capsys, run_args, monkeypatch, command):
    import matplotlib.figure

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    out = tmp_path / "x.png"
    rc, stdout, err = _main(capsys, *run_args[command], "--out", out)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(out) in err and "No space" in err, err
    assert "wrote" not in stdout
    if command == "imagine":
        assert "1/1 imagined digits classified as intended" in stdout or "0/1 imagined" in stdout


# --- plot --log ------------------------------------------------------------------------------

GOOD = '{"epoch": 1, "loss": 0.5}\n'
BAD_LOGS = {
    "binary": (GOOD.encode() + b"\xff\xfe\x00\x01\n", 2),
    "JSON infinity (1e400)": (GOOD + '{"epoch": 2, "loss": 1e400}\n', 2),
    "Infinity": (GOOD + '{"epoch": 2, "loss": Infinity}\n', 2),
    "NaN": (GOOD + '{"epoch": 2, "loss": NaN}\n', 2),
    "negative loss": (GOOD + '{"epoch": 2, "loss": -1}\n', 2),
    "huge loss": (GOOD + '{"epoch": 2, "loss": 1e308}\n', 2),
    "fractional epoch": ('{"epoch": 1.5, "loss": 0.5}\n', 1),
    "negative epoch": ('{"epoch": -1, "loss": 0.5}\n', 1),
    "boolean epoch": ('{"epoch": true, "loss": 0.5}\n', 1),
    "huge epoch": ('{"epoch": 1' + "0" * 400 + ', "loss": 0.5}\n', 1),
    "string loss": ('{"epoch": 1, "loss": "0.5"}\n', 1),
    "accuracy above 1": (GOOD + '{"epoch": 2, "loss": 0.5, "val_accuracy": 97.5}\n', 2),
    "accuracy NaN": ('{"epoch": 1, "loss": 0.5, "train_accuracy": NaN}\n', 1),
    "a list": ("[1, 2]\n", 1),
    "deep nesting": (GOOD + "[" * 100000 + "\n", 2),
    "no loss": (GOOD + GOOD + '{"epoch": 3}\n', 3),
}


@pytest.mark.parametrize("case", BAD_LOGS)
def test_a_bad_log_line_is_named(tmp_path, case):
    content, line = BAD_LOGS[case]
    path = tmp_path / "run.jsonl"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(UserError) as e:
        plots.read_log(path)
    assert str(e.value).startswith(f"--log {path}: line {line} ") or str(e.value).startswith(
        f"--log {path}: line {line}:"
    ), e.value


def test_plot_of_a_binary_log_is_one_clean_line(tmp_path):
    log = tmp_path / "bin.jsonl"
    log.write_bytes(bytes(range(256)) * 4)
    assert_clean_error(
        xpnet("plot", "--log", log, "--out", tmp_path / "c.png", check=False), "bin.jsonl", "line 2 is not UTF-8"
    )  # byte 10 ends line 1


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_log(tmp_path, raw):
    path = tmp_path / "run.jsonl"
    path.write_bytes(raw)
    try:
        history = plots.read_log(path)
    except UserError as e:
        assert str(e).startswith(f"--log {path}: ") and "\n" not in str(e)
        return
    assert history and all(set(h) <= {"epoch", "loss", "train_accuracy", "val_accuracy"} for h in history)


NUMBERS = st.one_of(st.floats(), st.integers(-(10**20), 10**20), st.booleans(), st.none(), st.text(max_size=3))
RECORDS = st.lists(
    st.dictionaries(st.sampled_from(["epoch", "loss", "train_accuracy", "val_accuracy", "x"]), NUMBERS),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(RECORDS)
def test_odd_records_are_drawn_or_named(tmp_path, rows):
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        history = plots.read_log(path)
    except UserError as e:
        assert str(e).startswith(f"--log {path}: line ")
        return
    plots.learning_curves(history, tmp_path / "c.png")
