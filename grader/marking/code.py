"""Marking code questions: from each case's result to points. Pure: no I/O, no floats deciding an edge.

A question earns its points when every case passes (`rule = "all"`), or the share of cases passed
(`rule = "proportional"`, rounded down to the question's step). Code that works through an array element by
element loses the question's `loop_deduction` (never below zero): a loop must be found in the syntax tree
(for, while, a comprehension, np.vectorize) and the timed case must confirm it, taking more than
`loop_factor` times the reference implementation (or not finishing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from grader.marking.schemes import Score, as_score

RULES = ("all", "proportional")
# Below this the reference's time is noise: ratios are taken against at least this.
TIMING_FLOOR_SECONDS = 0.001
# A ratio within this factor of loop_factor (either side) decides the deduction but flags the student: the
# timings of two runs on a busy machine can differ by this much.
NEAR_FACTOR = 1.5


@dataclass(frozen=True)
class Question:
    """One code question: the function it asks for and how it is marked."""

    name: str
    "Short identifier ('q20'), the key of the test module's CASES."
    title: str
    "What the coursework calls it ('Question 20: convolution')."
    functions: tuple[str, ...]
    "Accepted function names, the template's first."
    points: Fraction
    rule: str = "all"
    "'all': the points only when every case passes; 'proportional': the share of cases passed."
    step: Fraction = Fraction(1, 2)
    "Proportional points are rounded down to a multiple of this."
    loop_deduction: Fraction = Fraction(0)
    "Points lost for element-by-element code (confirmed by timing)."


@dataclass(frozen=True)
class CodeSpec:
    """A code part: its questions, the test module that checks them, and the limits its calls run under."""

    tests: str
    "The instructor's test module (a .py file beside the assignment file)."
    tests_sha256: str
    questions: tuple[Question, ...]
    template: str = ""
    "The student template an instructor hands out (a .py file beside the assignment file), if any."
    seed: int = 0
    "Seeds the random inputs the test module builds (the same cases for every student)."
    call_seconds: float = 10.0
    "Wall-clock limit for one call of a student's function."
    timing_seconds: float = 30.0
    "Wall-clock limit for a timed case (a large input)."
    loop_factor: float = 20.0
    "A timed case slower than this many times the reference confirms element-by-element loops."
    imports: tuple[str, ...] = ()
    "Modules the code may import; () for grader's default (numpy and a few of Python's own)."

    @property
    def max_score(self) -> Score:
        return as_score(sum((question.points for question in self.questions), Fraction(0)))

    def evaluation_key(self) -> str:
        """A hash of what changes the stored results (not the points): tests, seed, names, limits, imports."""
        rules = {
            "tests": self.tests_sha256,
            "seed": self.seed,
            "functions": {question.name: list(question.functions) for question in self.questions},
            "limits": [self.call_seconds, self.timing_seconds],
            "imports": list(self.imports),
        }
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class QuestionMark:
    """What one question earned, and why."""

    question: Question
    points: Score
    passed: int
    total: int
    deduction: Score
    reason: str
    "'' when full marks; else why points were lost, with the line."
    loops: str = ""
    "The loops found and what their timing showed ('' when none were found)."
    review: str = ""
    "Why a person should look at this question ('' when nothing needs it): code refused, a timing near the threshold."


def mark_question(question: Question, result: dict[str, Any] | None, factor: float, problem: str = "") -> QuestionMark:
    """The points one question's stored result earns. `problem` is why the file gave no result at all."""
    if result is not None and result.get("refused"):
        # Its function was found but not run: it reached out of the student's code (grader.evaluation.code_worker).
        name = result.get("name", question.functions[0])
        left_out = f"{name} at {result['where']} was not run: it tried to {result['refused']}"
        return QuestionMark(question, 0, 0, 0, 0, left_out, review="the code tried what it may not (refused)")
    if result is None or result.get("function") is None:
        return QuestionMark(question, 0, 0, 0, 0, problem or not_found(question))
    cases = result.get("cases", [])
    passed = sum(1 for case in cases if case.get("passed"))
    total = len(cases)
    if question.rule == "all":
        earned = question.points if passed == total and total else Fraction(0)
    else:
        share = question.points * Fraction(passed, total) if total else Fraction(0)
        earned = (share // question.step) * question.step
    failing = next((case for case in cases if not case.get("passed")), None)
    why = [f"{passed} of {total} cases passed; {failing['name']}: {failing['message']}"] if failing else []
    refused = sorted(set(result.get("attempts", [])))
    unsaid = [attempt for attempt in refused if not failing or attempt not in failing["message"]]
    if unsaid:
        why.append("tried to " + "; ".join(unsaid) + " (refused)")
    loops = loop_verdict(result, factor)
    deduction = Fraction(0)
    if loops["element_by_element"] and earned > 0:
        deduction = min(earned, question.loop_deduction)
        if deduction:
            why.append(f"element by element ({loops['short']}, -{as_score(deduction)})")
    review = []
    if refused:
        review.append("the code tried what it may not (refused)")
    if loops.get("near") and deduction:
        # Near the threshold a deduction may be the machine's doing: a person decides. (Below it, the
        # student keeps the points: the benefit of the doubt.)
        review.append("an element-by-element deduction from a timing near the threshold")
    return QuestionMark(
        question,
        as_score(earned - deduction),
        passed,
        total,
        as_score(deduction),
        "; ".join(why),
        loops["text"],
        "; ".join(review),
    )


def loop_verdict(result: dict[str, Any], factor: float) -> dict[str, Any]:
    """Whether loops found in the code are confirmed as element by element by the timed case."""
    found = result.get("loops") or []
    timing = result.get("timing")
    if not found:
        return {"element_by_element": False, "text": "", "short": ""}
    at = ", ".join(f"{loop['kind']} at {loop['where']}" for loop in found[:3]) + (", ..." if len(found) > 3 else "")
    if timing is None:
        return {"element_by_element": False, "text": f"{at}; not timed", "short": "not timed"}
    reference = max(float(timing["reference_seconds"]), TIMING_FLOOR_SECONDS)
    near = False
    if timing.get("timed_out"):
        ratio_text = f"did not finish the timed case within {timing['seconds']:g} s"
        short = f"{at.split(',')[0]}; over {timing['seconds']:g} s on the timed case"
        slow = True
    else:
        ratio = float(timing["seconds"]) / reference
        slow = ratio > factor
        near = factor / NEAR_FACTOR < ratio < factor * NEAR_FACTOR
        short = f"{at.split(',')[0]}; {ratio:.0f}x the reference's time"
        ratio_text = (
            f"{timing['seconds']:.3g} s on the timed case where the reference takes "
            f"{float(timing['reference_seconds']):.2g} s ({ratio:.0f}x"
            + (f", over {factor:g}x)" if slow else f", within {factor:g}x: not element by element)")
        )
        if near and slow:
            ratio_text += (
                f"; within {NEAR_FACTOR:g}x of the threshold, where timing alone is not sure: a person should look"
            )
    return {"element_by_element": slow, "near": near, "text": f"{at}; {ratio_text}", "short": short}


def not_found(question: Question) -> str:
    """'no function relu was found' (with how many other names were looked for)."""
    others = len(question.functions) - 1
    return f"no function {question.functions[0]}" + (f" (or {others} other names)" if others else "") + " was found"


def reasons(marks: list[QuestionMark], field: str = "reason") -> str:
    """Why points were lost (or, with field='review', why a person should look), question by question;
    questions with the same reason are named together."""
    grouped: dict[str, list[str]] = {}
    for mark in marks:
        text = getattr(mark, field)
        if text:
            grouped.setdefault(text, []).append(mark.question.name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in grouped.items())


def mark_code(answer: dict[str, Any], spec: CodeSpec, problem: str = "") -> list[QuestionMark]:
    """Every question's mark from a stored code evaluation."""
    results = answer.get("questions", {}) if answer.get("ok") else {}
    if not answer.get("ok") and not problem:
        problem = answer.get("error", "the file could not be run")
    problem = problem or answer.get("stopped", "")
    marks = []
    for question in spec.questions:
        result = results.get(question.name)
        why = problem
        if result is not None and result.get("function") is None and answer.get("syntax_errors"):
            first = answer["syntax_errors"][0]
            why = f"no function found; syntax error at {first['where']}: {first['message']}"
        marks.append(mark_question(question, result, spec.loop_factor, why))
    return marks


def file_attempts(answer: dict[str, Any]) -> list[str]:
    """What the file's code tried outside any question's calls: statements left out because they reach out of it,
    and what its definitions tried while they ran (refused, each once)."""
    return list(dict.fromkeys([*answer.get("prepare_attempts", []), *answer.get("load_attempts", [])]))


def total(marks: list[QuestionMark]) -> Score:
    return as_score(sum((Fraction(str(mark.points)) for mark in marks), Fraction(0)))


def code_detail(answer: dict[str, Any], marks: list[QuestionMark]) -> dict[str, Any]:
    """What a code part's report shows: the points, each question's cases, and what was and was not run."""
    results = answer.get("questions", {})
    questions = []
    for mark in marks:
        result = results.get(mark.question.name) or {}
        questions.append(
            {
                "name": mark.question.name,
                "title": mark.question.title,
                "points": mark.points,
                "max_points": as_score(mark.question.points),
                "rule": mark.question.rule,
                "passed": mark.passed,
                "total": mark.total,
                "deduction": mark.deduction,
                "reason": mark.reason,
                "loops": mark.loops,
                "review": mark.review,
                "function": result.get("function"),
                "where": result.get("where"),
                "names": list(mark.question.functions),
                "cases": result.get("cases", []),
                "timing": result.get("timing"),
            }
        )
    return {
        "score": total(marks),
        "max_score": as_score(sum((mark.question.points for mark in marks), Fraction(0))),
        "passed": sum(mark.passed for mark in marks),
        "cases": sum(mark.total for mark in marks),
        "notebook": bool(answer.get("notebook")),
        "used_cells": answer.get("used_cells", []),
        "dropped": answer.get("dropped", []),
        "syntax_errors": answer.get("syntax_errors", []),
        "load_errors": answer.get("load_errors", []),
        "questions": questions,
    }
