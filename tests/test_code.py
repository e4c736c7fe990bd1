"""Code parts (UvA Lab 1, Exercise three): students' numpy functions run in the sandbox, each question judged
case by case against the instructor's test module, element-by-element code confirmed by timing, hostile code
refused with its reason, and the run always completes.

The cohort is tests/build_code.py's files (written as students write them, not from grader's references),
graded through the `grade` command with the shipped uva-lab1 code part (its model parts left out, so that
no TensorFlow is needed)."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.cohort import grade_cohort
from grader.courseworks.assignment import builtin_assignments, load_assignment
from grader.errors import AssignmentError
from grader.evaluation.code import Case, judge

from . import build_code
from .assignment_text import LIMITS
from .conftest import require

UVA = builtin_assignments()["uva-lab1"]


def code_only(folder: Path, assignment: Path = UVA) -> Path:
    """uva-lab1.toml with only its code part (max_score 19), its test module and template named in place."""
    text = assignment.read_text()
    head, code = text[: text.index("[[parts]]")], text[text.rindex('[[parts]]\nname = "code"') :]
    head = head.replace("max_score = 25", "max_score = 19")
    for name in ("uva_lab1_code.py", "uva_lab1_template.py"):
        code = code.replace(f'"{name}"', json.dumps(str(assignment.parent / name)))
    target = folder / "uva-lab1-code.toml"
    target.write_text(head + code)
    return target


class Listener:
    """A TCP server on 127.0.0.1 that records whether anything connected (the hostile file tries)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connected = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connected = True
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    from grader.evaluation.sandbox import bubblewrap_problem

    require(bubblewrap_problem(), "bubblewrap")
    root = tmp_path_factory.mktemp("code")
    heldout = root / "heldout" / "labels.npy"
    heldout.parent.mkdir()
    heldout.write_bytes(b"the held-out labels")
    marker = root / "payload-ran"
    listener = Listener()
    files = {
        "101": ("functions.py", build_code.VECTORISED),
        "102": ("lab1_functions.py", build_code.LOOPS),
        "103": ("lab.py", build_code.OFF_BY_ONE),
        "104": ("lab.py", build_code.SOFTMAX_AXIS),
        "105": ("lab.py", build_code.SOFTMAX_UNSTABLE),
        "106": ("Lab1.ipynb", build_code.TRAINING_NOTEBOOK),
        "107": ("lab.py", build_code.SYNTAX_ERROR),
        "108": ("lab.py", build_code.hostile(str(heldout), listener.port, str(marker))),
        "109": ("lab.py", build_code.INFINITE_LOOP),
        "110": ("lab.py", build_code.GREEDY),
    }
    submissions = build_code.write_cohort(root / "submissions", files)
    assignment = code_only(root)
    out = root / "reports"
    try:
        result = CliRunner().invoke(
            cli, [str(submissions), "--assignment", str(assignment), "--out", str(out)], catch_exceptions=False
        )
    finally:
        listener.close()
    with open(out / "marks.csv", newline="", encoding="utf-8") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    return {
        "result": result,
        "rows": rows,
        "out": out,
        "marker": marker,
        "listener": listener,
        "submissions": submissions,
        "assignment": assignment,
    }


def questions(cohort, student: str) -> dict[str, dict]:
    report = json.loads((cohort["out"] / student / "report.json").read_text())
    return {question["name"]: question for question in report["parts"][0]["code"]["questions"]}


def points(cohort, student: str) -> dict[str, float]:
    return {name: question["points"] for name, question in questions(cohort, student).items()}


def test_the_run_completes_with_every_student_in_marks_csv(cohort) -> None:
    assert cohort["result"].exit_code == 0, cohort["result"].output
    assert "code points" in cohort["result"].output  # the summary table shows the part's points, not a %
    assert set(cohort["rows"]) == {str(number) for number in range(101, 111)}
    assert all(row["code_status"] in ("graded", "flagged") for row in cohort["rows"].values())


