"""From each part's result to one row per student: the total, the status and the reason. Pure: no I/O.

A one-part assignment's student row is its one result, unchanged (Coursework 1's marks.csv keeps its
columns). With several parts:
- every part marked: the total is the sum of each part's score times its weight; the status is
  `flagged` when any part is flagged, else `graded`;
- some parts marked: a part that could not be marked because of the file (no file, refused, failed to
  load or predict, over a limit) scores 0 and the student is `flagged`, saying which part and why; a part
  that `crashed` (grader's or the machine's failure, tried again next run) leaves the total unknown, and
  the student is `crashed`;
- no part marked: the first part's status, with every part's reason.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from grader.marking.schemes import as_score
from grader.status import MARKED

if TYPE_CHECKING:
    # Type-only: the coursework's rules come in as arguments (the layer contract in pyproject.toml).
    from grader.courseworks.assignment import Assignment

PART_COLUMNS = ("file", "status", "accuracy", "correct", "total", "score", "reason", "sha256")
"Each part's columns in a several-part marks.csv, prefixed '<part>_'."


def student_rows(results: list[dict[str, Any]], assignment: Assignment) -> list[dict[str, Any]]:
    """One row per student, in the order of `results` (a run's results, grouped by student)."""
    if assignment.single:
        return results
    by_student: dict[str, dict[str, dict[str, Any]]] = {}
    for row in results:
        by_student.setdefault(row["student_id"], {})[row["part"]] = row
    return [_combined(parts, assignment) for parts in by_student.values()]


def _combined(parts: dict[str, dict[str, Any]], assignment: Assignment) -> dict[str, Any]:
    first = next(iter(parts.values()))
    ordered = {part.name: parts.get(part.name) for part in assignment.parts}
    marked = {name: row for name, row in ordered.items() if row is not None and row["status"] in MARKED}
    unmarked = {name: row for name, row in ordered.items() if name not in marked}
    reasons = []
    for name, row in ordered.items():
        if row is None:
            reasons.append(f"{name}: no result")
        elif row["status"] not in MARKED:
            reasons.append(f"{name} ({row['status']}): {row['reason']}")
        elif row["reason"]:
            reasons.append(f"{name}: {row['reason']}")
    total: Fraction | None = sum(
        (Fraction(str(row["score"])) * assignment.part(name).weight for name, row in marked.items()), Fraction(0)
    )
    if not unmarked:
        status = "flagged" if any(row["status"] == "flagged" for row in marked.values()) else "graded"
    elif any(row is None or row["status"] == "crashed" for row in unmarked.values()):
        status, total = "crashed", None
    elif marked:
        status = "flagged"
    else:
        status, total = next(row["status"] for row in unmarked.values() if row is not None), None
    unsandboxed = next((way for row in parts.values() if (way := row["detail"].get("not_isolated"))), None)
    return {
        "student_id": first["student_id"],
        "student_name": first["student_name"],
        "folder": first["folder"],
        "status": status,
        "reason": "; ".join(reasons),
        **({"not_isolated": unsandboxed} if unsandboxed else {}),
        "score": as_score(total) if total is not None else None,
        "max_score": assignment.max_score,
        "parts": ordered,
    }
