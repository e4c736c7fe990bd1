"""Render a run from the gradebook: marks.csv, per student report.json, report.md and report.html, and
the instructor's index.html.

marks.csv holds no timestamp and no timing, and its rows are sorted, so two runs on the same inputs
write identical bytes. Accuracy is written as the official script prints it (repr of the float). The
HTML pages are self-contained (figures embedded as PNG data, no script, no network), and figures are
cached in the gradebook by what they show, so re-marking a cohort does not redraw them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections import Counter
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import grader
from grader.courseworks.assignment import Assignment
from grader.courseworks.heldout import HeldoutSet
from grader.gradebook import Gradebook
from grader.marking import scoring
from grader.outputs import figures
from grader.status import MARKED, STATUSES
from grader.versions import saved_with

MARKS_COLUMNS = (
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
)
FIGURE_VERSION = 3


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
        writer.writerow(
            [
                row["student_id"],
                row["student_name"],
                row["folder"],
                row["file"],
                row["status"],
                repr(row["accuracy"]) if row["accuracy"] is not None else "",
                number(row["correct"]),
                number(row["total"]),
                number(row["score"]),
                row["reason"],
                row["sha256"],
            ]
        )
    return buffer.getvalue()


def write_reports(
    book: Gradebook, run_id: int, out: Path, assignment: Assignment
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write marks.csv and index.html for a run whose students' reports are written (see
    write_student_report); return the rows and what could not be written.

    A student's report that failed to reach the disk gets a note in that student's row first, so
    marks.csv says so. marks.csv is written before index.html, whose failure is returned, never raised.
    """
    for student_id, problem in _WRITES.wait().items():
        book.note_result(run_id, student_id, [f"report: could not be written ({problem})"])
    run = book.run(run_id)
    rows = book.results(run_id)
    _write(out / "marks.csv", marks_csv(rows))
    try:
        _write(out / "index.html", index_html(rows, run, assignment))
    except Exception as error:  # the marks are written; the summary page is not worth the run
        return rows, [f"index.html could not be written: {error!r}"]
    return rows, []


def write_student_report(
    row: dict[str, Any], run: dict[str, Any], book: Gradebook, heldout: HeldoutSet, assignment: Assignment, out: Path
) -> list[str]:
    """Write one student's report.json, report.md and report.html; return notes on what could not be
    drawn (the report is written without it). Writing happens in the background: see write_reports."""
    report = build_report(row, run, book, heldout, assignment)
    notes = []
    try:
        drawn = _student_figures(row, book, heldout)
    except Exception as error:  # a figure is not worth the report: leave it out and say so
        drawn = {}
        notes.append(f"figure: the misclassified images could not be drawn ({error!r})")
    report["notes"] = notes
    folder = out / student_folder(row["student_id"])
    folder.mkdir(parents=True, exist_ok=True)
    # Compact JSON: the C encoder is ten times faster than the indented one (jq or any viewer indents it).
    student = row["student_id"]
    _WRITES.submit(folder / "report.json", json.dumps(report, sort_keys=True, ensure_ascii=False) + "\n", student)
    _WRITES.submit(folder / "report.md", report_markdown(report), student)
    _WRITES.submit(folder / "report.html", report_html(report, drawn), student)
    return notes


def build_report(
    row: dict[str, Any], run: dict[str, Any], book: Gradebook, heldout: HeldoutSet, assignment: Assignment
) -> dict[str, Any]:
    """The report.json document for one student (its schema is documented in README.md)."""
    detail = row["detail"]
    report: dict[str, Any] = {
        "student": {"id": row["student_id"], "name": row["student_name"], "folder": row["folder"]},
        "file": {
            "name": row["file"],
            "sha256": row["sha256"],
            "size": detail.get("size"),
            "all_files": detail.get("files", []),
        },
        "status": row["status"],
        "reason": row["reason"],
        "mark": detail.get("mark"),
        "confidence": None,
        "checks": detail.get("checks", []),
        "inspection": _inspection_summary(detail.get("inspection")),
        "evaluation": detail.get("evaluation"),
        "versions": _versions(detail, assignment),
        "heldout": {
            "source": heldout.source,
            "sha256": heldout.sha256,
            "images_sha256": heldout.images_sha256,
            "size": heldout.size,
        },
        "assignment": {
            "name": assignment.name,
            "title": assignment.title,
            "path": assignment.path,
            "sha256": assignment.sha256,
            "bands": [{"range": b.text, "score": b.score} for b in reversed(assignment.bands)],
        },
        "grader": {"version": grader.__version__},
        "run": {"id": run["id"], "started_at": run["started_at"], "isolation": run["isolation"]},
    }
    if row["correct"] is not None:
        interval = scoring.confidence_interval(row["correct"], row["total"], assignment.bands)
        report["confidence"] = {
            "low": interval.low,
            "high": interval.high,
            "crosses_edge": interval.crosses_edge,
            "bands": [band.text for band in interval.bands],
        }
    predictions = _predictions(row, book)
    if predictions is not None:
        classes = assignment.data.classes
        report["per_class"] = scoring.per_class_accuracy(predictions, heldout.labels, classes)
        report["confusion"] = scoring.confusion_matrix(predictions, heldout.labels, classes).tolist()
    return report


