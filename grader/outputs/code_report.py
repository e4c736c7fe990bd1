"""A code part's section of a student's report: each question's points, cases and loops, and what of the file
was run. The markdown here; the HTML in templates/code.html.j2."""

from __future__ import annotations

from typing import Any

from grader.courseworks.assignment import Assignment, Part
from grader.marking.schemes import as_score
from grader.outputs.student import whose
from grader.release import VERSION
from grader.status import MARKED


def code_report(row: dict[str, Any], assignment: Assignment, part: Part, run: dict[str, Any]) -> dict[str, Any]:
    """The report.json document for one student's code part."""
    spec = part.code
    assert spec is not None
    detail = row["detail"]
    marked = row["status"] in MARKED
    return {
        **whose(row),
        "part": {"name": part.name, "title": part.title, "weight": str(as_score(part.weight))},
        "status": row["status"],
        "reason": row["reason"],
        "mark": {"score": row["score"], "max_score": part.max_score, "accuracy": None} if marked else None,
        "checks": detail.get("checks", []),
        "code": detail.get("code"),
        "evaluation": detail.get("evaluation"),
        "tests": {"path": spec.tests, "sha256": spec.tests_sha256, "seed": spec.seed},
        "assignment": {
            "name": assignment.name,
            "title": assignment.title,
            "path": assignment.path,
            "sha256": assignment.sha256,
        },
        "grader": {"version": VERSION},
        "run": {"id": run["id"], "started_at": run["started_at"], "isolation": run["isolation"]},
    }


def code_markdown(report: dict[str, Any], heading: str) -> list[str]:
    """The code part's markdown: points, then a section per question."""
    lines = []
    code = report.get("code")
    if report["mark"]:
        lines.append(f"**Score:** {_number(report['mark']['score'])} / {_number(report['mark']['max_score'])}")
    if report["reason"]:
        lines.append(f"**Reason:** {report['reason']}")
    lines += ["", f"File: `{report['file']['name'] or '-'}`"]
    if report["file"]["sha256"]:
        lines.append(f"sha256: `{report['file']['sha256']}`")
    if not code:
        return lines
    lines += ["", *run_notes(code)]
    for question in code["questions"]:
        lines += [
            "",
            f"{heading} {question['title']}: {_number(question['points'])} / {_number(question['max_points'])}",
            "",
        ]
        if question["function"] is None:
            lines.append(f"No function found ({', '.join(question['names'])}). {question['reason']}")
            continue
        lines.append(
            f"Function `{question['function']}` at {question['where']}: {question['passed']} of "
            f"{question['total']} cases passed."
        )
        if question["reason"]:
            lines.append(f"Why: {question['reason']}")
        if question["loops"]:
            lines.append(f"Loops: {question['loops']}")
        lines += ["", "| case | result |", "|---|---|"]
        for case in question["cases"]:
            outcome = (
                "passed" + (f" ({case['variant']})" if case.get("variant") else "")
                if case["passed"]
                else case["message"]
            )
            lines.append(f"| {_cell(case['name'])} | {_cell(outcome)} |")
    lines += [
        "",
        f"{heading} Reproduce",
        "",
        f"- test module: `{report['tests']['path']}`, sha256 `{report['tests']['sha256']}`, "
        f"seed {report['tests']['seed']}",
        f"- assignment: {report['assignment']['name']} (`{report['assignment']['path']}`), "
        f"sha256 `{report['assignment']['sha256']}`",
        f"- grader {report['grader']['version']}, run {report['run']['id']}",
    ]
    return lines


def run_notes(code: dict[str, Any]) -> list[str]:
    """What of the file was run, as sentences: cells used, statements left out, syntax and load errors."""
    notes = []
    if code["notebook"]:
        used = ", ".join(str(cell) for cell in code["used_cells"]) or "none"
        notes.append(f"Cells used (imports, definitions and constants only): {used}.")
    dropped = code["dropped"]
    if dropped:
        shown = "; ".join(f"{item['where']}: `{item['what']}` ({item['why']})" for item in dropped[:6])
        more = f"; and {len(dropped) - 6} more" if len(dropped) > 6 else ""
        notes.append(f"Not run: {shown}{more}.")
    for error in code["syntax_errors"]:
        notes.append(f"Syntax error at {error['where']}: {error['message']}.")
    for error in code["load_errors"]:
        notes.append(f"Running the definitions at {error['where']} failed: {error['error']}.")
    return notes


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
