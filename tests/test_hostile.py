"""Hostile and broken files in one cohort: each ends with a status and a reason a TA can act on, no
payload touches the host, and the ordinary students in the same run are graded."""

from __future__ import annotations

import csv
import os
import shutil
import socket
from pathlib import Path

import pytest

from grader.cohort import grade_cohort

from . import hostile
from .conftest import DEMO_HELDOUT, Traps

pytestmark = pytest.mark.tensorflow

SHELL_NAMES = (
    "$(touch canary-shell)_300050_assignsubmission_file_",
    "a; touch canary-semicolon",
    'O\'Brien "Quoted" `id`_300052_assignsubmission_file_',
    "Zoë Ångström_300053_assignsubmission_file_",
    "李小龙_300054_assignsubmission_file_",
)


def folder(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def listener(traps: Traps):
    """A loopback listener on the port the payloads try to reach."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", traps.port))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, models: Path, traps: Traps, listener):
    root = tmp_path_factory.mktemp("hostile") / "submissions"
    work = root.parent / "made"
    work.mkdir()
    mlp = models / "mlp.h5"
    cases = hostile.cases(models, work, traps)
    for index, (case, source) in enumerate(cases.items()):
        target = folder(root, f"{case}_{310000 + index}_assignsubmission_file_") / "model.h5"
        if case == "oversized_file":
            os.rename(source, target)  # keep it sparse
        else:
            shutil.copyfile(source, target)
    shutil.copyfile(mlp, folder(root, "Ann Good_300001_assignsubmission_file_") / "ann.h5")
    shutil.copyfile(models / "cnn.h5", folder(root, "Ben Good_300002_assignsubmission_file_") / "MODEL.H5")
    os.symlink(traps.secret, folder(root, "Cy Link_300003_assignsubmission_file_") / "model.h5")
    for name in SHELL_NAMES:
        shutil.copyfile(mlp, folder(root, name) / "model.h5")
    out = root.parent / "reports"
    summary = grade_cohort(root, heldout=DEMO_HELDOUT, out=out, time_limit=10, memory_limit_gb=1.5)
    with open(summary.marks_csv, newline="", encoding="utf-8") as handle:
        rows = {
            row["folder"].split("_3")[0] if row["folder"].endswith("_file_") else row["folder"]: row
            for row in csv.DictReader(handle)
        }
    return summary, rows, root


@pytest.mark.parametrize(("case", "status", "reason"), hostile.EXPECTED)
def test_each_case_has_a_status_and_reason(hostile_run, case: str, status: str, reason: str) -> None:
    """Every hostile or broken file is stopped at the right step, with a reason that names the cause."""
    _, rows, _ = hostile_run
    row = rows[case]
    assert (row["status"], row["reason"][: len(reason)]) == (status, reason)


def test_ordinary_students_in_the_same_run_are_graded(hostile_run) -> None:
    """Hostile files cost no one else a mark: the ordinary models and odd folder names are graded."""
    _, rows, _ = hostile_run
    ann = rows["Ann Good"]
    assert ann["status"] == "graded" and float(ann["accuracy"]) > 50
    for name in SHELL_NAMES:
        key = name.split("_3")[0] if name.endswith("_file_") else name
        assert (rows[key]["status"], rows[key]["accuracy"]) == ("graded", ann["accuracy"]), name
    assert rows["Zoë Ångström"]["student_name"] == "Zoë Ångström"
    assert rows["a; touch canary-semicolon"]["student_id"] == "a; touch canary-semicolon"


def test_no_payload_touched_the_host(hostile_run, traps: Traps, listener) -> None:
    """No canary file, no shell expansion of folder names, no connection to the host's loopback."""
    summary, _, root = hostile_run
    assert not traps.canary.exists()
    for place in (Path.cwd(), root, root.parent, summary.out):
        assert not list(place.rglob("canary-*")), place
    assert connections(listener) == 0


def test_reports_record_the_isolation(hostile_run) -> None:
    """Each evaluated student's report says which isolation ran the model."""
    import json

    summary, rows, _ = hostile_run
    report = json.loads((summary.out / rows["Ann Good"]["student_id"] / "report.json").read_text())
    assert report["evaluation"]["isolation"] == summary.isolation.detail


@pytest.mark.usefixtures("bubblewrap")
def test_allowed_lambda_runs_only_inside_the_sandbox(tmp_path: Path, models: Path, traps: Traps, listener) -> None:
    """With --allow-lambda a payload runs (its predictions show it), but inside the sandbox: it leaves no
    canary on the host, reads neither the secret nor the labels, reaches no host port; a payload that
    starts processes is stopped by the process budget; the ordinary student is graded."""
    root = tmp_path / "submissions"
    shutil.copyfile(models / "payload.h5", folder(root, "Pay Load_1_assignsubmission_file_") / "payload.h5")
    shutil.copyfile(models / "spawner.h5", folder(root, "Spa Wner_2_assignsubmission_file_") / "spawner.h5")
    shutil.copyfile(models / "mlp.h5", folder(root, "Ann Good_3_assignsubmission_file_") / "ann.h5")
    summary = grade_cohort(
        root, heldout=DEMO_HELDOUT, out=tmp_path / "reports", allow_lambda=True, isolation="bubblewrap"
    )
    rows = {row["student_id"]: row for row in summary.rows}
    assert rows["1"]["status"] == "flagged" and "allowed by the instructor" in rows["1"]["reason"]
    # The payload zeroes its input, so every image gets the same class: it ran.
    assert len(set(_predicted(summary, rows["1"]))) == 1
    assert not traps.canary.exists()
    assert connections(listener) == 0
    assert rows["2"]["status"] == "over_limit" and "processes" in rows["2"]["reason"]
    assert rows["3"]["status"] == "graded"


def _predicted(summary, row) -> list[int]:
    from grader.gradebook import Gradebook

    with Gradebook(summary.out) as book:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
        return evaluation.predictions.tolist()
