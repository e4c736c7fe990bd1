"""The `grade` command, driven through click's CliRunner: output, exit codes, and instant help."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from grader.cli import cli

from .conftest import DEMO_HELDOUT, make_cohort


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_does_not_import_tensorflow() -> None:
    """`grade --help` stays instant: TensorFlow (and Keras) are imported only by workers."""
    code = (
        "import sys; from click.testing import CliRunner; from grader.cli import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(cli, ['run', '--help']); assert r.exit_code == 0; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'h5py') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [[], ["run"], ["inspect"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    """Each command's help carries a copy-paste example."""
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "grade " in result.output and ("Example" in result.output or "grade submissions/" in result.output)


def test_python_dash_m_grader_is_the_grade_command() -> None:
    """`python -m grader` runs the same CLI."""
    done = subprocess.run([sys.executable, "-m", "grader", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip().startswith("grader, version ")


def test_missing_heldout_is_a_clear_error(tmp_path: Path) -> None:
    """No held-out data: exit 1 with a message that says what to pass."""
    (tmp_path / "subs").mkdir()
    result = invoke(str(tmp_path / "subs"), "--heldout", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1
    assert "no held-out set here; pass --heldout" in result.output


def test_bad_assignment_is_a_clear_error(tmp_path: Path) -> None:
    """A broken assignment file: exit 1 naming the file and key."""
    bad = tmp_path / "bad.toml"
    bad.write_text("schema = 1\n[assignment]\nname = 'x'\n")
    (tmp_path / "subs").mkdir()
    result = invoke(str(tmp_path / "subs"), "--assignment", str(bad), "--heldout", str(DEMO_HELDOUT))
    assert result.exit_code == 1
    assert f"{bad}: screening is missing" in result.output


@pytest.mark.tensorflow
def test_grade_prints_marks_and_writes_marks_csv(tmp_path: Path, models: Path) -> None:
    """`grade SUBMISSIONS` exits 0 with failed students, prints a mark per student and writes marks.csv."""
    subs = make_cohort(
        tmp_path / "subs",
        models,
        {
            "Ann Example_1_assignsubmission_file_": {"mlp.h5": "a.h5"},
            "Bob Example_2_assignsubmission_file_": {"text.h5": "b.h5"},
        },
    )
    out = tmp_path / "reports"
    result = invoke(str(subs), "--heldout", str(DEMO_HELDOUT), "--out", str(out), "--isolation", "process")
    assert result.exit_code == 0, result.output
    assert "1 graded, 1 refused" in result.output and "Isolation: process" in result.output
    with open(out / "marks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["student_id"], r["status"]) for r in rows] == [("1", "graded"), ("2", "refused")]
    assert list(rows[0]) == [
        "student_id",
        "student_name",
        "folder",
        "file",
        "status",
        "accuracy",
        "correct",
        "total",
        "score",
        "reason",
        "sha256",
    ]
    assert f"{float(rows[0]['accuracy']):.2f}" in result.output
    report = json.loads((out / "1" / "report.json").read_text())
    assert report["evaluation"]["isolation"].startswith("subprocess with resource limits")


@pytest.mark.tensorflow
def test_grade_reads_idx_heldout_and_a_moodle_zip(tmp_path: Path, models: Path) -> None:
    """`grade download.zip --heldout t10k-images-idx3-ubyte` grades straight from Moodle's zip."""
    import struct
    import zipfile

    with np.load(DEMO_HELDOUT) as data:
        x, y = data["x"][:500], data["y"][:500]
    for name, array in (("t10k-images-idx3-ubyte", x), ("t10k-labels-idx1-ubyte", y)):
        header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        (tmp_path / name).write_bytes(header + array.tobytes())
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(models / "cnn.h5", "Ann Example_1_assignsubmission_file_/cnn.h5")
    result = invoke(str(archive), "--heldout", str(tmp_path / "t10k-images-idx3-ubyte"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    with open(tmp_path / "r" / "marks.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert (row["status"], row["total"]) == ("graded", "500")


@pytest.mark.tensorflow
def test_inspect_prints_facts_and_checks(models: Path) -> None:
    """`grade inspect FILE` shows what the file holds and each check, without running it."""
    result = invoke("inspect", str(models / "lambda.h5"))
    assert result.exit_code == 0
    assert "Lambda" in result.output and "fail" in result.output
    as_json = json.loads(invoke("inspect", str(models / "mlp.h5"), "--json").output)
    assert as_json["inspection"]["input_shape"] == [None, 784]
    assert {c["outcome"] for c in as_json["checks"]} == {"pass"}


def test_defaults_are_defined_once() -> None:
    """The library's signatures, the CLI's options, its help text and the README all give the defaults
    that grader.defaults defines."""
    import inspect
    import re

    from grader import defaults
    from grader.checking import check
    from grader.cohort import grade_cohort

    from .conftest import ROOT

    library = inspect.signature(grade_cohort).parameters
    options = {param.name: param for param in cli.commands["run"].params}
    for name, option, value in (
        ("heldout", "heldout", defaults.HELDOUT),
        ("out", "out", defaults.OUT),
        ("isolation", "isolation", defaults.ISOLATION),
        ("memory_limit_gb", "memory_limit", defaults.MEMORY_LIMIT_GB),
    ):
        assert library[name].default == value == options[option].default, name
    assert library["workers"].default is None and options["workers"].default is None  # defaults.worker_count()
    assert inspect.signature(check).parameters["isolation"].default == defaults.ISOLATION
    assert {param.name: param.default for param in cli.commands["check"].params}["isolation"] == defaults.ISOLATION
    for command in ("plot", "export"):
        assert {param.name: param.default for param in cli.commands[command].params}["reports"] == defaults.OUT
    help_text = " ".join(invoke("run", "--help").output.split())
    assert f"Default: {defaults.WORKERS}." in help_text
    assert f"[default: {defaults.MEMORY_LIMIT_GB};" in help_text
    readme = (ROOT / "README.md").read_text()
    assert f"| `--workers N` | {defaults.WORKERS} |" in readme
    assert re.search(rf"\| `--memory-limit GB` \| {defaults.MEMORY_LIMIT_GB:g} \|", readme)
    assert f"| `--out DIR` | `{defaults.OUT}/` |" in readme
    assert f"| `--heldout PATH` | `{defaults.HELDOUT}/` |" in readme
