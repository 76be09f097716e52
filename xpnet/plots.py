"""Pictures, drawn with matplotlib (optional: pip install 'xpnet[plots]'), Agg backend, no display.

Every function takes host NumPy data and writes one PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import UserError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("pictures need matplotlib: pip install 'xpnet[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist")
    fig.savefig(path, dpi=100, bbox_inches="tight")
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
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 3 else "black")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(num_classes), yticks=range(num_classes),
           title=f"test set: {int(np.trace(m))}/{int(m.sum())} correct")
    return _save(fig, path)
