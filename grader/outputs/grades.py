"""The marks as every export needs them, and what every importer's checker shares.

`Marks` is a completed run's rows (`load_marks` reads the latest from a reports folder); `export_grade` and
`feedback_text` give a row's grade and one line of feedback; `read_roster` reads a platform's roster CSV; the
CSV writer and the checks of a header and of a grade are shared by the builders and checkers of each platform
(grader.outputs.exports: Moodle and Canvas; grader.outputs.brightspace; grader.outputs.ilias).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.courseworks.assignment import SINGLE_PART, Assignment, load_assignment
from grader.errors import AssignmentError, ExportError
from grader.gradebook import Gradebook
from grader.marking.schemes import Signoff
from grader.marking.totals import student_rows
from grader.outputs.reports import label_of, number, student_folder
from grader.status import MARKED


@dataclass(frozen=True)
class Marks:
    """A completed run's results, as the exports need them: one row per student."""

    rows: list[dict[str, Any]]
    title: str
    max_score: float
    reports: Path
    assignment: Assignment | None = None
    "The assignment, for one with several parts (its rows carry each part under 'parts')."
    labels: tuple[str, ...] = ()
    "A one-part assignment marked by sign-off rules: its labels, best first ('S+', 'S', 'not signed off')."
    grade_as: str = "score"
    "What the grade column holds: 'score' (the number) or 'label' (the sign-off label, for a Moodle scale or a"
    " Canvas letter-grade or complete/incomplete assignment)."


def load_marks(reports: Path) -> Marks:
    """The latest completed run in a reports folder."""
    if not (reports / "gradebook.sqlite").exists():
        raise ExportError(f"{reports}: no gradebook here; run `grade SUBMISSIONS --out {reports}` first")
    with Gradebook.reading(reports) as book:
        run = book.run()
        results = book.results(run["id"])
    options = run["options"]
    rules = None
    needed = "max_score" not in options or any(row["part"] != SINGLE_PART for row in results)
    try:
        rules = load_assignment(run["assignment_path"])
    except AssignmentError as error:
        if needed:
            raise ExportError(f"the run's assignment file cannot be read again ({error})") from None
    if needed and rules is not None:
        options = {**options, "max_score": rules.max_score, "assignment_title": rules.title}
    rows = student_rows(results, rules) if rules is not None and not rules.single else results
    marking = rules.parts[0].marking if rules is not None and rules.single else None
    return Marks(
        rows=rows,
        title=options["assignment_title"],
        max_score=options["max_score"],
        reports=reports,
        assignment=rules if rules is not None and not rules.single else None,
        labels=tuple(rule.label for rule in marking.rules) if isinstance(marking, Signoff) else (),
    )


def grade_of(row: dict[str, Any], ungraded: str) -> str | None:
    """The grade to export: the score when marked; for others '0' (ungraded='zero') or None (skip)."""
    if row["status"] in MARKED:
        return number(row["score"])
    return "0" if ungraded == "zero" else None


def export_grade(marks: Marks, row: dict[str, Any], ungraded: str) -> str | None:
    """The grade column's value: the score, or under grade_as='label' the sign-off label (an ungraded
    student exported as 'zero' gets the last label, the one every marked file falls back to)."""
    if marks.grade_as != "label":
        return grade_of(row, ungraded)
    if row["status"] in MARKED:
        return label_of(row)
    return marks.labels[-1] if ungraded == "zero" else None


def checked_labels(marks: Marks) -> tuple[str, ...]:
    return marks.labels if marks.grade_as == "label" else ()


def feedback_text(row: dict[str, Any], max_score: float) -> str:
    """One line of feedback for the learning platform: the accuracy and mark, or each part's."""
    if "parts" in row:
        parts = []
        for name, part in row["parts"].items():
            if part is not None and part["status"] in MARKED:
                most = part["detail"].get("mark", {}).get("max_score")
                label = f"{label_of(part)}, " if label_of(part) else ""
                parts.append(f"{name}: accuracy {part['accuracy']:.2f}%, {label}{number(part['score'])}/{number(most)}")
            elif part is not None:
                parts.append(f"{name}: not graded ({part['status']}): {part['reason']}")
        total = f"Total {number(row['score'])}/{number(max_score)}. " if row["score"] is not None else ""
        flagged = f" Flagged for review: {row['reason']}" if row["status"] == "flagged" else ""
        return f"{total}{'; '.join(parts)}.{flagged}"
    if row["status"] in MARKED:
        label = label_of(row)
        given = f"signed off {label}, " if label else f"band {row['band']}, " if row["band"] else ""
        text = (
            f"Accuracy {row['accuracy']:.2f}% on the held-out set ({row['correct']:,} of {row['total']:,} "
            f"images): {given}{number(row['score'])}/{number(max_score)}."
        )
        return f"{text} Flagged for review: {row['reason']}" if row["status"] == "flagged" else text
    return f"Not graded ({row['status']}): {row['reason']}"


def read_roster(path: Path) -> list[dict[str, str]]:
    """A roster CSV: Moodle's grading worksheet, Moodle's participants export, or Canvas's gradebook export."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ExportError(f"{path}: cannot read the roster ({error.strerror})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ExportError(f"{path}: the roster has no rows")
    return [{(key or "").strip(): (value or "").strip() for key, value in row.items()} for row in rows]


def grade_problems(grade: str, line: int, max_score: float, ceiling: float, labels: tuple[str, ...] = ()) -> list[str]:
    if labels:
        return [] if grade in labels else [f"line {line}: grade {grade!r} is not one of the labels {', '.join(labels)}"]
    try:
        value = float(grade)
    except ValueError:
        return [f"line {line}: grade {grade!r} is not a number"]
    if not 0 <= value <= ceiling:
        return [f"line {line}: grade {grade} is outside 0-{number(ceiling)} (maximum {number(max_score)})"]
    return []


def header_problems(header: list[str]) -> list[str]:
    if not header or any(not column.strip() for column in header):
        return ["the header has an empty column name"]
    duplicated = sorted({column for column in header if header.count(column) > 1})
    return [f"the header repeats {', '.join(duplicated)}"] if duplicated else []


def csv_text(lines: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def reports_zip(marks: Marks, fmt: str, folder: Callable[[dict[str, Any]], str | None]) -> bytes:
    """A zip of each student's report.html under the folder `folder` names for them (students it names None are
    left out), with a fixed timestamp, so the same reports give the same zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in marks.rows:
            name = folder(row)
            if name is None:
                continue
            report = marks.reports / student_folder(row["student_id"]) / "report.html"
            if not report.exists():
                raise ExportError(f"{fmt}: {report} is missing; run grade again to write the reports")
            info = zipfile.ZipInfo(f"{name}/report.html", date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, report.read_bytes())
    return buffer.getvalue()
