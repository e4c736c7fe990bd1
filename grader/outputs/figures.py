"""The figures: inline SVG for the HTML pages, matplotlib for the coursework's own figure as a PDF.

The pages draw their charts as SVG (the browser renders them): a millisecond of work each, where
matplotlib takes a sixth of a second per figure and half a second to import, time taken from the
workers on a busy marking machine and most of a 500-student re-mark. `coursework_figure` draws seed
000's plotting script line for line with matplotlib, for a TA who wants the student's own figure
(`grade plot`). Every function takes plain arrays; no text from a student's file goes into a figure.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

MISCLASSIFIED_SHOWN = 8


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    outputs: np.ndarray | None,
    names: tuple[str, ...] | None = None,
) -> str | None:
    """The coursework's own figure (seed 000's plotting script) as inline SVG: the first eight
    misclassified images ('True: 7', or the class's name, above each), each over a bar chart of the
    model's outputs for it ('Pred: 2' above, classes below, 'Probability' on the first). Grey images are
    drawn as the script draws them (dark ink on white), colour images in their colours. None when nothing
    was misclassified.

    SVG rather than matplotlib: the same picture, drawn by the browser, for a millisecond of work per
    student instead of a sixth of a second, which on a busy marking machine is time taken from the
    workers. Only numbers, PNG data and the assignment's class names (escaped) go into it, never text from
    a student's file.
    """
    wrong = np.where(predicted != labels)[0][:MISCLASSIFIED_SHOWN]
    if len(wrong) == 0:
        return None
    classes = outputs.shape[1] if outputs is not None else int(max(labels.max(), predicted.max())) + 1
    column, digit, bar_top, bar_height, left = 140, 84, 150, 90, 56
    width, height = left + column * len(wrong), bar_top + bar_height + 52
    values = (
        np.nan_to_num(outputs[wrong].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if outputs is not None
        else np.zeros((len(wrong), classes))
    )
    low, high = min(0.0, float(values.min())), max(1.0, float(values.max()))
    scale = bar_height / (high - low)
    baseline = bar_top + high * scale
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="figure" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        "<title>misclassified images with the model's outputs</title>",
        f'<text x="14" y="{bar_top + bar_height / 2}" transform="rotate(-90 14 {bar_top + bar_height / 2})" '
        'text-anchor="middle">Probability</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = baseline - tick * scale
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:g}</text>')
    for slot, index in enumerate(wrong):
        x0 = left + slot * column
        parts.append(
            f'<text x="{x0 + column / 2 - 10}" y="16" text-anchor="middle">True: '
            f"{escape(_name(names, int(labels[index])))}</text>"
        )
        parts.append(
            f'<image x="{x0 + (column - 20 - digit) / 2}" y="24" width="{digit}" height="{digit}" '
            f'style="image-rendering: pixelated" href="data:image/png;base64,{_image_png(images[index])}"/>'
        )
        parts.append(
            f'<text x="{x0 + column / 2 - 10}" y="{bar_top - 8}" text-anchor="middle">'
            f"Pred: {escape(_name(names, int(predicted[index])))}</text>"
        )
        step = (column - 30) / classes
        parts.append(
            f'<line x1="{x0}" y1="{baseline:.1f}" x2="{x0 + column - 24}" y2="{baseline:.1f}" '
            'stroke="#333" stroke-width="0.8"/>'
        )
        for cls in range(classes):
            value = float(values[slot, cls])
            top = baseline - max(value, 0) * scale
            parts.append(
                f'<rect x="{x0 + 3 + cls * step:.1f}" y="{top:.1f}" width="{step * 0.8:.1f}" '
                f'height="{abs(value) * scale:.1f}" fill="#1f77b4"><title>{escape(_name(names, cls))}: '
                f"{value:.3g}</title></rect>"
            )
            parts.append(
                f'<text x="{x0 + 3 + (cls + 0.4) * step:.1f}" y="{bar_top + bar_height + 14}" '
                f'text-anchor="middle" font-size="9">{cls}</text>'
            )
    parts.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">Classes</text></svg>')
    return "".join(parts)


def shared_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    given: np.ndarray,
    names: tuple[str, ...] | None,
    indices: list[int],
) -> str:
    """Images two networks gave the same wrong answer, side by side: the held-out index, the true class and
    the answer both gave, as inline SVG (numbers, PNG data and the assignment's class names only)."""
    column, digit = 96, 72
    width, height = column * len(indices), digit + 52
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="figure" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        "<title>images both networks got wrong with the same answer</title>",
    ]
    for slot, index in enumerate(indices):
        x0 = slot * column
        parts.append(
            f'<image x="{x0 + (column - digit) / 2}" y="2" width="{digit}" height="{digit}" '
            f'style="image-rendering: pixelated" href="data:image/png;base64,{_image_png(images[slot])}"/>'
        )
        parts.append(
            f'<text x="{x0 + column / 2}" y="{digit + 16}" text-anchor="middle">#{index} true '
            f"{escape(_name(names, int(labels[slot])))}</text>"
        )
        parts.append(
            f'<text x="{x0 + column / 2}" y="{digit + 32}" text-anchor="middle">both: '
            f"{escape(_name(names, int(given[slot])))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _name(names: tuple[str, ...] | None, cls: int) -> str:
    """A class's name, or its number (an output beyond the assignment's classes has no name)."""
    return names[cls] if names and 0 <= cls < len(names) else str(cls)


def _image_png(image: np.ndarray) -> str:
    """One image as a base64 PNG: a grey image dark ink on white, as the script's cmap='gray_r' shows it;
    a colour image as it is."""
    from PIL import Image

    pixels = np.asarray(image).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        picture = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    else:
        grey = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)[..., 0]
        picture = Image.fromarray(255 - grey, mode="L")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def accuracy_histogram(accuracies: Sequence[float], edges: Sequence[float]) -> str:
    """How a cohort's accuracies spread (inline SVG), with the mark table's band edges dashed in."""
    low = max(0.0, math.floor(min(accuracies)) - 1.0) if accuracies else 90.0
    bins = 40
    counts, _ = np.histogram(accuracies, bins=bins, range=(low, 100.0))
    chart = _Chart("distribution of accuracies", max(int(counts.max(initial=0)), 1))
    width = chart.plot_width / bins
    for index, count in enumerate(counts):
        if count:
            chart.bar(chart.left + index * width + 0.5, width - 1, int(count), "#4c72b0")
    for edge in edges:
        if low < edge < 100:
            x = chart.left + (edge - low) / (100 - low) * chart.plot_width
            chart.parts.append(
                f'<line x1="{x:.1f}" y1="{chart.top}" x2="{x:.1f}" y2="{chart.bottom}" stroke="#c44e52" '
                'stroke-dasharray="4 3" stroke-width="1"/>'
            )
    for tick in np.linspace(low, 100, 6):
        x = chart.left + (tick - low) / (100 - low) * chart.plot_width
        chart.label(x, f"{tick:g}")
    return chart.svg("accuracy % on the held-out set (dashed: band edges)")


def marks_bar(scores: Sequence[float], possible: Sequence[float]) -> str:
    """How many students got each mark (inline SVG)."""
    counts = [sum(1 for score in scores if score == mark) for mark in possible]
    chart = _Chart("distribution of marks", max([*counts, 1]))
    width = chart.plot_width / max(len(possible), 1)
    for index, (mark, count) in enumerate(zip(possible, counts, strict=True)):
        if count:
            chart.bar(chart.left + index * width + width * 0.15, width * 0.7, count, "#55a868")
        chart.label(chart.left + (index + 0.5) * width, f"{mark:g}")
    return chart.svg("mark")


class _Chart:
    """A bar chart in SVG: axes, integer ticks for counts, labels under the bars. Only numbers go in."""

    width, height, left, top, bottom = 640, 240, 48, 16, 196

    def __init__(self, title: str, most: int) -> None:
        self.plot_width = self.width - self.left - 12
        self.most = most
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="figure" role="img" viewBox="0 0 {self.width} '
            f'{self.height}" width="{self.width}" height="{self.height}" font-family="sans-serif" '
            f'font-size="11"><title>{title}</title>'
        ]
        step = max(1, math.ceil(most / 5))
        for tick in range(0, most + 1, step):
            y = self.y(tick)
            self.parts.append(
                f'<line x1="{self.left - 4}" y1="{y:.1f}" x2="{self.width - 12}" y2="{y:.1f}" stroke="#e5e8ec"/>'
            )
            self.parts.append(f'<text x="{self.left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')

    def y(self, count: float) -> float:
        return self.bottom - count / self.most * (self.bottom - self.top)

    def bar(self, x: float, width: float, count: int, colour: str) -> None:
        top = self.y(count)
        self.parts.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{self.bottom - top:.1f}" '
            f'fill="{colour}"><title>{count}</title></rect>'
        )

    def label(self, x: float, text: str) -> None:
        self.parts.append(f'<text x="{x:.1f}" y="{self.bottom + 16}" text-anchor="middle">{text}</text>')

    def svg(self, axis: str) -> str:
        self.parts.append(
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.width - 12}" y2="{self.bottom}" stroke="#333"/>'
        )
        self.parts.append(
            f'<text x="{self.left + self.plot_width / 2}" y="{self.height - 6}" text-anchor="middle">{axis}</text>'
        )
        self.parts.append(
            f'<text x="12" y="{(self.top + self.bottom) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {(self.top + self.bottom) / 2})">students</text></svg>'
        )
        return "".join(self.parts)


