"""Exports for Moodle and Canvas: golden files for each format, and the importers' rules enforced before
anything is written."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.outputs import exports
from grader.outputs.exports import ExportError, Marks

from .conftest import DEMO_HELDOUT, make_cohort

GOLDEN = Path(__file__).parent / "golden"


def row(
    student_id: str,
    name: str,
    status: str = "graded",
    score: float | None = 20.0,
    correct: int | None = 11704,
    reason: str = "",
    folder: str | None = None,
) -> dict:
    marked = status in ("graded", "flagged")
    return {
        "student_id": student_id,
        "student_name": name,
        "status": status,
        "reason": reason,
        "sha256": "ab" * 32,
        "folder": folder if folder is not None else f"{name}_{student_id}_assignsubmission_file_",
        "file": "model.h5" if marked or status == "refused" else "",
        "score": score if marked else None,
        "correct": correct if marked else None,
        "total": 12000 if marked else None,
        "accuracy": 100 * correct / 12000 if marked and correct is not None else None,
        "band": {20.0: "[97, 100]", 13.0: "[95, 95.5)", 9.0: "[90, 94)"}.get(score) if marked else None,
    }


ROWS = [
    row("100001", "Ada Lovelace"),
    row(
        "100002",
        "Alan Turing",
        "flagged",
        13.0,
        11412,
        "TF version: saved by Keras 2.13.1 (TensorFlow 2.13), older "
        "than TensorFlow 2.18.0, and the file name has no version tag",
    ),
    row("100003", "Grace Hopper", "refused", reason="layers: uses Lambda: a layer that carries Python code"),
    row("100004", "Edsger Dijkstra", "graded", 9.0, 11000),
]
WORKSHEET = """Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,Last modified (submission),Last modified (grade),Feedback comments
Participant 100001,Ada Lovelace,ada@example.ac.uk,Submitted for grading,,20.00,Yes,"Monday, 3 November 2026, 10:00 AM",-,
Participant 100002,Alan Turing,alan@example.ac.uk,Submitted for grading,,20.00,Yes,"Monday, 3 November 2026, 11:00 AM",-,
Participant 100003,Grace Hopper,grace@example.ac.uk,Submitted for grading,,20.00,Yes,"Monday, 3 November 2026, 12:00 PM",-,
Participant 100004,Edsger Dijkstra,edsger@example.ac.uk,Submitted for grading,,20.00,Yes,"Monday, 3 November 2026, 1:00 PM",-,
Participant 100009,Barbara Liskov,barbara@example.ac.uk,No submission,,20.00,Yes,-,-,
"""
CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,Coursework 1 (4321),Current Score
    Points Possible,,,,,20.00,
"Lovelace, Ada",100001,K001,ada@example.ac.uk,DNN 2026,,
"Turing, Alan",100002,K002,alan@example.ac.uk,DNN 2026,,
"Hopper, Grace",55555,K003,grace@example.ac.uk,DNN 2026,,
"Dijkstra, Edsger",100004,K004,edsger@example.ac.uk,DNN 2026,,
"""


def marks(rows=ROWS, reports: Path = Path("reports")) -> Marks:
    return Marks(rows=rows, title="Coursework 1: Deep Neural Networks", max_score=20, reports=reports)


def roster(text: str) -> list[dict[str, str]]:
    return [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))]


def golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; GRADER_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("GRADER_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_moodle_gradebook_csv_golden() -> None:
    """Moodle's gradebook import: identifier, grade item, feedback; the ungraded student is left out."""
    text = exports.moodle_csv(marks(), roster(WORKSHEET), identifier="email", item="Coursework 1", ungraded="skip")
    golden("moodle.csv", text)
    assert exports.check_moodle_csv(text, 20, roster(WORKSHEET), "email") == []


def test_moodle_worksheet_golden() -> None:
    """The downloaded worksheet comes back with Grade and Feedback comments filled in, all else kept."""
    text = exports.moodle_worksheet(marks(), roster(WORKSHEET), ungraded="zero")
    golden("moodle-worksheet.csv", text)
    assert exports.check_moodle_worksheet(text, 20, expected={"100001", "100002", "100003", "100004"}) == []


def test_moodle_worksheet_without_a_download_golden() -> None:
    """Without a downloaded worksheet, a new one holds the columns the upload reads."""
    text = exports.moodle_worksheet(marks(), None, ungraded="skip")
    golden("moodle-worksheet-new.csv", text)
    assert exports.check_moodle_worksheet(text, 20, expected={"100001", "100002", "100004"}) == []


def test_canvas_csv_golden() -> None:
    """Canvas: the five student columns, then 'Title (id)'; students matched by ID, SIS ids or name."""
    text = exports.canvas_csv(marks(), roster(CANVAS_ROSTER), column="Coursework 1 (4321)", ungraded="zero")
    golden("canvas.csv", text)
    assert exports.check_canvas_csv(text, 20, roster(CANVAS_ROSTER)) == []
    assert "55555" in text  # Grace Hopper matched by name, "Hopper, Grace"


def test_marks_csv_golden() -> None:
    """The csv format is marks.csv."""
    from grader.outputs.reports import marks_csv

    golden("marks.csv", marks_csv(ROWS))


def test_feedback_zip_golden(tmp_path: Path) -> None:
    """One folder per student, named as Moodle's feedback zip upload expects, each with report.html."""
    for student in ROWS:
        (tmp_path / student["student_id"]).mkdir()
        (tmp_path / student["student_id"] / "report.html").write_text(f"<p>{student['student_name']}</p>")
    data = exports.feedback_zip(marks(reports=tmp_path))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    golden("feedback-zip.txt", "\n".join(names) + "\n")
    assert exports.check_feedback_zip(data) == []
    assert exports.feedback_zip(marks(reports=tmp_path)) == data  # the same reports give the same bytes


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: exports.moodle_csv(
                marks([*ROWS, row("100077", "Un Known")]),
                roster(WORKSHEET),
                identifier="email",
                item="Coursework 1",
                ungraded="skip",
            ),
            "1 graded students are not in the roster, and Moodle aborts the whole import for one unknown user: 100077",
        ),
        (
            lambda: exports.moodle_csv(marks(), roster(WORKSHEET), identifier="idnumber", item="x", ungraded="skip"),
            "the roster has no 'ID number' column",
        ),
        (
            lambda: exports.moodle_worksheet(
                marks([*ROWS, row("100077", "Un Known")]), roster(WORKSHEET), ungraded="skip"
            ),
            "1 graded students are not in the worksheet, and the upload would drop their grades: 100077",
        ),
        (
            lambda: exports.moodle_worksheet(marks(), roster("Identifier,Grade\nParticipant 1,\n"), ungraded="skip"),
            "the worksheet has no 'Last modified (grade)' column",
        ),
        (
            lambda: exports.canvas_csv(marks(), roster(CANVAS_ROSTER), column=None, ungraded="skip"),
            "canvas needs --column with the assignment's column title as Canvas writes it, 'Title (id)'; the roster "
            "has: Coursework 1 (4321)",
        ),
        (
            lambda: exports.canvas_csv(
                marks([*ROWS, row("100077", "Un Known")]),
                roster(CANVAS_ROSTER),
                column="Coursework 1 (4321)",
                ungraded="skip",
            ),
            "1 graded students match no one in the roster",
        ),
        (
            lambda: exports.feedback_zip(marks([row("k1234567", "No Moodle", folder="k1234567")])),
            "1 students are not in Moodle folders",
        ),
    ],
)
def test_builders_refuse_what_the_importer_would_reject(build, message: str) -> None:
    """Unknown students, missing columns and missing assignment ids stop the export with the reason."""
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)").replace("'", ".")):
        build()


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        (
            lambda: exports.check_moodle_csv(
                "Email address,Coursework 1,Feedback\nada@example.ac.uk,21,x\n", 20, roster(WORKSHEET), "email"
            ),
            "line 2: grade 21 is outside 0-20 (maximum 20)",
        ),
        (
            lambda: exports.check_moodle_csv(
                "Email address,Coursework 1,Feedback\nada@example.ac.uk,20,x\nada@example.ac.uk,19,y\n",
                20,
                roster(WORKSHEET),
                "email",
            ),
            "line 3: Email address 'ada@example.ac.uk' appears twice",
        ),
        (
            lambda: exports.check_moodle_csv(
                "Email address,Coursework 1,Feedback\nnobody@x.y,20,x\n", 20, roster(WORKSHEET), "email"
            ),
            "line 2: Email address 'nobody@x.y' is not a user in the roster",
        ),
        (
            lambda: exports.check_moodle_csv(
                "Email address,Coursework 1,Feedback\nada@example.ac.uk,twenty,x\n", 20, roster(WORKSHEET), "email"
            ),
            "line 2: grade 'twenty' is not a number",
        ),
        (
            lambda: exports.check_moodle_worksheet(
                "Identifier,Grade,Last modified (grade)\n100001,20,-\n", 20, expected=set()
            ),
            "line 2: Identifier '100001' is not 'Participant <number>'",
        ),
        (
            lambda: exports.check_canvas_csv(
                "Student,ID,SIS User ID,SIS Login ID,Section,Coursework 1\nx,100001,,,,20\n", 20, roster(CANVAS_ROSTER)
            ),
            "assignment column 'Coursework 1' has no '(id)': Canvas would create a new assignment",
        ),
        (
            lambda: exports.check_canvas_csv(
                "Student,ID,SIS User ID,SIS Login ID,Section,Coursework 1 (4321)\nx,999,,,,20\n",
                20,
                roster(CANVAS_ROSTER),
            ),
            "line 2: Canvas ID '999' is not a student in the roster",
        ),
        (
            lambda: exports.check_canvas_csv(
                "Student,ID,Section,Coursework 1 (4321)\nx,100001,,20\n", 20, roster(CANVAS_ROSTER)
            ),
            "the header must start with Student,ID,SIS User ID,SIS Login ID,Section",
        ),
    ],
)
def test_checkers_read_files_as_the_importers_do(check, problem: str) -> None:
    """Each checker finds what its importer would reject: grades over the maximum, duplicate or unknown
    users, malformed identifiers, headers that would create a new assignment."""
    assert problem in check()


