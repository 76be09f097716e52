"""Image files for ``predict``: decode PNG/PGM/..., make them look like the training digits.

PGM (P2/P5) is decoded here; other formats need Pillow (``pip install 'xpnet[images]'``).
Each file is read once (a pipe such as ``<(cat x.png)`` works) and decoded from memory.
Grey levels are scaled to [0, 1] by the file's bit depth; pixels that are not finite, or
outside the range the file declares, are refused.
A picture becomes white ink on black in [0, 1]; if it is not already the model's
size, its ink is cropped, scaled into 20/28 of the frame and centred by mass,
as MNIST's digits were.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path

import numpy as np

from xpnet.errors import UserError

MAX_PIXELS = 25_000_000
MAX_BYTES = 1 << 28  # 256 MiB: more than any picture of MAX_PIXELS needs
WHITE_LEVELS = (1.0, 255.0, 65535.0, 2.0**32 - 1)  # for 32-bit integer and float pixels
_PGM_HEADER = re.compile(rb"^(P[25])\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)\s")


def _decode_pgm(raw: bytes, path: Path) -> np.ndarray:
    m = _PGM_HEADER.match(raw)
    if not m:
        raise UserError(f"{path}: malformed PGM header")
    kind, w, h, maxval = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
    if w < 1 or h < 1 or w * h > MAX_PIXELS or not 0 < maxval < 65536:
        raise UserError(f"{path}: PGM size {w}x{h} or maxval {maxval} out of range")
    body = raw[m.end() :]
    if kind == b"P5":
        dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
        if len(body) < w * h * dtype.itemsize:
            raise UserError(f"{path}: truncated PGM data ({len(body)} bytes for {w}x{h} pixels)")
        pixels = np.frombuffer(body, dtype=dtype, count=w * h).astype(np.float64)
    else:
        try:
            pixels = np.array(body.split()[: w * h], dtype=np.float64)
        except ValueError:
            raise UserError(f"{path}: non-numeric PGM pixel data") from None
        if pixels.size < w * h:
            raise UserError(f"{path}: truncated PGM data ({pixels.size} of {w * h} pixels)")
        if not np.all(np.isfinite(pixels)):
            raise UserError(f"{path}: PGM pixel values must be finite numbers")
    bad = pixels[(pixels < 0) | (pixels > maxval)]
    if bad.size:
        raise UserError(f"{path}: PGM pixel value {bad[0]:g} outside 0..{maxval} (the file's maxval)")
    return pixels.reshape(h, w) / maxval


def _wide_to_unit(arr: np.ndarray, path: Path) -> np.ndarray:
    """32-bit integer ('I') or float ('F') pixels carry no white level: white is the smallest of
    WHITE_LEVELS that holds the brightest pixel (floats in [0, 1], 8- and 16-bit data stored wide)."""
    if not np.all(np.isfinite(arr)):
        raise UserError(f"{path}: pixel values must be finite numbers")
    if arr.min() < 0:
        raise UserError(f"{path}: negative pixel value {arr.min():g}")
    top = float(arr.max())
    if top > WHITE_LEVELS[-1]:
        raise UserError(f"{path}: pixel value {top:g} is beyond any grey-level range")
    return arr / next(w for w in WHITE_LEVELS if top <= w)


def _decode_pillow(raw: bytes, path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise UserError(f"{path}: reading this format needs Pillow: pip install 'xpnet[images]' (or use PGM)") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file's warnings: it decodes, or the error says why
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise UserError(f"{path}: image of {im.width}x{im.height} pixels is too large (limit {MAX_PIXELS})")
                mode = im.mode
                if mode.startswith("I;16") or mode in ("I", "F"):  # one channel of 16 or 32 bits
                    arr = np.asarray(im, dtype=np.float64)
                else:  # 1-bit, 8-bit grey, palette, RGB, CMYK, ..., with or without alpha
                    arr = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        LookupError,
        TypeError,
        ArithmeticError,
        struct.error,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:  # a damaged file, in Pillow's many ways
        raise UserError(f"{path}: cannot decode image ({e})") from None
    if mode.startswith("I;16"):
        return arr / 65535.0
    if mode in ("I", "F"):
        return _wide_to_unit(arr, path)
    rgb, alpha = arr[..., :3], arr[..., 3:]
    arr = rgb * alpha + (1.0 - alpha)  # composite transparency onto white paper
    return arr @ np.array([0.299, 0.587, 0.114])


def read_gray(path: str | Path) -> np.ndarray:
    """Decode an image file, read once, to a (rows, cols) float64 grey-level array in [0, 1]."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"{path}: file larger than {MAX_BYTES >> 20} MiB")
    gray = _decode_pgm(raw, path) if raw[:2] in (b"P2", b"P5") else _decode_pillow(raw, path)
    if gray.ndim != 2 or gray.size == 0:
        raise UserError(f"{path}: not a 2-D picture (shape {gray.shape})")
    return gray


def _resize(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Area-averaging resize (exact for downscaling) of a 2-D array."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        # W[o, i]: share of input cell i inside output cell o.
        edges = np.linspace(0.0, n_in, n_out + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        i = np.arange(n_in)[None, :]
        overlap = np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0.0, None)
        return overlap / overlap.sum(axis=1, keepdims=True)

    return weights(img.shape[0], rows) @ img @ weights(img.shape[1], cols).T


def to_model_input(gray: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A grey image -> (rows*cols,) float64 white-on-black digit in the model's frame."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:  # dark ink on light paper
        gray = 1.0 - gray
    rows, cols = shape
    if gray.shape == (rows, cols):
        return gray.reshape(-1)
    ink = gray > 0.1 * gray.max() if gray.max() > 0 else np.zeros(gray.shape, bool)
    if not ink.any():
        return _resize(gray, rows, cols).reshape(-1)
    r = np.flatnonzero(ink.any(axis=1))
    c = np.flatnonzero(ink.any(axis=0))
    crop = gray[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
    box = max(1, round(min(rows, cols) * 20 / 28))
    scale = box / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = _resize(crop, h, w)
    out = np.zeros((rows, cols))
    total = small.sum()
    if total > 0:  # centre of mass to the frame's centre
        cy = (small.sum(axis=1) @ np.arange(h)) / total
        cx = (small.sum(axis=0) @ np.arange(w)) / total
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    top = int(np.clip(round((rows - 1) / 2 - cy), 0, rows - h))
    left = int(np.clip(round((cols - 1) / 2 - cx), 0, cols - w))
    out[top : top + h, left : left + w] = small
    return np.clip(out, 0.0, 1.0).reshape(-1)


def load_for_model(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Read ``path`` and convert it for a model whose images are ``shape``: (rows*cols,)."""
    return to_model_input(read_gray(path), shape)
