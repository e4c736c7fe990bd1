"""Read (the inspect stage): what each file declares (layers, shapes, config; weights summarised for integrity
evidence), read without running it by the sandboxed inspector, or taken from the gradebook when that file was
read before by the same inspector."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

from grader.checks.screening import unreadable_check
from grader.discovery import Submission, SubmittedFile
from grader.evaluation.scheduler import inspect_files
from grader.formats.base import Inspection
from grader.formats.fingerprint import REVISION as FINGERPRINT_REVISION
from grader.inspection import REVISION as INSPECTOR_REVISION
from grader.release import VERSION
from grader.run.context import RunContext
from grader.run.stage import Stager
from grader.run.unit import Unit, declared_shape

INSPECTOR = f"grader {VERSION} inspector {INSPECTOR_REVISION}"


def stored_inspections(context: RunContext, units: list[Unit]) -> list[Unit]:
    """Take inspections from the gradebook; return the units whose file must still be inspected (or, for
    integrity evidence, have its weights summarised)."""
    todo = []
    for unit in units:
        cached = context.book.inspection(unit.sha256, INSPECTOR)
        if cached is not None:
            unit.inspection, unit.inspection_json = Inspection.from_json(cached), cached
        if cached is None or context.integrity and not context.book.has_weights(unit.sha256, FINGERPRINT_REVISION):
            todo.append(unit)
    return todo


def inspect(context: RunContext, stager: Stager, units: list[Unit], *, quiet: bool = False) -> set[int]:
    """Inspect files in the sandboxed reader (copying each first), and store what it read. Returns the ids of the
    units it read (the others could not be copied, and are finished unless quiet)."""
    todo: dict[Path, Unit] = {}
    for unit in units:
        if (path := stager.copy(unit, quiet=quiet)) is not None:
            todo[path] = unit

    def collect(path: Path, answer: dict[str, Any]) -> None:
        unit = todo[path]
        if answer.get("ok"):
            unit.inspection = Inspection.from_json(answer["inspection"])
            unit.inspection_json = answer["inspection"]
            context.book.add_inspection(unit.sha256, INSPECTOR, answer["inspection"])
            if "fingerprint" in answer:
                summary = dict(answer["fingerprint"])
                kernels = summary.pop("kernels", None)
                blob = base64.b64decode(kernels) if kernels else None
                context.book.add_weights(unit.sha256, FINGERPRINT_REVISION, summary, blob)
        else:
            unit.checks.append(unreadable_check(answer.get("error", ""), context.rules.formats_of(unit.part)))

    if todo:
        inspect_files(
            list(todo),
            isolation=context.isolation,
            workdir=context.workdir / "inspector",
            on_result=collect,
            fingerprint=context.integrity,
        )
    return {id(unit) for unit in todo.values()}


def declared_shapes(
    context: RunContext, stager: Stager, files: list[tuple[Submission, SubmittedFile]]
) -> dict[str, tuple | None]:
    """The input shape (without the batch axis) each file's model declares, read by the sandboxed inspector
    (stored inspections reused); None when it cannot be read. Routing asks it of a student's several files."""
    probes = [
        (file, Unit(replace(submission, chosen=file, notes=()), context.rules.model_parts[0]))
        for submission, file in files
    ]
    readable = [unit for file, unit in probes if file.kind == "file" and stager.hash(unit) is None]
    inspect(context, stager, stored_inspections(context, readable), quiet=True)
    return {file.location: declared_shape(unit.inspection) for file, unit in probes}