def test_correct_vectorised_code_gets_every_point(cohort) -> None:
    """A loop over the kernel's 9 offsets (each a whole-array product) is timed and found not element by
    element: no deduction."""
    row = cohort["rows"]["101"]
    assert row["status"] == "graded" and row["score"] == "19" and row["code_correct"] == row["code_total"] == "31"
    q20 = questions(cohort, "101")["q20"]
    assert q20["deduction"] == 0 and "not element by element" in q20["loops"]
    # Far from the threshold (20x): within 5x of the plain-numpy reference.
    assert q20["timing"]["seconds"] < 5 * q20["timing"]["reference_seconds"]


def test_correct_code_with_element_loops_loses_the_deductions_with_the_lines(cohort) -> None:
    """Every case passes; each question loses its loop_deduction (1, or 0.5 for the 2-point ones), naming
    the loop's line and the measured slowdown."""
    assert points(cohort, "102") == {"q20": 4, "q21": 1.5, "q22": 2, "q23": 1.5, "q24": 4, "q25": 1.5}
    q20 = questions(cohort, "102")["q20"]
    assert q20["passed"] == q20["total"] == 6
    assert "for loop at line 11" in q20["loops"] and "over 20x" in q20["loops"]
    assert q20["timing"]["seconds"] > 100 * q20["timing"]["reference_seconds"]
    assert cohort["rows"]["102"]["score"] == "14.5"


def test_an_off_by_one_output_size_fails_the_convolution_with_the_shapes(cohort) -> None:
    q20 = questions(cohort, "103")["q20"]
    assert q20["points"] == 0 and q20["passed"] == 0
    assert "output shape (3, 3, 1), expected (4, 4, 1) or (6, 6, 1)" in q20["reason"]
    assert cohort["rows"]["103"]["score"] == "14"


def test_softmax_over_the_wrong_axis_fails_the_batch_case_only(cohort) -> None:
    q25 = questions(cohort, "104")["q25"]
    assert (q25["passed"], q25["total"], q25["points"]) == (5, 6, 1.5)  # proportional, rounded down to 0.5
    failed = [case for case in q25["cases"] if not case["passed"]]
    assert [case["name"] for case in failed] == ["a batch of 4 rows of 10 (over the last axis)"]
    assert "values differ; at [0, 0] expected" in failed[0]["message"]


def test_an_unstable_softmax_gives_nan_on_large_inputs(cohort) -> None:
    q25 = questions(cohort, "105")["q25"]
    failed = {case["name"]: case["message"] for case in q25["cases"] if not case["passed"]}
    assert "large activations (1000, 1001, 1002)" in failed
    assert "NaN or infinite values" in failed["large activations (1000, 1001, 1002)"]
    assert q25["points"] == 1


def test_a_notebook_runs_only_its_definitions_and_lists_the_cells_used(cohort) -> None:
    """The training cell (TensorFlow, MNIST, model.fit, writing a file) never runs; the report lists the cells
    used and what was left out."""
    row = cohort["rows"]["106"]
    assert row["score"] == "19" and row["code_file"] == "Lab1.ipynb"
    report = json.loads((cohort["out"] / "106" / "report.json").read_text())["parts"][0]["code"]
    assert report["notebook"] and report["used_cells"] == [2, 4, 6]
    dropped = {item["what"]: item["why"] for item in report["dropped"]}
    assert "model.fit(x_train, y_train, epochs=20)" in dropped
    # An assignment reading what a left-out statement defines is left out too, not a failure when run.
    assert dropped["first = x_train[0] / 255"] == "uses x_train, which only statements left out define"
    assert report["load_errors"] == []
    assert dropped["import tensorflow as tf"].startswith("imports tensorflow: only numpy")
    assert not Path("/tmp/grader-notebook-ran").exists()
    markdown = (cohort["out"] / "106" / "report.md").read_text()
    assert "Cells used (imports, definitions and constants only): 2, 4, 6." in markdown


def test_a_syntax_error_gives_each_question_its_line(cohort) -> None:
    row = cohort["rows"]["107"]
    assert row["score"] == "0"
    every = "q20, q21, q22, q23, q24, q25"
    assert row["code_reason"] == f"{every}: no function found; syntax error at line 18: expected ':'"


