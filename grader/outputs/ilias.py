"""ILIAS exercises: each student's report as a multi-feedback zip, and the marks as a status file.

- `ilias-feedback`: what an exercise's assignment takes back for many participants at once ("Multi-Feedback",
  ILIAS 4.4 and since; read in ILIAS 7, 8 and 9's `ilExAssignment::getMultiFeedbackFiles`): a zip whose folder
  starts with `multi_feedback`, holding one folder per participant whose name ends in `_<user id>`, ILIAS writes
  them `Lastname_Firstname_login_<user id>`, the name its submissions download gave each participant's folder.
  Each holds the student's report.html, which ILIAS shows as a feedback file.
- `ilias-status`: the status file of an assignment (`update, usr_id, login, lastname, firstname, status, mark,
  notice, comment, plagiarism, plag_comment`; status notgraded, passed or failed), as StudOn's ILIAS and the
  ExerciseStatusFile plugin (ILIAS 8 and 9) download and import it, as CSV. ILIAS's own exercise has no bulk
  import of marks; without the plugin, marks are entered in the assignment's "Submissions and Grades" table.
  Lines with `update` 1 are applied. A sign-off coursework's first label (KIT's `passed`) and every marked
  result above 0 is `passed`, a mark of 0 is `failed`; the mark is the score, or under `--grade-as label` the
  label; the comment is the one-line feedback.

Both work from the participant folders ILIAS's download named (grader.discovery), or a status file downloaded
from ILIAS given as --roster, which lists every participant (those without a submission too).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import zipfile
from typing import Any

from grader.discovery import ILIAS_PARTICIPANT
from grader.errors import ExportError
from grader.outputs.grades import (
    Marks,
    csv_text,
    export_grade,
    feedback_text,
    grade_problems,
    header_problems,
    reports_zip,
)
from grader.status import MARKED

STATUS_TITLES = (
    "update",
    "usr_id",
    "login",
    "lastname",
    "firstname",
    "status",
    "mark",
    "notice",
    "comment",
    "plagiarism",
    "plag_comment",
)
STATES = ("notgraded", "passed", "failed")
FEEDBACK_ROOT = "multi_feedback"


def participant(row: dict[str, Any]) -> dict[str, str] | None:
    """A row's ILIAS user id, login and names, read from the participant folder ILIAS's download named; None for
    a row that did not come from one (a team's own files, another platform's folder)."""
    match = ILIAS_PARTICIPANT.match(row["folder"])
    if not match or match.group("id") != row["student_id"]:
        return None
    return {
        "usr_id": match.group("id"),
        "login": match.group("login"),
        "lastname": match.group("last").replace("_", " "),
        "firstname": match.group("first"),
    }


def placed(marks: Marks, fmt: str) -> tuple[dict[str, tuple[dict[str, Any], dict[str, str]]], list[str]]:
    """The rows ILIAS can be given, by user id, with what their participant folder says (`participant`), each
    folder read once; and the others, named. Refuses a run none of whose students came from an ILIAS folder."""
    ours: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    left_out = []
    for row in marks.rows:
        info = participant(row)
        if info is None:
            left_out.append(f"{row['student_id']} ({row['student_name']}): not in an ILIAS participant folder")
        else:
            ours[info["usr_id"]] = (row, info)
    if not ours:
        raise ExportError(
            f"{fmt}: no student is in an ILIAS participant folder (Lastname_Firstname_login_<user id>), so ILIAS "
            "could match none of them; grade ILIAS's submissions download"
        )
    return ours, left_out


def feedback_zip(marks: Marks) -> tuple[bytes, list[str]]:
    """The multi-feedback zip, and the rows it leaves out (a team's own files, named for no participant)."""
    root = FEEDBACK_ROOT + "_" + _ascii(marks.title)
    ours, left_out = placed(marks, "ilias-feedback")
    data = reports_zip(
        marks, "ilias-feedback", lambda row: f"{root}/{row['folder']}" if row["student_id"] in ours else None
    )
    return data, left_out


def check_feedback_zip(data: bytes, members: set[str] | None = None) -> list[str]:
    """Whether ILIAS would give every file to one participant: one folder starting with multi_feedback, then a
    folder per participant ending in _<user id> (one of `members`, when known), holding files, none hidden."""
    problems = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or not next(iter(roots)).startswith(FEEDBACK_ROOT):
        problems.append(f"the zip must hold one folder starting with {FEEDBACK_ROOT!r}, found {sorted(roots)}")
    seen: dict[str, str] = {}
    for name in names:
        parts = name.split("/")
        if len(parts) != 3 or not parts[2] or parts[2].startswith("."):
            problems.append(f"{name}: ILIAS reads files directly inside a participant's folder (and skips hidden ones)")
            continue
        user = parts[1].rsplit("_", 1)[-1]
        if not user.isdigit():
            problems.append(f"{name}: the folder does not end in _<user id>")
        elif members is not None and user not in members:
            problems.append(f"{name}: user {user} is not a member of the exercise")
        elif seen.setdefault(user, parts[1]) != parts[1]:
            problems.append(f"{name}: user {user} also has folder {seen[user]}")
    return problems


def status_csv(marks: Marks, roster: list[dict[str, str]] | None, *, ungraded: str) -> tuple[str, list[str]]:
    """The status file with every graded participant's line set to update; with an ILIAS status file as the
    roster, its other lines kept as they were (update 0). Returns the file and the rows it could not place."""
    ours, left_out = placed(marks, "ilias-status")
    lines: list[list[Any]] = [list(STATUS_TITLES)]
    if roster is not None:
        missing = [title for title in ("usr_id", "login", "status", "mark") if title not in roster[0]]
        if missing:
            raise ExportError(
                f"the roster is not an ILIAS status file (no {', '.join(missing)} column); download the status file "
                "from the assignment's Submissions and Grades page as CSV"
            )
        known = {person["usr_id"] for person in roster}
        left_out += [
            f"{usr_id} ({row['student_name']}): not in the status file"
            for usr_id, (row, _) in ours.items()
            if usr_id not in known
        ]
        for person in roster:
            entry = ours.get(person["usr_id"])
            row = entry[0] if entry else {"status": "no_file", "score": None}
            line = _status_line(marks, row, ungraded)
            if line is None:
                lines.append(["0", *(person.get(title, "") for title in STATUS_TITLES[1:])])
            else:
                lines.append(
                    [
                        "1",
                        person["usr_id"],
                        person["login"],
                        person.get("lastname", ""),
                        person.get("firstname", ""),
                        *line,
                    ]
                )
        return csv_text(lines), left_out
    for usr_id, (row, info) in sorted(ours.items(), key=lambda item: int(item[0])):
        line = _status_line(marks, row, ungraded)
        if line is not None:
            lines.append(["1", usr_id, info["login"], info["lastname"], info["firstname"], *line])
    return csv_text(lines), left_out


def _status_line(marks: Marks, row: dict[str, Any], ungraded: str) -> list[str] | None:
    """status, mark, notice, comment, plagiarism, plag_comment for one result, or None to leave it as it is."""
    grade = export_grade(marks, row, ungraded)
    if grade is None:
        return None
    score = row["score"] if row["status"] in MARKED else 0
    status = "passed" if score and score > 0 else "failed"
    comment = feedback_text(row, marks.max_score) if "detail" in row or row["status"] in MARKED else ""
    return [status, grade, "", comment, "", ""]


def check_status_csv(
    text: str, max_score: float, roster: list[dict[str, str]] | None, labels: tuple[str, ...] = ()
) -> list[str]:
    """What the status file import would refuse: a missing title, a status other than notgraded, passed or
    failed, a mark that is not a number within the assignment's maximum (or a label), a user id twice or not in
    the exercise (when the roster says who is)."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0] if rows else []
    problems = header_problems(header)
    absent = [title for title in STATUS_TITLES if title not in header]
    if absent:
        return [*problems, f"the titles row lacks {', '.join(absent)}"]
    at = {title: header.index(title) for title in STATUS_TITLES}
    known = {person["usr_id"] for person in roster} if roster is not None else None
    seen: set[str] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            problems.append(f"line {line_no}: {len(row)} fields, the header has {len(header)}")
            continue
        if row[at["update"]] not in ("0", "1"):
            problems.append(f"line {line_no}: update is {row[at['update']]!r}, not 0 or 1")
        usr_id = row[at["usr_id"]]
        if usr_id in seen:
            problems.append(f"line {line_no}: user {usr_id} appears twice")
        seen.add(usr_id)
        if known is not None and usr_id not in known:
            problems.append(f"line {line_no}: user {usr_id} is not a member of the exercise")
        if row[at["update"]] != "1":
            continue
        if row[at["status"]] not in STATES:
            problems.append(f"line {line_no}: status {row[at['status']]!r} is not one of {', '.join(STATES)}")
        if row[at["mark"]]:
            problems += grade_problems(row[at["mark"]], line_no, max_score, max_score, labels)
    return problems


def _ascii(text: str) -> str:
    """A title as ILIAS names files: ASCII letters, digits and underscores."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9]+", "_", plain).strip("_") or "assignment"
