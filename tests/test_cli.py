"""The `grade` command, driven through click's CliRunner: output, exit codes, and instant help."""

from __future__ import annotations

import csv
import json
import re
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


# Each command, and how the example in its help begins (`grade run` is what `grade SUBMISSIONS` runs).
EXAMPLES = {
    "run": "grade submissions/",
    "assignments": "grade assignments",
    "check": "grade check ",
    "inspect": "grade inspect ",
    "export": "grade export ",
    "plot": "grade plot ",
    "integrity": "grade integrity ",
    "serve": "grade serve ",
    "upgrade": "grade upgrade ",
}


def test_the_commands_are_the_ones_tested() -> None:
    """The commands whose help is tested are every command the CLI has (a new one must join them)."""
    assert sorted(cli.commands) == sorted(EXAMPLES)


@pytest.mark.parametrize("command", ["", *EXAMPLES])
def test_every_command_has_help_with_an_example(command: str) -> None:
    """`grade --help` and each command's --help exit 0 and show a copy-paste example of that command."""
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0
    if command:
        assert EXAMPLES[command] in result.output.split("Example", 1)[1]
    else:
        assert all(f"grade {name}" in result.output for name in ("submissions/", "inspect"))


@pytest.mark.parametrize(
    "args",
    [
        ["/no/such/folder"],
        ["run", "/no/such/folder"],
        ["submissions", "--no-such-option"],
        ["run", "submissions", "--workers", "0"],
        ["inspect"],
        ["export", "pdf", "--out", "x.csv"],
        ["plot"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    """A usage error (a path that does not exist, an unknown option, a bad value, a missing argument)
    exits 2 with click's message, before anything is read."""
    from .conftest import ROOT

    result = CliRunner().invoke(cli, [a if a != "submissions" else str(ROOT / "submissions") for a in args])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output


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
    assert f"{bad}: assignment.max_score is missing" in result.output


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
    assert "Not isolated: 2 of 2 students' files were handled without the sandbox" in " ".join(result.output.split())
    with open(out / "marks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["student_id"], r["status"]) for r in rows] == [("1", "graded"), ("2", "refused")]
    assert [r.pop("isolation") for r in rows] == ["not isolated", "not isolated"]
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
    assert report["evaluation"]["isolation"].startswith("not isolated: a plain subprocess with resource limits")
    assert report["not_isolated"] == report["evaluation"]["isolation"]
    assert "Not isolated:" in (out / "1" / "report.html").read_text()
    assert "**Isolation:** not isolated" in (out / "1" / "report.md").read_text()
    assert 'id="not-isolated"' in (out / "index.html").read_text()


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
    # --heldout repeats (one per part): left out, the library's default applies, and the help says which.
    assert library["heldout"].default == defaults.HELDOUT and options["heldout"].multiple
    for name, option, value in (
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
    assert f"Default: {defaults.HELDOUT}/ ({defaults.HELDOUT}/PART/ for each part)." in help_text
    assert f"[default: {defaults.MEMORY_LIMIT_GB};" in help_text
    readme = (ROOT / "docs" / "commands.md").read_text()
    assert f"| `--workers N` | {defaults.WORKERS} |" in readme
    assert re.search(rf"\| `--memory-limit GB` \| {defaults.MEMORY_LIMIT_GB:g} \|", readme)
    assert f"| `--out DIR` | `{defaults.OUT}/` |" in readme
    assert f"| `--heldout [PART=]PATH` | `{defaults.HELDOUT}/` (`{defaults.HELDOUT}/PART/` for each part) |" in readme


def marks(out: Path) -> dict[str, dict]:
    with open(out / "marks.csv", newline="", encoding="utf-8") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


@pytest.mark.tensorflow
def test_plot_draws_the_classes_the_mark_counted(graded, tmp_path: Path) -> None:
    """`grade plot STUDENT` writes the coursework's figure of the first eight misclassified images, each
    labelled with the true class and the predicted class stored with the mark."""
    from grader.gradebook import Gradebook

    target = tmp_path / "misclassified.png"
    result = invoke("plot", "200001", "--reports", str(graded.out), "--out", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listed = re.findall(r"image (\d+): true (\d+), predicted (\d+)", result.output)
    shown = [tuple(map(int, found)) for found in listed]
    with Gradebook(graded.out) as book:
        row = next(r for r in book.results(graded.run_id) if r["student_id"] == "200001")
        evaluation = book.evaluation_by_id(row["evaluation_id"])
    with np.load(DEMO_HELDOUT) as data:
        labels = data["y"]
    predicted = evaluation.predictions
    wrong = np.nonzero(predicted != labels)[0][:8]
    assert len(shown) == 8 and shown == [(int(i), int(labels[i]), int(predicted[i])) for i in wrong]


@pytest.mark.tensorflow
def test_plot_of_a_student_without_predictions_exits_1(graded, tmp_path: Path) -> None:
    """A refused student has nothing to plot: exit 1 with the status and reason, nothing written."""
    result = invoke("plot", "200006", "--reports", str(graded.out), "--out", str(tmp_path / "x.pdf"))
    assert result.exit_code == 1
    assert "student 200006 has no predictions (refused: layers: uses Lambda" in result.output
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.tensorflow
def test_rehash_reads_every_file_again(tmp_path: Path, models: Path) -> None:
    """Without --rehash an unchanged file (same inode, size and times) is not read again: its stored hash is
    trusted, even a wrong one. With --rehash every file is read and hashed again."""
    import sqlite3

    subs = make_cohort(
        tmp_path / "subs",
        models,
        {
            "Ann Example_1_assignsubmission_file_": {"mlp.h5": "a.h5"},
            "Bob Example_2_assignsubmission_file_": {"cnn.h5": "b.h5"},
        },
    )
    out = tmp_path / "reports"
    command = [str(subs), "--heldout", str(DEMO_HELDOUT), "--out", str(out), "--workers", "1"]
    assert invoke(*command).exit_code == 0
    first = marks(out)
    with sqlite3.connect(out / "gradebook.sqlite") as db:  # as if the stored hash of a.h5 were wrong
        db.execute("UPDATE fingerprints SET sha256=? WHERE path LIKE '%a.h5'", (first["2"]["sha256"],))
    assert invoke(*command).exit_code == 0
    trusted = marks(out)
    assert (trusted["1"]["sha256"], trusted["1"]["accuracy"]) == (first["2"]["sha256"], first["2"]["accuracy"])
    result = invoke(*command, "--rehash")
    assert result.exit_code == 0
    assert marks(out) == first


@pytest.mark.tensorflow
def test_time_and_memory_limits_from_the_command_line(tmp_path: Path, models: Path) -> None:
    """--time-limit and --memory-limit reach the workers: a model computing for minutes times out at the
    limit given, one needing gigabytes is stopped at the memory given; both rows say so."""
    subs = make_cohort(
        tmp_path / "subs",
        models,
        {
            "Slow Model_1_assignsubmission_file_": {"slow.h5": "slow.h5"},
            "Big Model_2_assignsubmission_file_": {"memory_hog.h5": "hog.h5"},
        },
    )
    out = tmp_path / "reports"
    result = invoke(
        str(subs), "--heldout", str(DEMO_HELDOUT), "--out", str(out), "--time-limit", "8", "--memory-limit", "1.5"
    )
    assert result.exit_code == 0, result.output
    rows = marks(out)
    assert rows["1"]["status"] == "timeout" and rows["1"]["reason"].startswith("no answer within the 8 s limit")
    assert rows["2"]["status"] == "over_limit"
    assert rows["2"]["reason"].startswith("the model needed more than the 1.5 GB of memory a worker may use")


@pytest.mark.tensorflow
def test_ctrl_c_exits_130_and_the_same_command_resumes(tmp_path: Path, models: Path) -> None:
    """Ctrl-C during an evaluation stops the run at once with exit 130, saying what is kept and how to go
    on; no worker outlives it; the same command then finishes with marks.csv identical to an
    uninterrupted run's."""
    import signal
    import time

    from .test_resume import grade, orphans

    subs = make_cohort(
        tmp_path / "subs",
        models,
        {
            "Ann Example_1_assignsubmission_file_": {"mlp.h5": "a.h5"},
            "Bob Example_2_assignsubmission_file_": {"text.h5": "b.h5"},
            "Sal Example_3_assignsubmission_file_": {"slow.h5": "s.h5"},
        },
    )
    limits = ("--time-limit", "6", "--workers", "1")
    whole = grade(subs, tmp_path / "whole", *limits)
    assert whole.wait(timeout=600) == 0, whole.stdout.read()

    cut = grade(subs, tmp_path / "cut", *limits)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "cut" / ".work").glob("run-*/workers/*/inbox/model.h5")):
        assert cut.poll() is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cut.send_signal(signal.SIGINT)
    output = cut.communicate(timeout=60)[0]
    assert cut.returncode == 130, output
    assert "Interrupted. Every result finished so far is kept in the gradebook" in output
    assert not orphans(tmp_path / "cut", within=10), "workers outlived the interrupted run"

    resumed = grade(subs, tmp_path / "cut", *limits)
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    assert (tmp_path / "cut" / "marks.csv").read_bytes() == (tmp_path / "whole" / "marks.csv").read_bytes()


@pytest.mark.tensorflow
def test_every_command_works_from_a_fresh_folder_with_relative_paths(tmp_path: Path, models: Path) -> None:
    """Run as a user types them, in the folder that holds their files: relative --heldout, --out, --library,
    --data and --reports. Each command finds what it was given and the sandboxed children are given absolute
    paths (a relative path handed to bubblewrap, or to a child running in its own folder, would miss)."""
    make_cohort(tmp_path / "subs", models, {"Ann Example_1_assignsubmission_file_": {"mlp.h5": "ann.h5"}})
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "known.h5").write_bytes((models / "mlp.h5").read_bytes())
    (tmp_path / "held.npz").write_bytes(DEMO_HELDOUT.read_bytes())

    def grade(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "grader", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    grade("subs", "--heldout", "held.npz", "--out", "out", "--library", "lib", "--workers", "1")
    with open(tmp_path / "out" / "marks.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["status"] == "graded"
    assert "same file" in grade("integrity", "out", "--library", "lib")
    checked = json.loads(grade("check", "lib/known.h5", "--data", "held.npz", "--json"))
    assert checked["status"] == "graded" and checked["correct"] == int(row["correct"])
    assert "1 rows" in grade("export", "csv", "--reports", "out", "--out", "marks-copy.csv")
    grade("plot", "1", "--reports", "out", "--out", "wrong.png")
    assert (tmp_path / "wrong.png").stat().st_size > 0