def test_hostile_code_is_refused_with_its_reason_and_has_no_effect(cohort) -> None:
    """Reading the held-out file (open and np.load) is refused while the code runs; a socket to a listening
    server and os.system, both reached through numpy's builtins (`np.__dict__["__builtins__"]`), are not run at
    all: their functions reach Python's internals. Those questions get 0 with the reason, the student is flagged
    for a person, the rest are graded, and nothing happened."""
    row = cohort["rows"]["108"]
    assert row["status"] == "flagged"
    found = questions(cohort, "108")
    assert points(cohort, "108") == {"q20": 5, "q21": 0, "q22": 0, "q23": 0, "q24": 5, "q25": 0}
    assert "tried to open" in found["q21"]["reason"] and "labels.npy" in found["q21"]["reason"]
    assert "tried to open" in found["q22"]["reason"]
    for question in ("q23", "q25"):
        reason = found[question]["reason"]
        assert "was not run: it tried to reach Python's internals" in reason and "`__builtins__`" in reason
    review = "code: review: q21, q22, q23, q25: the code tried what it may not (refused); q21: 0 of 4 cases passed"
    assert row["reason"].startswith(review)
    assert not cohort["marker"].exists()  # neither os.system nor the top-level subprocess.run ran
    assert not cohort["listener"].connected
    dropped = json.loads((cohort["out"] / "108" / "report.json").read_text())["parts"][0]["code"]["dropped"]
    assert any(item["what"].startswith("subprocess.run(") for item in dropped)


def test_an_infinite_loop_is_stopped_and_the_other_questions_are_graded(cohort) -> None:
    found = questions(cohort, "109")
    assert found["q21"]["points"] == 0
    assert found["q21"]["cases"][0]["message"] == "did not finish within 10 s (stopped)"
    assert all(case["message"].startswith("not run") for case in found["q21"]["cases"][1:])
    assert cohort["rows"]["109"]["score"] == "17"


def test_memory_printing_and_a_hang_each_stop_their_question_only(cohort) -> None:
    found = questions(cohort, "110")
    assert points(cohort, "110") == {"q20": 5, "q21": 0, "q22": 0, "q23": 0, "q24": 5, "q25": 2}
    relu = found["q21"]["cases"][0]["message"]
    assert "memory" in relu.lower() or "MemoryError" in relu
    assert "print more than 1 MB" in found["q23"]["cases"][0]["message"]
    assert found["q22"]["cases"][0]["message"] == "did not finish within 10 s (stopped)"


def test_a_regrade_reuses_every_stored_result(cohort, tmp_path: Path) -> None:
    """Same files and test module: nothing runs again and marks.csv is byte-identical."""
    before = (cohort["out"] / "marks.csv").read_bytes()
    summary = grade_cohort(cohort["submissions"], assignment=cohort["assignment"], out=cohort["out"])
    assert summary.evaluated == 0 and summary.reused == 10
    assert (cohort["out"] / "marks.csv").read_bytes() == before


def test_reports_show_a_section_per_question(cohort) -> None:
    html = (cohort["out"] / "102" / "report.html").read_text()
    for title in ("Question 20: convolution", "Question 25: softmax"):
        assert title in html
    assert "taken off for element-by-element code" in html
    markdown = (cohort["out"] / "103" / "report.md").read_text()
    assert "### Question 20: convolution of a stack of feature maps with a set of filters: 0 / 5" in markdown
    index = (cohort["out"] / "index.html").read_text()
    assert "students with full points" in index


# Judging, without the sandbox ---------------------------------------------------------------------


def test_judge_accepts_any_named_variant_and_names_the_first_difference() -> None:
    import numpy as np

    want = {"valid": np.arange(4.0).reshape(2, 2), "same": np.zeros((3, 3))}
    case = Case("c", (np.zeros((3, 3)),), want)

    def reply(value: np.ndarray) -> dict:
        import base64
        import io

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"ok": True, "npy": base64.b64encode(buffer.getvalue()).decode()}

    assert judge(case, reply(np.zeros((3, 3)))) == {"name": "c", "passed": True, "variant": "same"}
    wrong = judge(case, reply(np.array([[0.0, 1.0], [2.0, 3.5]])))
    assert not wrong["passed"] and "1 of 4 values differ; at [1, 1] expected 3, got 3.5" in wrong["message"]
    assert "output shape (4,)" in judge(case, reply(np.zeros(4)))["message"]
    assert judge(case, {"ok": True, "returned": "None"})["message"].startswith("returned None")


