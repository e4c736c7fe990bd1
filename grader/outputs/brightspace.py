"""Brightspace (D2L): the Grades import CSV, each submission matched to the classlist.

Grades > Enter Grades > Import reads a CSV (D2L's Grades_Sample_Import_File lays it out) whose first columns
identify the user, `OrgDefinedId` and/or `Username`, then one column per grade item, named `<item> Points Grade`
for a numeric item or `<item> Text Grade` for a text one, and last `End-of-Line Indicator`, `#` on every line.
A grade above the item's maximum is capped unless the item may be exceeded, so none is written.

Brightspace's download names a student by name (or by org defined id, in the form that carries it), not by
login: the classlist export (Classlist > Export: OrgDefinedId, Username, Last Name, First Name, Email; the Grades
export holds the same columns) maps each submission to one person. A submission that matches no one, or
several people of one name (a group assignment names its group), is listed with the reason, never dropped:
`grades-unmatched.csv` beside the import file holds it with its mark, for entering by hand.

Brightspace documents no bulk upload of per-student feedback files to an assignment (only one comment for
everyone, "Add Feedback to All"); each student's report stays in the reports folder.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from typing import Any

from grader.errors import ExportError
from grader.outputs.grades import Marks, csv_text, export_grade, grade_problems, header_problems

IDENTIFIERS = ("OrgDefinedId", "Username")
END_OF_LINE = "End-of-Line Indicator"
UNMATCHED_HEADER = ("student_id", "student_name", "folder", "grade", "reason")


@dataclass(frozen=True)
class Person:
    """One classlist row: how Brightspace knows a user."""

    org_defined_id: str
    username: str
    first: str
    last: str


def classlist(roster: list[dict[str, str]]) -> list[Person]:
    """The people of a Brightspace classlist or Grades export. Brightspace's exports prefix ids with '#' (so a
    spreadsheet keeps their leading zeros), which its import takes off again: they are taken off here too."""
    header = roster[0]
    if not any(key in header for key in IDENTIFIERS):
        raise ExportError(
            f"the roster has neither OrgDefinedId nor Username (it has: {', '.join(header)}): export the classlist "
            "from Brightspace (Classlist > Export) or the Grades (Enter Grades > Export, key field Both)"
        )
    return [
        Person(
            org_defined_id=row.get("OrgDefinedId", "").lstrip("#"),
            username=row.get("Username", "").lstrip("#"),
            first=row.get("First Name", ""),
            last=row.get("Last Name", ""),
        )
        for row in roster
    ]


def match(rows: list[dict[str, Any]], people: list[Person]) -> tuple[dict[Person, dict], list[tuple[dict, str]]]:
    """Each person's row where exactly one person fits it: the org defined id or username the download named,
    else the name (first name first, or 'Last, First'; accents and case aside), and no earlier row took that
    person. The other rows, with why."""
    given: dict[Person, dict[str, Any]] = {}
    unmatched: list[tuple[dict, str]] = []
    for row in rows:
        found = [p for p in people if row["student_id"] in (p.org_defined_id, p.username) and row["student_id"]]
        if not found:
            name = _plain(row["student_name"])
            found = [
                p for p in people if name and name in (_plain(f"{p.first} {p.last}"), _plain(f"{p.last}, {p.first}"))
            ]
        if len(found) == 1 and found[0] in given:
            taken = given[found[0]]["student_id"]
            unmatched.append((row, f"{row['student_name']} is the classlist's person already given {taken}'s mark"))
        elif len(found) == 1:
            given[found[0]] = row
        elif found:
            unmatched.append((row, f"{len(found)} people in the classlist are named {row['student_name']}"))
        else:
            unmatched.append(
                (
                    row,
                    f"no one in the classlist is {row['student_name'] or row['student_id']} (a group assignment's "
                    "download names the group: enter its mark on the group in the Assignments tool)",
                )
            )
    return given, unmatched


def _plain(name: str) -> str:
    """A name as compared: Unicode composed alike, case folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def grades_csv(
    marks: Marks, people: list[Person], *, item: str, ungraded: str
) -> tuple[str, list[tuple[dict[str, Any], str]]]:
    """The Grades import for one item, in the classlist's order, and the submissions it could not place. A
    person with no submission gets the `ungraded` choice (a 0, or the last label, under 'zero'; left out under
    'skip')."""
    given, unmatched = match(marks.rows, people)
    kind = "Text Grade" if marks.grade_as == "label" else "Points Grade"
    columns = [key for key in IDENTIFIERS if any(getattr(p, _attribute(key)) for p in people)]
    lines: list[list[Any]] = [[*columns, f"{item} {kind}", END_OF_LINE]]
    nobody = {"status": "no_file", "score": None}
    for person in people:
        row = given.get(person, nobody)
        grade = export_grade(marks, row, ungraded)
        if grade is None:
            continue
        lines.append([*(getattr(person, _attribute(key)) for key in columns), grade, "#"])
    return csv_text(lines), unmatched


def _attribute(column: str) -> str:
    return {"OrgDefinedId": "org_defined_id", "Username": "username"}[column]


def unmatched_csv(marks: Marks, unmatched: list[tuple[dict[str, Any], str]], ungraded: str) -> str:
    """The submissions no one in the classlist took, with their grades and why."""
    lines: list[list[Any]] = [list(UNMATCHED_HEADER)]
    for row, reason in unmatched:
        grade = export_grade(marks, row, ungraded)
        lines.append([row["student_id"], row["student_name"], row["folder"], grade or "", reason])
    return csv_text(lines)


def check_grades_csv(text: str, max_score: float, people: list[Person], labels: tuple[str, ...] = ()) -> list[str]:
    """What Brightspace's Grades import would reject in this file: the user columns first (OrgDefinedId, then
    Username), one grade item, `End-of-Line Indicator` last with '#' on each line, users in the classlist, once
    each, and grades within the item (a number from 0 to its maximum, or a label for a text item)."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0] if rows else []
    problems = header_problems(header)
    ids = [column for column in header if column in IDENTIFIERS]
    if not ids or header[: len(ids)] != [key for key in IDENTIFIERS if key in ids]:
        problems.append("the header must start with OrgDefinedId and/or Username, in that order")
    if not header or header[-1] != END_OF_LINE:
        problems.append(f"the last column must be {END_OF_LINE!r}")
    items = header[len(ids) : -1]
    if len(items) != 1 or not items[0].endswith((" Points Grade", " Text Grade")):
        problems.append(f"expected one '<item> Points Grade' or '<item> Text Grade' column, found {items}")
        return problems
    known = {key: {getattr(p, _attribute(key)) for p in people} - {""} for key in ids}
    seen: set[tuple[str, ...]] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            problems.append(f"line {line_no}: {len(row)} fields, the header has {len(header)}")
            continue
        if row[-1] != "#":
            problems.append(f"line {line_no}: the End-of-Line Indicator is {row[-1]!r}, not '#'")
        who = tuple(row[: len(ids)])
        for key, value in zip(ids, who, strict=True):
            if value not in known[key]:
                problems.append(f"line {line_no}: {key} {value!r} is not in the classlist")
        if who in seen:
            problems.append(f"line {line_no}: {', '.join(who)} appears twice")
        seen.add(who)
        grade = row[len(ids)]
        if items[0].endswith(" Points Grade"):
            problems += grade_problems(grade, line_no, max_score, max_score)
        elif labels and grade not in labels:
            problems.append(f"line {line_no}: grade {grade!r} is not one of the labels {', '.join(labels)}")
    return problems