def _predictions(row: dict[str, Any], book: Gradebook) -> Any:
    if row["evaluation_id"] is None or row["status"] not in MARKED:
        return None
    evaluation = book.evaluation_by_id(row["evaluation_id"])
    return evaluation.predictions if evaluation is not None else None


def _student_figures(row: dict[str, Any], book: Gradebook, heldout: HeldoutSet) -> dict[str, str]:
    """The student's figures (inline SVG), drawn once per evaluation and held-out set, then cached."""
    if row["evaluation_id"] is None or row["status"] not in MARKED:
        return {}
    key = f"v{FIGURE_VERSION}:{row['evaluation_id']}:{heldout.sha256}:misclassified"
    svg = book.figure(key)
    if svg is None:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
        if evaluation is None or evaluation.predictions is None:
            return {}
        drawn = figures.misclassified(
            heldout.images, heldout.labels, evaluation.predictions, book.outputs(evaluation.id)
        )
        svg = (drawn or "").encode()
        book.add_figure(key, svg)
    return {"misclassified": svg.decode()} if svg else {}


def _versions(detail: dict[str, Any], assignment: Assignment) -> dict[str, Any]:
    """Saved-with (from the file), graded-with and the loader (from the evaluation), and the name's tag."""
    inspection = detail.get("inspection") or {}
    evaluation = detail.get("evaluation") or {}
    saved = saved_with(inspection.get("keras_version"), inspection.get("backend")) if inspection else None
    used = evaluation.get("versions") or {}
    loader = evaluation.get("loader")
    graded = (
        f"TensorFlow {used['tensorflow']} with {loader}"
        if used.get("tensorflow") and loader
        else f"TensorFlow {assignment.versions.tensorflow} (not evaluated)"
    )
    return {
        "saved_with": saved.description if saved else None,
        "keras_version": inspection.get("keras_version"),
        "graded_with": graded,
        "loader": loader,
        "tag": next((c["message"] for c in detail.get("checks", []) if c["name"] == "TF version"), None),
    }


def _inspection_summary(inspection: dict[str, Any] | None) -> dict[str, Any] | None:
    if not inspection:
        return None
    keys = (
        "size",
        "format",
        "keras_version",
        "backend",
        "model_class",
        "input_shape",
        "output_units",
        "output_shape",
        "layer_classes",
        "parameter_count",
        "config_parameters",
        "weight_arrays",
        "has_training_config",
        "modules",
        "links",
        "external_datasets",
        "virtual_datasets",
        "unbacked_datasets",
        "config_error",
        "open_error",
    )
    return {key: inspection.get(key) for key in keys}


def _who(student: dict[str, Any]) -> str:
    return f"{student['name']} ({student['id']})" if student["name"] else student["id"]


