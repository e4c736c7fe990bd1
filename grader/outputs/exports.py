"""Files that Moodle, Canvas, Brightspace and ILIAS import, checked against their importers' rules before they are
written (Brightspace's and ILIAS's in grader.outputs.brightspace and grader.outputs.ilias).

Each format is a builder (rows in, file out) and a checker that reads the built file back as the
importer would and lists what it would reject. Nothing is written while the checker finds a problem:
the command says what is wrong instead.

- `csv`: the marks, as marks.csv.
- `moodle`: Moodle's gradebook CSV import (Grade administration > Import > CSV file). It aborts the whole
  import for one unknown user or one bad grade, so every row must map to a user in the roster.
- `moodle-worksheet`: the assignment's offline grading worksheet (Assignment > Upload grading worksheet):
  `Identifier` ("Participant N"), `Grade`, `Last modified (grade)`, `Feedback comments`.
- `canvas`: Canvas's gradebook import: `Student,ID,SIS User ID,SIS Login ID,Section`, then one
  `Title (id)` column; a title without an existing assignment id makes Canvas create a new assignment.
- `feedback-zip`: one folder per student named as Moodle's "Upload multiple feedback files in a zip"
  expects (`Full Name_123456_assignfeedback_file_/`), holding the student's report.html.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from grader.discovery import MOODLE_FOLDER
from grader.errors import ExportError
from grader.outputs.grades import (
    Marks,
    checked_labels,
    csv_text,
    export_grade,
    feedback_text,
    grade_problems,
    header_problems,
    load_marks,
    read_roster,
    reports_zip,
)
from grader.outputs.reports import marks_csv, number

FORMATS = (
    "csv",
    "moodle",
    "moodle-worksheet",
    "canvas",
    "feedback-zip",
    "brightspace",
    "ilias-status",
    "ilias-feedback",
)
LABEL_FORMATS = ("moodle", "moodle-worksheet", "canvas", "brightspace", "ilias-status")
GRADE_AS = ("score", "label")
IDENTIFIERS = {"email": "Email address", "idnumber": "ID number"}
CANVAS_HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
WORKSHEET_REQUIRED = ("Identifier", "Grade", "Last modified (grade)")
WORKSHEET_FEEDBACK = "Feedback comments"
PARTICIPANT = "Participant "
# Moodle refuses a gradebook grade above $CFG->gradepointmax, 100 unless a site raised it.
MOODLE_GRADE_POINT_MAX = 100
_CANVAS_COLUMN = re.compile(r"^(?P<title>.+) \((?P<id>\d+)\)$")


def export(
    fmt: str,
    *,
    reports: Path,
    out: Path,
    roster: Path | None = None,
    identifier: str = "email",
    item: str | None = None,
    column: str | None = None,
    ungraded: str = "skip",
    grade_as: str = "score",
) -> str:
    """Build, check and write one export; returns a one-line summary. Raises ExportError instead of writing
    a file its importer would reject. `grade_as='label'` puts a sign-off label in the grade column."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if grade_as not in GRADE_AS:
        raise ExportError(f"--grade-as must be one of: {', '.join(GRADE_AS)}")
    marks = load_marks(reports)
    if grade_as == "label":
        if not marks.labels:
            raise ExportError(
                "--grade-as label needs a one-part assignment marked by sign-off rules (labels such as S+ and S); "
                "this run's marking gives numbers only"
            )
        if fmt not in LABEL_FORMATS:
            raise ExportError(f"--grade-as label is for {', '.join(LABEL_FORMATS)}; {fmt} writes both")
        marks = replace(marks, grade_as="label")
    if fmt == "csv":
        text = marks_csv(marks.rows, marks.assignment)
        _raise(check_marks_csv(text, marks.max_score), fmt)
        return _write_text(out, text, f"{len(marks.rows)} rows")
    if fmt == "feedback-zip":
        data = feedback_zip(marks)
        _raise(check_feedback_zip(data), fmt)
        out.write_bytes(data)
        return f"wrote {out} ({len(marks.rows)} feedback folders)"
    table = read_roster(roster) if roster else None
    if fmt in ("brightspace", "ilias-status", "ilias-feedback"):
        return _platform_export(fmt, marks, table, out=out, item=item, ungraded=ungraded)
    if fmt == "moodle":
        text = moodle_csv(marks, _need(table, fmt), identifier=identifier, item=item or marks.title, ungraded=ungraded)
        _raise(check_moodle_csv(text, marks.max_score, _need(table, fmt), identifier, checked_labels(marks)), fmt)
    elif fmt == "moodle-worksheet":
        text = moodle_worksheet(marks, table, ungraded=ungraded)
        _raise(
            check_moodle_worksheet(
                text, marks.max_score, expected=_participants(marks, ungraded), labels=checked_labels(marks)
            ),
            fmt,
        )
    else:
        text = canvas_csv(marks, _need(table, fmt), column=column, ungraded=ungraded)
        _raise(check_canvas_csv(text, marks.max_score, _need(table, fmt), checked_labels(marks)), fmt)
    return _write_text(out, text, f"{text.count(chr(10)) - 1} students")


