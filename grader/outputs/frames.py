"""A run's marks and results as pandas DataFrames, for the instructor's own analysis in a notebook.

    import grader
    marks = grader.read_marks("reports/")          # one row per student, parts as columns, typed
    results = grader.read_results("reports/")      # one row per student, part and check
    marks.groupby("status").score.describe()

Both read what a run wrote (marks.csv, the gradebook) and change nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from grader.errors import GraderError
from grader.gradebook import Gradebook
from grader.status import STATUSES

# marks.csv's numeric columns (and each part's, prefixed '<part>_'), with the dtype each is read as.
NUMBERS = {"accuracy": "Float64", "correct": "Int64", "total": "Int64", "score": "Float64"}


def read_marks(reports: str | Path) -> pd.DataFrame:
    """marks.csv of a run (its output folder, or the file itself) as a DataFrame indexed by student_id:
    statuses as an ordered categorical (graded, flagged, ... over_limit), accuracies and scores as nullable
    floats, image counts as nullable integers; a part's columns keep their '<part>_' prefix."""
    path = Path(reports)
    path = path / "marks.csv" if path.is_dir() else path
    if not path.is_file():
        raise GraderError(f"{path}: no marks.csv here; pass the output folder of a grade run")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in frame.columns:
        kind = NUMBERS.get(column.rsplit("_", 1)[-1])  # "score", or a part's "code_score"
        if kind is not None:
            frame[column] = pd.to_numeric(frame[column].replace("", None)).astype(kind)
        elif column == "status" or column.endswith("_status"):
            frame[column] = pd.Categorical(frame[column].replace("", None), categories=list(STATUSES), ordered=True)
    return frame.set_index("student_id")


def read_results(reports: str | Path) -> pd.DataFrame:
    """Every check of the latest run, long: one row per student, part and check (a code part's questions are
    checks too), with its outcome ('pass', 'info', 'warn', 'fail'), message and advice."""
    with Gradebook.reading(Path(reports)) as book:
        results = book.results(book.run()["id"])
    rows: list[dict[str, Any]] = []
    for result in results:
        base = {"student_id": result["student_id"], "part": result["part"], "status": result["status"]}
        for check in result["detail"].get("checks", []):
            rows.append(
                {
                    **base,
                    "check": check["name"],
                    "outcome": check["outcome"],
                    "message": check["message"],
                    "advice": check.get("advice", ""),
                }
            )
        for question in (result["detail"].get("code") or {}).get("questions", []):
            full = question["points"] == question["max_points"]
            rows.append(
                {
                    **base,
                    "check": f"question {question['name']}",
                    "outcome": "pass" if full else "fail",
                    "message": question["reason"] or f"{question['points']} of {question['max_points']} points",
                    "advice": "",
                }
            )
    columns = ["student_id", "part", "status", "check", "outcome", "message", "advice"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["status"] = pd.Categorical(frame["status"], categories=list(STATUSES), ordered=True)
    frame["outcome"] = pd.Categorical(frame["outcome"], categories=["pass", "info", "warn", "fail"], ordered=True)
    return frame
