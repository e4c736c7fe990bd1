"""Lay a demo cohort out as a learning platform's "download all submissions" gives it (Moodle, Canvas, Brightspace,
ILIAS), with the roster each platform exports, so the tutorials can show the whole round trip on files nobody has
to upload.

    python scripts/platform_download.py brightspace submissions/ --out demo/brightspace
    python scripts/platform_download.py ilias submissions/ --out demo/ilias --zip

The input is a folder of Moodle-named student folders (`Full Name_123456_assignsubmission_file_`: the demo
cohorts, submissions/ and those scripts/make_demo*.py write). It writes, under --out:

- moodle: `download/` (or `.zip`) of `Full Name_<id>_assignsubmission_file_/` folders, and `worksheet.csv`, the
  assignment's grading worksheet (Identifier `Participant <id>`, Full name, Email address, Status, Grade, ...).
- canvas: `download/` (or `.zip`), each file named `lastfirst_<user id>_<attachment id>_<file>`, and
  `gradebook.csv`, the gradebook export (Student, ID, SIS User ID, SIS Login ID, Section, `<--item> (4321)`).
- brightspace: `download/` (or `download.zip`), each file named `<submission>-<folder> - First Last- <date> -
  <file>` beside an index.html, as Brightspace's Assignments tool names them; and `classlist.csv`, the classlist
  export (OrgDefinedId, Username, Last Name, First Name, Email, End-of-Line Indicator, ids prefixed '#' as
  Brightspace writes them). The first student also has an earlier submission (a copy of another student's
  file), which grading passes over for the later one.
- ilias: `download/` (or `.zip`) nesting `<exercise>/Abgaben/Lastname_Firstname_login_<user id>/<file>` as
  ILIAS's exercise download does, names in ASCII; and `status.csv`, the assignment's status file with every
  participant `notgraded` (StudOn's, or the ExerciseStatusFile plugin's), as ILIAS exports it.

Nothing here is committed: demo/ is ignored by git.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import unicodedata
import zipfile
from pathlib import Path

from grader.discovery import MOODLE_FOLDER
from grader.outputs.ilias import STATUS_TITLES

BRIGHTSPACE_FOLDER_ID = 482915
BRIGHTSPACE_DATES = ("Oct 3, 2026 1159 PM", "Oct 5, 2026 930 AM")
ILIAS_EXERCISE = "Uebung_9"


def students(cohort: Path) -> list[tuple[str, str, list[Path]]]:
    """(name, id, files) of each Moodle-named student folder, in name order."""
    found = []
    for folder in sorted(cohort.iterdir()):
        match = MOODLE_FOLDER.match(folder.name)
        if match and folder.is_dir():
            found.append((match.group("name"), match.group("id"), sorted(p for p in folder.iterdir() if p.is_file())))
    if not found:
        raise SystemExit(f"{cohort}: no Moodle-named student folders (Full Name_123456_assignsubmission_file_)")
    return found


def ascii_name(text: str) -> str:
    """A name as ILIAS writes it in file names: umlauts spelt out, other marks dropped, no spaces."""
    spelt = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
    spelt = spelt.replace("Ä", "Ae").replace("Ö", "Oe").replace("Ü", "Ue")
    plain = unicodedata.normalize("NFKD", spelt).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9-]+", "", plain.replace(" ", "-"))


def brightspace(cohort: list[tuple[str, str, list[Path]]], out: Path) -> tuple[dict[str, Path], Path]:
    files: dict[str, Path] = {}
    submission = 150000
    for index, (name, _, paths) in enumerate(cohort):
        if index == 0 and len(cohort) > 1 and cohort[1][2]:
            # An earlier submission the student replaced: a file of another's, which must not be graded.
            submission += 1
            files[f"{submission}-{BRIGHTSPACE_FOLDER_ID} - {name}- {BRIGHTSPACE_DATES[0]} - {cohort[1][2][0].name}"] = (
                cohort[1][2][0]
            )
        submission += 1
        for path in paths:
            files[f"{submission}-{BRIGHTSPACE_FOLDER_ID} - {name}- {BRIGHTSPACE_DATES[1]} - {path.name}"] = path
    roster = out / "classlist.csv"
    with open(roster, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["OrgDefinedId", "Username", "Last Name", "First Name", "Email", "End-of-Line Indicator"])
        for name, student_id, _ in cohort:
            first, _, last = name.partition(" ")
            login = ascii_name(first).lower()[:1] + ascii_name(last).lower()
            writer.writerow([f"#2026{student_id}", f"#{login}", last, first, f"{login}@example.ca", "#"])
    return files, roster


def ilias(cohort: list[tuple[str, str, list[Path]]], out: Path) -> tuple[dict[str, Path], Path]:
    files: dict[str, Path] = {}
    roster = out / "status.csv"
    with open(roster, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(STATUS_TITLES)
        for name, student_id, paths in cohort:
            first, _, last = name.partition(" ")
            login = "u" + ascii_name(first).lower()[:1] + ascii_name(last).lower()[:4]
            folder = f"{ascii_name(last)}_{ascii_name(first)}_{login}_{student_id}"
            for path in paths:
                files[f"{ILIAS_EXERCISE}/Abgaben/{folder}/{path.name}"] = path
            writer.writerow(
                ["0", student_id, login, ascii_name(last), ascii_name(first), "notgraded", "", "", "", "", ""]
            )
    return files, roster


def moodle(cohort: list[tuple[str, str, list[Path]]], out: Path) -> tuple[dict[str, Path], Path]:
    """Moodle's "Download all submissions" (folders kept, as grader's demo holds them) and the assignment's
    grading worksheet (View all submissions > Download grading worksheet)."""
    files = {
        f"{name}_{student_id}_assignsubmission_file_/{path.name}": path
        for name, student_id, paths in cohort
        for path in paths
    }
    roster = out / "worksheet.csv"
    with open(roster, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Identifier",
                "Full name",
                "Email address",
                "Status",
                "Grade",
                "Maximum Grade",
                "Grade can be changed",
                "Last modified (submission)",
                "Last modified (grade)",
                "Feedback comments",
            ]
        )
        for name, student_id, paths in cohort:
            email = ascii_name(name).lower().replace("-", ".") + "@example.ac.uk"
            status = "Submitted for grading" if paths else "No submission"
            writer.writerow([f"Participant {student_id}", name, email, status, "", "20.00", "Yes", "-", "-", ""])
    return files, roster


def canvas(
    cohort: list[tuple[str, str, list[Path]]], out: Path, item: str = "Coursework"
) -> tuple[dict[str, Path], Path]:
    """Canvas's "Download Submissions" (flat: lastfirst_<user id>_<attachment id>_<file>) and the gradebook export
    (Grades > Export), whose assignment column is '<item> (4321)'."""
    files: dict[str, Path] = {}
    attachment = 700000
    roster = out / "gradebook.csv"
    with open(roster, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{item} (4321)"])
        writer.writerow(["    Points Possible", "", "", "", "", "20.00"])
        for name, student_id, paths in cohort:
            first, _, last = name.partition(" ")
            sortable = re.sub(r"[^a-z]", "", f"{last}{first}".lower())
            for path in paths:
                attachment += 1
                files[f"{sortable}_{student_id}_{attachment}_{path.name}"] = path
            writer.writerow([f"{last}, {first}", student_id, f"S{student_id}", f"{sortable}@example.edu", "Lab", ""])
    return files, roster


def write(files: dict[str, Path], target: Path, zipped: bool, index: bool) -> Path:
    if zipped:
        path = target.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, source in files.items():
                archive.write(source, name)
            if index:
                archive.writestr("index.html", _index(files))
        return path
    for name, source in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / name)
    if index:
        (target / "index.html").write_text(_index(files), encoding="utf-8")
    return target


def _index(files: dict[str, Path]) -> str:
    rows = "".join(f"<tr><td>{name}</td></tr>" for name in files)
    return f"<!DOCTYPE html><html><body><table>{rows}</table></body></html>\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("platform", choices=["moodle", "canvas", "brightspace", "ilias"])
    parser.add_argument("cohort", type=Path, help="a folder of Moodle-named student folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--zip", action="store_true", help="write the download as a zip, as the platform sends it")
    parser.add_argument("--item", default="Coursework", help="canvas: the assignment's title in the gradebook export")
    args = parser.parse_args()
    cohort = students(args.cohort)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    layouts = {"moodle": moodle, "canvas": canvas, "brightspace": brightspace, "ilias": ilias}
    files, roster = (
        canvas(cohort, args.out, args.item) if args.platform == "canvas" else layouts[args.platform](cohort, args.out)
    )
    download = write(files, args.out / "download", args.zip, index=args.platform == "brightspace")
    print(f"wrote {download} ({len(cohort)} students, {len(files)} files) and {roster}")


if __name__ == "__main__":
    main()