@pytest.fixture(scope="module")
def graded_reports(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Path:
    """A real run over three Moodle folders, for the command-line exports."""
    from grader.cohort import grade_cohort

    root = make_cohort(
        tmp_path_factory.mktemp("export") / "submissions",
        models,
        {
            "Ada Lovelace_100001_assignsubmission_file_": {"mlp.h5": "ada.h5"},
            "Alan Turing_100002_assignsubmission_file_": {"cnn.h5": "alan.h5"},
            "Grace Hopper_100003_assignsubmission_file_": {"text.h5": "grace.h5"},
        },
    )
    out = root.parent / "reports"
    grade_cohort(root, heldout=DEMO_HELDOUT, out=out)
    return out


@pytest.mark.tensorflow
def test_export_command_writes_each_format(graded_reports: Path, tmp_path: Path) -> None:
    """`grade export FORMAT` writes every format from a real run, and each passes its importer's checks."""
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text(WORKSHEET)
    runner = CliRunner()
    for fmt, extra in (
        ("csv", []),
        ("moodle", ["--roster", str(worksheet)]),
        ("moodle-worksheet", ["--roster", str(worksheet)]),
        ("feedback-zip", []),
    ):
        target = tmp_path / f"{fmt}.out"
        result = runner.invoke(
            cli, ["export", fmt, "--reports", str(graded_reports), "--out", str(target), *extra], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"wrote {target}")
    with zipfile.ZipFile(tmp_path / "feedback-zip.out") as archive:
        assert archive.namelist()[0] == "Ada Lovelace_100001_assignfeedback_file_/report.html"
        assert b"<!DOCTYPE html>" in archive.read(archive.namelist()[0])
    with open(tmp_path / "moodle.out", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["Email address", "Coursework 1: Deep Neural Networks", "Feedback"]
    assert [line[0] for line in lines[1:]] == ["ada@example.ac.uk", "alan@example.ac.uk"]


@pytest.mark.tensorflow
def test_export_command_refuses_and_writes_nothing(graded_reports: Path, tmp_path: Path) -> None:
    """A roster missing a graded student: exit 1, the reason, and no file."""
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text("\n".join(line for line in WORKSHEET.splitlines() if "100002" not in line) + "\n")
    target = tmp_path / "grades.csv"
    result = CliRunner().invoke(
        cli, ["export", "moodle", "--reports", str(graded_reports), "--out", str(target), "--roster", str(worksheet)]
    )
    assert result.exit_code == 1
    assert "not in the roster, and Moodle aborts the whole import" in result.output and "100002" in result.output
    assert not target.exists()