def _platform_export(
    fmt: str, marks: Marks, table: list[dict[str, str]] | None, *, out: Path, item: str | None, ungraded: str
) -> str:
    """Brightspace's and ILIAS's exports (grader.outputs.brightspace, .ilias): built, checked, written, with
    every submission the platform could not be given listed, never dropped."""
    from grader.outputs import brightspace, ilias

    if fmt == "brightspace":
        people = brightspace.classlist(_need(table, fmt))
        text, unmatched = brightspace.grades_csv(marks, people, item=item or marks.title, ungraded=ungraded)
        _raise(brightspace.check_grades_csv(text, marks.max_score, people, checked_labels(marks)), fmt)
        written = _write_text(out, text, f"{text.count(chr(10)) - 1} students")
        aside = out.with_name(f"{out.stem}-unmatched.csv")
        if not unmatched:
            aside.unlink(missing_ok=True)  # an earlier export's list, no longer true
            return written
        aside.write_text(brightspace.unmatched_csv(marks, unmatched, ungraded), encoding="utf-8")
        listed = "".join(f"\n  {row['student_id']}: {reason}" for row, reason in unmatched)
        return f"{written}; {len(unmatched)} submissions match no one in the classlist, listed in {aside}:{listed}"
    if fmt == "ilias-status":
        text, left_out = ilias.status_csv(marks, table, ungraded=ungraded)
        _raise(ilias.check_status_csv(text, marks.max_score, table, checked_labels(marks)), fmt)
        written = _write_text(out, text, f"{sum(line.startswith('1,') for line in text.splitlines())} updates")
    else:
        data, left_out = ilias.feedback_zip(marks)
        _raise(ilias.check_feedback_zip(data, {person.get("usr_id", "") for person in table} if table else None), fmt)
        out.write_bytes(data)
        written = f"wrote {out} ({len(marks.rows) - len(left_out)} feedback folders)"
    if not left_out:
        return written
    listed = "".join(f"\n  {who}" for who in left_out)
    return f"{written}; {len(left_out)} not given to ILIAS:{listed}"


# Rows and feedback ---------------------------------------------------------------------------------------


def _participants(marks: Marks, ungraded: str) -> set[str]:
    return {row["student_id"] for row in marks.rows if export_grade(marks, row, ungraded) is not None}


# Rosters --------------------------------------------------------------------------------------------------


def participant_id(row: dict[str, str]) -> str | None:
    """Moodle's participant id in a roster row ('Participant 123456' or a participant id column)."""
    identifier = row.get("Identifier", "")
    if identifier.startswith(PARTICIPANT) and identifier[len(PARTICIPANT) :].isdigit():
        return identifier[len(PARTICIPANT) :]
    for key in ("Participant ID", "participant_id", "participant"):
        if row.get(key, "").isdigit():
            return row[key]
    return None


def _need(table: list[dict[str, str]] | None, fmt: str) -> list[dict[str, str]]:
    if table is None:
        what = {
            "moodle": "Moodle's grading worksheet or participants export, with an Email address or ID number column",
            "canvas": "Canvas's gradebook export (Grades > Export), which holds each student's Canvas ID",
            "brightspace": "Brightspace's classlist export (OrgDefinedId, Username, First Name, Last Name, Email)",
        }[fmt]
        raise ExportError(f"{fmt} needs --roster: {what}")
    return table


