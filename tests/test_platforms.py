"""Brightspace and ILIAS, in and out: their downloads graded with the same marks as plain folders, every student
identified, and their imports built from a run and checked against a roster written as each platform writes it."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.outputs import brightspace, ilias
from grader.outputs.exports import ExportError, Marks, read_roster

from .conftest import DEMO_HELDOUT
from .test_exports import golden, row

# Three students' files, laid out as each platform's download lays them out. Zoë handed in twice on Brightspace
# (the later file is the CNN, which is graded); the group's file is a third model.
FILES = {"zoe": "cnn.h5", "jean": "mlp.h5", "group": "logits.h5"}
BRIGHTSPACE_NAMES = {
    "150432-482915 - Zoë O'Neil-Smith- Oct 3, 2026 1159 PM - model.h5": "mlp.h5",
    "151207-482915 - Zoë O'Neil-Smith- Oct 5, 2026 930 AM - model.h5": "cnn.h5",
    "150433-482915 - 20067931 - Jean-Luc Picard- Oct 3, 2026 1005 AM - mnist.h5": "mlp.h5",
    "150441-482915 - Group 7- Oct 4, 2026 115 PM - group_model.h5": "logits.h5",
}
ILIAS_NAMES = {
    "Uebung_9/Abgaben/ONeil-Smith_Zoe_uzoe_4711/model.h5": "cnn.h5",
    "Uebung_9/Abgaben/Picard_Jean-Luc_ujlp_4712/Late Submission - mnist.h5": "mlp.h5",
    "Uebung_9/Abgaben/Gruppe_Sieben_ugr7_4713/group_model.h5": "logits.h5",
}
PLAIN = {"zoe/model.h5": "cnn.h5", "jean/mnist.h5": "mlp.h5", "group/group_model.h5": "logits.h5"}
CLASSLIST = """OrgDefinedId,Username,Last Name,First Name,Email,End-of-Line Indicator
#20067930,#zoneil,O'Neil-Smith,Zoë,zoe@example.ca,#
#20067931,#jpicard,Picard,Jean-Luc,jean-luc@example.ca,#
#20067932,#ffinn,Finn,Fay,fay@example.ca,#
"""
STATUS_FILE = """update,usr_id,login,lastname,firstname,status,mark,notice,comment,plagiarism,plag_comment
0,4711,uzoe,ONeil-Smith,Zoe,notgraded,,,,,
0,4712,ujlp,Picard,Jean-Luc,notgraded,,,,,
0,4713,ugr7,Gruppe,Sieben,notgraded,,,,,
0,4714,uabs,Abwesend,Max,notgraded,,,,,
"""


def lay_out(root: Path, models: Path, names: dict[str, str], *, zipped: bool) -> Path:
    if zipped:
        root.parent.mkdir(parents=True, exist_ok=True)
        target = root.with_suffix(".zip")
        with zipfile.ZipFile(target, "w") as archive:
            for name, source in names.items():
                archive.write(models / source, name)
            if names is BRIGHTSPACE_NAMES:
                archive.writestr("index.html", "<html><body>submissions</body></html>")
        return target
    for name, source in names.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(models / source, root / name)
    if names is BRIGHTSPACE_NAMES:
        (root / "index.html").write_text("<html><body>submissions</body></html>")
    return root


def graded(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "marks.csv", newline="") as handle:
        return {line["student_id"]: line for line in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, models: Path) -> dict[str, tuple[Path, dict]]:
    """The same files graded as plain folders, as Brightspace's download (zip and folder) and as ILIAS's."""
    from grader.cohort import grade_cohort

    work = tmp_path_factory.mktemp("platforms")
    found = {}
    for name, names, zipped in (
        ("plain", PLAIN, False),
        ("brightspace-zip", BRIGHTSPACE_NAMES, True),
        ("brightspace-folder", BRIGHTSPACE_NAMES, False),
        ("ilias-zip", ILIAS_NAMES, True),
        ("ilias-folder", ILIAS_NAMES, False),
    ):
        download = lay_out(work / name / "download", models, names, zipped=zipped)
        out = work / name / "reports"
        grade_cohort(download, heldout=DEMO_HELDOUT, out=out, integrity=False)
        found[name] = (out, graded(out))
    return found


@pytest.mark.tensorflow
def test_each_platforms_download_gets_the_marks_of_plain_folders(runs) -> None:
    """Every student identified as the platform names them, and each file's mark what plain folders give it."""
    plain = {line["sha256"]: line for line in runs["plain"][1].values()}
    expected_ids = {
        "brightspace": {"Zoë O'Neil-Smith", "20067931", "Group 7"},
        "ilias": {"4711", "4712", "4713"},
    }
    for name, (_, lines) in runs.items():
        if name == "plain":
            continue
        assert set(lines) == expected_ids[name.split("-")[0]], name
        assert all(line["student_name"] for line in lines.values()), name
        for line in lines.values():
            same = plain[line["sha256"]]
            assert (line["status"], line["accuracy"], line["score"]) == (
                same["status"],
                same["accuracy"],
                same["score"],
            )
    zoe = runs["brightspace-zip"][1]["Zoë O'Neil-Smith"]
    assert zoe["sha256"] == runs["plain"][1]["zoe"]["sha256"]  # the later submission, the CNN
    assert runs["ilias-folder"][1]["4712"]["student_name"] == "Jean-Luc Picard"


