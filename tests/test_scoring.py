"""Marks from Table 1 and from linear scales: exact at every edge, and the accuracy the official script prints."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.courseworks.assignment import load_assignment
from grader.marking.scoring import accuracy_percent, confusion_matrix, images_needed, mark, per_class_accuracy

BANDS = load_assignment().parts[0].marking


@pytest.mark.parametrize(
    ("correct", "total", "score"),
    [
        (9700, 10000, 20),  # 97.0% exactly: the top band's closed lower edge
        (9699, 10000, 18),  # 96.99%
        (11640, 12000, 20),  # 97.0% of 12,000
        (11639, 12000, 18),  # 96.991...%
        (10000, 10000, 20),  # 100%: Table 1 prints [97, 100) but markers give 20
        (9650, 10000, 18),  # 96.5% exactly
        (9649, 10000, 16),
        (9600, 10000, 16),
        (9599, 10000, 14),
        (9550, 10000, 14),
        (9500, 10000, 13),
        (9450, 10000, 12),
        (9400, 10000, 10),
        (9399, 10000, 9),
        (9000, 10000, 9),
        (8999, 10000, 8),
        (8500, 10000, 8),
        (8000, 10000, 7),
        (7000, 10000, 6),
        (6000, 10000, 5),
        (5000, 10000, 4),
        (4999, 10000, 3),
        (1, 12000, 3),  # anything above zero is in (0, 50)
        (0, 12000, 0),  # no correct image
    ],
)
def test_band_edges_are_exact(correct: int, total: int, score: int) -> None:
    """Each edge of Table 1 falls on the side the table says, decided with exact fractions."""
    assert mark(correct, total, BANDS).score == score


def test_float_rounding_does_not_decide_an_edge() -> None:
    """An accuracy whose float prints as 97.0 but lies just below 97 exactly stays in the lower band."""
    total = 10**17
    correct = 97 * 10**15 - 1
    assert accuracy_percent(correct, total) == 97.0  # the float cannot tell
    assert mark(correct, total, BANDS).score == 18  # the fraction can


@given(
    st.integers(min_value=1, max_value=200_000).flatmap(
        lambda total: st.tuples(st.integers(min_value=0, max_value=total), st.just(total))
    )
)
def test_accuracy_equals_the_official_scripts_number(pair: tuple[int, int]) -> None:
    """100 * correct / total is bit-identical to the official script's numpy expression."""
    correct, total = pair
    labels = np.zeros(total, dtype=np.uint8)
    official = 100 * np.int64(correct) / labels.size
    assert accuracy_percent(correct, total) == official
    assert repr(accuracy_percent(correct, total)) == str(official)


def test_next_band_counts_the_images_it_needs() -> None:
    """The mark says how many more correct images reach the band above."""
    result = mark(9449, 10000, BANDS)
    assert (result.score, result.next_score, result.next_label, result.images_to_next) == (10, 12, "[94.5, 95)", 1)
    assert mark(10000, 10000, BANDS).next_label is None
    assert mark(0, 12000, BANDS).images_to_next == 1  # one correct image reaches (0, 50)


def test_images_needed_respects_an_open_edge() -> None:
    """(0, 50) starts above 0: zero correct images is not enough, one is."""
    open_band = next(band for band in BANDS.bands if band.text == "(0, 50)")
    assert images_needed(0, 100, open_band.low, open_band.low_closed) == 1
    top = BANDS.bands[-1]
    assert images_needed(11639, 12000, top.low, top.low_closed) == 1
    assert Fraction(100 * 11640, 12000) == top.low


def test_per_class_accuracy_and_confusion() -> None:
    """Per-class counts and the confusion matrix (rows: true class, columns: predicted)."""
    labels = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    assert per_class_accuracy(predicted, labels, 3) == [
        {"class": 0, "total": 2, "correct": 1},
        {"class": 1, "total": 2, "correct": 2},
        {"class": 2, "total": 1, "correct": 0},
    ]
    assert confusion_matrix(predicted, labels, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_tied_top_outputs_are_counted_with_the_class_the_tie_rule_gave() -> None:
    """Rows whose largest output is shared are counted, by the class np.argmax gave (the first tied);
    rows with a clear winner and rows holding NaN are not."""
    from grader.marking.scoring import tied_top

    outputs = np.array(
        [
            [0.1] * 4,  # dead: every class tied, argmax 0
            [0.0, 0.4, 0.4, 0.2],  # two tied at the top: argmax 1
            [0.0, 0.3, 0.3, 0.4],  # tie below the top: not decided by the rule
            [np.nan, 0.5, 0.5, 0.0],  # NaN: reported as nonfinite instead
            [0.25, 0.25, 0.25, 0.25],
        ],
        np.float32,
    )
    assert tied_top(outputs) == {"images": 3, "classes": {"0": 2, "1": 1}, "constant": False}
    assert tied_top(np.eye(3, dtype=np.float32)) == {"images": 0, "classes": {}, "constant": False}


def test_outputs_the_same_for_every_image_are_called_constant() -> None:
    """A network that gives every image the same outputs (NaN weights behind a ReLU, behind a bias) does
    not use its input: tied_top says so, tie or no tie."""
    from grader.marking.scoring import tied_top

    same = np.tile(np.array([[0.05, 0.6, 0.35]], np.float32), (5, 1))
    assert tied_top(same) == {"images": 0, "classes": {}, "constant": True}
    almost = same.copy()
    almost[3, 0] = 0.0500001
    assert tied_top(almost)["constant"] is False