# Moodle gradebook CSV -------------------------------------------------------------------------------------


def moodle_csv(marks: Marks, roster: list[dict[str, str]], *, identifier: str, item: str, ungraded: str) -> str:
    """Moodle's gradebook import: the identifier column, the grade item, and feedback."""
    if identifier not in IDENTIFIERS:
        raise ExportError(f"--identifier must be one of: {', '.join(IDENTIFIERS)}")
    label = IDENTIFIERS[identifier]
    if label not in roster[0]:
        raise ExportError(
            f"the roster has no {label!r} column (it has: {', '.join(roster[0])}); pass "
            f"--identifier {'idnumber' if identifier == 'email' else 'email'} or another roster"
        )
    by_participant = {pid: row for row in roster if (pid := participant_id(row))}
    missing = []
    lines = [[label, item, "Feedback"]]
    for row in marks.rows:
        grade = export_grade(marks, row, ungraded)
        if grade is None:
            continue
        person = by_participant.get(row["student_id"])
        if person is None:
            missing.append(f"{row['student_id']} ({row['student_name'] or row['folder']})")
            continue
        lines.append([person.get(label, ""), grade, feedback_text(row, marks.max_score)])
    if missing:
        raise ExportError(
            f"moodle: {len(missing)} graded students are not in the roster, and Moodle aborts the "
            f"whole import for one unknown user: {', '.join(missing[:10])}"
        )
    return csv_text(lines)


def check_moodle_csv(
    text: str, max_score: float, roster: list[dict[str, str]], identifier: str, labels: tuple[str, ...] = ()
) -> list[str]:
    """What Moodle's CSV grade import would reject in this file (grades as `labels` when given: a scale)."""
    rows = list(csv.reader(io.StringIO(text)))
    problems = header_problems(rows[0] if rows else [])
    label = IDENTIFIERS[identifier]
    known = {person.get(label, "") for person in roster}
    seen: set[str] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            problems.append(f"line {line_no}: {len(row)} fields, the header has {len(rows[0])}")
            continue
        user, grade = row[0], row[1]
        if not user:
            problems.append(f"line {line_no}: empty {label}")
        elif user not in known:
            problems.append(f"line {line_no}: {label} {user!r} is not a user in the roster")
        elif user in seen:
            problems.append(f"line {line_no}: {label} {user!r} appears twice")
        seen.add(user)
        problems += grade_problems(grade, line_no, max_score, min(max_score, MOODLE_GRADE_POINT_MAX), labels)
    return problems


# Moodle grading worksheet ---------------------------------------------------------------------------------


def moodle_worksheet(marks: Marks, worksheet: list[dict[str, str]] | None, *, ungraded: str) -> str:
    """The assignment's grading worksheet: the downloaded one filled in, or a new one with the columns the
    upload reads."""
    grades = {row["student_id"]: row for row in marks.rows if export_grade(marks, row, ungraded) is not None}
    if worksheet is None:
        header = ["Identifier", "Full name", "Grade", "Maximum Grade", "Last modified (grade)", WORKSHEET_FEEDBACK]
        lines = [header]
        for student, row in grades.items():
            lines.append(
                [
                    f"{PARTICIPANT}{student}",
                    row["student_name"],
                    export_grade(marks, row, ungraded) or "",
                    "" if marks.grade_as == "label" else number(marks.max_score),
                    "-",
                    feedback_text(row, marks.max_score),
                ]
            )
        return csv_text(lines)
    header = list(worksheet[0])
    for column in WORKSHEET_REQUIRED:
        if column not in header:
            raise ExportError(
                f"the worksheet has no {column!r} column: download it again from the assignment "
                "(View all submissions > Grading action > Download grading worksheet)"
            )
    if WORKSHEET_FEEDBACK not in header:
        header.append(WORKSHEET_FEEDBACK)
    lines = [header]
    for person in worksheet:
        found = grades.get(participant_id(person) or "")
        values = dict(person)
        if found is not None:
            values["Grade"] = export_grade(marks, found, ungraded) or ""
            values[WORKSHEET_FEEDBACK] = feedback_text(found, marks.max_score)
        lines.append([values.get(column, "") for column in header])
    listed = {participant_id(person) for person in worksheet}
    unknown = sorted(set(grades) - listed)
    if unknown:
        raise ExportError(
            f"moodle-worksheet: {len(unknown)} graded students are not in the worksheet, and the "
            f"upload would drop their grades: {', '.join(unknown[:10])}"
        )
    return csv_text(lines)


