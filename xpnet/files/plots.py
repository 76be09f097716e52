"""Pictures, drawn with matplotlib (optional: pip install 'xpnet[plots]'), Agg backend, no display.

Every drawing function takes host NumPy data and writes one picture, in the format its file
name's extension names. ``check_output`` checks an output path before any work is done;
``read_log`` reads the epochs of a ``train --log`` file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from xpnet.errors import UserError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("pictures need matplotlib: pip install 'xpnet[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_output(flag: str, path, folder: bool = False) -> Path:
    """``path`` if a picture can be written there, else a one-line UserError naming ``flag`` and
    ``path``: a format matplotlib writes (by extension), not a directory, in an existing folder
    that takes new files. With ``folder``, ``path`` is that folder (pictures of fixed names)."""
    path = Path(path)
    _pyplot()
    where = path if folder else path.parent
    try:
        if not folder:
            from matplotlib.backend_bases import FigureCanvasBase

            formats = set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"}  # pgf needs a TeX installation
            if path.is_dir():
                raise UserError(f"{flag} {path}: is a directory; give a file name such as {path / 'picture.png'}")
            if path.suffix[1:].lower() not in formats:
                raise UserError(
                    f"{flag} {path}: unknown picture format {path.suffix or '(no extension)'}; "
                    f"use one of {', '.join('.' + f for f in sorted(formats))}"
                )
            if path.exists() and not os.access(path, os.W_OK):
                raise UserError(f"{flag} {path}: the file is not writable")
        if not where.is_dir():
            raise UserError(f"{flag} {path}: {where} is not an existing folder")
        tempfile.TemporaryFile(dir=where).close()
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot create a file in folder {where} ({e.strerror or e})") from None
    return path


def _save(fig, path) -> Path:
    """Write ``fig`` to ``path``; a failure is a one-line UserError naming the path."""
    path = Path(path)
    try:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    except (OSError, ValueError, RuntimeError, OverflowError) as e:
        raise UserError(f"{path}: cannot write the picture ({e})") from None
    finally:
        _pyplot().close(fig)
    return path


def digit_grid(images, titles, path, cols: int = 10, title: str | None = None, stretch: bool = False) -> Path:
    """images: (n, rows, cols) in [0, 1] or uint8; one title per image.
    ``stretch``: show each image scaled to its own maximum (contrast for faint images)."""
    plt = _pyplot()
    n = len(images)
    cols = min(cols, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, t in zip(axes.ravel(), images, titles):
        top = 255 if np.asarray(img).dtype == np.uint8 else 1
        ax.imshow(img, cmap="gray", vmin=0, vmax=(float(np.max(img)) or top) if stretch else top)
        ax.set_title(t, fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


MAX_LOG_BYTES = 1 << 26  # 64 MiB: a million epochs


def read_log(path) -> list[dict]:
    """The epochs of a ``train --log`` file (one JSON object a line) for learning_curves; anything
    else is a one-line UserError naming the file and the line."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LOG_BYTES + 1)
    except OSError as e:
        raise UserError(f"--log {path}: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_LOG_BYTES:
        raise UserError(f"--log {path}: larger than {MAX_LOG_BYTES >> 20} MiB; not an xpnet log")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"--log {path}: line {line} is not UTF-8 text") from None
    history = [
        _epoch_record(line, f"--log {path}: line {k}") for k, line in enumerate(text.splitlines(), 1) if line.strip()
    ]
    if not history:
        raise UserError(f"--log {path}: no epochs in the file")
    return history


_LOG_FIELDS = (("epoch", 0, 10**9), ("loss", 0, 1e300), ("train_accuracy", 0, 1), ("val_accuracy", 0, 1))


def _epoch_record(line: str, where: str) -> dict:
    """epoch (a whole number), loss and, where present, the accuracies of one log line, each a
    number in its _LOG_FIELDS range; else a UserError starting with ``where``."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        row = None
    if not isinstance(row, dict) or "epoch" not in row or "loss" not in row:
        raise UserError(f"{where} is not an xpnet epoch record")
    record = {}
    for key, lo, hi in _LOG_FIELDS:
        v = row.get(key)
        if v is None and key not in ("epoch", "loss"):
            continue
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not lo <= v <= hi
            or (key == "epoch" and v != int(v))
        ):
            raise UserError(
                f"{where}: {key} {json.dumps(v)[:40]} is not a "
                f"{'whole ' if key == 'epoch' else ''}number in {lo}..{hi:g}"
            )
        record[key] = v
    return record


def learning_curves(history: list[dict], path) -> Path:
    """Training loss, and training/validation accuracy, per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["loss"] for h in history], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, label in (("train_accuracy", "training"), ("val_accuracy", "validation")):
        pts = [(h["epoch"], 100 * h[key]) for h in history if key in h]
        if pts:
            ax2.plot(*zip(*pts), marker="o", label=label)
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    if ax2.lines:
        ax2.legend()
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, path)


def confusion(labels, preds, num_classes: int, path) -> Path:
    """Confusion matrix of true (rows) against predicted (columns) classes, with counts."""
    plt = _pyplot()
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (labels, preds), 1)
    fig, ax = plt.subplots(figsize=(0.6 * num_classes + 2, 0.6 * num_classes + 1.5))
    ax.imshow(np.log1p(m), cmap="Blues")
    for i in range(num_classes):
        for j in range(num_classes):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i, j] > m.max() / 3 else "black",
            )
    ax.set(
        xlabel="predicted",
        ylabel="true",
        xticks=range(num_classes),
        yticks=range(num_classes),
        title=f"test set: {int(np.trace(m))}/{int(m.sum())} correct",
    )
    return _save(fig, path)
