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
    try:
        server.bind(("127.0.0.1", traps.port))
    except OSError as error:  # the port was free when the kept models were built (conftest.built_once)
        server.close()
        raise AssertionError(
            f"port {traps.port}, which the kept hostile models try to reach, is taken by another program: "
            "`rm -rf .pytest_cache/grader-fixtures` builds them again with a free one"
        ) from error
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


def _lambda_cohort(root: Path, models: Path) -> Path:
    shutil.copyfile(models / "payload.h5", folder(root, "Pay Load_1_assignsubmission_file_") / "payload.h5")
    shutil.copyfile(models / "spawner.h5", folder(root, "Spa Wner_2_assignsubmission_file_") / "spawner.h5")
    shutil.copyfile(models / "mlp.h5", folder(root, "Ann Good_3_assignsubmission_file_") / "ann.h5")
    return root


LAMBDA_ATTEMPTS = ("make a folder (os.mkdir)", "for reading", "use the network")


@pytest.mark.usefixtures("bubblewrap")
def test_allowed_lambda_runs_only_inside_the_sandbox(tmp_path: Path, models: Path, traps: Traps, listener) -> None:
    """With --allow-lambda a payload runs (its predictions show it), inside the sandbox and under the tripwire:
    each thing it tries (a folder on the host, the secret and the labels, a host port) is refused and named in
    the report, and the student is flagged; nothing reaches the host. A payload that starts processes the way
    no audit event sees gets past the tripwire, and is stopped by the sandbox's process budget. The ordinary
    student is graded."""
    root = _lambda_cohort(tmp_path / "submissions", models)
    summary = grade_cohort(
        root, heldout=DEMO_HELDOUT, out=tmp_path / "reports", allow_lambda=True, isolation="bubblewrap"
    )
    rows = {row["student_id"]: row for row in summary.rows}
    assert rows["1"]["status"] == "flagged" and "allowed by the instructor" in rows["1"]["reason"]
    assert "tripwire: the model's code tried to" in rows["1"]["reason"]
    assert all(attempt in rows["1"]["reason"] for attempt in LAMBDA_ATTEMPTS), rows["1"]["reason"]
    assert str(traps.secret) in rows["1"]["reason"]
    # The payload zeroes its input, so every image gets the same class: it ran.
    assert len(set(_predicted(summary, rows["1"]))) == 1
    assert not traps.canary.exists()
    assert connections(listener) == 0
    assert rows["2"]["status"] == "over_limit" and "processes" in rows["2"]["reason"]
    assert rows["3"]["status"] == "graded"
    assert "isolation" not in summary.marks_csv.read_text().splitlines()[0]


def test_allowed_lambda_without_the_sandbox_runs_only_when_asked_and_says_so(
    tmp_path: Path, models: Path, traps: Traps, listener
) -> None:
    """--allow-lambda with --isolation process, asked for explicitly: the Lambda runs with the grading user's
    rights; the tripwire still refuses and names each attempt (nothing reaches the host), and every output
    says "not isolated"."""
    root = _lambda_cohort(tmp_path / "submissions", models)
    (root / "Spa Wner_2_assignsubmission_file_" / "spawner.h5").unlink()  # unsandboxed, it would really spawn
    summary = grade_cohort(root, heldout=DEMO_HELDOUT, out=tmp_path / "reports", allow_lambda=True, isolation="process")
    rows = {row["student_id"]: row for row in summary.rows}
    assert rows["1"]["status"] == "flagged"
    assert all(attempt in rows["1"]["reason"] for attempt in LAMBDA_ATTEMPTS), rows["1"]["reason"]
    assert not traps.canary.exists() and connections(listener) == 0
    with open(summary.marks_csv, newline="") as handle:
        isolation = {row["student_id"]: row["isolation"] for row in csv.DictReader(handle)}
    assert set(isolation.values()) == {"not isolated"}
    assert 'id="not-isolated"' in (summary.out / "index.html").read_text()
    assert "Not isolated:" in (summary.out / "1" / "report.html").read_text()


def _predicted(summary, row) -> list[int]:
    from grader.gradebook import Gradebook

    with Gradebook(summary.out) as book:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
        return evaluation.predictions.tolist()
