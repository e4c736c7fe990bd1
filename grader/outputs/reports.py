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

from grader import formats
from grader.courseworks.assignment import Assignment, Part
from grader.courseworks.heldout import HeldoutSet, run_heldout
from grader.discovery import person
from grader.formats.keras_layers import explain_inspection
from grader.gradebook import Gradebook
from grader.marking import scoring
from grader.marking.schemes import Bands, Signoff, as_score
from grader.marking.totals import PART_COLUMNS, student_rows
from grader.outputs import figures
from grader.outputs.code_report import code_markdown, code_report, run_notes
from grader.outputs.student import whose
from grader.release import VERSION
from grader.status import MARKED, NOT_ISOLATED, STATUSES

# A several-part marks.csv: these, then PART_COLUMNS for each part.
MULTI_COLUMNS = ("student_id", "student_name", "folder", "status", "score", "reason")
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


def unsandboxed(row: dict[str, Any]) -> str:
    """How a student's file was handled without the sandbox ('' when it was sandboxed): a one-part row's detail
    says it, a several-part student row carries it for its parts."""
    return str(row.get("not_isolated") or (row.get("detail") or {}).get("not_isolated") or "")


def marks_csv(rows: list[dict[str, Any]], assignment: Assignment | None = None) -> str:
    """marks.csv as text: one row per student folder, failures included. One part: the columns above.
    Several: the student's total, status and reason, then each part's columns prefixed '<part>_'. A part
    marked by sign-off rules has a 'label' column too ('S+'), after its score. When any student's file was
    handled without the sandbox, a last column, isolation, says 'not isolated' for each such student."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    isolation = [NOT_ISOLATED if unsandboxed(row) else "bubblewrap" for row in rows]
    extra = ["isolation"] if NOT_ISOLATED in isolation else []
    if assignment is None or assignment.single:
        signoff = (
            isinstance(assignment.parts[0].marking, Signoff)
            if assignment is not None
            else any(label_of(row) for row in rows)
        )
        columns = _with_label(MARKS_COLUMNS) if signoff else MARKS_COLUMNS
        writer.writerow([*columns, *extra])
        for row, how in zip(rows, isolation, strict=True):
            writer.writerow([*(_cell_text(row, column) for column in columns), *([how] if extra else [])])
        return buffer.getvalue()
    names = [part.name for part in assignment.parts]
    layout = {
        part.name: _with_label(PART_COLUMNS) if isinstance(part.marking, Signoff) else PART_COLUMNS
        for part in assignment.parts
    }
    writer.writerow([*MULTI_COLUMNS, *(f"{name}_{column}" for name in names for column in layout[name]), *extra])
    for row, how in zip(rows, isolation, strict=True):
        cells = [
            row["student_id"],
            row["student_name"],
            row["folder"],
            row["status"],
            number(row["score"]),
            row["reason"],
        ]
        for name in names:
            part_row = row["parts"].get(name)
            cells += [_cell_text(part_row, column) if part_row is not None else "" for column in layout[name]]
        writer.writerow([*cells, *([how] if extra else [])])
    return buffer.getvalue()


def _with_label(columns: tuple[str, ...]) -> tuple[str, ...]:
    at = columns.index("score") + 1
    return (*columns[:at], "label", *columns[at:])


def label_of(row: dict[str, Any]) -> str:
    """A result's sign-off label ('S+'), or '' when its part is not signed off or it was not marked."""
    detail = row.get("detail") or {}
    return ((detail.get("mark") or {}).get("label") or "") if row.get("status") in MARKED else ""


def _cell_text(row: dict[str, Any], column: str) -> str:
    """A result's value as marks.csv writes it: accuracy as the official script prints it, numbers without
    a trailing '.0', nothing for none."""
    if column == "label":
        return label_of(row)
    value = row[column]
    if column == "accuracy":
        return repr(value) if value is not None else ""
    if column in ("correct", "total", "score"):
        return number(value)
    return str(value)