# An instructor adds a question by editing files only -------------------------------------------------

SIGMOID_TESTS = """
import numpy as np
from grader.evaluation.code import Case


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_cases(rng):
    x = rng.normal(size=(5, 5))
    big = rng.normal(size=(512, 512))
    return [Case("a 5x5 map", (x,), sigmoid(x)), Case("a 512x512 map (timed)", (big,), sigmoid(big), reference=sigmoid)]


CASES = {"sigmoid": sigmoid_cases}
"""

SIGMOID_TOML = (
    """
schema = 1

[assignment]
name = "sigmoid-lab"
title = "A lab with one code question"
max_score = 3

"""
    + LIMITS
    + """
[[parts]]
name = "functions"
kind = "code"

[parts.code]
tests = "sigmoid_tests.py"
loop_deduction = 1
call_seconds = 3

[[parts.questions]]
name = "sigmoid"
title = "The logistic function"
functions = ["sigmoid", "logistic"]
points = 3
"""
)


def test_an_instructor_adds_a_code_question_with_a_test_module_and_a_toml_table(tmp_path: Path, bubblewrap) -> None:
    (tmp_path / "sigmoid_tests.py").write_text(SIGMOID_TESTS)
    (tmp_path / "lab.toml").write_text(SIGMOID_TOML)
    files = {
        "1": ("mine.py", "import numpy as np\n\ndef logistic(x):\n    return np.exp(x) / (1 + np.exp(x))\n"),
        "2": ("mine.py", "def sigmoid(x):\n    return x\n"),
        # A default value computed when the function is defined, which never ends: the load is stopped.
        "3": ("mine.py", "def sigmoid(x, table=[i for i in iter(int, 1)]):\n    return x\n"),
        # scipy is not numpy: the import is left out, and the NameError says so.
        "4": ("mine.py", "from scipy.special import expit\n\n\ndef sigmoid(x):\n    return expit(x)\n"),
        # numpy.typing is first imported by this file: importing an allowed module runs its code, which the
        # audit hook lets through (a real file from a public tutorial failed here before).
        "6": ("mine.py", "import numpy as np\n\n\ndef Sig_Moid(x):\n    return 1 / (1 + np.exp(-x))\n"),
        "5": (
            "mine.py",
            "import numpy as np\nfrom numpy.typing import NDArray\n\n\n"
            "def sigmoid(x: NDArray[np.floating]) -> NDArray[np.floating]:\n    return 1 / (1 + np.exp(-x))\n",
        ),
    }
    submissions = build_code.write_cohort(tmp_path / "submissions", files)
    summary = grade_cohort(submissions, assignment=tmp_path / "lab.toml", out=tmp_path / "reports")
    rows = {row["student_id"]: row for row in summary.rows}
    assert rows["1"]["score"] == 3 and rows["1"]["parts"]["functions"]["file"] == "mine.py"
    assert rows["2"]["score"] == 0 and "values differ" in rows["2"]["reason"]
    assert rows["3"]["score"] == 0 and rows["3"]["status"] == "graded"
    assert "running the file's definitions did not finish within 3 s" in rows["3"]["reason"]
    assert rows["5"]["score"] == 3 and rows["5"]["status"] == "graded"
    assert rows["6"]["score"] == 3  # Sig_Moid is sigmoid spelled another way
    assert rows["4"]["score"] == 0
    assert (
        "raised NameError: name 'expit' is not defined (line 5) on inputs 5x5; expit comes from "
        "`from scipy.special import expit` at line 1, which was not run: imports scipy: only numpy"
    ) in rows["4"]["reason"]


