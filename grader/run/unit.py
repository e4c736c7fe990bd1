"""A unit: one model (or code file) a student hands in for one part, and what the run has learnt about it so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grader.checks.architecture_spec import Comparison, compare_inspection
from grader.checks.screening import Check
from grader.courseworks.assignment import Part
from grader.discovery import Submission
from grader.evaluation.staging import Staged
from grader.formats.base import Inspection


@dataclass
class Unit:
    """One model a student hands in for one part of the assignment: its way through the run."""

    submission: Submission
    "The student's entry, with the file chosen for this part."
    part: Part
    checks: list[Check] = field(default_factory=list)
    sha256: str = ""
    size: int | None = None
    staged: Staged | None = None
    "The private copy, made only when something still has to read the file."
    inspection: Inspection | None = None
    inspection_json: dict[str, Any] | None = None
    "The inspection as stored (kept, so that a re-mark does not serialise it again)."
    status: str = ""
    "The status the unit ended with, once its row is committed."
    comparison: Comparison | None = None
    "The file's layers against the part's required architecture, once compared."


def declared_shape(inspection: Inspection | None) -> tuple | None:
    """The input shape (without the batch axis) a model's config declares, when it has one input."""
    declared = inspection.input_shape if inspection is not None else None
    if isinstance(declared, list) and len(declared) > 1 and not isinstance(declared[0], list):
        return tuple(declared[1:])
    return None


def architecture(unit: Unit) -> Comparison | None:
    """The file's layers against the part's required architecture (None when the part has none), compared once."""
    if unit.part.architecture is None or unit.inspection is None:
        return None
    if unit.comparison is None:
        unit.comparison = compare_inspection(unit.inspection, unit.part.architecture)
    return unit.comparison
