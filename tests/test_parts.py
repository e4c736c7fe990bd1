"""Assignments with several parts (UvA Lab 1, SYDE 522 A4): files matched to parts by name, then by their
declared input shape; each part's accuracy equal to the coursework's own evaluation of that file; a
missing part gets its own status; marks.csv, reports, plot and check per part.

The colour part's images are synthetic (tests/build_models.py: colour_images), CIFAR-10-shaped, held out as
CIFAR-10's own python batch format; the MNIST parts use the demo held-out set."""

from __future__ import annotations

import csv
import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.cohort import grade_cohort
from grader.courseworks.assignment import load_assignment

from . import build_code
from .conftest import DEMO_HELDOUT, make_cohort
from .seed_evaluations import run_seed_evaluations

pytestmark = pytest.mark.tensorflow

UVA = {
    "Ann Anders_1_assignsubmission_file_": {
        "mlp.h5": "ann_mlp.h5",
        "cnn.h5": "ann_cnn.h5",
        "colour_cnn.h5": "ann_cifar.h5",
    },
    # No name says which part: the declared input shapes (784,), (28, 28, 1), (32, 32, 3) do.
    "Bob Berg_2_assignsubmission_file_": {"mlp.h5": "model1.h5", "cnn.h5": "model2.h5", "colour_cnn.h5": "model3.h5"},
    "Cat Carr_3_assignsubmission_file_": {"mlp.h5": "q5.h5"},
    # 'cifar_cnn' fits both the cnn and the cifar10 patterns: its shape (32, 32, 3) decides.
    "Dan Dunn_4_assignsubmission_file_": {"colour_cnn.h5": "cifar_cnn.h5"},
    # Named for the MLP part, but declaring (28, 28) (a Flatten model) or (32, 32, 3): graded as named.
    "Eve Egan_5_assignsubmission_file_": {"flat.h5": "eve_mlp.h5", "rgb32.h5": "eve_cnn.h5"},
}


def uva_heldout(models: Path) -> dict[str, Path]:
    # 'mnist' names the data set UvA's mlp and cnn parts are judged on: it serves both.
    return {"mnist": DEMO_HELDOUT, "cifar10": models / "colour_test_batch"}


@pytest.fixture(scope="module")
def uva(tmp_path_factory: pytest.TempPathFactory, models: Path):
    root = make_cohort(tmp_path_factory.mktemp("uva") / "submissions", models, UVA)
    # Exercise three's functions: Ann's in a .py file, Bob's in his training notebook; the others hand in none.
    (root / "Ann Anders_1_assignsubmission_file_" / "functions.py").write_text(build_code.VECTORISED)
    (root / "Bob Berg_2_assignsubmission_file_" / "lab1.ipynb").write_text(build_code.TRAINING_NOTEBOOK)
    summary = grade_cohort(root, assignment="uva-lab1", heldout=uva_heldout(models), out=root.parent / "reports")
    return root, summary


def students(summary) -> dict[str, dict]:
    return {row["student_id"]: row for row in summary.rows}


def test_files_are_matched_to_parts_by_name_then_by_shape(uva) -> None:
    """Names decide where they fit one part; declared input shapes decide the rest."""
    _, summary = uva
    rows = students(summary)
    files = {sid: {name: (part or {}).get("file") for name, part in row["parts"].items()} for sid, row in rows.items()}
    assert files["1"] == {"mlp": "ann_mlp.h5", "cnn": "ann_cnn.h5", "cifar10": "ann_cifar.h5", "code": "functions.py"}
    assert files["2"] == {"mlp": "model1.h5", "cnn": "model2.h5", "cifar10": "model3.h5", "code": "lab1.ipynb"}
    assert files["4"] == {"mlp": "", "cnn": "", "cifar10": "cifar_cnn.h5", "code": ""}
    # The code files go to the code part (the only part taking .py and .ipynb) and get every point.
    assert [rows[sid]["parts"]["code"]["score"] for sid in ("1", "2")] == [19, 19]
    assert rows["4"]["parts"]["code"]["status"] == "no_file"
    assert rows["4"]["parts"]["code"]["reason"].startswith("no code (.py or .ipynb) file: found cifar_cnn.h5;")
    # The fixture's small colour CNN is not question 16's network: uva-lab1 flags that (policy "flag").
    for sid in ("1", "2"):
        assert rows[sid]["status"] == "flagged"
        assert rows[sid]["reason"].startswith("cifar10: architecture: ") and "question 16" in rows[sid]["reason"]
        assert [rows[sid]["parts"][name]["status"] for name in ("mlp", "cnn")] == ["graded", "graded"]
    check = next(c for c in rows["2"]["parts"]["cifar10"]["detail"]["checks"] if c["name"] == "file choice")
    assert "its input shape (32, 32, 3) is this part's" in check["message"]


