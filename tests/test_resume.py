"""A run killed with SIGKILL loses nothing that finished, and running grade again ends with marks.csv
byte-identical to an uninterrupted run's."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from grader.errors import GraderError
from grader.gradebook import Gradebook

from .conftest import DEMO_HELDOUT, make_cohort

pytestmark = pytest.mark.tensorflow

LAYOUT = {
    "Ann Example_1_assignsubmission_file_": {"mlp.h5": "a.h5"},
    "Ben Example_2_assignsubmission_file_": {"cnn.h5": "b.h5"},
    "Cat Example_3_assignsubmission_file_": {"flat.h5": "c.h5"},
    "Dan Example_4_assignsubmission_file_": {"logits.h5": "d.h5"},
    "Eve Example_5_assignsubmission_file_": {"nan.h5": "e.h5"},
    "Fay Example_6_assignsubmission_file_": {"five_outputs.h5": "f.h5"},
    "Gus Example_7_assignsubmission_file_": {"text.h5": "g.h5"},
}


def grade(cohort: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "grader", str(cohort), "--heldout", str(DEMO_HELDOUT), "--out", str(out), *extra]
    # As a terminal's shell starts it: Ctrl-C's SIGINT at its default, whatever the test process inherited (a
    # process that ignores SIGINT passes that on, and Python then never raises KeyboardInterrupt).
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def orphans(out: Path, within: float) -> list[str]:
    """Processes still running whose command line names this run's folder (its workers), after a grace."""
    deadline = time.monotonic() + within
    while True:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(str(out) in part for part in process.info["cmdline"] or []):
                    found.append(" ".join(process.info["cmdline"])[:120])
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def evaluated_results(out: Path) -> int:
    """Results of the running run that needed a worker, read while the run writes them."""
    try:
        with sqlite3.connect(f"file:{out / 'gradebook.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(
                "SELECT COUNT(*) FROM results JOIN runs ON runs.id = results.run_id "
                "WHERE runs.status = 'running' AND evaluation_id IS NOT NULL"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Path:
    return make_cohort(tmp_path_factory.mktemp("resume") / "submissions", models, LAYOUT)


def test_sigkill_then_resume_gives_identical_marks(cohort: Path, tmp_path: Path) -> None:
    """Kill a run mid-way with SIGKILL; grade again; marks.csv equals an uninterrupted run's, byte for byte,
    and the evaluations finished before the kill are reused, not run again."""
    whole = grade(cohort, tmp_path / "whole", "--workers", "1")  # one TensorFlow start: the marks are the same
    assert whole.wait(timeout=600) == 0, whole.stdout.read()

    killed = grade(cohort, tmp_path / "killed", "--fresh-workers")
    deadline = time.monotonic() + 300
    while evaluated_results(tmp_path / "killed") < 2:
        assert killed.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert not orphans(tmp_path / "killed", within=10), "workers outlived the killed run"
    assert not (tmp_path / "killed" / "marks.csv").exists()
    done_before_kill = evaluated_results(tmp_path / "killed")
    assert 2 <= done_before_kill < 5

    resumed = grade(cohort, tmp_path / "killed", "--workers", "1")
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert (tmp_path / "killed" / "marks.csv").read_bytes() == (tmp_path / "whole" / "marks.csv").read_bytes()
    assert f"reused {done_before_kill} stored evaluations" in " ".join(output.split())
    with sqlite3.connect(tmp_path / "killed" / "gradebook.sqlite") as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM runs ORDER BY id")]
    assert statuses == ["interrupted", "completed"]


def test_two_runs_write_identical_marks(cohort: Path, tmp_path: Path) -> None:
    """marks.csv holds no timestamps: the same inputs give the same bytes, however the run went."""
    first = grade(cohort, tmp_path / "a")
    assert first.wait(timeout=600) == 0
    once = (tmp_path / "a" / "marks.csv").read_bytes()
    again = grade(cohort, tmp_path / "a", "--workers", "2")
    assert again.wait(timeout=600) == 0
    assert (tmp_path / "a" / "marks.csv").read_bytes() == once


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    """Two runs never write one gradebook at once: the second stops with a clear message."""
    with Gradebook(tmp_path), pytest.raises(GraderError, match="another grade run is using this output folder"):
        Gradebook(tmp_path)
