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
    cases = {
        "external_dataset": hostile.external_dataset(mlp, work / "a.h5", traps.secret),
        "virtual_dataset": hostile.virtual_dataset(mlp, work / "b.h5", work / "other1.h5"),
        "external_link": hostile.external_link(mlp, work / "c.h5", work / "other2.h5"),
        "soft_link": hostile.soft_link(mlp, work / "d.h5"),
        "shape_bomb": hostile.shape_bomb(mlp, work / "e.h5"),
        "oversized_config": hostile.oversized_config(mlp, work / "f.h5"),
        "deep_config": hostile.deep_config(mlp, work / "g.h5"),
        "foreign_module": hostile.foreign_module(mlp, work / "h.h5"),
        "keras_utils_module": hostile.foreign_module(
            mlp, work / "h2.h5", module="keras.src.utils.file_utils", class_name="get_file"
        ),
        "custom_class": hostile.renamed_class(mlp, work / "i.h5", "MyDense"),
        "tfsm_layer": hostile.renamed_class(mlp, work / "j.h5", "TFSMLayer", filepath=str(traps.secret)),
        "string_lookup": hostile.renamed_class(mlp, work / "k.h5", "StringLookup", vocabulary=str(traps.secret)),
        "tfoplambda": hostile.renamed_class(mlp, work / "l.h5", "TFOpLambda", function="math.add"),
        "registered_custom": hostile.registered_custom(mlp, work / "m.h5"),
        "keras2_lambda": hostile.keras2_lambda(mlp, work / "n.h5"),
        "config_bomb": hostile.config_bomb(mlp, work / "o.h5"),
        "oversized_file": hostile.oversized_file(work / "p.h5"),
        "payload_lambda": models / "payload.h5",
        "weights_only": models / "weights_only.weights.h5",
        "truncated": models / "truncated.h5",
        "text": models / "text.h5",
        "empty": models / "empty.h5",
        "slow": models / "slow.h5",
        "memory_hog": models / "memory_hog.h5",
        "nan": models / "nan.h5",
        "five_outputs": models / "five_outputs.h5",
        "rgb32": models / "rgb32.h5",
    }
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


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("external_dataset", "refused", "HDF5 structure: datasets stored in other files (external storage)"),
        ("virtual_dataset", "refused", "HDF5 structure: virtual datasets mapped from other files"),
        ("external_link", "refused", "HDF5 structure: links that leave the file"),
        ("soft_link", "refused", "HDF5 structure: links that leave the file or point elsewhere in it"),
        ("shape_bomb", "refused", "HDF5 structure: datasets declaring far more bytes than the file stores"),
        ("oversized_config", "refused", "model: model config is 20,"),
        ("deep_config", "refused", "model: model config is nested 50"),
        ("foreign_module", "refused", "config: names Python modules outside Keras's layers and their parts: os"),
        (
            "keras_utils_module",
            "refused",
            "config: names Python modules outside Keras's layers and their parts: keras.src.utils.file_utils",
        ),
        ("custom_class", "refused", "layers: uses layer classes this assignment does not allow: MyDense"),
        ("tfsm_layer", "refused", "layers: TFSMLayer loads a TensorFlow SavedModel from a path on disk"),
        ("string_lookup", "refused", "layers: StringLookup can read a vocabulary file from disk"),
        ("tfoplambda", "refused", "layers: uses TFOpLambda, which calls a TensorFlow function the file names"),
        ("registered_custom", "refused", "layers: registered as custom objects: Dense (my_package>Dense)"),
        (
            "keras2_lambda",
            "refused",
            "layers: uses Lambda, which runs Python code stored in the file: code "
            "chosen by the file is never run on the marking machine",
        ),
        (
            "config_bomb",
            "refused",
            "parameters: the config declares 795,000,000,010 parameters but the file stores 25,450",
        ),
        ("oversized_file", "refused", "file size: 629,145,600 bytes, over the limit of 524,288,000"),
        ("payload_lambda", "refused", "layers: uses Lambda"),
        ("weights_only", "refused", "model: the file holds weights only"),
        ("truncated", "refused", "HDF5 file: HDF5 cannot open it"),
        ("text", "refused", "HDF5 file: the file is a text/JSON file"),
        ("empty", "refused", "HDF5 file: the file is empty"),
        ("slow", "timeout", "no answer within the 10 s limit"),
        ("memory_hog", "over_limit", "the model needed more than the 1.5 GB of memory a worker may use"),
        ("nan", "flagged", "outputs: 3,000 of 3,000 images gave NaN or infinite outputs"),
        ("five_outputs", "flagged", "outputs: the model outputs 5 scores per image; this assignment has 10 classes"),
        ("rgb32", "predict_failed", "the model takes input (None, 32, 32, 3) but the official script feeds"),
        ("Cy Link", "refused", "model.h5 is a symbolic link, which is never followed"),
        ("Ben Good", "flagged", "file choice: MODEL.H5: the official script only loads names ending in lower-case"),
        ("Ann Good", "graded", ""),
    ],
)
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
