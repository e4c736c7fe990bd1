"""`grade check model.h5`: the student's self-check runs what the instructor's run does, on public data,
and says what to change."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli

from .conftest import DEMO_HELDOUT, SHARED
from .official import run_official

pytestmark = pytest.mark.tensorflow


def check_json(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", *args, "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


@pytest.fixture(scope="module")
def official_on_demo(models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the official script prints for each fixture model on the demo data (one process for all)."""
    root = tmp_path_factory.mktemp("check-official")
    folders = {}
    for name in ("mlp", "cnn", "flat", "logits"):
        (root / name).mkdir()
        (root / name / f"{name}.h5").write_bytes((models / f"{name}.h5").read_bytes())
        folders[name] = root / name
    printed = run_official(list(folders.values()), DEMO_HELDOUT)
    return {name: printed[folder] for name, folder in folders.items()}


@pytest.mark.parametrize("name", ["mlp", "cnn", "flat", "logits"])
def test_check_reports_the_official_accuracy_and_a_sha256(models: Path, official_on_demo: dict, name: str) -> None:
    """`grade check --data ... --json` gives the official script's accuracy for the file, and its sha256."""
    code, result = check_json(str(models / f"{name}.h5"), "--data", str(DEMO_HELDOUT))
    assert code == 0
    assert repr(result["accuracy"]) == official_on_demo[name]
    assert result["sha256"] == hashlib.sha256((models / f"{name}.h5").read_bytes()).hexdigest()
    assert len(result["sha256"]) == 64
    assert {check["name"] for check in result["checks"]} >= {"file size", "HDF5 file", "layers", "TF version"}
    assert result["score_note"].endswith("not to the hidden test set")


def test_reference_runs_the_official_script_and_agrees(models: Path) -> None:
    """--reference runs the official script itself, in the sandbox, and shows it agrees."""
    result = CliRunner().invoke(
        cli, ["check", str(models / "cnn.h5"), "--data", str(DEMO_HELDOUT), "--reference"], catch_exceptions=False
    )
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Official script:" in text and "(agrees)" in text
    assert "not on the hidden test set" in text and "receipt" in text


@pytest.mark.parametrize(
    ("name", "failed", "advice"),
    [
        ("lambda.h5", "layers", "replace the Lambda layer or the TensorFlow ops on tensors with built-in layers"),
        ("text.h5", "HDF5 file", "save the model with model.save('name.h5') and upload that file"),
        ("weights_only.weights.h5", "model", "save the whole model with model.save('name.h5')"),
        ("rgb32.h5", None, None),
    ],
)
def test_failing_checks_say_what_to_change(models: Path, name: str, failed: str | None, advice: str | None) -> None:
    """A file the run would not grade exits 3, and its failing check says what to change."""
    code, result = check_json(str(models / name), "--data", str(DEMO_HELDOUT))
    assert code == 3 and result["accuracy"] is None
    if failed is None:  # refused only once it runs: the official feed does not fit the model
        assert result["status"] == "predict_failed" and "(None, 32, 32, 3)" in result["reason"]
        return
    failing = [check for check in result["checks"] if check["outcome"] == "fail"]
    assert failing[0]["name"] == failed and advice in failing[0]["advice"]


def test_untagged_old_file_warns_with_the_tag_to_add(models: Path, tmp_path: Path) -> None:
    """A Keras 2.1 file without a tf tag is graded (with tf_keras) and warns, naming the tag to add."""
    copy = tmp_path / "old_model.h5"
    copy.write_bytes((models / "k2_legacy.h5").read_bytes())
    code, result = check_json(str(copy), "--data", str(DEMO_HELDOUT))
    assert code == 0 and result["status"] == "flagged"
    warning = next(check for check in result["checks"] if check["name"] == "TF version")
    assert warning["outcome"] == "warn" and "old_model_tf21.h5" in warning["advice"]
    assert result["versions"]["loader"] == "tf_keras 2.18.0"


