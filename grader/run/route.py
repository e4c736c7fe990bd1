"""Route: each student's files to the assignment's parts, by name, by format, and by the input shape each model
declares; a unit per student and part, with the file chosen for it and why."""

from __future__ import annotations

from collections.abc import Callable

from grader import formats
from grader.checks.screening import PASS, Check
from grader.courseworks.assignment import Assignment, Part
from grader.discovery import Submission, SubmittedFile, choose_for_part, model_files
from grader.run.unit import Unit
from grader.shapes import shape_text


def route(
    submissions: list[Submission],
    rules: Assignment,
    declared_shapes: Callable[[list[tuple[Submission, SubmittedFile]]], dict[str, tuple | None]],
) -> list[Unit]:
    """A unit per student and part. One part takes the file discovery chose, as Coursework 1's script
    does; several take each model file to the part its name says, else to the part its declared input
    shape fits (`declared_shapes` reads them in the sandboxed inspector), and each part grades the last of its
    files by name."""
    parts = rules.parts
    if rules.single and not parts[0].files and not parts[0].input_shapes:
        return [Unit(submission, parts[0]) for submission in submissions]
    takers = {name: [p for p in parts if name in rules.formats_of(p)] for name in rules.formats}

    def taking(file: SubmittedFile) -> list[Part]:
        """The parts that take a file's format (a .py file goes only to a code part)."""
        return takers.get(formats.format_of(file.name) or "", [])

    named = {
        id(submission): {
            f.name: [p for p in taking(f) if p.name_matches(f.name)]
            for f in model_files(submission.files, rules.formats)
        }
        for submission in submissions
    }
    undecided = [
        (submission, file)
        for submission in submissions
        if not submission.problem
        for file in model_files(submission.files, rules.formats)
        if len([p for p in named[id(submission)][file.name] if p.files]) != 1 and not formats.is_code(file.name)
    ]
    shapes = declared_shapes(undecided)
    units = []
    for submission in submissions:
        assigned: dict[str, list[SubmittedFile]] = {part.name: [] for part in parts}
        went: list[str] = []
        matched_by_shape: dict[str, list[str]] = {part.name: [] for part in parts}
        for file in model_files(submission.files, rules.formats):
            by_name = named[id(submission)][file.name]
            patterned = [p for p in by_name if p.files]
            if len(patterned) == 1:
                assigned[patterned[0].name].append(file)
                went.append(f"{file.name} is for part {patterned[0].name} by its name")
                continue
            if formats.is_code(file.name):
                code_parts = taking(file)
                if len(code_parts) == 1:
                    assigned[code_parts[0].name].append(file)
                    went.append(f"{file.name} is for part {code_parts[0].name}, the part that takes code")
                else:
                    went.append(f"{file.name}: its name fits none of the code parts' patterns")
                continue
            # The name fits several parts' patterns (those decide between them by shape), or none (all do).
            shape = shapes.get(file.location)
            fitting = [p for p in (patterned or taking(file)) if p.shape_matches(shape)]
            if len(fitting) == 1:
                assigned[fitting[0].name].append(file)
                matched_by_shape[fitting[0].name].append(file.name)
                went.append(
                    f"{file.name} is for part {fitting[0].name} by its input shape {shape_text(shape, 'unknown')}"
                )
            else:
                went.append(unmatched(file.name, shape, fitting))
        for part in parts:
            chosen = choose_for_part(
                submission,
                assigned[part.name],
                part=part.name,
                elsewhere=went,
                formats=rules.formats_of(part),
            )
            unit = Unit(chosen, part)
            for name in matched_by_shape[part.name]:
                if chosen.chosen is not None and chosen.chosen.name == name and part.files:
                    unit.checks.append(
                        Check(
                            "file choice",
                            PASS,
                            f"{name}: its name fits no part's pattern ({', '.join(part.files)}); its input "
                            f"shape {shape_text(shapes.get(chosen.chosen.location), 'unknown')} is this part's",
                        )
                    )
            units.append(unit)
    return units


def unmatched(name: str, shape: tuple | None, candidates: list[Part]) -> str:
    """Why a model file went to no part (`candidates`: the parts both its name and its shape fit)."""
    if len(candidates) > 1:
        return (
            f"{name} fits several parts ({', '.join(p.name for p in candidates)}) by its name and input shape "
            f"{shape_text(shape, 'unknown')}, so it was not graded: name it for one part"
        )
    if shape is None:
        return f"{name}: its name fits no part and its input shape could not be read"
    return f"{name}: neither its name nor its input shape {shape_text(shape, 'unknown')} fits a part"
