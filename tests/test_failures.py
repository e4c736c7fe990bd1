"""Failures are rows, not aborts: a worker that dies or never starts, a file that cannot be read, and a
report that cannot be written each end as a student's status or a note, and the run completes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from grader.cohort import grade_cohort
from grader.errors import WorkerError
from grader.evaluation import sandbox
from grader.evaluation.scheduler import NO_WORKER, STARTUP_ATTEMPTS, Budget, ChildProcess, Job, Outcome, Scheduler

from .conftest import DEMO_HELDOUT, make_cohort

pytestmark = pytest.mark.tensorflow


@pytest.mark.own_workers
def test_a_worker_killed_mid_evaluation_is_crashed_and_the_run_goes_on(tmp_path: Path, models: Path) -> None:
    """The worker evaluating a model is killed from outside (as the kernel's OOM killer would): that student
    is `crashed`, saying the worker was killed, and the next student is graded by a new worker."""
    subs = make_cohort(
        tmp_path / "subs",
        models,
        {
            "Sal Example_1_assignsubmission_file_": {"slow.h5": "slow.h5"},
            "Ann Example_2_assignsubmission_file_": {"mlp.h5": "ann.h5"},
        },
    )
    out = tmp_path / "reports"
    killed: list[int] = []

    def kill_the_worker_evaluating() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list((out / ".work").glob("run-*/workers/*/inbox/model.h5")):
            time.sleep(0.05)
        for process in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "grader.evaluation.worker" in " ".join(process.cmdline()):
                    process.kill()
                    killed.append(process.pid)

    watcher = threading.Thread(target=kill_the_worker_evaluating)
    watcher.start()
    summary = grade_cohort(subs, heldout=DEMO_HELDOUT, out=out, workers=1, time_limit=120)
    watcher.join()
    rows = {row["student_id"]: row for row in summary.rows}
    assert killed
    assert rows["1"]["status"] == "crashed", rows["1"]["reason"]
    assert rows["1"]["reason"].startswith("the worker was killed by SIGKILL (killed: out of memory or over a limit?)")
    assert "Fontconfig" not in rows["1"]["reason"]  # start-up noise is not a reason
    assert rows["2"]["status"] == "graded"
    assert summary.workers_started == 2


def test_a_fifo_is_unreadable_and_never_opened(tmp_path: Path, models: Path) -> None:
    """A FIFO named like a model is `unreadable` (opening it would block the run); the others are graded."""
    subs = make_cohort(tmp_path / "subs", models, {"Ann Example_2_assignsubmission_file_": {"mlp.h5": "ann.h5"}})
    (subs / "Fi Fo_1_assignsubmission_file_").mkdir()
    os.mkfifo(subs / "Fi Fo_1_assignsubmission_file_" / "model.h5")
    summary = grade_cohort(subs, heldout=DEMO_HELDOUT, out=tmp_path / "reports", workers=1)
    rows = {row["student_id"]: row for row in summary.rows}
    assert (rows["1"]["status"], rows["1"]["reason"]) == (
        "unreadable",
        "model.h5 is not a regular file (a FIFO, socket or device)",
    )
    assert rows["2"]["status"] == "graded"


def test_workers_that_cannot_start_are_retried_then_their_jobs_crash(tmp_path: Path, models: Path) -> None:
    """Workers whose start fails (here: images that are not a numpy file) are tried STARTUP_ATTEMPTS times
    each; then every job ends `crashed` with the reason, and the run returns instead of raising."""
    images = tmp_path / "images.npy"
    images.write_bytes(b"not a numpy file")
    scheduler = Scheduler(
        isolation=sandbox.choose_isolation(),
        images={"main": images},
        workdir=tmp_path / "workers",
        budget=Budget(wall_seconds=60),
        workers=2,
    )
    jobs = [Job(key=str(i), model_path=models / "mlp.h5", name="mlp.h5", request={}) for i in range(3)]
    outcomes: list[Outcome] = []
    scheduler.run(jobs, outcomes.append)
    assert sorted(outcome.key for outcome in outcomes) == ["0", "1", "2"]
    for outcome in outcomes:
        assert outcome.status == "crashed"
        assert outcome.reason.startswith(f"{NO_WORKER}: the worker would not start ({STARTUP_ATTEMPTS} attempts)")
        assert "not a numpy file" in outcome.reason or "pickle" in outcome.reason or "ValueError" in outcome.reason
    assert scheduler.started == 2 * STARTUP_ATTEMPTS


def test_a_worker_of_another_protocol_is_never_read(tmp_path: Path) -> None:
    """A worker announcing another protocol version (another grader release) is stopped before any request."""
    images = tmp_path / "images.npy"
    np.save(images, np.zeros((4, 28, 28), np.uint8))
    isolation = sandbox.choose_isolation()
    child = ChildProcess.worker(
        isolation=isolation, images={"main": images}, workdir=tmp_path / "w", threads=1, limits=sandbox.Limits()
    )
    child.protocol = -1
    with pytest.raises(WorkerError, match="this grader reads protocol -1: install the same grader release"):
        child.start()
    assert child.process is None  # killed


def test_reports_that_cannot_be_written_are_notes_in_their_rows(tmp_path: Path, models: Path) -> None:
    """A report folder that cannot be made, a report file that cannot be written and a summary page that
    cannot be written each leave a note (in the student's row in marks.csv, or in the run's problems); every
    student is marked and marks.csv is complete."""
    subs = make_cohort(
        tmp_path / "subs",
        models,
        {
            "Ann Example_1_assignsubmission_file_": {"mlp.h5": "ann.h5"},
            "Bob Example_2_assignsubmission_file_": {"cnn.h5": "bob.h5"},
            "Cat Example_3_assignsubmission_file_": {"flat.h5": "cat.h5"},
        },
    )
    out = tmp_path / "reports"
    out.mkdir()
    (out / "1").write_text("a file where the report folder should be")
    (out / "2" / "report.html").mkdir(parents=True)  # a folder where the page should be
    (out / "index.html").mkdir()
    summary = grade_cohort(subs, heldout=DEMO_HELDOUT, out=out, workers=1)
    rows = {row["student_id"]: row for row in summary.rows}
    assert [rows[s]["status"] for s in ("1", "2", "3")] == ["graded", "graded", "graded"]
    assert rows["1"]["reason"].startswith("report: could not be written (FileExistsError(")
    assert rows["2"]["reason"].startswith("report: could not be written (IsADirectoryError(")
    assert rows["3"]["reason"] == "" and (out / "3" / "report.html").is_file()
    assert summary.problems and summary.problems[0].startswith("index.html could not be written: IsADirectoryError")
    marks = summary.marks_csv.read_text()
    assert marks.count("\n") == 4 and "report: could not be written (FileExistsError(" in marks