def write_reports(
    book: Gradebook, run_id: int, out: Path, assignment: Assignment, integrity: int | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write marks.csv and index.html for a run whose students' reports are written (see
    write_student_report); return the student rows and what could not be written.

    A student's report that failed to reach the disk gets a note in that student's rows first, so
    marks.csv says so. marks.csv is written before index.html, whose failure is returned, never raised.
    `integrity` is how many pairs integrity.html lists (None: no integrity pass, no link).
    """
    for student_id, problem in _WRITES.wait().items():
        book.note_result(run_id, student_id, [f"report: could not be written ({problem})"])
    run = book.run(run_id)
    rows = student_rows(book.results(run_id), assignment)
    write_whole(out / "marks.csv", marks_csv(rows, assignment))
    try:
        write_whole(out / "index.html", index_html(rows, run, assignment, integrity))
    except Exception as error:  # the marks are written; the summary page is not worth the run
        return rows, [f"index.html could not be written: {error!r}"]
    return rows, []


def write_student_report(
    rows: list[dict[str, Any]],
    run: dict[str, Any],
    book: Gradebook,
    heldouts: dict[str, HeldoutSet],
    assignment: Assignment,
    out: Path,
) -> list[str]:
    """Write one student's report.json, report.md and report.html from their part rows; return notes on
    what could not be drawn (the report is written without it). Writing happens in the background: see
    write_reports."""
    notes: list[str] = []
    sections: list[tuple[dict[str, Any], dict[str, str]]] = []
    for row in sorted(rows, key=lambda r: [p.name for p in assignment.parts].index(r["part"])):
        part = assignment.part(row["part"])
        if part.code is not None:
            sections.append((code_report(row, assignment, part, run), {}))
            continue
        heldout = heldouts[part.name]
        report = build_report(row, run, book, heldout, assignment, part)
        try:
            drawn = _student_figures(row, book, heldout, part.data.names)
        except Exception as error:  # a figure is not worth the report: leave it out and say so
            drawn = {}
            notes.append(f"figure: the misclassified images could not be drawn ({error!r})")
        sections.append((report, drawn))
    if assignment.single:
        report, drawn = sections[0]
        report["notes"] = notes
        html = report_html(report, drawn)
    else:
        total = student_rows(rows, assignment)[0]
        report = {
            "student": sections[0][0]["student"],
            "status": total["status"],
            "reason": total["reason"],
            "total": {"score": total["score"], "max_score": total["max_score"]},
            "parts": [section for section, _ in sections],
            "assignment": sections[0][0]["assignment"],
            "grader": sections[0][0]["grader"],
            "run": sections[0][0]["run"],
            "notes": notes,
            **({"not_isolated": unsandboxed(total)} if unsandboxed(total) else {}),
        }
        html = report_html(report, {}, sections)
    folder = out / student_folder(rows[0]["student_id"])
    folder.mkdir(parents=True, exist_ok=True)
    # Compact JSON: the C encoder is ten times faster than the indented one (jq or any viewer indents it).
    student = rows[0]["student_id"]
    _WRITES.submit(folder / "report.json", json.dumps(report, sort_keys=True, ensure_ascii=False) + "\n", student)
    _WRITES.submit(folder / "report.md", report_markdown(report), student)
    _WRITES.submit(folder / "report.html", html, student)
    return notes


def build_report(
    row: dict[str, Any],
    run: dict[str, Any],
    book: Gradebook,
    heldout: HeldoutSet,
    assignment: Assignment,
    part: Part | None = None,
) -> dict[str, Any]:
    """The report.json document for one student's part (its schema is documented in docs/outputs.md)."""
    part = part or assignment.parts[0]
    detail = row["detail"]
    marking = part.marking
    report: dict[str, Any] = {
        **whose(row),
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
        "marking": {
            "scheme": marking.name,
            "name": part.marking_name,
            "description": marking.describe(),
            "bands": [{"range": b.text, "score": b.score} for b in reversed(marking.bands)]
            if isinstance(marking, Bands)
            else None,
            "rules": [
                {"label": r.label, "score": r.score, "conditions": r.conditions(), "says": r.says}
                for r in marking.rules
            ]
            if isinstance(marking, Signoff)
            else None,
        },
        "architecture": detail.get("architecture"),
        "parameters": explain_inspection(detail.get("inspection")),
        "class_names": list(part.data.names),
        "assignment": {
            "name": assignment.name,
            "title": assignment.title,
            "path": assignment.path,
            "sha256": assignment.sha256,
            **(
                {"bands": [{"range": b.text, "score": b.score} for b in reversed(marking.bands)]}
                if isinstance(marking, Bands)
                else {}
            ),
        },
        "grader": {"version": VERSION},
        "run": {"id": run["id"], "started_at": run["started_at"], "isolation": run["isolation"]},
        **({"not_isolated": unsandboxed(row)} if unsandboxed(row) else {}),
    }
    if not assignment.single:
        report["part"] = {"name": part.name, "title": part.title, "weight": number(as_score(part.weight))}
    if row["correct"] is not None:
        interval = scoring.confidence_interval(
            row["correct"], row["total"], marking, architecture=_architecture_status(row)
        )
        report["confidence"] = {
            "low": interval.low,
            "high": interval.high,
            "crosses_edge": interval.crosses_edge,
            "bands": [band.text for band in interval.bands],
        }
    predictions = _predictions(row, book)
    if predictions is not None:
        classes = part.data.classes
        per_class = scoring.per_class_accuracy(predictions, heldout.labels, classes)
        report["per_class"] = [{**item, "name": part.data.names[item["class"]]} for item in per_class]
        report["confusion"] = scoring.confusion_matrix(predictions, heldout.labels, classes).tolist()
    return report


