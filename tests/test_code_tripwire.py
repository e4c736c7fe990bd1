"""The audit hook as a tripwire, on whole code cohorts: one student per technique a review or a determined
student would try against it, graded under bubblewrap and, when asked for, without it. (Its own file so that
the suite's processes share the code tests evenly.)"""

from __future__ import annotations

import csv
from pathlib import Path

from grader.cohort import grade_cohort

from . import build_code
from .test_code import code_only


def _tripwire_cohort(root: Path) -> tuple[Path, Path]:
    victim = root / "victim.py"
    victim.write_text("original = True\n")
    files = {
        f"3{number:02d}": ("lab.py", build_code.tripwire_file(name, str(victim)))
        for number, name in enumerate(build_code.TRIPWIRE)
    }
    return build_code.write_cohort(root / "submissions", files), victim


def _each_attempt_is_named_and_flagged(summary, victim: Path) -> None:
    rows = {row["student_id"]: row for row in summary.rows}
    for number, (name, (_, words)) in enumerate(build_code.TRIPWIRE.items()):
        row = rows[f"3{number:02d}"]
        q21 = row["parts"]["code"]["detail"]["code"]["questions"][1]
        assert row["status"] == "flagged", name
        assert q21["points"] == 0 and words in q21["reason"], (name, q21["reason"])
        assert q21["review"] == "the code tried what it may not (refused)", name
        assert row["parts"]["code"]["score"] == 17, name  # every other question is graded as usual
    assert victim.read_text() == "original = True\n"


def test_each_way_past_the_hook_is_contained_named_and_flagged_in_the_sandbox(tmp_path: Path, bubblewrap) -> None:
    """One student per technique a review or a determined student would try against the audit hook (os reached
    through an allowed module and opened for writing, __name__ assigned to pass as numpy, a traceback's frames,
    gc, a __subclasses__ walk, code compiled under a library's file name, a plain write), in the open or by a
    computed name: under bubblewrap, each is contained, the question names what was tried, and the student is
    flagged for a person; the file they aimed at is unchanged."""
    submissions, victim = _tripwire_cohort(tmp_path)
    summary = grade_cohort(submissions, assignment=code_only(tmp_path), out=tmp_path / "reports", integrity=False)
    _each_attempt_is_named_and_flagged(summary, victim)
    assert summary.isolation.kind == "bubblewrap"
    assert "isolation" not in summary.marks_csv.read_text().splitlines()[0]


def test_each_way_past_the_hook_is_refused_without_the_sandbox_when_asked_for(tmp_path: Path) -> None:
    """The same files with --isolation process, asked for explicitly: the tripwire alone refuses and names each
    attempt (nothing changes on this machine), and every output says the run was not isolated."""
    submissions, victim = _tripwire_cohort(tmp_path)
    summary = grade_cohort(
        submissions, assignment=code_only(tmp_path), out=tmp_path / "reports", integrity=False, isolation="process"
    )
    _each_attempt_is_named_and_flagged(summary, victim)
    with open(summary.marks_csv, newline="") as handle:
        assert {row["isolation"] for row in csv.DictReader(handle)} == {"not isolated"}