def test_each_part_equals_the_labs_own_evaluation(uva, models: Path, tmp_path: Path) -> None:
    """Each graded part's correct count is what UvA's model.evaluate accuracy gives on the same images (x /
    255, one-hot labels): accuracy x images, exactly."""
    root, summary = uva
    data = tmp_path / "mnist.npz"
    shutil.copyfile(DEMO_HELDOUT, data)
    held = {"mlp": data, "cnn": data, "cifar10": models / "colour_heldout.npz"}
    jobs, expected = [], []
    for row in summary.rows:
        for name, part in row["parts"].items():
            if part is not None and part["status"] in ("graded", "flagged") and name in ("mlp", "cnn", "cifar10"):
                if row["student_id"] == "5":
                    continue  # shaped against the lab's instructions: the lab's own code would not run it
                model = root / row["folder"] / part["file"]
                jobs.append({"seed": "uva", "model": str(model), "heldout": str(held[name]), "question": name})
                expected.append(part)
    results = run_seed_evaluations(jobs)
    assert len(results) == len(expected) >= 7
    for part, result in zip(expected, results, strict=True):
        assert round(result["accuracy"] * result["total"]) == part["correct"], part["file"]
        assert part["total"] == result["total"]


def test_a_missing_part_has_its_own_status_and_the_total_counts_it_as_zero(uva) -> None:
    """Cat handed in only the MLP: her CNN and CIFAR parts are no_file with the reason, and her total is the
    MLP's score; she is flagged, saying which parts are missing."""
    _, summary = uva
    cat = students(summary)["3"]
    assert cat["parts"]["cnn"]["status"] == "no_file"
    assert cat["parts"]["cnn"]["reason"] == "no model file for part cnn: q5.h5 is for part mlp by its name"
    assert cat["status"] == "flagged" and cat["score"] == cat["parts"]["mlp"]["score"]
    assert "cnn (no_file): no model file for part cnn" in cat["reason"]


def test_a_model_of_another_shape_is_fed_as_it_declares_and_flagged(uva) -> None:
    """Eve's MLP part is a (28, 28) Flatten model: fed (N, 28, 28) as it declares, graded, flagged that the
    lab's MLP takes 784 values; her 'cnn' is a (32, 32, 3) model, which MNIST digits cannot feed."""
    _, summary = uva
    eve = students(summary)["5"]
    mlp = eve["parts"]["mlp"]
    assert mlp["status"] == "flagged" and float(mlp["accuracy"]) > 50
    assert "input shape: the model declares input (28, 28); part mlp's models take (784,)" in mlp["reason"]
    assert mlp["detail"]["evaluation"]["fed_shape"] == [3000, 28, 28]
    cnn = eve["parts"]["cnn"]
    assert cnn["status"] == "predict_failed"
    assert (
        "the model declares input (None, 32, 32, 3) (3,072 values per image), but this part's images are "
        in cnn["reason"]
    )


