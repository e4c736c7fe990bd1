"""A whole cohort graded end to end: every folder gets a status and a reason, marks equal the official
script's, and TensorFlow never enters the process that holds the labels."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from grader.courseworks.assignment import load_assignment
from grader.marking.scoring import mark

from .conftest import COHORT, DEMO_HELDOUT
from .official import run_official

pytestmark = pytest.mark.tensorflow


def test_every_folder_has_a_row(rows: dict) -> None:
    """marks.csv has one row per student folder, failures included."""
    assert len(rows) == len(COHORT)
    assert all(row["status"] and row["folder"] for row in rows.values())


@pytest.mark.parametrize(
    ("student", "status", "reason"),
    [
        ("200001", "graded", ""),
        ("200002", "graded", ""),
        ("200003", "graded", ""),
        ("200004", "graded", ""),
        (
            "200005",
            "flagged",
            "outputs: the model outputs 5 scores per image; this assignment has 10 classes; graded as the "
            "official script grades it, by the argmax over all 5 (classes 5 to 9 can never be predicted)",
        ),
        ("200006", "refused", "layers: uses Lambda"),
        ("200007", "refused", "HDF5 file: HDF5 cannot open it"),
        (
            "200008",
            "predict_failed",
            "the model takes input (None, 32, 32, 3) but the official script feeds (3000, 28, 28, 1)",
        ),
        ("200009", "flagged", "file choice: 2 .h5 files: graded b_second.h5 (last in name order)"),
        ("200010", "refused", "model: the file holds weights only"),
        ("200011", "no_file", "no .h5 file: found kim.keras"),
        ("200012", "graded", ""),  # (None, 1, 28, 28): Keras flattens the (N, 28, 28, 1) it is fed
        ("200013", "flagged", "batch size: the model's outputs depend on the other images in its batch"),
        (
            "200014",
            "flagged",
            "tied outputs: 3,000 of 3,000 images had two or more classes with exactly the same top output; the "
            "official script's argmax gave each the first of them (3,000 given class 0): more than 1% of the images",
        ),
        (
            "200015",
            "flagged",
            "constant outputs: every one of the 3,000 images got exactly the same outputs, so the model gives class ",
        ),
        ("k9999999", "flagged", "outputs: 3,000 of 3,000 images gave NaN or infinite outputs"),
    ],
)
def test_status_and_reason(rows: dict, student: str, status: str, reason: str) -> None:
    """Each case ends with the status and a reason a TA can act on."""
    row = rows[student]
    assert row["status"] == status
    assert row["reason"].startswith(reason), row["reason"]
    graded = status in ("graded", "flagged")
    assert bool(row["accuracy"]) == graded and bool(row["score"]) == graded


def test_marks_equal_the_official_script(cohort: Path, rows: dict) -> None:
    """For every graded student the accuracy is the official script's printed number, to the last digit,
    and the score is Table 1's band of it."""
    graded = {sid: row for sid, row in rows.items() if row["status"] in ("graded", "flagged")}
    # The official script loads every .h5 in the folder and keeps the last os.listdir gives: run it on a
    # copy that holds only the file grader chose, so both grade the same file.
    folders = {}
    for student, row in graded.items():
        folder = cohort.parent / "official" / student
        folder.mkdir(parents=True, exist_ok=True)
        (folder / row["file"]).write_bytes((cohort / row["folder"] / row["file"]).read_bytes())
        folders[student] = folder
    official = run_official(list(folders.values()), DEMO_HELDOUT)
    bands = load_assignment().parts[0].marking
    for student, row in graded.items():
        assert row["accuracy"] == official[folders[student]], student
        assert int(row["score"]) == mark(int(row["correct"]), int(row["total"]), bands).score


def test_nan_outputs_are_flagged_not_silent(rows: dict) -> None:
    """NaN outputs are graded as the official argmax takes them (class of the first NaN) and flagged."""
    row = rows["k9999999"]
    assert row["status"] == "flagged" and "argmax" in row["reason"]


def test_tensorflow_never_enters_the_grading_process(graded) -> None:
    """Grading imported TensorFlow only in workers: not in the process that holds the labels."""
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules


def test_reports_for_every_student(graded, rows: dict) -> None:
    """Each student has report.json and report.md with accuracy, band, score and every check."""
    for student, row in rows.items():
        report = json.loads((graded.out / student / "report.json").read_text())
        assert report["status"] == row["status"] and report["reason"] == row["reason"]
        assert report["heldout"]["sha256"] and report["assignment"]["sha256"] and report["grader"]["version"]
        markdown = (graded.out / student / "report.md").read_text()
        assert f"**Status:** {row['status']}" in markdown
        if row["status"] in ("graded", "flagged"):
            assert report["mark"]["correct"] == int(row["correct"])
            assert report["mark"]["band"] in markdown and f"{report['mark']['accuracy']}%" in markdown
            assert sum(item["total"] for item in report["per_class"]) == 3000
            assert report["evaluation"]["isolation"]
            assert report["file"]["sha256"] == row["sha256"]
            # Coursework 1's feeding rule (two by-rank steps) named as the coursework's, not as "the official" one.
            net_type = report["evaluation"]["net_type"]
            assert f"the coursework's feeding rule says **{net_type}**" in markdown and "official rule" not in markdown
            html = (graded.out / student / "report.html").read_text()
            assert f"the coursework's feeding rule says\n<strong>{net_type}</strong>" in html


def test_each_model_is_predicted_by_one_compiled_pass_checked_against_net_predict(graded, rows: dict) -> None:
    """Keras models are predicted through one compiled forward pass (traced once for every batch size), used only
    where it gives net.predict's outputs bit for bit; the record times loading, tracing, that check and the
    prediction apart. The batch-dependent model (200013) goes the same way and is still caught."""
    for student in ("200001", "200002", "200012", "200013"):
        evaluation = json.loads((graded.out / student / "report.json").read_text())["evaluation"]
        assert evaluation["compiled"] is True, student
        assert all(
            evaluation[key] >= 0 for key in ("load_seconds", "trace_seconds", "check_seconds", "predict_seconds")
        )
    assert rows["200013"]["reason"].startswith("batch size: the model's outputs depend on the other images")


def test_gradebook_holds_the_run(graded) -> None:
    """The SQLite gradebook holds the completed run, each result, and the evaluations with predictions."""
    db = sqlite3.connect(graded.out / "gradebook.sqlite")
    assert db.execute("SELECT status FROM runs WHERE id=?", (graded.run_id,)).fetchone() == ("completed",)
    assert db.execute("SELECT COUNT(*) FROM results WHERE run_id=?", (graded.run_id,)).fetchone()[0] == len(COHORT)
    stored = db.execute("SELECT COUNT(*) FROM evaluations WHERE predictions IS NOT NULL").fetchone()[0]
    # Identical files (Ben's and Ivy's CNN) are evaluated once.
    predicted = {row["sha256"] for row in graded.rows if row["status"] in ("graded", "flagged", "bad_output")}
    assert stored == len(predicted) == 10


def test_a_second_run_starts_no_worker(graded, cohort: Path) -> None:
    """Run again on the same inputs: every evaluation is reused, refused files stay refused from their stored
    inspections, no TensorFlow worker starts, and marks.csv is the same bytes."""
    from grader.cohort import grade_cohort

    before = graded.marks_csv.read_bytes()
    again = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=graded.out)
    assert (again.evaluated, again.workers_started) == (0, 0)
    assert again.reused == sum(
        1 for row in again.rows if row["status"] in ("graded", "flagged", "bad_output", "predict_failed")
    )
    assert graded.marks_csv.read_bytes() == before
