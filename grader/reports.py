"""Render a run from the gradebook: marks.csv, and per student report.json and report.md.

marks.csv holds no timestamp and no timing, and its rows are sorted, so two runs on the same inputs
write identical bytes. Accuracy is written as the official script prints it (repr of the float).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import grader
from grader import scoring
from grader.assignment import Assignment
from grader.gradebook import Gradebook
from grader.heldout import HeldoutSet
from grader.status import MARKED
from grader.versions import saved_with

MARKS_COLUMNS = ("student_id", "student_name", "folder", "file", "status", "accuracy", "correct", "total",
                 "score", "reason", "sha256")


def student_folder(student_id: str) -> str:
    """A safe folder name for a student's reports: the id, with path separators and leading dots removed."""
    name = re.sub(r"[/\\\x00]", "_", student_id).lstrip(".").strip() or "_"
    return name[:200]


def number(value: Any) -> str:
    """A number as a marks file shows it: '' for none, integers without '.0', floats by repr."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def marks_csv(rows: list[dict[str, Any]]) -> str:
    """marks.csv as text: one row per student folder, failures included."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MARKS_COLUMNS)
    for row in rows:
        writer.writerow([
            row["student_id"], row["student_name"], row["folder"], row["file"], row["status"],
            repr(row["accuracy"]) if row["accuracy"] is not None else "",
            number(row["correct"]), number(row["total"]), number(row["score"]), row["reason"], row["sha256"],
        ])
    return buffer.getvalue()


def write_reports(book: Gradebook, run_id: int, out: Path, heldout: HeldoutSet,
                  assignment: Assignment) -> list[dict[str, Any]]:
    """Write marks.csv and every student's report.json and report.md; return the rows."""
    run = book.run(run_id)
    rows = book.results(run_id)
    _write(out / "marks.csv", marks_csv(rows))
    for row in rows:
        report = build_report(row, run, book, heldout, assignment)
        folder = out / student_folder(row["student_id"])
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "report.json", json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        _write(folder / "report.md", report_markdown(report))
    return rows


def build_report(row: dict[str, Any], run: dict[str, Any], book: Gradebook, heldout: HeldoutSet,
                 assignment: Assignment) -> dict[str, Any]:
    """The report.json document for one student (its schema is documented in README.md)."""
    detail = row["detail"]
    report: dict[str, Any] = {
        "student": {"id": row["student_id"], "name": row["student_name"], "folder": row["folder"]},
        "file": {"name": row["file"], "sha256": row["sha256"], "size": detail.get("size"),
                 "all_files": detail.get("files", [])},
        "status": row["status"],
        "reason": row["reason"],
        "mark": detail.get("mark"),
        "checks": detail.get("checks", []),
        "inspection": _inspection_summary(detail.get("inspection")),
        "evaluation": detail.get("evaluation"),
        "versions": _versions(detail, assignment),
        "heldout": {"source": heldout.source, "sha256": heldout.sha256, "images_sha256": heldout.images_sha256,
                    "size": heldout.size},
        "assignment": {"name": assignment.name, "title": assignment.title, "path": assignment.path,
                       "sha256": assignment.sha256, "bands": [{"range": b.text, "score": b.score}
                                                              for b in reversed(assignment.bands)]},
        "grader": {"version": grader.__version__},
        "run": {"id": run["id"], "started_at": run["started_at"], "isolation": run["isolation"]},
    }
    if row["evaluation_id"] is not None and row["status"] in MARKED:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
        if evaluation is not None and evaluation.predictions is not None:
            classes = assignment.data.classes
            report["per_class"] = scoring.per_class_accuracy(evaluation.predictions, heldout.labels, classes)
            report["confusion"] = scoring.confusion_matrix(evaluation.predictions, heldout.labels, classes).tolist()
    return report


