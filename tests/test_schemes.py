"""Marking schemes: a linear scale between two accuracies, exact at every edge, with its rounding stated;
sign-off rules, best first, with why each better label was not given; and the next step a student needs,
in images."""

from __future__ import annotations

from fractions import Fraction

import pytest

from grader.marking.schemes import Linear, Rule, Signoff
from grader.marking.scoring import confidence_interval, mark

SYDE_MNIST = Linear(Fraction(90), Fraction(98), 2, "down", Fraction(1, 2))


@pytest.mark.parametrize(
    ("correct", "total", "score"),
    [
        (9000, 10000, 0),  # exactly min_accuracy: 0
        (8999, 10000, 0),  # below: clamped at 0
        (9200, 10000, 0.5),  # exactly the first half-mark step: 90 + 8 * 0.5 / 2 = 92%
        (9199, 10000, 0),  # one image short of it: rounded down
        (9400, 10000, 1),
        (9799, 10000, 1.5),
        (9800, 10000, 2),  # exactly full_accuracy
        (10000, 10000, 2),  # clamped at the maximum
    ],
)
def test_a_linear_scale_is_exact_at_its_edges(correct: int, total: int, score: float) -> None:
    """0 at or below min_accuracy, the maximum at or above full_accuracy, rounded down to half marks in
    between; each step's edge falls on the side exact arithmetic puts it."""
    assert mark(correct, total, SYDE_MNIST).score == score


def test_float_rounding_does_not_move_a_linear_edge() -> None:
    """An accuracy whose float prints as 92.0 but lies just below 92% exactly stays below the step."""
    total = 10**17
    correct = 92 * 10**15 - 1
    assert 100 * correct / total == 92.0
    assert mark(correct, total, SYDE_MNIST).score == 0


@pytest.mark.parametrize(
    ("rounding", "correct", "score"),
    [
        ("nearest", 9299, 0.5),  # raw 0.7475: the nearest half mark is 0.5
        ("nearest", 9099, 0),  # raw 0.2475: just under a quarter, so 0
        ("nearest", 9100, 0.5),  # raw exactly 0.25: a half rounds up
        ("up", 9001, 0.5),  # any mark above 0 rounds up to the next half
        ("up", 9000, 0),
        ("none", 9100, 0.25),  # unrounded: exact
    ],
)
def test_rounding_is_the_one_stated(rounding: str, correct: int, score: float) -> None:
    scheme = Linear(Fraction(90), Fraction(98), 2, rounding, Fraction(1, 2) if rounding != "none" else None)
    assert mark(correct, 10000, scheme).score == score


def test_the_next_step_counts_the_images_it_needs() -> None:
    """Rounded down to half marks, 91.99% needs one more image for 0.5; at the top there is no next step;
    unrounded, the step named is full marks."""
    result = mark(9199, 10000, SYDE_MNIST)
    assert (result.next_score, result.next_label, result.images_to_next) == (0.5, "score 0.5", 1)
    assert mark(9800, 10000, SYDE_MNIST).next_label is None
    unrounded = Linear(Fraction(90), Fraction(98), 2)
    assert mark(9700, 10000, unrounded).images_to_next == 100
    assert mark(9700, 10000, unrounded).next_label == "full marks"


def test_a_linear_scheme_is_described_in_words() -> None:
    assert SYDE_MNIST.describe() == (
        "linear: 0 at or below 90%, 2 at or above 98%, in proportion between, rounded down to steps of 0.5"
    )
    assert SYDE_MNIST.possible_scores() == [0, 0.5, 1, 1.5, 2]


SIGNOFF = Signoff(
    (
        Rule("S+", 2, architecture="exact", min_accuracy=Fraction(975, 10)),
        Rule("S", 1, architecture="kinds"),
        Rule("not signed off", 0),
    ),
    2,
)


@pytest.mark.parametrize(
    ("correct", "architecture", "label", "next_label", "images"),
    [
        (9750, "exact", "S+", None, None),  # exactly 97.5%: the edge is inside
        (9749, "exact", "S", "label S+", 1),  # one image short
        (9999, "kinds", "S", None, None),  # no number of images makes the layers right
        (10, "kinds", "S", None, None),
        (9999, "different", "not signed off", None, None),
        (9999, None, "not signed off", None, None),  # no comparison was made
    ],
)
def test_signoff_rules_take_the_first_that_holds(
    correct: int, architecture: str | None, label: str, next_label: str | None, images: int | None
) -> None:
    """Rules apply best first, edges exact; the next label is named only when more correct images reach it."""
    result = mark(correct, 10_000, SIGNOFF, architecture)
    assert (result.label, result.next_label, result.images_to_next) == (label, next_label, images)
    assert result.score == {"S+": 2, "S": 1, "not signed off": 0}[label]


def test_signoff_says_why_each_better_label_was_not_given() -> None:
    """The reasons name the architecture's difference and the accuracy against the threshold."""
    result = mark(9000, 10_000, SIGNOFF, "kinds", "layer 1 (Conv2D): strides is 1x1, the practical asks for 2x2")
    assert result.passed_over == (
        (
            "S+",
            (
                "the layers are the right kinds in the right order, but some settings differ (layer 1 (Conv2D): "
                "strides is 1x1, the practical asks for 2x2)",
                "accuracy 90.00% is below 97.5%",
            ),
        ),
    )
    assert result.rule == "the layers are the right kinds in the right order"
    assert mark(9000, 10_000, SIGNOFF, "different").rule == "no better label applies"


def test_signoff_describes_itself_and_its_edges() -> None:
    """The description lists each label with its condition; the accuracy edges and scores are the rules'."""
    assert SIGNOFF.describe() == (
        "sign-off: S+ (2) when every layer is as the architecture asks and accuracy >= 97.5%; S (1) when the "
        "layers are the right kinds in the right order; otherwise not signed off (0)"
    )
    assert SIGNOFF.edges() == [97.5] and SIGNOFF.possible_scores() == [0, 1, 2]
    interval = confidence_interval(9750, 10_000, SIGNOFF, architecture="exact")
    assert interval.crosses_edge and interval.scores == (1, 2)