def coursework_figure(
    images: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    outputs: np.ndarray,
    target: str,
    names: tuple[str, ...] | None = None,
) -> list[tuple[int, int, int]]:
    """Seed 000's plotting script, line for line, with matplotlib: the first eight misclassified images over
    their output bars, saved as the script saves it (misclassified.pdf). Returns what it shows: (image,
    true class, predicted class) for each.

    One departure: 'Pred:' gives the class the mark counted (the stored prediction), where the script
    takes np.argmax of the one image predicted again alone, which on a near-tie can differ."""
    plt = _pyplot()
    misclassified_indices = np.where(predicted != labels)[0]
    n_plot = min(len(misclassified_indices), MISCLASSIFIED_SHOWN)
    if n_plot == 0:
        return []
    # squeeze=False: the script as given indexes axes[0, i], which fails for a single misclassification.
    fig, axes = plt.subplots(2, n_plot, figsize=(12, 3), squeeze=False)
    fig.subplots_adjust(hspace=0.5)
    for i in range(n_plot):
        idx = misclassified_indices[i]
        if images.ndim == 4:  # colour: shown in its colours
            axes[0, i].imshow(images[idx])
        else:
            axes[0, i].imshow(images[idx].reshape(images.shape[1], images.shape[2]), cmap="gray_r")
        axes[0, i].set_title(f"True: {_name(names, int(labels[idx]))}", y=1.05)
        axes[0, i].get_xaxis().set_visible(False)
        axes[0, i].get_yaxis().set_visible(False)
        output = outputs[idx, 0:]
        axes[1, i].bar(range(outputs.shape[1]), output)
        axes[1, i].set_xticks(range(outputs.shape[1]))
        axes[1, i].set_title(f"Pred: {_name(names, int(predicted[idx]))}", y=1.05)
        axes[1, i].get_yaxis().set_visible(False)
        if i == 0:
            axes[1, i].get_yaxis().set_visible(True)
            axes[1, 0].set_ylabel("Probability")
            axes[1, 0].set_yticks([0, 0.25, 0.5, 0.75, 1])
        fig.subplots_adjust(bottom=0.2)
        fig.text(0.51, 0.05, "Classes", ha="center", va="center")
    fig.savefig(target)
    plt.close(fig)
    return [(int(i), int(labels[i]), int(predicted[i])) for i in misclassified_indices[:n_plot]]