def check_moodle_worksheet(
    text: str, max_score: float, *, expected: set[str], labels: tuple[str, ...] = ()
) -> list[str]:
    """What the grading-worksheet upload would reject or silently skip in this file."""
    rows = list(csv.DictReader(io.StringIO(text)))
    header = list(rows[0]) if rows else []
    problems = [f"no {column!r} column" for column in WORKSHEET_REQUIRED if column not in header]
    if problems:
        return problems
    seen: set[str] = set()
    for line_no, row in enumerate(rows, start=2):
        pid = participant_id(row)
        if pid is None:
            problems.append(f"line {line_no}: Identifier {row['Identifier']!r} is not 'Participant <number>'")
            continue
        if pid in seen:
            problems.append(f"line {line_no}: {row['Identifier']} appears twice")
        seen.add(pid)
        if row["Grade"] not in ("", "-"):
            problems += grade_problems(row["Grade"], line_no, max_score, max_score, labels)
    missing = sorted(expected - seen)
    if missing:
        problems.append(f"graded students missing from the worksheet: {', '.join(missing[:10])}")
    return problems


# Canvas ---------------------------------------------------------------------------------------------------


def canvas_csv(marks: Marks, roster: list[dict[str, str]], *, column: str | None, ungraded: str) -> str:
    """Canvas's gradebook import for one assignment column, students matched to the roster."""
    if column is None:
        found = [key for key in roster[0] if _CANVAS_COLUMN.match(key) and key not in CANVAS_HEADER]
        raise ExportError(
            "canvas needs --column with the assignment's column title as Canvas writes it, "
            "'Title (id)'" + (f"; the roster has: {', '.join(found[:8])}" if found else "")
        )
    for key in ("Student", "ID"):
        if key not in roster[0]:
            raise ExportError(
                f"the roster has no {key!r} column: export the gradebook from Canvas "
                "(Grades > Export > Export Entire Gradebook)"
            )
    people = [person for person in roster if person.get("ID", "").isdigit()]
    missing = []
    lines = [[*CANVAS_HEADER, column]]
    for row in marks.rows:
        grade = export_grade(marks, row, ungraded)
        if grade is None:
            continue
        person = _canvas_match(row, people)
        if person is None:
            missing.append(f"{row['student_id']} ({row['student_name'] or row['folder']})")
            continue
        lines.append([*(person.get(key, "") for key in CANVAS_HEADER), grade])
    if missing:
        raise ExportError(
            f"canvas: {len(missing)} graded students match no one in the roster (by Canvas ID, "
            f"SIS User ID, SIS Login ID or name): {', '.join(missing[:10])}"
        )
    return csv_text(lines)


def _canvas_match(row: dict[str, Any], people: list[dict[str, str]]) -> dict[str, str] | None:
    for key in ("ID", "SIS User ID", "SIS Login ID"):
        found = [person for person in people if person.get(key) and person.get(key) == row["student_id"]]
        if len(found) == 1:
            return found[0]
    name = row["student_name"].casefold()
    if name:
        found = [person for person in people if _canvas_names(person.get("Student", "")) & {name}]
        if len(found) == 1:
            return found[0]
    return None


def _canvas_names(student: str) -> set[str]:
    """'Lovelace, Ada' and 'Ada Lovelace' for a Canvas Student cell, and Canvas's download name 'lovelaceada'."""
    names = {student.casefold()}
    if "," in student:
        last, first = (part.strip() for part in student.split(",", 1))
        names |= {f"{first} {last}".casefold(), re.sub(r"[^a-z]", "", f"{last}{first}".casefold())}
    return names