def test_offline_without_data_is_a_clear_message(models: Path, tmp_path: Path, monkeypatch) -> None:
    """Offline and without --data: exit 1, saying to pass --data (keras's loader finds no network)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens there: no network, on any machine
    result = CliRunner().invoke(cli, ["check", str(models / "mlp.h5")])
    assert result.exit_code == 1
    assert "keras's MNIST loader could not fetch the test set" in result.output
    assert "pass --data" in " ".join(result.output.split())


def test_check_from_a_notebook(models: Path) -> None:
    """`from grader import check` returns a result that prints as text and renders as HTML in Jupyter."""
    from grader import check

    result = check(models / "mlp.h5", data=DEMO_HELDOUT)
    assert result.passed and result.accuracy is not None
    text = str(result)
    assert text.startswith("mlp.h5: graded") and f"sha256: {result.sha256}" in text
    html = result._repr_html_()
    assert "<table>" in html and "not on the hidden test set" in html and result.sha256 in html


def test_importing_grader_is_light() -> None:
    """`import grader` loads neither numpy nor TensorFlow: check() is imported when first used."""
    code = "import sys, grader; print(sorted(m for m in ('numpy', 'tensorflow', 'h5py') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name", ["kharshit242__digit_classification__mnist_cnn_model.h5", "tagomaru__ai_security__mnist_logits.h5"]
)
def test_check_agrees_with_the_official_script_on_real_files(name: str) -> None:
    """On real files (one Keras 3 reads, one only tf_keras reads), --reference agrees on MNIST test."""
    path, mnist = SHARED / "corpus" / name, SHARED / "data" / "mnist.npz"
    if not path.exists() or not mnist.exists():
        pytest.skip(f"{path} or {mnist} is absent: the corpus tests need ../shared")
    code, result = check_json(str(path), "--data", str(mnist), "--reference")
    assert code == 0 and result["reference"]["agrees"] is True
    assert result["dataset"]["name"] == "MNIST test set (10,000 images)"


def test_the_script_grade_check_runs_is_the_coursework_script_verbatim() -> None:
    """`grade check --reference` runs grader.courseworks.official's copy of the official script; it is the coursework's
    script to the character (the tests' own verbatim copy, tests/fixtures)."""
    from grader.courseworks.official import OFFICIAL_SCRIPT

    from .official import SCRIPT

    assert SCRIPT.read_text() == OFFICIAL_SCRIPT


def test_data_for_a_data_set_serves_every_part_measured_on_it(models: Path) -> None:
    """`--data mnist=PATH` measures any MNIST part on PATH (as `grade --heldout mnist=PATH` does); data that
    names neither the file's part nor its data set is a clear error naming the pair to add."""
    code, result = check_json(str(models / "cnn.h5"), "--assignment", "uva-lab1", "--data", f"mnist={DEMO_HELDOUT}")
    assert code == 0 and result["part"] == "cnn" and result["total"] == 3000
    wrong = CliRunner().invoke(cli, ["check", str(models / "cnn.h5"), "-a", "uva-lab1", "--data", "cifar10=x.npz"])
    assert wrong.exit_code == 1
    assert "--data names cifar10, not part cnn or its data set mnist: add cnn=PATH" in wrong.output


def test_a_checks_notebook_display_escapes_what_the_file_and_its_checks_say() -> None:
    """The notebook display is rendered from a template that escapes the file's name and every check's text."""
    from grader.checking import CheckResult
    from grader.checks.screening import Check

    result = CheckResult(
        file="<img src=x onerror=alert(1)>.h5",
        sha256="ab" * 32,
        size=1234,
        status="flagged",
        reason="<b>odd</b>",
        checks=(Check("outputs", "warn", "a <script>", "fix 'it'"),),
        accuracy=97.5,
        correct=9750,
        total=10000,
        score=18,
        band="[97.5, 98)",
        max_score=20,
        dataset="MNIST test set (10,000 images)",
        dataset_sha256="cd",
        saved_with="Keras 3",
        graded_with="keras 3",
        loader="keras 3",
        isolation="bubblewrap",
        marking="Table 1",
    )
    html = result._repr_html_()
    assert "<img" not in html and "<script>" not in html and "<b>odd" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.h5" in html and "a &lt;script&gt;" in html
    assert "97.5% (9,750/10,000) &rarr; Table 1 would give 18/20 (band [97.5, 98))" in html
    assert "<td style='color:#8a5a00;font-weight:600'>warn</td>" in html
