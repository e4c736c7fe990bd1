"""grader.read_marks and grader.read_results: a run's marks and checks as typed pandas DataFrames, and the
notebook API (grader.grade, RunSummary's HTML table)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

import grader
from grader.errors import GraderError

from . import build_code
from .test_code import code_only


@pytest.mark.tensorflow
def test_read_marks_types_every_column_of_a_kcl_run(graded) -> None:
    marks = grader.read_marks(graded.out)
    with open(graded.marks_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(marks.index) == [row["student_id"] for row in rows]
    assert str(marks["accuracy"].dtype) == "Float64" and str(marks["correct"].dtype) == "Int64"
    assert str(marks["score"].dtype) == "Float64" and isinstance(marks["status"].dtype, pd.CategoricalDtype)
    first = rows[0]
    assert marks.loc[first["student_id"], "correct"] == int(first["correct"])
    # A student without a mark has NA, not 0 or ''.
    unmarked = [row["student_id"] for row in rows if not row["score"]]
    assert unmarked and marks.loc[unmarked, "score"].isna().all()
    # Ordered statuses: graded before flagged before the failures.
    assert list(marks["status"].cat.categories[:2]) == ["graded", "flagged"]
    assert marks.groupby("status", observed=True).size().sum() == len(rows)


def test_read_marks_and_results_of_a_run_with_parts(tmp_path: Path, bubblewrap) -> None:
    """A code part's columns keep their prefix (code_score, code_correct); read_results lists each check and
    each code question, with its outcome."""
    files = {"1": ("f.py", build_code.VECTORISED), "2": ("f.py", build_code.SOFTMAX_AXIS)}
    submissions = build_code.write_cohort(tmp_path / "submissions", files)
    summary = grader.grade(submissions, assignment=code_only(tmp_path), out=tmp_path / "reports")
    marks = grader.read_marks(tmp_path / "reports")
    assert marks.loc["1", "code_score"] == 19 and marks.loc["2", "code_score"] == 18.5
    assert str(marks["code_correct"].dtype) == "Int64" and marks["code_accuracy"].isna().all()
    results = grader.read_results(tmp_path / "reports")
    q25 = results[(results.student_id == "2") & (results.check == "question q25")]
    assert list(q25.outcome) == ["fail"] and "a batch of 4 rows of 10" in q25.message.iloc[0]
    assert set(results[results.student_id == "1"].outcome) == {"pass"}
    html = summary._repr_html_()
    assert "<table" in html and "code_score" in html and "2 graded" in html


def test_read_marks_of_a_folder_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GraderError, match="no marks.csv here"):
        grader.read_marks(tmp_path)
    with pytest.raises(GraderError, match="no gradebook here"):
        grader.read_results(tmp_path)


@pytest.mark.tensorflow
def test_readers_work_while_a_grade_run_holds_the_gradebook(graded, models: Path, tmp_path: Path) -> None:
    """A second `grade` run on the same reports folder (four of the students, new held-out images: each file
    evaluated again, in a fresh worker one after the other) holds the gradebook's lock and writes it; meanwhile
    read_marks, read_results, `grade export` and `grade integrity` read the last completed run without waiting
    and without error."""
    import shutil
    import subprocess
    import sys
    import time

    import numpy as np

    from .conftest import DEMO_HELDOUT, few_students

    cohort, _ = few_students(tmp_path / "submissions", models, graded)
    out = tmp_path / "reports"
    shutil.copytree(graded.out, out)
    with np.load(DEMO_HELDOUT) as data:
        np.savez(tmp_path / "fewer.npz", x=data["x"][:2000], y=data["y"][:2000])
    command = [sys.executable, "-m", "grader", str(cohort), "--heldout", str(tmp_path / "fewer.npz"), "--out", str(out)]
    run = subprocess.Popen(
        [*command, "--fresh-workers", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not _running(out) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.poll() is None, "the run ended before the readers could be tried"
        marks = grader.read_marks(out)
        results = grader.read_results(out)
        exported = subprocess.run(
            [sys.executable, "-m", "grader", "export", "csv", "--reports", str(out), "--out", str(tmp_path / "m.csv")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        integrity = subprocess.run(
            [sys.executable, "-m", "grader", "integrity", str(out)], capture_output=True, text=True, timeout=120
        )
        still_running = run.poll() is None
    finally:
        errors = run.communicate(timeout=600)[1]
    assert still_running, "the readers took longer than the run: try a larger cohort"
    assert run.returncode == 0, errors
    assert len(marks) == len(graded.rows) and set(results["student_id"]) <= set(marks.index)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "m.csv").read_text() == graded.marks_csv.read_text()
    assert integrity.returncode == 0, integrity.stderr


def _running(out: Path) -> bool:
    """Whether a run is under way in `out` (its gradebook, read without a lock, says so)."""
    import contextlib
    import sqlite3

    with (
        contextlib.suppress(sqlite3.Error),
        sqlite3.connect(f"file:{out / 'gradebook.sqlite'}?mode=ro", uri=True) as db,
    ):
        return db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] > 0
    return False
