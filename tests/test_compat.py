"""Models from every TensorFlow and Keras version: Keras 2 files, the fallback to tf_keras, input
adaptation, and the real corpus in ../shared when it is there."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grader.cohort import grade_cohort
from grader.courseworks.assignment import builtin_assignments

from . import hostile
from .conftest import DEMO_HELDOUT, SHARED, make_cohort
from .official import run_official

pytestmark = pytest.mark.tensorflow

LAYOUT = {
    "K2 Mlp_1_assignsubmission_file_": {"k2_mlp.h5": "k2_mlp.h5"},
    "K2 Cnn_2_assignsubmission_file_": {"k2_cnn.h5": "cnn_tf218.h5"},
    "K2 Legacy_3_assignsubmission_file_": {"k2_legacy.h5": "legacy_tf21.h5"},
    "K2 Untagged_4_assignsubmission_file_": {"k2_legacy.h5": "legacy.h5"},
    "K2 Lambda_5_assignsubmission_file_": {"k2_lambda.h5": "lambda.h5"},
    "Rgb Model_6_assignsubmission_file_": {"rgb28.h5": "rgb.h5"},
    "Plain Mlp_7_assignsubmission_file_": {"mlp.h5": "mlp.h5"},
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Path:
    root = make_cohort(tmp_path_factory.mktemp("compat") / "submissions", models, LAYOUT)
    for student, setting in (
        ("Bad Units_8_assignsubmission_file_", {"units": -5}),
        ("Bad Activation_9_assignsubmission_file_", {"activation": "my_fancy_act"}),
    ):
        (root / student).mkdir()
        hostile.layer_setting(models / "mlp.h5", root / student / "model.h5", **setting)
    return root


@pytest.fixture(scope="module")
def reference(cohort: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("compat-reference") / "reports"
    return grade_cohort(cohort, heldout=DEMO_HELDOUT, out=out)


def adapt_assignment(folder: Path) -> Path:
    path = folder / "adapt.toml"
    text = builtin_assignments()["kcl-dnn-cw1"].read_text()
    path.write_text(text.replace('input_mode = "reference"', 'input_mode = "adapt"'))
    return path


@pytest.fixture(scope="module")
def adapted(cohort: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("compat-adapt")
    return grade_cohort(cohort, heldout=DEMO_HELDOUT, out=folder / "reports", assignment=adapt_assignment(folder))


def by_id(summary) -> dict:
    return {row["student_id"]: row for row in summary.rows}


def report(summary, student: str) -> dict:
    return json.loads((summary.out / student / "report.json").read_text())


def test_keras2_files_load_with_keras3_where_it_can(reference) -> None:
    """Files written by tf_keras (the Keras 2 API) that Keras 3 reads are graded by Keras 3."""
    rows = by_id(reference)
    for student in ("1", "2"):
        assert rows[student]["status"] == "graded", rows[student]["reason"]
        assert report(reference, student)["versions"]["loader"].startswith("keras 3.")


def test_keras3_unreadable_files_fall_back_to_tf_keras(reference) -> None:
    """A Keras <= 2.2 layout (bare-list Sequential) fails in Keras 3 and is graded with tf_keras, flagged
    (legacy_loader_policy = "flag"), and the report says which loader graded it and why."""
    rows = by_id(reference)
    assert rows["3"]["status"] == "flagged"
    assert rows["3"]["reason"].startswith(
        "loader: the official script would fail with this file (its loader under TensorFlow 2.18.0 is Keras 3: "
        "Keras could not load the model: "
    )
    assert rows["3"]["reason"].endswith(
        "graded with TensorFlow 2.18.0's Keras 2 loader (tf_keras 2.18.0), as markers resolve older files"
    )
    versions = report(reference, "3")["versions"]
    assert versions["loader"] == "tf_keras 2.18.0"
    assert versions["saved_with"].startswith("standalone Keras 2.1.3")
    assert versions["graded_with"] == "TensorFlow 2.18.0 with tf_keras 2.18.0"
    loader = next(c for c in report(reference, "3")["checks"] if c["name"] == "loader")
    assert loader["outcome"] == "warn" and "(tf_keras 2.18.0), as markers resolve older files" in loader["message"]


def test_fallback_accuracy_equals_tf218s_own_loader(reference, cohort: Path) -> None:
    """Where Keras 3 loads the file, the mark is the official script's under Keras 3; where only tf_keras
    does, it is the official script's with TF_USE_LEGACY_KERAS=1 (TensorFlow 2.18's Keras 2)."""
    rows = by_id(reference)
    folders = {student: cohort / rows[student]["folder"] for student in ("1", "2", "3")}
    keras3 = run_official([folders["1"], folders["2"]], DEMO_HELDOUT)
    keras2 = run_official([folders["3"]], DEMO_HELDOUT, legacy_keras=True)
    assert repr(rows["1"]["accuracy"]) == keras3[folders["1"]]
    assert repr(rows["2"]["accuracy"]) == keras3[folders["2"]]
    assert repr(rows["3"]["accuracy"]) == keras2[folders["3"]]


def test_untagged_older_file_is_flagged_with_what_to_do(reference) -> None:
    """The same old file without a tf tag in its name is graded and flagged, with the tag to add."""
    row = by_id(reference)["4"]
    assert row["status"] == "flagged"
    assert "older than TensorFlow 2.18.0, and the file name has no version tag" in row["reason"]
    check = next(c for c in report(reference, "4")["checks"] if c["name"] == "TF version")
    assert "legacy_tf21.h5" in check["advice"]


def test_keras2_lambda_never_reaches_the_keras2_loader(reference) -> None:
    """tf_keras runs Lambda bytecode whatever safe_mode says: such a file is refused before loading."""
    row = by_id(reference)["5"]
    assert row["status"] == "refused" and "Lambda" in row["reason"]
    assert report(reference, "5")["evaluation"] is None


@pytest.mark.usefixtures("bubblewrap")
def test_tensorflow_ops_are_graded_by_tf_keras_when_the_instructor_allows_them(models: Path, tmp_path: Path) -> None:
    """A tf.keras functional model with TensorFlow ops on tensors (TFOpLambda layers, which name a
    TensorFlow function to call) is refused by default, with what to change; with --allow-lambda it is
    graded in the sandbox by tf_keras, since Keras 3 cannot read it, and its accuracy is the official
    script's under TensorFlow 2.18's Keras 2."""
    root = make_cohort(tmp_path / "submissions", models, {"Tf Ops_1_assignsubmission_file_": {"k2_tfop.h5": "ops.h5"}})
    refused = grade_cohort(root, heldout=DEMO_HELDOUT, out=tmp_path / "default").rows[0]
    assert refused["status"] == "refused"
    assert "uses TFOpLambda, which calls a TensorFlow function the file names" in refused["reason"]
    assert "--allow-lambda" in refused["reason"]
    allowed = grade_cohort(root, heldout=DEMO_HELDOUT, out=tmp_path / "allowed", allow_lambda=True)
    row = allowed.rows[0]
    assert row["status"] == "flagged" and "allowed by the instructor" in row["reason"]
    assert report(allowed, "1")["versions"]["loader"] == "tf_keras 2.18.0"
    folder = root / row["folder"]
    assert repr(row["accuracy"]) == run_official([folder], DEMO_HELDOUT, legacy_keras=True)[folder]


@pytest.mark.parametrize(
    ("student", "cause"),
    [
        ("8", "Received an invalid value for `units`, expected a positive integer. Received: units=-5"),
        ("9", "Could not interpret activation function identifier: my_fancy_act"),
    ],
)
def test_a_config_keras_refuses_fails_with_the_cause_not_the_config(reference, student: str, cause: str) -> None:
    """Keras's deserialising error prints the layer's whole config before the cause: the reason keeps
    the layer class and the cause, and drops the config."""
    row = by_id(reference)[student]
    assert row["status"] == "load_failed"
    assert row["reason"].startswith(
        "Keras could not load the model: TypeError: Error when deserializing class 'Dense': "
    )
    assert row["reason"].endswith(cause) and "config=" not in row["reason"]


def test_reference_mode_records_where_the_official_feed_fails(reference) -> None:
    """In reference mode a (28, 28, 3) model fails as the official script would, and says so."""
    row = by_id(reference)["6"]
    assert row["status"] == "predict_failed"
    assert "takes input (None, 28, 28, 3) but the official script feeds (3000, 28, 28, 1)" in row["reason"]


def test_adapt_mode_feeds_the_declared_shape_and_flags_it(adapted) -> None:
    """In adapt mode the same model gets the grey image in three channels, graded and flagged."""
    row = by_id(adapted)["6"]
    assert row["status"] == "flagged" and float(row["accuracy"]) > 50
    assert "the official script would fail" in row["reason"]
    assert "fed (3000, 28, 28, 3) as the model declares with the grey image in each of 3 channels" in row["reason"]


def test_adapt_mode_changes_nothing_where_the_official_script_runs(reference, adapted) -> None:
    """Wherever the official feed works, adapt mode gives the identical accuracy."""
    before, after = by_id(reference), by_id(adapted)
    for student in ("1", "2", "3", "7"):
        assert after[student]["accuracy"] == before[student]["accuracy"], student


@pytest.mark.corpus
def test_every_corpus_file_is_graded_or_refused_with_a_reason(tmp_path: Path) -> None:
    """Each real classifier in ../shared/corpus is graded on MNIST test with the accuracy TF 2.18's own
    loader gives (Keras 3 where the official script runs, tf_keras where it does not), or refused with a
    reason; every report states saved-with, graded-with and the loader."""
    corpus, mnist = SHARED / "corpus", SHARED / "data" / "mnist.npz"
    if not corpus.is_dir() or not mnist.exists():
        pytest.skip(f"{corpus} or {mnist} is absent: the corpus tests need ../shared")
    root = tmp_path / "corpus"
    for model in sorted(corpus.glob("*.h5")):
        (root / model.stem).mkdir(parents=True)
        shutil.copyfile(model, root / model.stem / model.name)
    summary = grade_cohort(root, heldout=mnist, out=tmp_path / "reports")
    folders = [root / row["folder"] for row in summary.rows]
    keras3 = run_official(folders, mnist)
    keras2 = run_official([f for f in folders if keras3[f].startswith("error")], mnist, legacy_keras=True)
    with open(corpus / "manifest.csv", newline="") as handle:
        assert len(summary.rows) == len(list(csv.DictReader(handle))) == 13
    for row in summary.rows:
        folder = root / row["folder"]
        versions = report(summary, row["student_id"])["versions"]
        assert versions["saved_with"] and versions["graded_with"], row["folder"]
        if row["status"] in ("graded", "flagged"):
            script_fails = keras3[folder].startswith("error")
            expected = keras2[folder] if script_fails else keras3[folder]
            assert repr(row["accuracy"]) == expected, row["folder"]
            legacy = versions["loader"].startswith("tf_keras")
            assert legacy or versions["loader"].startswith("keras 3"), row["folder"]
            # Graded with the Keras 2 loader: flagged, saying the official script would fail. Otherwise never.
            assert ("loader: the official script would fail" in row["reason"]) == legacy, row["folder"]
            # Wherever the official script fails, a marker is told why: the loader, or its compile step.
            compile_fails = "official script: the official script's load_model(file) would fail" in row["reason"]
            assert script_fails == (legacy or compile_fails), row["folder"]
            assert row["status"] == "flagged" or not script_fails, row["folder"]
        else:
            assert row["reason"], row["folder"]
    assert sum(row["status"] in ("graded", "flagged") for row in summary.rows) == 13
