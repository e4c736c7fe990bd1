"""The figures in the reports, drawn with matplotlib (Agg) to PNG bytes.

Each function takes plain arrays and returns PNG bytes, so a figure can be cached by what it shows:
figures depend on predictions and labels, never on the bands, so re-marking does not redraw them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

MISCLASSIFIED_SHOWN = 8


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # No metadata: the same figure gives the same bytes, whoever draws it.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(figure)
    return buffer.getvalue()


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def misclassified(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
                  outputs: np.ndarray | None) -> bytes | None:
    """The coursework's own figure (seed 000's plotting script): the first eight misclassified digits,
    each above a bar chart of the model's outputs. None when every image was classified correctly."""
    wrong = np.where(predicted != labels)[0]
    count = min(len(wrong), MISCLASSIFIED_SHOWN)
    if count == 0:
        return None
    plt = _pyplot()
    # squeeze=False: the script as given indexes axes[0, i], which fails for a single misclassification.
    fig, axes = plt.subplots(2, count, figsize=(12, 3), squeeze=False)
    fig.subplots_adjust(hspace=0.5)
    classes = outputs.shape[1] if outputs is not None else int(max(labels.max(), predicted.max())) + 1
    for i in range(count):
        index = wrong[i]
        axes[0, i].imshow(images[index].reshape(images.shape[1], images.shape[2], -1).squeeze(), cmap="gray_r")
        axes[0, i].set_title(f"True: {labels[index]}", y=1.05)
        axes[0, i].get_xaxis().set_visible(False)
        axes[0, i].get_yaxis().set_visible(False)
        values = outputs[index].astype(np.float64) if outputs is not None else np.zeros(classes)
        axes[1, i].bar(range(classes), np.nan_to_num(values))
        axes[1, i].set_xticks(range(classes))
        axes[1, i].set_title(f"Pred: {predicted[index]}", y=1.05)
        axes[1, i].get_yaxis().set_visible(False)
        if i == 0:
            axes[1, i].get_yaxis().set_visible(True)
            axes[1, 0].set_ylabel("Probability")
            axes[1, 0].set_yticks([0, 0.25, 0.5, 0.75, 1])
    fig.subplots_adjust(bottom=0.2)
    fig.text(0.51, 0.05, "Classes", ha="center", va="center")
    return _png(fig)


def confusion(matrix: np.ndarray) -> bytes:
    """The confusion matrix as a heat map with counts (rows: true class, columns: predicted)."""
    plt = _pyplot()
    classes = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    shown = np.where(matrix > 0, np.log1p(matrix), 0.0)
    ax.imshow(shown, cmap="Blues")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    limit = shown.max() * 0.6 if shown.max() else 1
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            ax.text(column, row, str(count), ha="center", va="center", fontsize=7,
                    color="white" if shown[row, column] > limit else "black")
    fig.tight_layout()
    return _png(fig)


def per_class(rows: Sequence[dict[str, int]]) -> bytes:
    """Accuracy per class as bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    shares = [100 * row["correct"] / row["total"] if row["total"] else 0 for row in rows]
    ax.bar([row["class"] for row in rows], shares, color="#4c72b0")
    ax.set_xticks([row["class"] for row in rows])
    ax.set_ylim(min([*shares, 90]) - 5, 100.5)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy %")
    fig.tight_layout()
    return _png(fig)


def accuracy_histogram(accuracies: Sequence[float], edges: Sequence[float]) -> bytes:
    """How a cohort's accuracies spread, with the mark table's band edges drawn in."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    if accuracies:
        low = max(0.0, min(accuracies) - 2)
        ax.hist(accuracies, bins=np.linspace(low, 100, 41), color="#4c72b0")
        for edge in edges:
            if low < edge < 100:
                ax.axvline(edge, color="#c44e52", linewidth=0.8, linestyle="--")
    ax.set_xlabel("accuracy % on the held-out set (dashed: band edges)")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(_integer_ticks())
    fig.tight_layout()
    return _png(fig)


def marks_bar(scores: Sequence[float], possible: Sequence[float]) -> bytes:
    """How many students got each mark."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = [f"{score:g}" for score in possible]
    counts = [sum(1 for s in scores if s == score) for score in possible]
    ax.bar(labels, counts, color="#55a868")
    ax.set_xlabel("mark")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(_integer_ticks())
    fig.tight_layout()
    return _png(fig)
