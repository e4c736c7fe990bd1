"""From predicted classes and labels to a mark. Pure functions: no I/O, no TensorFlow.

Accuracy is kept as an exact fraction for every scoring decision; the float the official script prints
(100 * correct / total) is only for display, and equals the script's number bit for bit. The marking
scheme (a mark table, or a linear scale) is in grader.marking.schemes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from grader.marking.schemes import Band, Bands, Scheme, Score, Signoff


@dataclass(frozen=True)
class Mark:
    """The mark for one set of predictions."""

    correct: int
    "Images whose predicted class equals the label."
    total: int
    "Images in the held-out set."
    accuracy: float
    "100 * correct / total, the number the official test script prints."
    score: Score
    "What the marking scheme gives that accuracy."
    scheme: str
    "'bands', 'linear' or 'signoff'."
    band: Band | None
    "The mark-table row the exact accuracy falls in (bands only)."
    next_label: str | None
    "The next higher score's band ('[97, 100]') or name ('score 1.5'); None at the top."
    next_score: Score | None
    images_to_next: int | None
    "How many more correct images the next higher score needs, or None at the top."
    label: str | None = None
    "The sign-off label ('S+'), under a sign-off scheme."
    rule: str = ""
    "When that label is given, as the rule states it."
    passed_over: tuple[tuple[str, tuple[str, ...]], ...] = ()
    "Each better label, and why it was not given."

    @property
    def exact_percent(self) -> Fraction:
        return exact_percent(self.correct, self.total)


def exact_percent(correct: int, total: int) -> Fraction:
    """Accuracy in percent as an exact fraction."""
    if total <= 0:
        raise ValueError("cannot score an empty held-out set")
    return Fraction(100 * correct, total)


def accuracy_percent(correct: int, total: int) -> float:
    """Accuracy as the official script computes it: 100 * correct / total in float64.

    Python's int division rounds the exact quotient once, as numpy does for int64 / int, so the
    value (and its repr) is the one the script prints.
    """
    return 100 * correct / total


def images_needed(correct: int, total: int, edge: Fraction, closed: bool) -> int:
    """How many more correct images bring an accuracy to `edge` percent (past it when the edge is open)."""
    # Smallest c with 100*c/total >= edge (or > edge for an open edge), by exact arithmetic.
    target = edge * total / 100
    needed = math.ceil(target)
    if not closed and needed == target:
        needed += 1
    return max(0, needed - correct)


def mark(correct: int, total: int, scheme: Scheme, architecture: str | None = None, differences: str = "") -> Mark:
    """Mark `correct` out of `total` on the given marking scheme (a sign-off scheme also reads the
    architecture comparison's status: 'exact', 'kinds' or 'different', None when none was made; and
    `differences`, how it differs, for the reasons a better label was not given)."""
    if not 0 <= correct <= total:
        raise ValueError(f"correct ({correct}) must lie between 0 and total ({total})")
    percent = exact_percent(correct, total)
    if isinstance(scheme, Signoff):
        rule, passed_over = scheme.decide(percent, architecture, differences)
        step = scheme.next_step(percent, architecture)
        return Mark(
            correct=correct,
            total=total,
            accuracy=accuracy_percent(correct, total),
            score=rule.score,
            scheme=scheme.name,
            band=None,
            next_label=step.label if step else None,
            next_score=step.score if step else None,
            images_to_next=images_needed(correct, total, step.edge, step.closed) if step else None,
            label=rule.label,
            rule=rule.conditions(),
            passed_over=tuple((better.label, tuple(why)) for better, why in passed_over),
        )
    step = scheme.next_step(percent)
    return Mark(
        correct=correct,
        total=total,
        accuracy=accuracy_percent(correct, total),
        score=scheme.score(percent),
        scheme=scheme.name,
        band=scheme.band(percent) if isinstance(scheme, Bands) else None,
        next_label=step.label if step else None,
        next_score=step.score if step else None,
        images_to_next=images_needed(correct, total, step.edge, step.closed) if step else None,
    )


Z_95 = 1.959963984540054  # the two-sided 95% point of the standard normal


@dataclass(frozen=True)
class Interval:
    """A 95% confidence interval of an accuracy, and what it spans."""

    low: float
    "Lower end, in percent."
    high: float
    "Upper end, in percent."
    bands: tuple[Band, ...]
    "Under a mark table, every band the interval reaches into, lowest first."
    scores: tuple[Score, Score]
    "The scores at the interval's two ends."

    @property
    def crosses_edge(self) -> bool:
        """Whether another sample of images could give another score."""
        return self.scores[0] != self.scores[1] or len(self.bands) > 1


def confidence_interval(
    correct: int, total: int, scheme: Scheme, z: float = Z_95, architecture: str | None = None
) -> Interval:
    """Wilson's score interval for the accuracy: how far another sample of images from the same source
    could move it. Used to flag marks that sit within noise of a score's edge; never to change a mark."""
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    low, high = max(0.0, centre - half) * 100, min(1.0, centre + half) * 100
    # The ends are floats; compare their exact values with the scheme's exact edges.
    exact_low, exact_high = Fraction(low), Fraction(high)
    spanned = scheme.spanned(exact_low, exact_high) if isinstance(scheme, Bands) else ()
    if isinstance(scheme, Signoff):
        ends = (scheme.score(exact_low, architecture), scheme.score(exact_high, architecture))
    else:
        ends = (scheme.score(exact_low), scheme.score(exact_high))
    return Interval(low=low, high=high, bands=spanned, scores=ends)


def count_correct(predicted: np.ndarray, labels: np.ndarray) -> int:
    """np.sum(predicted == labels), as the official script counts."""
    if predicted.shape != labels.shape:
        raise ValueError(f"{predicted.shape[0]} predictions for {labels.shape[0]} labels")
    return int(np.sum(predicted == labels))


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """np.argmax(outputs, axis=1), as the official script takes the predicted class."""
    return np.argmax(outputs, axis=1)


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray, classes: int) -> list[dict[str, int]]:
    """For each class: how many images it has and how many of them were classified correctly."""
    totals = np.bincount(labels, minlength=classes)[:classes]
    right = np.bincount(labels[predicted == labels], minlength=classes)[:classes]
    return [{"class": cls, "total": int(totals[cls]), "correct": int(right[cls])} for cls in range(classes)]


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """matrix[true, predicted] = count. Predictions outside 0..classes-1 are not counted."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    inside = (predicted >= 0) & (predicted < classes)
    np.add.at(matrix, (labels[inside], predicted[inside]), 1)
    return matrix


def tied_top(outputs: np.ndarray) -> dict[str, Any]:
    """The images whose largest output is shared by two or more classes, so that np.argmax (the official
    script's rule) gave them the first of those classes: how many, and how many got each class; and
    whether every image got exactly the same outputs (the model does not use its input).

    A dead or NaN-poisoned network outputs one value for every class, and the tie rule then decides every
    image; behind a bias it outputs one row for every image instead. Rows holding NaN are left out of the
    ties: the nonfinite count reports them.
    """
    finite = np.isfinite(outputs).all(axis=1)
    top = outputs.max(axis=1, initial=-np.inf, where=np.isfinite(outputs), keepdims=True)
    tied = finite & ((outputs == top).sum(axis=1) >= 2)
    given = np.bincount(np.argmax(outputs[tied], axis=1), minlength=0) if tied.any() else np.zeros(0, np.int64)
    constant = bool(len(outputs) > 1 and finite.all() and (outputs == outputs[0]).all())
    return {
        "images": int(tied.sum()),
        "classes": {str(c): int(n) for c, n in enumerate(given) if n},
        "constant": constant,
    }
