"""One file, checked as the instructor's run would check it (`grade inspect`, `grade check`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from grader.assignment import Assignment
from grader.errors import NotAnH5File
from grader.inspection import Inspection
from grader.sandbox import choose_isolation
from grader.scheduler import inspect_files
from grader.screening import FAIL, Check, screen, size_check


def inspect_one(path: Path, assignment: Assignment, *, isolation: str = "auto",
                allow_lambda: bool = False) -> tuple[dict[str, Any] | None, list[Check]]:
    """Inspect one file in a sandboxed h5py-only child and screen it against the assignment.

    Returns the inspection (as JSON) and the checks; the inspection is None when the file broke the reader.
    """
    if not path.is_file():
        raise NotAnH5File(f"{path}: not a file")
    checks = [size_check(path.stat().st_size, assignment)]
    answers: dict[Path, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="grader-inspect-") as work:
        staged = Path(work) / "model.h5"
        shutil.copyfile(path, staged)
        inspect_files([staged], isolation=choose_isolation(isolation), workdir=Path(work) / "inspector",
                      on_result=lambda p, answer: answers.update({p: answer}))
        answer = answers[staged]
    if not answer.get("ok"):
        checks.append(Check("HDF5 file", FAIL, answer.get("error", "could not be read"),
                            "save the model again with model.save('name.h5')"))
        return None, checks
    inspection = {**answer["inspection"], "path": str(path)}
    checks += screen(Inspection.from_json(inspection), assignment, allow_lambda=allow_lambda)
    return inspection, checks