def report_markdown(report: dict[str, Any]) -> str:
    """A readable report for the student and the TA."""
    lines = [f"# {_who(report['student'])}", ""]
    mark = report.get("mark")
    lines.append(f"**Status:** {report['status']}")
    if mark:
        lines.append(f"**Accuracy:** {mark['accuracy']}% ({mark['correct']:,} of {mark['total']:,} images)")
        lines.append(f"**Score:** {number(mark['score'])} / {number(mark['max_score'])} (band {mark['band']})")
        if mark.get("next_band"):
            lines.append(
                f"**Next band:** {mark['next_band']} (score {number(mark['next_score'])}) needs "
                f"{mark['images_to_next_band']:,} more correct images"
            )
    confidence = report.get("confidence")
    if confidence:
        crossing = " (crosses a band edge)" if confidence["crosses_edge"] else ""
        lines.append(f"**95% interval:** {confidence['low']:.2f}% to {confidence['high']:.2f}%{crossing}")
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
        lines.append(f"| {check['name']} | {check['outcome']} | {_cell(check['message'])} | {_cell(check['advice'])} |")
    evaluation = report.get("evaluation") or {}
    if evaluation.get("net_type"):
        lines += [
            "",
            "## Evaluation",
            "",
            f"- declared input shape: {evaluation.get('input_shape')}, so the official rule says "
            f"**{evaluation['net_type']}** and feeds {evaluation.get('fed_shape')}",
            f"- loaded with: {evaluation.get('loader')}",
            f"- isolation: {evaluation.get('isolation')}",
        ]
        used = evaluation.get("versions") or {}
        if used:
            lines.append("- graded with: " + ", ".join(f"{k} {v}" for k, v in sorted(used.items()) if v))
    summary = evaluation.get("summary") or []
    if summary:
        lines += ["", "## Model", "", "| layer | class | output shape | parameters |", "|---|---|---|---|"]
        for layer in summary:
            lines.append(
                f"| {layer['name']} | {layer['class_name']} | {layer['output_shape']} | {number(layer['parameters'])} |"
            )
    if report.get("per_class"):
        lines += ["", "## Accuracy per class", "", "| class | correct | images | accuracy |", "|---|---|---|---|"]
        for item in report["per_class"]:
            share = f"{100 * item['correct'] / item['total']:.2f}%" if item["total"] else "-"
            lines.append(f"| {item['class']} | {item['correct']:,} | {item['total']:,} | {share} |")
    held = report["heldout"]
    lines += [
        "",
        "## Reproduce",
        "",
        f"- held-out set: {held['source']} ({held['size']:,} images), sha256 `{held['sha256']}`",
        f"- assignment: {report['assignment']['name']} (`{report['assignment']['path']}`), "
        f"sha256 `{report['assignment']['sha256']}`",
        f"- grader {report['grader']['version']}, run {report['run']['id']}",
        "",
    ]
    return "\n".join(lines)


@cache
def _templates() -> Any:
    import jinja2

    # Autoescape: names, file names and error messages come from students and their files.
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (resources.files("grader.outputs") / "templates" / name).read_text()),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.globals["number"] = number
    environment.globals["css"] = (resources.files("grader.outputs") / "templates" / "base.css").read_text()
    return environment


@cache
def _template(name: str) -> Any:
    return _templates().get_template(name)


def report_html(report: dict[str, Any], drawn: dict[str, str]) -> str:
    """The student's self-contained HTML report."""
    status = report["status"]
    status_class = {"graded": "status-graded", "flagged": "status-flagged"}.get(status, "status-other")
    return _template("report.html.j2").render(
        report=report,
        who=_who(report["student"]),
        mark=report.get("mark") or {},
        figures=drawn,
        status_class=status_class,
        confusion=_shaded(report.get("confusion")),
    )


def _shaded(matrix: list[list[int]] | None) -> Any:
    """The confusion matrix's rows as HTML, each cell shaded by its count (log scale, so a few mistakes
    still show). Built here rather than in the template: it holds numbers only, and escaping a hundred
    numbers per student is most of a re-mark's rendering time."""
    from markupsafe import Markup

    if not matrix:
        return Markup("")
    top = math.log1p(max(max(row) for row in matrix)) or 1.0
    rows = []
    for i, row in enumerate(matrix):
        cells = "".join(
            f'<td class="num{" diagonal" if i == j else ""}" style="background: rgba(31, 119, 180, '
            f'{0.85 * math.log1p(count) / top:.2f})">{count or ""}</td>'
            for j, count in enumerate(row)
        )
        rows.append(f'<tr><th class="num">{i}</th>{cells}</tr>')
    return Markup("\n".join(rows))


def attention(row: dict[str, Any], bands: Any) -> str:
    """Why a student needs a person to look (empty when nothing does)."""
    if row["status"] not in MARKED:
        return f"{row['status']}: {row['reason']}"
    if row["status"] == "flagged":
        return row["reason"]
    interval = scoring.confidence_interval(row["correct"], row["total"], bands)
    if interval.crosses_edge:
        return (
            f"near a band edge: the 95% interval {interval.low:.2f}%-{interval.high:.2f}% reaches "
            f"{', '.join(band.text for band in interval.bands)}"
        )
    return ""