@pytest.mark.tensorflow
def test_brightspace_export_from_a_run_matches_the_classlist_and_lists_the_group(runs, tmp_path: Path) -> None:
    """`grade export brightspace`: the Grades import for the classlist (ids without Brightspace's '#'), Fay (no
    submission) left out, and the group's submission listed with its mark and why, never dropped."""
    reports = runs["brightspace-zip"][0]
    roster = tmp_path / "classlist.csv"
    roster.write_text(CLASSLIST, encoding="utf-8")
    target = tmp_path / "grades.csv"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "brightspace",
            "--reports",
            str(reports),
            "--roster",
            str(roster),
            "--item",
            "A4",
            "--out",
            str(target),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "1 submissions match no one in the classlist" in result.output and "Group 7" in result.output
    lines = list(csv.reader(io.StringIO(target.read_text())))
    assert lines[0] == ["OrgDefinedId", "Username", "A4 Points Grade", "End-of-Line Indicator"]
    scores = {line["student_id"]: line["score"] for line in runs["brightspace-zip"][1].values()}
    assert lines[1:] == [
        ["20067930", "zoneil", scores["Zoë O'Neil-Smith"], "#"],
        ["20067931", "jpicard", scores["20067931"], "#"],
    ]
    people = brightspace.classlist(read_roster(roster))
    assert brightspace.check_grades_csv(target.read_text(), 20, people) == []
    aside = list(csv.DictReader(io.StringIO((tmp_path / "grades-unmatched.csv").read_text())))
    assert [(line["student_id"], line["grade"]) for line in aside] == [("Group 7", scores["Group 7"])]
    assert aside[0]["reason"].startswith("no one in the classlist is Group 7")


