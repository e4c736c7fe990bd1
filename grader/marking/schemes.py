"""Marking schemes: how an exact accuracy becomes a score. Pure and exact: no float decides an edge.

Three schemes, each named in every report:
- `Bands`: a mark table such as Coursework 1's Table 1 ('[96.5, 97)' gets 18), every edge exact.
- `Linear`: a straight line from `min_accuracy` (score 0) to `full_accuracy` (the part's maximum),
  clamped at both ends, then rounded to a stated step (down, up or to the nearest, halves up).
- `Signoff`: ordered rules, each a label (Oxford's 'S+', 'S'), a score and conditions on the
  architecture comparison and the accuracy; the first rule whose conditions hold gives the label.

Accuracies are percent as exact fractions (`Fraction(100 * correct, total)`); a score is an int when it is
whole and a float otherwise, as the gradebook and the exports store it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

Score = int | float
ROUNDINGS = ("none", "down", "up", "nearest")

# One number: an integer or a decimal written out (no exponent), so that a band edge such as 96.5 is
# read as the exact fraction 193/2 and no float ever decides which side of an edge a mark falls.
_NUMBER = r"\d+(?:\.\d+)?"
_INTERVAL = re.compile(rf"^\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*$")
_POINT = re.compile(rf"^\s*({_NUMBER})\s*$")


@dataclass(frozen=True)
class Band:
    """One row of a mark table: accuracies (in percent) inside the interval get `score`."""

    low: Fraction
    "Lower edge, in percent."
    high: Fraction
    "Upper edge, in percent."
    low_closed: bool
    "Whether an accuracy equal to `low` is inside the band."
    high_closed: bool
    "Whether an accuracy equal to `high` is inside the band."
    score: Score
    "The mark given for an accuracy in this band."
    text: str
    "The interval as the assignment file writes it, e.g. '[96.5, 97)'."

    def overlaps(self, low: Fraction, high: Fraction) -> bool:
        """Whether any accuracy in the closed range [low, high] lies inside this band."""
        below_end = self.low < high or (self.low_closed and self.low == high)
        above_start = self.high > low or (self.high_closed and self.high == low)
        return below_end and above_start

    def contains(self, percent: Fraction) -> bool:
        """Whether an exact accuracy in percent lies inside this band."""
        above = percent > self.low or (self.low_closed and percent == self.low)
        below = percent < self.high or (self.high_closed and percent == self.high)
        return above and below


@dataclass(frozen=True)
class Step:
    """The next higher score an accuracy can reach, and from where."""

    edge: Fraction
    "The accuracy (percent) where it starts."
    closed: bool
    "Whether an accuracy equal to `edge` already gets it (else it needs more)."
    score: Score
    label: str
    "How a report names it: the band ('[97, 100]') or the score."


@dataclass(frozen=True)
class Bands:
    """A mark table covering 0-100% with no gap and no overlap (checked when the assignment is read)."""

    bands: tuple[Band, ...]
    "Ordered from the lowest band to the highest."
    max_score: Score
    name = "bands"

    def band(self, percent: Fraction) -> Band:
        """The band an exact accuracy falls in."""
        for band in self.bands:
            if band.contains(percent):
                return band
        raise ValueError(f"no band holds {percent}%: the mark table does not cover 0-100%")

    def score(self, percent: Fraction) -> Score:
        return self.band(percent).score

    def next_step(self, percent: Fraction) -> Step | None:
        band = self.band(percent)
        above = [other for other in self.bands if other.score > band.score and other.low >= band.high]
        if not above:
            return None
        target = min(above, key=lambda other: other.low)
        return Step(target.low, target.low_closed, target.score, target.text)

    def spanned(self, low: Fraction, high: Fraction) -> tuple[Band, ...]:
        """Every band an accuracy range reaches into, lowest first."""
        return tuple(band for band in self.bands if band.overlaps(low, high))

    def describe(self) -> str:
        return f"mark table ({len(self.bands)} bands)"

    def edges(self) -> list[float]:
        return sorted({float(band.low) for band in self.bands if band.low > 0})

    def possible_scores(self) -> list[Score]:
        return sorted({band.score for band in self.bands})


@dataclass(frozen=True)
class Linear:
    """Score 0 at or below `min_accuracy`, `max_score` at or above `full_accuracy`, a straight line
    between, rounded to `step` as `rounding` says."""

    min_accuracy: Fraction
    full_accuracy: Fraction
    max_score: Score
    rounding: str = "none"
    "'none', 'down' (floor to the step), 'up' (ceiling) or 'nearest' (halves up)."
    step: Fraction | None = None
    name = "linear"

    def raw(self, percent: Fraction) -> Fraction:
        """The unrounded score, exact."""
        share = (percent - self.min_accuracy) / (self.full_accuracy - self.min_accuracy)
        return Fraction(self.max_score) * min(Fraction(1), max(Fraction(0), share))

    def exact(self, percent: Fraction) -> Fraction:
        raw = self.raw(percent)
        if self.rounding == "none" or self.step is None:
            return raw
        units = raw / self.step
        whole = {"down": math.floor(units), "up": math.ceil(units), "nearest": math.floor(units + Fraction(1, 2))}
        return min(Fraction(self.max_score), whole[self.rounding] * self.step)

    def score(self, percent: Fraction) -> Score:
        return as_score(self.exact(percent))

    def next_step(self, percent: Fraction) -> Step | None:
        current = self.exact(percent)
        top = Fraction(self.max_score)
        if current >= top:
            return None
        span = self.full_accuracy - self.min_accuracy
        if self.rounding == "none" or self.step is None:
            # Continuous: every correct image adds to the score; the step worth naming is full marks.
            return Step(self.full_accuracy, True, as_score(top), "full marks")
        target = min(top, current + self.step)
        if self.rounding == "down":
            edge, closed = self.min_accuracy + target / top * span, True
        elif self.rounding == "nearest":
            edge, closed = self.min_accuracy + (target - self.step / 2) / top * span, True
        else:  # up: any raw score above the current one rounds up past it
            edge, closed = self.min_accuracy + current / top * span, False
        return Step(edge, closed, as_score(target), f"score {number_text(as_score(target))}")

    def describe(self) -> str:
        rounded = (
            ""
            if self.rounding == "none" or self.step is None
            else f", rounded {self.rounding} to steps of {_percent(self.step)}"
        )
        return (
            f"linear: 0 at or below {_percent(self.min_accuracy)}%, {number_text(self.max_score)} at or above "
            f"{_percent(self.full_accuracy)}%, in proportion between{rounded}"
        )

    def edges(self) -> list[float]:
        return [float(self.min_accuracy), float(self.full_accuracy)]

    def possible_scores(self) -> list[Score]:
        if self.step is None or self.rounding == "none":
            return [0, self.max_score]
        count = int(Fraction(self.max_score) / self.step)
        return [as_score(self.step * k) for k in range(count + 1)]


# What a sign-off rule can ask of the architecture comparison, strictest first (see
# grader.checks.architecture_spec): every layer as asked; the right kinds in the right order; anything.
ARCHITECTURE_CONDITIONS = ("exact", "kinds", "any")
# A comparison's status ('exact', 'kinds', 'different') against what a condition accepts: a status meets
# a condition of the same rank or a looser one.
_ARCHITECTURE_RANK = {"exact": 0, "kinds": 1, "different": 2, "any": 2}


@dataclass(frozen=True)
class Rule:
    """One sign-off outcome and when it is given."""

    label: str
    "What the demonstrator writes ('S+', 'S', 'not signed off')."
    score: Score
    "The number a platform that needs one gets for this label (stated in the assignment file)."
    architecture: str = "any"
    "'exact': every layer and setting as the part's architecture asks; 'kinds': the right kinds of layer"
    " in the right order (settings may differ); 'any': no condition."
    min_accuracy: Fraction | None = None
    "The accuracy (percent, exact) the held-out set must reach, or None for no condition."
    says: str = ""
    "Where the coursework states the rule, for reports."

    def conditions(self) -> str:
        """'the architecture is exact and accuracy >= 97.5%', or 'otherwise'."""
        parts = []
        if self.architecture == "exact":
            parts.append("every layer is as the architecture asks")
        elif self.architecture == "kinds":
            parts.append("the layers are the right kinds in the right order")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {_percent(self.min_accuracy)}%")
        return " and ".join(parts) if parts else "no better label applies"

    def failures(self, percent: Fraction, architecture: str | None, differences: str = "") -> list[str]:
        """Why this rule does not apply to a result ([] when it does); `differences` says how the
        architecture differs, for the reason."""
        why = []
        if self.architecture != "any":
            if architecture is None:
                why.append("no architecture was compared")
            elif _ARCHITECTURE_RANK.get(architecture, 2) > _ARCHITECTURE_RANK[self.architecture]:
                why.append(
                    (
                        "the layers are the right kinds in the right order, but some settings differ"
                        if architecture == "kinds"
                        else "layers are missing, extra or of another kind"
                    )
                    + (f" ({differences})" if differences else "")
                )
        if self.min_accuracy is not None and percent < self.min_accuracy:
            why.append(f"accuracy {float(percent):.2f}% is below {_percent(self.min_accuracy)}%")
        return why


@dataclass(frozen=True)
class Signoff:
    """Ordered rules, best first; the last has no condition, so every marked result gets a label."""

    rules: tuple[Rule, ...]
    max_score: Score
    name = "signoff"

    def decide(
        self, percent: Fraction, architecture: str | None, differences: str = ""
    ) -> tuple[Rule, list[tuple[Rule, list[str]]]]:
        """The first rule that applies, and each rule before it with why it did not."""
        passed_over: list[tuple[Rule, list[str]]] = []
        for rule in self.rules:
            why = rule.failures(percent, architecture, differences)
            if not why:
                return rule, passed_over
            passed_over.append((rule, why))
        raise ValueError("no sign-off rule applies: the last rule must have no condition")

    def score(self, percent: Fraction, architecture: str | None = None) -> Score:
        return self.decide(percent, architecture)[0].score

    def next_step(self, percent: Fraction, architecture: str | None = None) -> Step | None:
        """The next better label that more correct images alone would reach (its other conditions hold)."""
        rule, passed_over = self.decide(percent, architecture)
        for better, _ in reversed(passed_over):
            if better.score <= rule.score or better.min_accuracy is None:
                continue
            if not better.failures(better.min_accuracy, architecture):
                return Step(better.min_accuracy, True, better.score, f"label {better.label}")
        return None

    def describe(self) -> str:
        return "sign-off: " + "; ".join(
            f"{rule.label} ({number_text(rule.score)}) when {rule.conditions()}"
            if rule.architecture != "any" or rule.min_accuracy is not None
            else f"otherwise {rule.label} ({number_text(rule.score)})"
            for rule in self.rules
        )

    def edges(self) -> list[float]:
        return sorted({float(rule.min_accuracy) for rule in self.rules if rule.min_accuracy is not None})

    def possible_scores(self) -> list[Score]:
        return sorted({rule.score for rule in self.rules})

    @property
    def needs_architecture(self) -> bool:
        return any(rule.architecture != "any" for rule in self.rules)


@dataclass(frozen=True)
class Points:
    """A code part's points: each question's, by its cases (grader.marking.code); no accuracy is marked."""

    max_score: Score
    name = "points"

    def describe(self) -> str:
        return f"points per question, {number_text(self.max_score)} in all"

    def score(self, percent: Fraction, architecture: str | None = None) -> Score:
        raise TypeError("a code part's points come from its questions (grader.marking.code), not an accuracy")

    def next_step(self, percent: Fraction, architecture: str | None = None) -> Step | None:
        return None

    def edges(self) -> list[float]:
        return []

    def possible_scores(self) -> list[Score]:
        return []


Scheme = Bands | Linear | Signoff | Points


def as_score(value: Fraction) -> Score:
    """A score as stored: an int when whole, else a float."""
    return int(value) if value.denominator == 1 else float(value)


def number_text(value: Score) -> str:
    """2 -> '2', 1.5 -> '1.5'."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_interval(text: str) -> tuple[Fraction, Fraction, bool, bool]:
    """Parse '[96.5, 97)', '(0, 50)' or '0' into exact edges and closedness.

    Raises ValueError with a message that says what is wrong.
    """
    point = _POINT.match(text)
    if point:
        value = Fraction(point.group(1))
        return value, value, True, True
    interval = _INTERVAL.match(text)
    if not interval:
        raise ValueError(
            f"{text!r} is not an interval: write it as in the mark table, e.g. '[96.5, 97)', '(0, 50)' or '0'"
        )
    opening, low, high, closing = interval.groups()
    low_value, high_value = Fraction(low), Fraction(high)
    if low_value >= high_value:
        raise ValueError(f"{text!r}: the lower edge must be below the upper edge")
    return low_value, high_value, opening == "[", closing == "]"


def coverage_problem(bands: list[Band]) -> str:
    """'' when every accuracy from 0 to 100 percent falls in exactly one band (bands sorted), else why not."""
    first, last = bands[0], bands[-1]
    if first.low != 0 or not first.low_closed:
        return "leave 0% without a mark: the lowest band must start at '[0' or be '0'"
    for before, after in zip(bands, bands[1:], strict=False):
        if after.low < before.high or (after.low == before.high and before.high_closed and after.low_closed):
            return f"{before.text!r} and {after.text!r} overlap"
        if after.low > before.high or not (before.high_closed or after.low_closed):
            return f"leave {_percent(before.high)}% without a mark, between {before.text!r} and {after.text!r}"
    if last.high != 100 or not last.high_closed:
        return f"leave 100% without a mark: close the top band with ']' (e.g. '[{_percent(last.low)}, 100]')"
    return ""


def _percent(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))