def test_a_code_part_without_its_test_module_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(SIGMOID_TOML)
    with pytest.raises(AssignmentError, match="parts\\[0\\].code.tests names 'sigmoid_tests.py', which is not"):
        load_assignment(tmp_path / "lab.toml")


def test_grade_check_runs_a_students_functions_before_they_upload(tmp_path: Path, bubblewrap) -> None:
    """`grade check functions.py --assignment uva-lab1`: each question's points and first failing case, as
    the marking run would give them (exit 0: the file would be graded)."""
    path = tmp_path / "functions.py"
    path.write_text(build_code.SOFTMAX_UNSTABLE)
    result = CliRunner().invoke(cli, ["check", str(path), "--assignment", "uva-lab1"])
    assert result.exit_code == 0, result.output
    assert "Question 25: softmax: 1/2 (softmax at line 40: 4 of 6 cases passed)" in result.output
    assert "large activations (1000, 1001, 1002): 3 NaN or infinite values" in result.output
    assert "Points: 18 / 19 (part code of uva-lab1)" in result.output
    as_json = CliRunner().invoke(cli, ["check", str(path), "--assignment", "uva-lab1", "--json"])
    assert json.loads(as_json.output)["score"] == 18


def test_without_bubblewrap_the_audit_hook_still_refuses_the_payloads(tmp_path: Path) -> None:
    """--isolation process (no namespaces: a machine without bubblewrap): the held-out file is readable on this
    host, yet the tripwire refuses opening it, and the shell and the socket are never run; nothing happens, and
    the row says it was not isolated."""
    heldout = tmp_path / "heldout.npy"
    heldout.write_bytes(b"secret")
    marker = tmp_path / "payload-ran"
    listener = Listener()
    try:
        files = {"1": ("lab.py", build_code.hostile(str(heldout), listener.port, str(marker)))}
        submissions = build_code.write_cohort(tmp_path / "submissions", files)
        summary = grade_cohort(
            submissions, assignment=code_only(tmp_path), out=tmp_path / "reports", isolation="process"
        )
    finally:
        listener.close()
    row = summary.rows[0]
    assert row["status"] == "flagged" and row["score"] == 10
    assert "tried to open" in row["reason"] and "was not run: it tried to reach Python's internals" in row["reason"]
    assert row["not_isolated"].startswith("not isolated")
    assert not marker.exists() and not listener.connected


def _without_bubblewrap(folder: Path) -> dict[str, str]:
    """The environment of a machine where bubblewrap cannot start: no bwrap on PATH."""
    (folder / "empty-path").mkdir(exist_ok=True)
    return {**os.environ, "PATH": str(folder / "empty-path")}


def test_without_bubblewrap_a_code_part_stops_before_any_code_runs(tmp_path: Path) -> None:
    """The default isolation on a machine where bubblewrap cannot start: `grade` and `grade check` stop before any
    student's code runs (exit 1: no marks, no gradebook), saying why and the two ways on. Nothing the hostile
    file would do happens."""
    heldout = tmp_path / "heldout.npy"
    heldout.write_bytes(b"secret")
    marker = tmp_path / "payload-ran"
    files = {"1": ("lab.py", build_code.hostile(str(heldout), 9, str(marker)))}
    submissions = build_code.write_cohort(tmp_path / "submissions", files)
    assignment = code_only(tmp_path)
    env = _without_bubblewrap(tmp_path)
    graded = subprocess.run(
        [sys.executable, "-m", "grader", str(submissions), "--assignment", str(assignment), "--out", "out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert graded.returncode == 1, graded.stdout + graded.stderr
    said = " ".join(graded.stderr.split())
    assert "uva-lab1's code part runs students' code, which needs the bubblewrap sandbox" in said
    assert "bubblewrap is not installed" in said and "pass --isolation process" in said
    assert not (tmp_path / "out").exists() and not marker.exists()
    only = next(submissions.iterdir()) / "lab.py"
    checked = subprocess.run(
        [sys.executable, "-m", "grader", "check", str(only), "--assignment", str(assignment)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 1 and "needs the bubblewrap sandbox" in " ".join(checked.stderr.split())
    assert not marker.exists()