@pytest.mark.tensorflow
def test_ilias_exports_from_a_run_pass_the_status_file_and_multi_feedback_checks(runs, tmp_path: Path) -> None:
    """`grade export ilias-status` fills in ILIAS's status file (update 1 for each graded participant, the
    others kept); `ilias-feedback` gives each participant's folder their report.html."""
    reports = runs["ilias-zip"][0]
    roster = tmp_path / "status.csv"
    roster.write_text(STATUS_FILE, encoding="utf-8")
    runner = CliRunner()
    status = tmp_path / "status-upload.csv"
    result = runner.invoke(
        cli,
        ["export", "ilias-status", "--reports", str(reports), "--roster", str(roster), "--out", str(status)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = {line["usr_id"]: line for line in csv.DictReader(io.StringIO(status.read_text()))}
    scores = {line["student_id"]: line for line in runs["ilias-zip"][1].values()}
    for usr_id in ("4711", "4712", "4713"):
        assert lines[usr_id]["update"] == "1" and lines[usr_id]["mark"] == scores[usr_id]["score"]
        assert lines[usr_id]["status"] == ("passed" if float(scores[usr_id]["score"]) > 0 else "failed")
        assert lines[usr_id]["comment"].startswith("Accuracy ")
    assert (lines["4714"]["update"], lines["4714"]["status"]) == ("0", "notgraded")
    assert ilias.check_status_csv(status.read_text(), 20, read_roster(roster)) == []
    feedback = tmp_path / "multi_feedback.zip"
    result = runner.invoke(
        cli, ["export", "ilias-feedback", "--reports", str(reports), "--roster", str(roster), "--out", str(feedback)]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(feedback) as archive:
        names = sorted(archive.namelist())
        assert names[0].startswith("multi_feedback_") and names[0].endswith("/Gruppe_Sieben_ugr7_4713/report.html")
        assert b"<!DOCTYPE html>" in archive.read(names[0])
    assert ilias.check_feedback_zip(feedback.read_bytes(), {"4711", "4712", "4713", "4714"}) == []


# Pure parts: golden files and the importers' rules --------------------------------------------------------

ROWS = [
    row("20067930", "Zoë O'Neil-Smith", folder="150432-482915 - 20067930 - Zoë O'Neil-Smith- Oct 3, 2026 1159 PM"),
    row("Jean-Luc Picard", "Jean-Luc Picard", "graded", 13.0, 11412, folder="150433-482915 - Jean-Luc Picard"),
    row("Group 7", "Group 7", "graded", 9.0, 11000, folder="150441-482915 - Group 7"),
    row("Ann Other", "ann other", "refused", reason="layers: uses Lambda", folder="150442-482915 - ann other"),
]
ILIAS_ROWS = [
    row("4711", "Zoe ONeil-Smith", folder="ONeil-Smith_Zoe_uzoe_4711"),
    row("4712", "Jean-Luc Picard", "graded", 0.0, 5000, folder="Picard_Jean-Luc_ujlp_4712"),
    row("team-5", "Team 5", "graded", 9.0, 11000, folder="Team_5_files"),
]


def marks(rows, *, grade_as: str = "score") -> Marks:
    labels = ("passed", "not passed") if grade_as == "label" else ()
    return Marks(
        rows=rows, title="SYDE 522 A4", max_score=20, reports=Path("reports"), labels=labels, grade_as=grade_as
    )


def people(text: str = CLASSLIST) -> list[brightspace.Person]:
    return brightspace.classlist([{k: v for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))])


def test_brightspace_grades_csv_golden() -> None:
    """By org defined id, by name (accents and case aside); the group and an unknown name are left to be
    listed; Fay, who handed nothing in, gets a 0 under --ungraded zero."""
    text, unmatched = brightspace.grades_csv(marks(ROWS), people(), item="Assignment 4", ungraded="zero")
    golden("brightspace.csv", text)
    assert brightspace.check_grades_csv(text, 20, people()) == []
    assert [(r["student_id"], why.split(" (")[0]) for r, why in unmatched] == [
        ("Group 7", "no one in the classlist is Group 7"),
        ("Ann Other", "no one in the classlist is ann other"),
    ]


def test_brightspace_two_people_of_one_name_are_not_guessed() -> None:
    twins = CLASSLIST + "#20067933,#jpicard2,Picard,Jean-Luc,jl2@example.ca,#\n"
    _, unmatched = brightspace.grades_csv(marks(ROWS[1:2]), people(twins), item="A4", ungraded="skip")
    assert unmatched[0][1] == "2 people in the classlist are named Jean-Luc Picard"


def test_brightspace_one_person_is_given_one_submission() -> None:
    """A person named twice (by org defined id and by name) keeps the first submission; the second is listed."""
    twice = [ROWS[0], row("Zoë O'Neil-Smith", "Zoë O'Neil-Smith", "graded", 9.0, 11000, folder="x")]
    text, unmatched = brightspace.grades_csv(marks(twice), people(), item="A4", ungraded="skip")
    assert text.splitlines()[1:] == ["20067930,zoneil,20,#"]
    assert unmatched[0][1] == "Zoë O'Neil-Smith is the classlist's person already given 20067930's mark"


def test_brightspace_text_grade_for_a_signoff_label() -> None:
    signed = [row("20067930", "Zoë O'Neil-Smith") | {"detail": {"mark": {"label": "passed"}}}]
    text, _ = brightspace.grades_csv(marks(signed, grade_as="label"), people(), item="Ex 9", ungraded="skip")
    assert text.splitlines() == [
        "OrgDefinedId,Username,Ex 9 Text Grade,End-of-Line Indicator",
        "20067930,zoneil,passed,#",
    ]


def test_ilias_status_csv_golden_without_a_roster() -> None:
    """Without ILIAS's status file, a line per graded participant, read from the folder names; a mark of 0 is
    failed; the team's own files are not given to anyone, and say so."""
    text, left_out = ilias.status_csv(marks(ILIAS_ROWS), None, ungraded="skip")
    golden("ilias-status.csv", text)
    assert ilias.check_status_csv(text, 20, None) == []
    assert left_out == ["team-5 (Team 5): not in an ILIAS participant folder"]


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        (
            lambda: brightspace.check_grades_csv(
                "Username,OrgDefinedId,A Points Grade,End-of-Line Indicator\n", 20, people()
            ),
            "the header must start with OrgDefinedId and/or Username, in that order",
        ),
        (
            lambda: brightspace.check_grades_csv("OrgDefinedId,A Points Grade\n20067930,5\n", 20, people()),
            "the last column must be 'End-of-Line Indicator'",
        ),
        (
            lambda: brightspace.check_grades_csv(
                "OrgDefinedId,A Points Grade,End-of-Line Indicator\n20067930,21,#\n", 20, people()
            ),
            "line 2: grade 21 is outside 0-20 (maximum 20)",
        ),
        (
            lambda: brightspace.check_grades_csv(
                "OrgDefinedId,A Points Grade,End-of-Line Indicator\n99999999,5,#\n", 20, people()
            ),
            "line 2: OrgDefinedId '99999999' is not in the classlist",
        ),
        (
            lambda: brightspace.check_grades_csv(
                "OrgDefinedId,A Points Grade,End-of-Line Indicator\n20067930,5,\n", 20, people()
            ),
            "line 2: the End-of-Line Indicator is '', not '#'",
        ),
        (
            lambda: ilias.check_status_csv("update,usr_id,status\n1,4711,passed\n", 20, None),
            "the titles row lacks login, lastname, firstname, mark, notice, comment, plagiarism, plag_comment",
        ),
        (
            lambda: ilias.check_status_csv(
                STATUS_FILE.replace("0,4711,uzoe,ONeil-Smith,Zoe,notgraded", "1,4711,uzoe,ONeil-Smith,Zoe,bestanden"),
                20,
                None,
            ),
            "line 2: status 'bestanden' is not one of notgraded, passed, failed",
        ),
        (
            lambda: ilias.check_status_csv(
                STATUS_FILE.replace("0,4712,ujlp,Picard,Jean-Luc,notgraded,", "1,4712,ujlp,Picard,Jean-Luc,passed,25"),
                20,
                None,
            ),
            "line 3: grade 25 is outside 0-20 (maximum 20)",
        ),
        (
            lambda: ilias.check_status_csv(STATUS_FILE, 20, [{"usr_id": "4711"}]),
            "line 3: user 4712 is not a member of the exercise",
        ),
    ],
)
def test_checkers_find_what_brightspace_and_ilias_would_refuse(check, problem: str) -> None:
    assert problem in check()