def test_marks_csv_has_a_row_per_student_and_columns_per_part(uva) -> None:
    """marks.csv: the student's total, status and reason, then <part>_file, _status, _accuracy, _score ..."""
    _, summary = uva
    with open(summary.marks_csv, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = {row["student_id"]: row for row in reader}
        header = reader.fieldnames
    assert header[:6] == ["student_id", "student_name", "folder", "status", "score", "reason"]
    assert "cifar10_accuracy" in header and "mlp_score" in header and "cnn_status" in header
    assert len(rows) == 5
    ann = rows["1"]
    parts_total = sum(Fraction(ann[f"{name}_score"]) for name in ("mlp", "cnn", "cifar10", "code"))
    assert Fraction(ann["score"]) == parts_total and ann["code_score"] == "19" and ann["code_total"] == "31"
    assert ann["cifar10_file"] == "ann_cifar.h5" and ann["cifar10_status"] == "flagged"  # not Q16's network


def test_reports_have_a_section_per_part_with_colour_figures_and_class_names(uva) -> None:
    """Each student's report.json holds each part's report; the HTML names the parts, shows the colour
    part's misclassified images in colour with CIFAR-10's class names, and labels its tables by name."""
    _, summary = uva
    report = json.loads((summary.out / "1" / "report.json").read_text())
    assert [part["part"]["name"] for part in report["parts"]] == ["mlp", "cnn", "cifar10", "code"]
    assert report["parts"][3]["code"]["questions"][0]["function"] == "convolve"
    cifar = report["parts"][2]
    assert cifar["class_names"][9] == "truck" and cifar["per_class"][0]["name"] == "airplane"
    assert cifar["marking"]["name"] == "Question 17 points (instructor's table)"
    html = (summary.out / "1" / "report.html").read_text()
    assert "Part cifar10: Questions 16-17: the CIFAR-10 network" in html
    assert re.search(r"True: (airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck)<", html)
    assert '<th class="num">truck</th>' in html
    index = (summary.out / "index.html").read_text()
    assert "Part cnn: Question 12: the convolutional network on MNIST" in index


def test_plot_draws_a_colour_part_with_class_names(uva, tmp_path: Path) -> None:
    """`grade plot STUDENT --part cifar10` draws the coursework's figure from the colour images, labelled by
    class name."""
    _, summary = uva
    target = tmp_path / "cifar.png"
    result = CliRunner().invoke(
        cli, ["plot", "1", "--part", "cifar10", "--reports", str(summary.out), "--out", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:4] == b"\x89PNG"
    names = "airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck"
    assert re.search(rf"true ({names}), predicted ({names})", result.output)
    without = CliRunner().invoke(cli, ["plot", "1", "--reports", str(summary.out), "--out", str(target)])
    assert without.exit_code == 1 and "pass --part" in without.output


def test_grade_check_finds_the_part_and_measures_it_on_its_public_set(uva, models: Path) -> None:
    """`grade check FILE --assignment uva-lab1 --data cifar10=PATH` checks the file as the part its shape
    fits, and reports that part's accuracy on the data given: the cohort's, for the same images."""
    root, summary = uva
    model = root / "Bob Berg_2_assignsubmission_file_" / "model3.h5"
    result = CliRunner().invoke(
        cli,
        [
            "check",
            str(model),
            "--assignment",
            "uva-lab1",
            "--data",
            f"cifar10={models / 'colour_heldout.npz'}",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    checked = json.loads(result.output)
    assert checked["part"] == "cifar10"
    assert checked["accuracy"] == students(summary)["2"]["parts"]["cifar10"]["accuracy"]
    assert checked["score_note"].startswith("Question 17 points (instructor's table) applied")


@pytest.fixture(scope="module")
def syde(tmp_path_factory: pytest.TempPathFactory, models: Path):
    layout = {
        "Ann Anders_1_assignsubmission_file_": {"flat.h5": "mnist_model.h5", "colour_flat.h5": "cifar_model.h5"},
        "Bob Berg_2_assignsubmission_file_": {"flat.h5": "digits.h5", "colour_cnn.h5": "q10.h5"},
    }
    root = make_cohort(tmp_path_factory.mktemp("syde") / "submissions", models, layout)
    heldout = {"mnist": DEMO_HELDOUT, "cifar10": models / "colour_heldout.npz"}
    return root, grade_cohort(root, assignment="syde522-a4", heldout=heldout, out=root.parent / "reports")


def test_syde_parts_equal_the_notebooks_predict_argmax_and_score_linearly(syde, models: Path) -> None:
    """Each SYDE part's correct count equals the notebook's own evaluation (x / 255.0, model.predict,
    argmax), and its score is the linear scale's, exactly: 0 at 90% (or 50%), 2 at 98% (or 75%), rounded
    down to half marks."""
    root, summary = syde
    rules = load_assignment("syde522-a4")
    held = {"mnist": DEMO_HELDOUT, "cifar10": models / "colour_heldout.npz"}
    jobs, parts = [], []
    for row in summary.rows:
        for name, part in row["parts"].items():
            assert part["status"] in ("graded", "flagged"), part["reason"]
            model = root / row["folder"] / part["file"]
            jobs.append({"seed": "syde", "model": str(model), "heldout": str(held[name])})
            parts.append((name, part))
    for (name, part), result in zip(parts, run_seed_evaluations(jobs), strict=True):
        assert part["correct"] == result["correct"], part["file"]
        linear = rules.part(name).marking
        share = (Fraction(100 * part["correct"], part["total"]) - linear.min_accuracy) / (
            linear.full_accuracy - linear.min_accuracy
        )
        exact = 2 * min(Fraction(1), max(Fraction(0), share))
        assert Fraction(str(part["score"])) == Fraction(int(exact * 2), 2)
    # A linear scale's next step is named by its score, once, in both reports.
    steps = []
    for row in summary.rows:
        folder = summary.marks_csv.parent / row["student_id"]
        steps += [line for line in (folder / "report.md").read_text().splitlines() if line.startswith("**Next step:")]
        assert "(score " not in (folder / "report.html").read_text()
    named_once = re.compile(r"\*\*Next step:\*\* score [\d.]+ needs [\d,]+ more correct images")
    assert steps and all(named_once.fullmatch(step) for step in steps), steps


def test_held_out_images_must_fit_the_part(tmp_path: Path, models: Path) -> None:
    """Giving a part a held-out set of another shape stops the run before anything is graded, saying which
    part, what it needs and what was found."""
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(tmp_path),
            "--assignment",
            "syde522-a4",
            "--heldout",
            f"mnist={models / 'colour_heldout.npz'}",
            "--heldout",
            f"cifar10={models / 'colour_heldout.npz'}",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    assert "part mnist (28x28 grey images, 10 classes): " in result.output
    assert "images have shape (400, 32, 32, 3); this assignment needs (N, 28, 28)" in result.output
    unknown = CliRunner().invoke(
        cli, ["run", str(tmp_path), "--assignment", "syde522-a4", "--heldout", f"svhn={DEMO_HELDOUT}"]
    )
    assert unknown.exit_code == 1
    assert "--heldout names svhn, which this assignment has no part or data set of; its parts are mnist, cifar10" in (
        unknown.output
    )


def test_python_batch_and_npz_give_the_same_images(models: Path) -> None:
    """The colour set as CIFAR-10's python batch reads to exactly the images and labels of its .npz."""
    from grader.courseworks.heldout import load_heldout

    data = load_assignment("uva-lab1").part("cifar10").data
    batch = load_heldout(models / "colour_test_batch", data)
    plain = load_heldout(models / "colour_heldout.npz", data)
    assert batch.sha256 == plain.sha256 and np.array_equal(batch.images, plain.images)


def test_the_command_line_grades_parts_with_a_held_out_set_per_data_set(tmp_path: Path, models: Path) -> None:
    """`grade SUBMISSIONS --assignment uva-lab1 --heldout mnist=A --heldout cifar10=B` grades every part and
    prints each part's accuracy and the total."""
    root = make_cohort(tmp_path / "subs", models, {"Ann Anders_1_assignsubmission_file_": UVA[next(iter(UVA))]})
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(root),
            "--assignment",
            "uva-lab1",
            "--heldout",
            f"mnist={DEMO_HELDOUT}",
            "--heldout",
            f"cifar10={models / 'colour_test_batch'}",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "mlp %" in text and "cifar10 %" in text and "total" in text and "1 flagged" in text
    with open(tmp_path / "out" / "marks.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert [row[f"{part}_status"] for part in ("mlp", "cnn", "cifar10")] == ["graded", "graded", "flagged"]