def _architecture_status(row: dict[str, Any]) -> str | None:
    """The status of the architecture comparison stored with a result ('exact', 'kinds', 'different')."""
    return ((row.get("detail") or {}).get("architecture") or {}).get("status")


def _predictions(row: dict[str, Any], book: Gradebook) -> Any:
    if row["evaluation_id"] is None or row["status"] not in MARKED:
        return None
    evaluation = book.evaluation_by_id(row["evaluation_id"])
    return evaluation.predictions if evaluation is not None else None


def _student_figures(
    row: dict[str, Any], book: Gradebook, heldout: HeldoutSet, names: tuple[str, ...]
) -> dict[str, str]:
    """The student's figures (inline SVG), drawn once per evaluation and held-out set, then cached."""
    if row["evaluation_id"] is None or row["status"] not in MARKED:
        return {}
    key = f"v{FIGURE_VERSION}:{row['evaluation_id']}:{heldout.sha256}:{','.join(names)}:misclassified"
    svg = book.figure(key)
    if svg is None:
        evaluation = book.evaluation_by_id(row["evaluation_id"])
        if evaluation is None or evaluation.predictions is None:
            return {}
        drawn = figures.misclassified(
            heldout.images, heldout.labels, evaluation.predictions, book.outputs(evaluation.id), names
        )
        svg = (drawn or "").encode()
        book.add_figure(key, svg)
    return {"misclassified": svg.decode()} if svg else {}