def test_ilias_feedback_zip_check_reads_folders_as_ilias_does() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("multi_feedback_A4/ONeil-Smith_Zoe_uzoe_4711/report.html", "x")
        archive.writestr("multi_feedback_A4/Picard_Jean-Luc_ujlp/report.html", "x")
        archive.writestr("multi_feedback_A4/Gruppe_Sieben_ugr7_4713/.hidden", "x")
    problems = ilias.check_feedback_zip(buffer.getvalue(), {"4711"})
    assert problems == [
        "multi_feedback_A4/Picard_Jean-Luc_ujlp/report.html: the folder does not end in _<user id>",
        "multi_feedback_A4/Gruppe_Sieben_ugr7_4713/.hidden: ILIAS reads files directly inside a participant's "
        "folder (and skips hidden ones)",
    ]


def test_ilias_exports_refuse_a_run_that_did_not_come_from_ilias() -> None:
    """A cohort graded from another platform's download has no ILIAS user ids: both ILIAS exports say so."""
    with pytest.raises(ExportError, match="no student is in an ILIAS participant folder"):
        ilias.status_csv(marks(ROWS), None, ungraded="skip")
    with pytest.raises(ExportError, match="no student is in an ILIAS participant folder"):
        ilias.feedback_zip(marks(ROWS))


def test_brightspace_needs_a_classlist_with_its_ids() -> None:
    with pytest.raises(ExportError, match="neither OrgDefinedId nor Username"):
        brightspace.classlist([{"Name": "x"}])
