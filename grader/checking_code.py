"""`grade check` for a code file: a student's functions run against the code part's cases, as `grade` runs them."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader import defaults
from grader.cohort import grade_cohort
from grader.courseworks.assignment import Assignment, Part
from grader.errors import GraderError
from grader.outputs.code_report import run_notes
from grader.outputs.reports import number, template
from grader.release import VERSION
from grader.status import MARKED


@dataclass(frozen=True)
class CodeCheck:
    """What `grade check functions.py` found: each question's points and its first failing case."""

    file: str
    sha256: str
    status: str
    reason: str
    score: Any
    max_score: Any
    questions: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]
    "What of the file was run: cells used, statements left out, syntax errors."
    assignment: str
    part: str
    isolation: str
    tests_sha256: str
    grader_version: str = VERSION

    @property
    def passed(self) -> bool:
        """Whether the file would be graded (points are another matter: see the questions)."""
        return self.status in MARKED

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "status": self.status,
            "reason": self.reason,
            "score": self.score,
            "max_score": self.max_score,
            "questions": list(self.questions),
            "notes": list(self.notes),
            "assignment": self.assignment,
            "part": self.part,
            "isolation": self.isolation,
            "tests_sha256": self.tests_sha256,
            "grader_version": self.grader_version,
        }

    def __str__(self) -> str:
        lines = [f"{self.file}: {self.status}" + (f" ({self.reason})" if self.reason and not self.passed else "")]
        if not self.isolation.startswith("bubblewrap"):
            lines.append(f"Not isolated: the functions ran without the sandbox ({self.isolation})")
        lines += [f"note: {note}" for note in self.notes]
        for question in self.questions:
            head = f"  {question['title']}: {number(question['points'])}/{number(question['max_points'])}"
            if question["function"] is None:
                lines.append(f"{head}: {question['reason']}")
                continue
            lines.append(
                f"{head} ({question['function']} at {question['where']}: {question['passed']} of "
                f"{question['total']} cases passed)"
            )
            lines += [f"    {case['name']}: {case['message']}" for case in question["cases"] if not case["passed"]]
            if question["deduction"]:
                lines.append(f"    element by element, -{number(question['deduction'])}: {question['loops']}")
        if self.passed:
            total = f"{number(self.score)} / {number(self.max_score)}"
            lines.append(f"Points: {total} (part {self.part} of {self.assignment})")
        lines.append(
            f"grader {self.grader_version}; {self.file} sha256 {self.sha256}; test module sha256 {self.tests_sha256}"
        )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the score, then each question."""
        return str(template("notebook_code.html.j2").render(result=self))


def check_code(path: Path, rules: Assignment, part: Part | None, *, isolation: str = defaults.ISOLATION) -> CodeCheck:
    """Run one code file as `grade` runs the code part it is for (the only code part, or `part`)."""
    code_parts = [each for each in rules.parts if each.code is not None]
    if part is None:
        if len(code_parts) != 1:
            raise GraderError(
                f"{rules.name} has {len(code_parts) or 'no'} code parts"
                + (f" ({', '.join(p.name for p in code_parts)}): pass --part" if code_parts else "")
            )
        part = code_parts[0]
    if part.code is None:
        raise GraderError(f"part {part.name} of {rules.name} is a model part; {path.name} is code")
    with tempfile.TemporaryDirectory(prefix="grader-check-") as work:
        folder = Path(work) / "submission" / "check"
        folder.mkdir(parents=True)
        shutil.copyfile(path, folder / path.name)
        summary = grade_cohort(
            folder.parent,
            assignment=replace(rules, parts=(part,)),
            out=Path(work) / "out",
            isolation=isolation,
            workers=1,
            reports=False,
            integrity=False,
        )
    row = summary.rows[0]["parts"][part.name]
    code = row["detail"].get("code") or {}
    return CodeCheck(
        file=path.name,
        sha256=row["sha256"],
        status=row["status"],
        reason=row["reason"],
        score=row["score"],
        max_score=part.max_score,
        questions=tuple(code.get("questions", [])),
        notes=tuple(run_notes(code)) if code else (),
        assignment=rules.name,
        part=part.name,
        isolation=summary.isolation.detail,
        tests_sha256=part.code.tests_sha256,
    )
