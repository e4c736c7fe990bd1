"""Every policy an assignment file sets, each value tested: a cohort is evaluated once, then re-marked
under each variant of the Coursework 1 file (policies never change predictions, so no worker starts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.cohort import grade_cohort
from grader.courseworks.assignment import builtin_assignments

from .conftest import DEMO_HELDOUT, make_cohort

pytestmark = pytest.mark.tensorflow

LAYOUT = {
    "Ann Plain_1_assignsubmission_file_": {"mlp.h5": "ann.h5"},
    "Fay Five_2_assignsubmission_file_": {"five_outputs.h5": "fay.h5"},
    "Nan Model_3_assignsubmission_file_": {"nan.h5": "nan.h5"},
    "Old Tagged_4_assignsubmission_file_": {"k2_legacy.h5": "old_tf21.h5"},
    "Old Untagged_5_assignsubmission_file_": {"k2_legacy.h5": "old.h5"},
    "Tia Tied_6_assignsubmission_file_": {"tied_pair.h5": "tied.h5"},
}
KCL = builtin_assignments()["kcl-dnn-cw1"].read_text()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, models: Path) -> tuple[Path, Path]:
    """The cohort and an output folder holding its evaluations (graded once under the Coursework 1 file)."""
    root = make_cohort(tmp_path_factory.mktemp("policies") / "submissions", models, LAYOUT)
    out = root.parent / "reports"
    grade_cohort(root, heldout=DEMO_HELDOUT, out=out)
    return root, out


def remark(cohort: tuple[Path, Path], tmp_path: Path, *changes: str) -> dict[str, dict]:
    """Grade again under the Coursework 1 file with some lines changed ('old -> new'); no TensorFlow worker
    may start."""
    text = KCL
    for change in changes:
        old, new = change.split(" -> ")
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    variant = tmp_path / "variant.toml"
    variant.write_text(text)
    root, out = cohort
    summary = grade_cohort(root, heldout=DEMO_HELDOUT, out=out, assignment=variant)
    assert summary.workers_started == 0
    return {row["student_id"]: row for row in summary.rows}


@pytest.mark.parametrize(
    ("changes", "student", "status", "reason"),
    [
        # [limits] file size and parameters, checked before anything loads.
        (["max_file_bytes = 524_288_000 -> max_file_bytes = 1000"], "1", "refused", "file size: "),
        (
            [
                "max_file_bytes = 524_288_000 -> max_file_bytes = 1000",
                'file_size_policy = "refuse" -> file_size_policy = "flag"',
            ],
            "1",
            "flagged",
            "file size: ",
        ),
        (
            [
                "max_parameters = 50_000_000 -> max_parameters = 100",
                'parameters_policy = "flag" -> parameters_policy = "refuse"',
            ],
            "1",
            "refused",
            "parameters: 25,450 parameters, over the limit of 100",
        ),
        (
            ["max_parameters = 50_000_000 -> max_parameters = 100"],
            "1",
            "flagged",
            "parameters: 25,450 parameters, over the limit of 100",
        ),
        # [versions] an older file without a version tag in its name.
        (
            ['untagged_older_policy = "flag" -> untagged_older_policy = "refuse"'],
            "5",
            "refused",
            "TF version: saved by standalone Keras 2.1.3",
        ),
        ([], "5", "flagged", "TF version: saved by standalone Keras 2.1.3"),
        # [versions] a Keras 2 file only TensorFlow's Keras 2 loader can read.
        ([], "4", "flagged", "loader: the official script would fail with this file"),
        (['legacy_loader_policy = "flag" -> legacy_loader_policy = "grade"'], "4", "graded", ""),
        (
            ['legacy_loader_policy = "flag" -> legacy_loader_policy = "refuse"'],
            "4",
            "load_failed",
            "the official script cannot use this file: its loader under TensorFlow 2.18.0 is Keras 3, and Keras "
            "could not load the model: ",
        ),
        # [evaluation] outputs of another width than the classes.
        ([], "2", "flagged", "outputs: the model outputs 5 scores per image"),
        (
            ['output_width_policy = "flag" -> output_width_policy = "refuse"'],
            "2",
            "bad_output",
            "the model outputs 5 scores per image; this assignment has 10 classes (end it with Dense(10)); the "
            "official script would report ",
        ),
        # [evaluation] NaN outputs.
        ([], "3", "flagged", "outputs: 3,000 of 3,000 images gave NaN or infinite outputs"),
        (
            ['nonfinite_policy = "flag" -> nonfinite_policy = "refuse"'],
            "3",
            "bad_output",
            "3,000 of 3,000 images gave NaN or infinite outputs",
        ),
        # [evaluation] images decided by the official script's tie rule.
        ([], "6", "flagged", "tied outputs: "),
        (["tie_flag_share = 0.01 -> tie_flag_share = 1.0"], "6", "graded", ""),
    ],
)
def test_each_policy_value(
    cohort: tuple[Path, Path], tmp_path: Path, changes: list[str], student: str, status: str, reason: str
) -> None:
    """Each value of each policy gives the status and reason it documents, from stored predictions."""
    row = remark(cohort, tmp_path, *changes)[student]
    assert (row["status"], row["reason"][: len(reason)]) == (status, reason), row["reason"]
    assert (row["accuracy"] is not None) == (status in ("graded", "flagged"))


def test_a_refused_output_width_still_says_what_the_script_would_print(cohort, tmp_path: Path) -> None:
    """Under output_width_policy = "refuse" the reason names the accuracy the official script would print,
    which is the mark 'flag' gives."""
    flagged = remark(cohort, tmp_path)["2"]
    refused = remark(cohort, tmp_path, 'output_width_policy = "flag" -> output_width_policy = "refuse"')["2"]
    assert f"the official script would report {flagged['accuracy']!r}%" in refused["reason"]


def test_graded_with_the_legacy_loader_the_check_says_so_even_unflagged(cohort, tmp_path: Path) -> None:
    """legacy_loader_policy = "grade" marks without a flag, but the report's loader check still says why the
    Keras 2 loader graded it."""
    import json

    remark(cohort, tmp_path, 'legacy_loader_policy = "flag" -> legacy_loader_policy = "grade"')
    report = json.loads((cohort[1] / "4" / "report.json").read_text())
    loader = next(check for check in report["checks"] if check["name"] == "loader")
    assert loader["outcome"] == "pass" and "graded with TensorFlow 2.18.0's Keras 2 loader" in loader["message"]


def test_a_tie_share_at_or_below_the_limit_is_reported_not_flagged(cohort, tmp_path: Path) -> None:
    """Below tie_flag_share the tie count is a passed check in the report, never silent."""
    import json

    remark(cohort, tmp_path, "tie_flag_share = 0.01 -> tie_flag_share = 1.0")
    report = json.loads((cohort[1] / "6" / "report.json").read_text())
    ties = next(check for check in report["checks"] if check["name"] == "tied outputs")
    assert ties["outcome"] == "pass"
    assert re.match(r"[\d,]+ of 3,000 images had two or more classes with exactly the same top", ties["message"])
    assert re.search(r"\([\d,]+ given class 3\)", ties["message"])  # 3 and 5 tie: the first, 3, is given