def check_canvas_csv(
    text: str, max_score: float, roster: list[dict[str, str]], labels: tuple[str, ...] = ()
) -> list[str]:
    """What Canvas's gradebook importer would reject, or turn into something else, in this file."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0] if rows else []
    problems = header_problems(header)
    if tuple(header[:5]) != CANVAS_HEADER:
        problems.append(f"the header must start with {','.join(CANVAS_HEADER)}")
    assignments = header[5:]
    if len(assignments) != 1:
        problems.append(f"expected one assignment column, found {len(assignments)}")
    elif not _CANVAS_COLUMN.match(assignments[0]):
        problems.append(f"assignment column {assignments[0]!r} has no '(id)': Canvas would create a new assignment")
    known = {person.get("ID") for person in roster}
    seen: set[str] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            problems.append(f"line {line_no}: {len(row)} fields, the header has {len(header)}")
            continue
        if not row[1].isdigit() or row[1] not in known:
            problems.append(f"line {line_no}: Canvas ID {row[1]!r} is not a student in the roster")
        elif row[1] in seen:
            problems.append(f"line {line_no}: Canvas ID {row[1]} appears twice")
        seen.add(row[1])
        if row[5:] and row[5] not in ("", "-"):
            problems += grade_problems(row[5], line_no, max_score, max_score, labels)
    return problems


# Feedback zip ---------------------------------------------------------------------------------------------


def feedback_folder(row: dict[str, Any]) -> str | None:
    """`Full Name_123456_assignfeedback_file_`: the folder Moodle's zip upload reads, or None for a student
    who is not a Moodle participant."""
    match = MOODLE_FOLDER.match(row["folder"])
    if not match or not row["student_id"].isdigit():
        return None
    # Moodle splits the name on '_' to find the participant id: its download already replaced them.
    name = match.group("name").replace("_", " ")
    return f"{name}_{row['student_id']}_assignfeedback_file_"


def feedback_zip(marks: Marks) -> bytes:
    """A zip of each student's report.html in the folder Moodle expects."""
    not_moodle = [row["student_id"] for row in marks.rows if feedback_folder(row) is None]
    if not_moodle:
        raise ExportError(
            f"feedback-zip: {len(not_moodle)} students are not in Moodle folders "
            f"(Full Name_123456_assignsubmission_file_), so Moodle cannot match them: "
            f"{', '.join(not_moodle[:10])}"
        )
    return reports_zip(marks, "feedback-zip", feedback_folder)


def check_feedback_zip(data: bytes) -> list[str]:
    """Whether Moodle's feedback zip import would match every file to one participant."""
    problems = []
    seen: dict[str, str] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            folder, _, file_name = name.partition("/")
            parts = folder.split("_", 4)
            if len(parts) < 4 or not parts[1].isdigit() or (parts[2], parts[3]) != ("assignfeedback", "file"):
                problems.append(f"{name}: the folder is not 'Full Name_<participant id>_assignfeedback_file_'")
            elif not file_name or file_name.startswith((".", "~")):
                problems.append(f"{name}: Moodle ignores hidden files")
            elif seen.setdefault(parts[1], folder) != folder:
                problems.append(f"{name}: participant {parts[1]} also has folder {seen[parts[1]]}")
    return problems


# Shared ---------------------------------------------------------------------------------------------------


def check_marks_csv(text: str, max_score: float) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(text)))
    problems: list[str] = []
    seen: set[str] = set()
    for line_no, row in enumerate(rows, start=2):
        if row["student_id"] in seen:
            problems.append(f"line {line_no}: student {row['student_id']} appears twice")
        seen.add(row["student_id"])
        if row["score"]:
            problems += grade_problems(row["score"], line_no, max_score, max_score)
    return problems


def _raise(problems: list[str], fmt: str) -> None:
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ExportError(f"{fmt}: the importer would reject this file, so it was not written: {shown}")


def _write_text(out: Path, text: str, what: str) -> str:
    out.write_text(text, encoding="utf-8")
    return f"wrote {out} ({what})"