def index_html(rows: list[dict[str, Any]], run: dict[str, Any], assignment: Assignment) -> str:
    """The instructor's summary of a run."""
    marked = [row for row in rows if row["status"] in MARKED]
    accuracies = [row["accuracy"] for row in marked]
    scores = [row["score"] for row in marked]
    possible = sorted({band.score for band in assignment.bands})
    edges = sorted({float(band.low) for band in assignment.bands if band.low > 0})
    per_band = Counter(row["band"] for row in marked)
    linked = [{**row, "link": f"{student_folder(row['student_id'])}/report.html"} for row in rows]
    flagged = [(row, why) for row in linked if (why := attention(row, assignment.bands))]
    counts = Counter(row["status"] for row in rows)
    drawn = {"accuracies": figures.accuracy_histogram(accuracies, edges), "marks": figures.marks_bar(scores, possible)}
    return _template("index.html.j2").render(
        rows=linked,
        run=run,
        assignment=assignment,
        figures=drawn,
        attention=flagged,
        counts=[(status, counts[status]) for status in STATUSES if counts[status]],
        per_band=[(band, per_band[band.text]) for band in reversed(assignment.bands)],
        mean=statistics.fmean(accuracies) if accuracies else None,
        median=statistics.median(scores) if scores else None,
    )


def plot_student(reports: Path, student_id: str, target: Path, heldout_path: Path | None = None) -> str:
    """Draw a student's misclassified digits as the coursework's plotting script does (matplotlib, saved
    as PDF or PNG by the target's suffix), from the gradebook's stored outputs. Returns a summary line."""
    from grader.courseworks.assignment import load_assignment
    from grader.courseworks.heldout import load_heldout
    from grader.errors import GraderError

    with Gradebook(reports) as book:
        run = book.run()
        rows = {row["student_id"]: row for row in book.results(run["id"])}
        if student_id not in rows:
            raise GraderError(f"{reports}: no student {student_id!r} in the latest run")
        row = rows[student_id]
        evaluation = book.evaluation_by_id(row["evaluation_id"]) if row["evaluation_id"] else None
        outputs = book.outputs(evaluation.id) if evaluation is not None else None
    if evaluation is None or evaluation.predictions is None or outputs is None:
        raise GraderError(f"student {student_id} has no predictions ({row['status']}: {row['reason']})")
    rules = load_assignment(run["assignment_path"])
    source = heldout_path or Path(run["heldout_source"].split(" + ")[0])
    heldout = load_heldout(source, rules.data)
    if heldout.sha256 != run["heldout_sha256"]:
        raise GraderError(
            f"{source} is not the held-out set this run graded with (sha256 differs); pass --heldout with that set"
        )
    shown = figures.coursework_figure(
        heldout.images, heldout.labels, evaluation.predictions, outputs.astype("float32"), str(target)
    )
    if not shown:
        return f"{student_id}: no misclassified samples found, no plot generated (as the script says)"
    listed = "; ".join(f"image {index}: true {true}, predicted {pred}" for index, true, pred in shown)
    return (
        f"wrote {target}: the first {len(shown)} misclassified images of {student_id}, as the coursework's "
        f"script draws them ({listed})"
    )


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _write(path: Path, text: str) -> None:
    """Write a file whole or not at all: readers never see half a report."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


class _Writes:
    """Students' reports are written on two threads while the next student is rendered: writing is system
    calls, which run outside Python's lock. `wait` collects them and says which students' failed."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._pending: list[tuple[str, Any]] = []

    def submit(self, path: Path, text: str, student_id: str) -> None:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="report-writer")
        # In place, not through a rename: a run killed mid-way rewrites the file on resume, and a rename
        # per file costs a re-mark of hundreds of students more than all the rest of the writing.
        self._pending.append((student_id, self._pool.submit(path.write_text, text, encoding="utf-8")))

    def wait(self) -> dict[str, str]:
        """Wait for every write; the first failure of each student whose report could not be written."""
        pending, self._pending = self._pending, []
        failed: dict[str, str] = {}
        for student_id, future in pending:
            error = future.exception()
            if error is not None:
                failed.setdefault(student_id, repr(error))
        return failed


_WRITES = _Writes()
