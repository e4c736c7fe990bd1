"""Screen: what a file's inspection says before anything runs it (the format's and the coursework's checks, the
file chosen among several, the input shape the part takes). Pure: no I/O."""

from __future__ import annotations

from pathlib import Path

from grader.checks.screening import PASS, WARN, Check, refused, screen
from grader.run.context import RunContext
from grader.run.stage import beside
from grader.run.unit import Unit, declared_shape
from grader.shapes import shape_text


def screen_unit(context: RunContext, unit: Unit) -> list[Check]:
    """The checks screening adds for a unit whose file has been inspected (or could not be)."""
    submission, part = unit.submission, unit.part
    checks = []
    if unit.inspection is not None:
        name = Path(submission.chosen.name).name if submission.chosen else ""
        checks.extend(
            screen(
                unit.inspection,
                context.rules,
                part=part,
                file_name=name,
                allow_lambda=context.allow_lambda,
                beside=beside(submission),
            )
        )
    for note in submission.notes:
        checks.append(Check("file choice", WARN, note, "leave only the model to be marked in the folder"))
    checks.extend(Check("file choice", PASS, fact) for fact in submission.facts)
    declared = declared_shape(unit.inspection)
    if part.input_shapes and declared is not None and declared not in part.input_shapes:
        wanted = " or ".join(shape_text(shape, "unknown") for shape in part.input_shapes)
        checks.append(
            Check(
                "input shape",
                WARN,
                f"the model declares input {shape_text(declared, 'unknown')}; part {part.name}'s models take {wanted}",
                f"build the model for this part's input {wanted}, as the coursework asks",
            )
        )
    return checks


def refused_already(context: RunContext, unit: Unit) -> bool:
    """Whether a stored inspection already says screening will refuse the file (no worker needed)."""
    if unit.inspection is None:
        return False
    return refused(
        screen(
            unit.inspection,
            context.rules,
            part=unit.part,
            allow_lambda=context.allow_lambda,
            beside=beside(unit.submission),
        )
    )