def _versions(detail: dict[str, Any], assignment: Assignment) -> dict[str, Any]:
    """Saved-with (from the file), graded-with and the loader (from the evaluation), and the name's tag."""
    inspection = detail.get("inspection") or {}
    evaluation = detail.get("evaluation") or {}
    found = formats.of_inspection(inspection) or formats.named(assignment.screening.formats[0])
    loader = evaluation.get("loader")
    graded = found.graded_with(loader, evaluation.get("versions") or {}, assignment.versions.tensorflow)
    described = found.saved_with(inspection) if inspection else None
    return {
        "saved_with": described,
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
        "producer",
        "opsets",
        "operators",
        "external_data",
        "members",
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
    return person(student["name"], student["id"])


def _next_named(mark: dict[str, Any]) -> str:
    """The next band or step and its score: '[96.5, 97) (score 18)', 'S+ (score 2)'; a linear scale's step, named
    by its score already, once: 'score 1.5'."""
    score = f"score {number(mark['next_score'])}"
    return mark["next_band"] if mark["next_band"] == score else f"{mark['next_band']} ({score})"


def report_markdown(report: dict[str, Any]) -> str:
    """A readable report for the student and the TA: one part, or the total and each part in turn."""
    lines = [f"# {_who(report['student'])}", "", f"**Status:** {report['status']}"]
    if report.get("not_isolated"):
        lines.append(f"**Isolation:** {report['not_isolated']}")
    if "parts" in report:
        total = report["total"]
        shown = number(total["score"]) if total["score"] is not None else "-"
        lines.append(f"**Total:** {shown} / {number(total['max_score'])}")
        if report["reason"]:
            lines.append(f"**Reason:** {report['reason']}")
        for part in report["parts"]:
            name = part["part"]
            lines += ["", f"## Part {name['name']}: {name['title']}", "", f"**Status:** {part['status']}"]
            lines += code_markdown(part, "###") if "code" in part else _part_markdown(part, "###")
        return "\n".join([*lines, ""])
    return "\n".join([*lines, *_part_markdown(report, "##")])


def _part_markdown(report: dict[str, Any], heading: str) -> list[str]:
    lines = []
    mark = report.get("mark")
    if mark:
        lines.append(f"**Accuracy:** {mark['accuracy']}% ({mark['correct']:,} of {mark['total']:,} images)")
        band = f" (band {mark['band']})" if mark.get("band") else f" ({report['marking']['description']})"
        if mark.get("label"):
            lines.append(f"**Sign-off:** {mark['label']}, given when {mark['rule']}")
            lines += [f"**Not {better['label']}:** {'; '.join(better['reasons'])}" for better in mark["passed_over"]]
            band = ""
        lines.append(f"**Score:** {number(mark['score'])} / {number(mark['max_score'])}{band}")
        if mark.get("next_band"):
            lines.append(
                f"**Next {'band' if mark.get('band') else 'step'}:** {_next_named(mark)} needs "
                f"{mark['images_to_next_band']:,} more correct images"
            )
    confidence = report.get("confidence")
    if confidence:
        crossing = " (crosses an edge of the marking)" if confidence["crosses_edge"] else ""
        lines.append(f"**95% interval:** {confidence['low']:.2f}% to {confidence['high']:.2f}%{crossing}")
    if report["reason"]:
        lines.append(f"**Reason:** {report['reason']}")
    versions = report["versions"]
    lines += ["", f"File: `{report['file']['name'] or '-'}`"]
    if versions["saved_with"]:
        lines.append(f"Saved with: {versions['saved_with']}; graded with: {versions['graded_with']}")
    if report["file"]["sha256"]:
        lines.append(f"sha256: `{report['file']['sha256']}`")
    lines += ["", f"{heading} Checks", "", "| check | outcome | found | what to do |", "|---|---|---|---|"]
    for check in report["checks"]:
        lines.append(f"| {check['name']} | {check['outcome']} | {_cell(check['message'])} | {_cell(check['advice'])} |")
    lines += _architecture_markdown(report, heading)
    lines += _evaluation_markdown(report, heading)
    parameters = report.get("parameters")
    if parameters:
        lines += _section(heading, "Parameters", parameters["sentence"])
        lines += ["", "| # | layer | class | parameters | how |", "|---|---|---|---|---|"]
        for row in parameters["layers"]:
            count = f"{row['parameters']:,}" if row["parameters"] is not None else "?"
            how = row["formula"] if row["parameters"] else ""
            lines.append(f"| {row['number']} | {row['name']} | {row['class_name']} | {count} | {_cell(how)} |")
    if report.get("per_class"):
        lines += [
            "",
            f"{heading} Accuracy per class",
            "",
            "| class | correct | images | accuracy |",
            "|---|---|---|---|",
        ]
        for item in report["per_class"]:
            share = f"{100 * item['correct'] / item['total']:.2f}%" if item["total"] else "-"
            lines.append(f"| {item['name']} | {item['correct']:,} | {item['total']:,} | {share} |")
    held = report["heldout"]
    lines += [
        "",
        f"{heading} Reproduce",
        "",
        f"- held-out set: {held['source']} ({held['size']:,} images), sha256 `{held['sha256']}`",
        f"- assignment: {report['assignment']['name']} (`{report['assignment']['path']}`), "
        f"sha256 `{report['assignment']['sha256']}`",
        f"- grader {report['grader']['version']}, run {report['run']['id']}",
        "",
    ]
    return lines


def _architecture_markdown(report: dict[str, Any], heading: str) -> list[str]:
    """The file's layers against the architecture the part asks for, as a Markdown table."""
    lines: list[str] = []
    architecture = report.get("architecture")
    if architecture:
        lines += _section(heading, "Architecture", architecture["summary"])
        if architecture.get("ignored"):
            lines.append(f"Not compared, as the assignment says: {', '.join(architecture['ignored'])}.")
        if architecture["rows"]:
            lines += [
                "",
                f"| layer | the model has | {architecture['document']} asks for | output shape (expected / found) "
                "| parameters (expected / found) | what to change |",
                "|---|---|---|---|---|---|",
            ]
            for row in architecture["rows"]:
                expected = f"{row['expected_parameters']:,}" if row["expected_parameters"] is not None else "-"
                found = f"{row['found_parameters']:,}" if row["found_parameters"] is not None else "-"
                lines.append(
                    f"| {row['number'] if row['number'] is not None else '-'} | {row['found'] or '(none)'} "
                    f"| {_cell(row['expected'] or '(nothing)')} | {row['expected_shape'] or '-'} / "
                    f"{row['found_shape'] or '-'} | {expected} / {found} "
                    f"| {_cell('; '.join(row['problems']) or 'as asked')} |"
                )
    return lines


def _evaluation_markdown(report: dict[str, Any], heading: str) -> list[str]:
    """How the model was fed and loaded, and its layers as the worker built them."""
    lines: list[str] = []
    evaluation = report.get("evaluation") or {}
    if evaluation.get("fed_shape"):
        rule = (
            f"so the coursework's feeding rule says **{evaluation['net_type']}** and feeds "
            f"{evaluation.get('fed_shape')}"
            if evaluation.get("net_type")
            else f"fed {evaluation.get('fed_shape')} as the model declares"
        )
        lines += [
            "",
            f"{heading} Evaluation",
            "",
            f"- declared input shape: {evaluation.get('input_shape')}, {rule}",
            f"- loaded with: {evaluation.get('loader')}",
            f"- isolation: {evaluation.get('isolation')}",
        ]
        used = evaluation.get("versions") or {}
        if used:
            lines.append("- graded with: " + ", ".join(f"{k} {v}" for k, v in sorted(used.items()) if v))
    summary = evaluation.get("summary") or []
    if summary:
        lines += ["", f"{heading} Model", "", "| layer | class | output shape | parameters |", "|---|---|---|---|"]
        for layer in summary:
            lines.append(
                f"| {layer['name']} | {layer['class_name']} | {layer['output_shape']} | {number(layer['parameters'])} |"
            )
    return lines


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
    environment.globals["run_notes"] = run_notes
    environment.globals["next_named"] = _next_named
    environment.globals["css"] = (resources.files("grader.outputs") / "templates" / "base.css").read_text()
    return environment


@cache
def template(name: str) -> Any:
    return _templates().get_template(name)


def report_html(
    report: dict[str, Any], drawn: dict[str, str], sections: list[tuple[dict[str, Any], dict[str, str]]] | None = None
) -> str:
    """The student's self-contained HTML report: one part, or the total and a section per part."""
    return template("report.html.j2").render(
        report=report,
        who=_who(report["student"]),
        mark=report.get("mark") or {},
        figures=drawn,
        status_class=_status_class(report["status"]),
        confusion=_shaded(report.get("confusion"), report.get("class_names")),
        sections=[
            {
                "report": part,
                "figures": figures_drawn,
                "status_class": _status_class(part["status"]),
                "confusion": _shaded(part.get("confusion"), part.get("class_names")),
            }
            for part, figures_drawn in (sections or [])
        ],
    )


def _status_class(status: str) -> str:
    return {"graded": "status-graded", "flagged": "status-flagged"}.get(status, "status-other")


def _shaded(matrix: list[list[int]] | None, names: list[str] | None = None) -> Any:
    """The confusion matrix's rows as HTML, each cell shaded by its count (log scale, so a few mistakes
    still show), each row headed by its class's name. Built here rather than in the template: it holds
    numbers only (the names are escaped), and escaping a hundred numbers per student is most of a
    re-mark's rendering time."""
    from markupsafe import Markup, escape

    if not matrix:
        return Markup("")
    names = names or [str(index) for index in range(len(matrix))]
    top = math.log1p(max(max(row) for row in matrix)) or 1.0
    rows = []
    for i, row in enumerate(matrix):
        cells = "".join(
            f'<td class="num{" diagonal" if i == j else ""}" style="background: rgba(31, 119, 180, '
            f'{0.85 * math.log1p(count) / top:.2f})">{count or ""}</td>'
            for j, count in enumerate(row)
        )
        rows.append(f'<tr><th class="num">{escape(names[i])}</th>{cells}</tr>')
    return Markup("\n".join(rows))


def attention(row: dict[str, Any], assignment: Assignment) -> str:
    """Why a student needs a person to look (empty when nothing does)."""
    if row["status"] not in MARKED:
        return f"{row['status']}: {row['reason']}"
    if row["status"] == "flagged":
        return row["reason"]
    parts = row["parts"] if "parts" in row else {assignment.parts[0].name: row}
    near = []
    for name, part_row in parts.items():
        if part_row is None or part_row["correct"] is None or assignment.part(name).code is not None:
            continue
        scheme = assignment.part(name).marking
        interval = scoring.confidence_interval(
            part_row["correct"], part_row["total"], scheme, architecture=_architecture_status(part_row)
        )
        if interval.crosses_edge:
            reaches = (
                f"reaches {', '.join(band.text for band in interval.bands)}"
                if interval.bands
                else f"spans the scores {number(interval.scores[0])} to {number(interval.scores[1])}"
            )
            where = "" if assignment.single else f"{name}: "
            edge = "a band edge" if interval.bands else "a score's edge"
            near.append(f"{where}near {edge}: the 95% interval {interval.low:.2f}%-{interval.high:.2f}% {reaches}")
    return "; ".join(near)


def _code_section(part: Part, marked: list[dict[str, Any]]) -> dict[str, Any]:
    """A code part's summary: the spread of points, and each question's mean and full marks."""
    assert part.code is not None
    scores = [row["score"] for row in marked]
    questions = []
    for question in part.code.questions:
        earned = [
            entry["points"]
            for row in marked
            for entry in ((row["detail"].get("code") or {}).get("questions") or [])
            if entry["name"] == question.name
        ]
        full = sum(1 for points in earned if points == as_score(question.points))
        mean = statistics.fmean(earned) if earned else None
        questions.append((question.title, mean, as_score(question.points), full))
    return {
        "part": part,
        "name": part.marking_name,
        "description": part.marking.describe(),
        "describe": f"{len(part.code.questions)} code questions",
        "figures": {"accuracies": "", "marks": figures.marks_bar(scores, sorted(set(scores)))},
        "per_band": None,
        "per_what": "band",
        "mean": None,
        "questions": questions,
    }


def index_html(
    rows: list[dict[str, Any]], run: dict[str, Any], assignment: Assignment, integrity: int | None = None
) -> str:
    """The instructor's summary of a run: the totals, and for each part its spread of accuracies and marks."""
    marked = [row for row in rows if row["status"] in MARKED]
    linked = [
        {**row, "link": f"{student_folder(row['student_id'])}/report.html", "label": label_of(row)} for row in rows
    ]
    flagged = [(row, why) for row in linked if (why := attention(row, assignment))]
    counts = Counter(row["status"] for row in rows)
    sections = []
    for part in assignment.parts:
        part_rows = [row if assignment.single else row["parts"].get(part.name) for row in rows]
        part_marked = [r for r in part_rows if r is not None and r["status"] in MARKED]
        accuracies = [r["accuracy"] for r in part_marked]
        scores = [r["score"] for r in part_marked]
        per_band = Counter(r["band"] for r in part_marked)
        per_label = Counter(label_of(r) for r in part_marked)
        scheme = part.marking
        if part.code is not None:
            sections.append(_code_section(part, part_marked))
            continue
        sections.append(
            {
                "part": part,
                "name": part.marking_name,
                "description": scheme.describe(),
                "figures": {
                    "accuracies": figures.accuracy_histogram(accuracies, scheme.edges()),
                    "marks": figures.marks_bar(scores, scheme.possible_scores()),
                },
                "per_band": [(band, per_band[band.text]) for band in reversed(scheme.bands)]
                if isinstance(scheme, Bands)
                else [({"text": rule.label, "score": rule.score}, per_label[rule.label]) for rule in scheme.rules]
                if isinstance(scheme, Signoff)
                else None,
                "per_what": "label" if isinstance(scheme, Signoff) else "band",
                "describe": part.data.describe(),
                "mean": statistics.fmean(accuracies) if accuracies else None,
            }
        )
    totals = [row["score"] for row in marked if row["score"] is not None]
    return template("index.html.j2").render(
        rows=linked,
        run=run,
        assignment=assignment,
        sections=sections,
        attention=flagged,
        counts=[(status, counts[status]) for status in STATUSES if counts[status]],
        median=statistics.median(totals) if totals else None,
        integrity=integrity,
        unsandboxed=sorted({how for row in rows if (how := unsandboxed(row))}),
        unsandboxed_count=sum(1 for row in rows if unsandboxed(row)),
    )


def plot_student(
    reports: Path, student_id: str, target: Path, heldout_path: Path | None = None, part_name: str | None = None
) -> str:
    """Draw a student's misclassified images as the coursework's plotting script does (matplotlib, saved
    as PDF or PNG by the target's suffix), from the gradebook's stored outputs. Returns a summary line."""
    from grader.courseworks.assignment import load_assignment
    from grader.errors import GraderError

    with Gradebook.reading(reports) as book:
        run = book.run()
        rules = load_assignment(run["assignment_path"])
        if part_name is None and not rules.single:
            raise GraderError(f"this assignment has parts ({', '.join(p.name for p in rules.parts)}): pass --part")
        part = rules.part(part_name) if part_name else rules.parts[0]
        rows = {row["student_id"]: row for row in book.results(run["id"]) if row["part"] == part.name}
        if student_id not in rows:
            raise GraderError(f"{reports}: no student {student_id!r} in the latest run")
        row = rows[student_id]
        evaluation = book.evaluation_by_id(row["evaluation_id"]) if row["evaluation_id"] else None
        outputs = book.outputs(evaluation.id) if evaluation is not None else None
    if evaluation is None or evaluation.predictions is None or outputs is None:
        raise GraderError(f"student {student_id} has no predictions ({row['status']}: {row['reason']})")
    heldout = run_heldout(run, rules, part, heldout_path)
    shown = figures.coursework_figure(
        heldout.images, heldout.labels, evaluation.predictions, outputs.astype("float32"), str(target), part.data.names
    )
    if not shown:
        return f"{student_id}: no misclassified samples found, no plot generated (as the script says)"
    names = part.data.names
    listed = "; ".join(
        f"image {index}: true {names[true]}, predicted {names[pred] if pred < len(names) else pred}"
        for index, true, pred in shown
    )
    return (
        f"wrote {target}: the first {len(shown)} misclassified images of {student_id}, as the coursework's "
        f"script draws them ({listed})"
    )


def _section(heading: str, title: str, sentence: str) -> list[str]:
    """A Markdown section's heading and its first sentence, capitalised."""
    return ["", f"{heading} {title}", "", sentence[:1].upper() + sentence[1:] + "."]


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def write_whole(path: Path, text: str) -> None:
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