def _versions(detail: dict[str, Any], assignment: Assignment) -> dict[str, Any]:
    """Saved-with (from the file), graded-with and the loader (from the evaluation), and the name's tag."""
    inspection = detail.get("inspection") or {}
    evaluation = detail.get("evaluation") or {}
    saved = saved_with(inspection.get("keras_version"), inspection.get("backend")) if inspection else None
    used = evaluation.get("versions") or {}
    loader = evaluation.get("loader")
    graded = (f"TensorFlow {used['tensorflow']} with {loader}" if used.get("tensorflow") and loader
              else f"TensorFlow {assignment.versions.tensorflow} (not evaluated)")
    return {"saved_with": saved.description if saved else None,
            "keras_version": inspection.get("keras_version"),
            "graded_with": graded, "loader": loader,
            "tag": next((c["message"] for c in detail.get("checks", []) if c["name"] == "TF version"), None)}


def _inspection_summary(inspection: dict[str, Any] | None) -> dict[str, Any] | None:
    if not inspection:
        return None
    keys = ("size", "format", "keras_version", "backend", "model_class", "input_shape", "output_units",
            "layer_classes", "parameter_count", "weight_arrays", "has_training_config", "modules", "links",
            "external_datasets", "virtual_datasets", "unbacked_datasets", "config_error", "open_error")
    return {key: inspection.get(key) for key in keys}


def report_markdown(report: dict[str, Any]) -> str:
    """A readable report for the student and the TA."""
    student = report["student"]
    who = f"{student['name']} ({student['id']})" if student["name"] else student["id"]
    lines = [f"# {who}", ""]
    mark = report.get("mark")
    lines.append(f"**Status:** {report['status']}")
    if mark:
        lines.append(f"**Accuracy:** {mark['accuracy']}% ({mark['correct']:,} of {mark['total']:,} images)")
        lines.append(f"**Score:** {number(mark['score'])} / {number(mark['max_score'])} (band {mark['band']})")
        if mark.get("next_band"):
            lines.append(f"**Next band:** {mark['next_band']} (score {number(mark['next_score'])}) needs "
                         f"{mark['images_to_next_band']:,} more correct images")
    if report["reason"]:
        lines.append(f"**Reason:** {report['reason']}")
    versions = report["versions"]
    lines += ["", f"File: `{report['file']['name'] or '-'}`"]
    if versions["saved_with"]:
        lines.append(f"Saved with: {versions['saved_with']}; graded with: {versions['graded_with']}")
    if report["file"]["sha256"]:
        lines.append(f"sha256: `{report['file']['sha256']}`")
    lines += ["", "## Checks", "", "| check | outcome | found | what to do |", "|---|---|---|---|"]
    for check in report["checks"]:
        lines.append(f"| {check['name']} | {check['outcome']} | {_cell(check['message'])} | "
                     f"{_cell(check['advice'])} |")
    evaluation = report.get("evaluation") or {}
    if evaluation.get("net_type"):
        lines += ["", "## Evaluation", "",
                  f"- declared input shape: {evaluation.get('input_shape')}, so the official rule says "
                  f"**{evaluation['net_type']}** and feeds {evaluation.get('fed_shape')}",
                  f"- loaded with: {evaluation.get('loader')}",
                  f"- isolation: {evaluation.get('isolation')}"]
        versions = evaluation.get("versions") or {}
        if versions:
            lines.append("- graded with: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    summary = evaluation.get("summary") or []
    if summary:
        lines += ["", "## Model", "", "| layer | class | output shape | parameters |", "|---|---|---|---|"]
        for layer in summary:
            lines.append(f"| {layer['name']} | {layer['class_name']} | {layer['output_shape']} | "
                         f"{number(layer['parameters'])} |")
    if report.get("per_class"):
        lines += ["", "## Accuracy per class", "", "| class | correct | images | accuracy |", "|---|---|---|---|"]
        for item in report["per_class"]:
            share = f"{100 * item['correct'] / item['total']:.2f}%" if item["total"] else "-"
            lines.append(f"| {item['class']} | {item['correct']:,} | {item['total']:,} | {share} |")
    held = report["heldout"]
    lines += ["", "## Reproduce", "",
              f"- held-out set: {held['source']} ({held['size']:,} images), sha256 `{held['sha256']}`",
              f"- assignment: {report['assignment']['name']} (`{report['assignment']['path']}`), "
              f"sha256 `{report['assignment']['sha256']}`",
              f"- grader {report['grader']['version']}, run {report['run']['id']}", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _write(path: Path, text: str) -> None:
    """Write a file whole or not at all: readers never see half a report."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
