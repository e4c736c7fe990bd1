"""Discovery: who each folder belongs to, and which file is graded, from folders and Moodle zips."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from grader.discovery import discover_submissions
from grader.errors import SubmissionsError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def by_id(root: Path) -> dict:
    return {s.student_id: s for s in discover_submissions(root, ("keras-h5",))}


def test_moodle_folder_gives_name_and_participant_id(tmp_path: Path) -> None:
    """`Full Name_123456_assignsubmission_file_` is student 123456, named Full Name."""
    touch(tmp_path / "Zoë O'Neil-Smith_123456_assignsubmission_file_" / "model.h5")
    submission = by_id(tmp_path)["123456"]
    assert submission.student_name == "Zoë O'Neil-Smith"
    assert submission.chosen.name == "model.h5"
    assert submission.folder == "Zoë O'Neil-Smith_123456_assignsubmission_file_"


def test_other_folder_names_are_the_student_id(tmp_path: Path) -> None:
    """A folder not named by Moodle is taken as the id, with no name."""
    touch(tmp_path / "k1234567" / "net.h5")
    submission = by_id(tmp_path)["k1234567"]
    assert (submission.student_name, submission.chosen.name) == ("", "net.h5")


def test_last_h5_in_name_order_is_graded_and_the_choice_noted(tmp_path: Path) -> None:
    """Several .h5 files: the last in code-point order of the name is graded, deterministically."""
    folder = tmp_path / "A B_1_assignsubmission_file_"
    for name in ("model_v2.h5", "Model_v3.h5", "model_v10.h5", "notes.txt"):
        touch(folder / name)
    submission = by_id(tmp_path)["1"]
    assert submission.chosen.name == "model_v2.h5"  # 'M' < 'm', and '1' < '2' character by character
    assert submission.notes == ("3 .h5 files: graded model_v2.h5 (last in name order), not Model_v3.h5, model_v10.h5",)


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "no file submitted"),
        ({"model.keras": b"PK"}, "no .h5 file: found model.keras, a .keras file (Keras 3 zip format), not .h5"),
        ({"sub/model.h5": b"x"}, "no .h5 file at the top of the folder (found sub/model.h5 in a subfolder"),
        ({"report.pdf": b"%PDF"}, "no .h5 file (found report.pdf)"),
    ],
)
def test_folders_without_an_h5_say_why(tmp_path: Path, files: dict, problem: str) -> None:
    """No .h5, a .keras file instead, an .h5 in a subfolder: each is reported for that student."""
    folder = tmp_path / "A B_7_assignsubmission_file_"
    folder.mkdir()
    for name, data in files.items():
        touch(folder / name, data)
    submission = by_id(tmp_path)["7"]
    assert submission.chosen is None
    assert submission.problem.startswith(problem)
    assert submission.problem_status == "no_file"


def test_upper_case_suffix_is_graded_and_noted(tmp_path: Path) -> None:
    """MODEL.H5 is graded, with a note that the official script only finds lower-case .h5."""
    touch(tmp_path / "A B_8_assignsubmission_file_" / "MODEL.H5")
    submission = by_id(tmp_path)["8"]
    assert submission.chosen.name == "MODEL.H5"
    assert "only loads names ending in lower-case .h5" in submission.notes[0]


def test_links_and_special_files_are_never_followed(tmp_path: Path) -> None:
    """A symlinked model, a symlinked student folder and a FIFO are listed as such, never opened."""
    outside = touch(tmp_path / "outside" / "secret.h5")
    root = tmp_path / "submissions"
    (root / "A B_1_assignsubmission_file_").mkdir(parents=True)
    os.symlink(outside, root / "A B_1_assignsubmission_file_" / "model.h5")
    os.symlink(outside.parent, root / "C D_2_assignsubmission_file_")
    (root / "E F_3_assignsubmission_file_").mkdir()
    os.mkfifo(root / "E F_3_assignsubmission_file_" / "model.h5")
    found = by_id(root)
    assert found["1"].chosen.kind == "link"
    assert (found["2"].chosen, found["2"].problem_status) == (None, "refused")
    assert "symbolic link" in found["2"].problem
    assert found["3"].chosen.kind == "special"


def test_hidden_entries_are_ignored(tmp_path: Path) -> None:
    """.DS_Store, __MACOSX and other hidden entries are not students."""
    touch(tmp_path / ".DS_Store")
    touch(tmp_path / "__MACOSX" / "x")
    touch(tmp_path / "A B_1_assignsubmission_file_" / "._model.h5")
    touch(tmp_path / "A B_1_assignsubmission_file_" / "model.h5")
    found = by_id(tmp_path)
    assert list(found) == ["1"]
    assert [f.name for f in found["1"].files] == ["model.h5"]


def test_moodle_flat_download_is_grouped_by_student(tmp_path: Path) -> None:
    """With folders turned off Moodle prefixes each file; those files group into one student."""
    touch(tmp_path / "A B_5_assignsubmission_file_model.h5")
    touch(tmp_path / "A B_5_assignsubmission_file_readme.txt")
    submission = by_id(tmp_path)["5"]
    assert submission.chosen.name == "model.h5"
    assert len(submission.files) == 2


def test_moodle_zip_is_read_in_place(tmp_path: Path) -> None:
    """`grade submissions.zip` reads Moodle's zip without extracting it, path-climbing entries refused."""
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("A B_1_assignsubmission_file_/model.h5", b"hdf5?")
        handle.writestr("A B_1_assignsubmission_onlinetext_/onlinetext.html", b"<p>hi</p>")
        handle.writestr("../evil.h5", b"x")
    found = by_id(archive)
    assert found["1"].chosen.location == "A B_1_assignsubmission_file_/model.h5"
    assert found["1"].folder == "A B_1_assignsubmission_file_"
    assert found["1"].zip_path == str(archive.resolve())
    evil = found["../evil.h5"]
    assert (evil.chosen, evil.problem_status) == (None, "refused")


def test_bad_submissions_paths_are_clear_errors(tmp_path: Path) -> None:
    """A missing path or a file that is not a zip stops the run with a message."""
    with pytest.raises(SubmissionsError, match="no such folder or zip"):
        discover_submissions(tmp_path / "missing", ("keras-h5",))
    with pytest.raises(SubmissionsError, match="not a folder of submissions or a Moodle zip"):
        discover_submissions(touch(tmp_path / "file.txt"), ("keras-h5",))


def test_canvas_download_names_give_the_canvas_user_id(tmp_path: Path) -> None:
    """Canvas's flat download (lastfirst[_LATE]_userid_attachmentid_file) groups by the Canvas user id."""
    touch(tmp_path / "lovelaceada_12345_67890_mlp_model.h5")
    touch(tmp_path / "turingalan_LATE_23456_78901_cnn.h5")
    found = by_id(tmp_path)
    assert (found["12345"].student_name, found["12345"].chosen.name) == ("lovelaceada", "mlp_model.h5")
    assert found["23456"].chosen.name == "cnn.h5"


def download(tmp_path: Path, files: dict[str, bytes], *, zipped: bool) -> Path:
    """The files as a platform's download: a folder, or a zip of the same names."""
    if not zipped:
        for name, data in files.items():
            touch(tmp_path / "download" / name, data)
        return tmp_path / "download"
    root = tmp_path / "download.zip"
    with zipfile.ZipFile(root, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return root


BRIGHTSPACE = {
    # Two submissions of one student: the later one counts (the report names both).
    "150432-482915 - Zoë O'Neil-Smith- Oct 3, 2026 1159 PM - model.h5": b"first",
    "151207-482915 - Zoë O'Neil-Smith- Oct 5, 2026 930 AM - model.h5": b"second",
    "150433-482915 - Jean-Luc Picard- Oct 3, 2026 1005 AM - mnist_cnn.h5": b"x",
    "150433-482915 - Jean-Luc Picard- Oct 3, 2026 1005 AM - notes.txt": b"x",
    # The form with the student's org defined id before the name.
    "150440-482915 - 20067930 - Frank Catcher- Oct 4, 2026 1201 AM - net.h5": b"x",
    # A group assignment names the group.
    "150441-482915 - Group 7- Oct 4, 2026 115 PM - group_model.h5": b"x",
    "index.html": b"<html></html>",
}


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_brightspace_download_names_each_student_and_grades_the_latest_submission(tmp_path: Path, layout: str) -> None:
    """Brightspace's flat download (folder or zip, beside index.html): the name (or the org defined id when the
    name carries one) is the student; of two submissions the latest is graded and the report says which."""
    root = download(tmp_path, BRIGHTSPACE, zipped=layout == "zip")
    found = by_id(root)
    assert set(found) == {"Zoë O'Neil-Smith", "Jean-Luc Picard", "20067930", "Group 7"}
    zoe = found["Zoë O'Neil-Smith"]
    assert zoe.student_name == "Zoë O'Neil-Smith" and zoe.chosen.name == "model.h5"
    assert zoe.folder == "151207-482915 - Zoë O'Neil-Smith- Oct 5, 2026 930 AM"
    assert zoe.facts == ("2 submissions: graded the latest, of Oct 5, 2026 930 AM (not Oct 3, 2026 1159 PM)",)
    assert not zoe.notes  # a resubmission is the platform's way, not a choice to review
    location = zoe.chosen.location
    if layout == "folder":
        assert Path(location).read_bytes() == b"second"
    else:
        assert zipfile.ZipFile(root).read(location) == b"second"
    assert found["20067930"].student_name == "Frank Catcher"
    assert found["Jean-Luc Picard"].chosen.name == "mnist_cnn.h5" and not found["Jean-Luc Picard"].facts
    assert found["Group 7"].chosen.name == "group_model.h5"


def test_a_zip_without_the_utf8_flag_keeps_accented_names(tmp_path: Path) -> None:
    """A zip writer that stores UTF-8 names without flagging them (Python would read them as cp437) still gives
    'Zoë', and the member is opened by its stored name."""
    root = tmp_path / "download.zip"
    with zipfile.ZipFile(root, "w") as archive:
        info = zipfile.ZipInfo("150432-482915 - Zoë Ådahl- Oct 3, 2026 1159 PM - model.h5")
        archive.writestr(info, b"data")
    raw = root.read_bytes().replace(b"\x00\x08", b"\x00\x00")  # clear the UTF-8 flag (bit 11) in both headers
    root.write_bytes(raw)
    assert not zipfile.ZipFile(root).infolist()[0].flag_bits & 0x800
    (submission,) = discover_submissions(root, ("keras-h5",))
    assert submission.student_name == "Zoë Ådahl"
    assert zipfile.ZipFile(root).read(submission.chosen.location) == b"data"


ILIAS = {
    "Uebung_9/Abgaben/Mueller_Anna_uabcd_4711/model.h5": b"anna",
    "Uebung_9/Abgaben/van_der_Berg_Jan_ujvdb_4712/Late Submission - digits.h5": b"jan",
    "Uebung_9/Abgaben/Oezdemir_Ayse_uoez_4713/notes.pdf": b"x",
}
ILIAS_TEAMS = {
    "Uebung_9/Abgaben/Team 3/Mueller_Anna_uabcd_4711/model.h5": b"anna",
    "Uebung_9/Abgaben/Team 3/Schmidt_Paul_upsch_4714/model.h5": b"paul",
    "Uebung_9/Abgaben/Team 5/Team_5_files/team.h5": b"team",
}


@pytest.mark.parametrize("layout", ["folder", "zip"])
@pytest.mark.parametrize("files", [ILIAS, ILIAS_TEAMS], ids=["individual", "teams"])
def test_ilias_download_gives_the_ilias_user_id_through_its_folders(tmp_path: Path, layout: str, files) -> None:
    """ILIAS's download nests Lastname_Firstname_login_id folders inside the exercise's and the assignment's
    (and `Team <n>` folders): each participant is the ILIAS user id, named first name first."""
    root = download(tmp_path, files, zipped=layout == "zip")
    found = by_id(root)
    if files is ILIAS:
        assert set(found) == {"4711", "4712", "4713"}
        assert (found["4711"].student_name, found["4711"].chosen.name) == ("Anna Mueller", "model.h5")
        assert found["4711"].folder == "Mueller_Anna_uabcd_4711"
        assert found["4712"].student_name == "Jan van der Berg"
        assert found["4712"].chosen.name == "Late Submission - digits.h5"
        assert found["4712"].facts == ("Late Submission - digits.h5: ILIAS marks it as handed in after the deadline",)
        assert found["4713"].chosen is None and found["4713"].problem.startswith("no .h5 file")
    else:
        assert set(found) == {"4711", "4714", "team-5"}
        assert found["4714"].chosen.name == "model.h5"
        assert (found["team-5"].student_name, found["team-5"].chosen.name) == ("Team 5", "team.h5")


def test_a_folder_of_plain_student_folders_is_not_taken_for_ilias(tmp_path: Path) -> None:
    """Only a level whose folders all look like ILIAS's makes the download ILIAS's: a student folder holding a
    folder named like a participant's stays that student's."""
    touch(tmp_path / "k1234567" / "net.h5")
    touch(tmp_path / "k7654321" / "my_model_v_2" / "net.h5")
    assert set(by_id(tmp_path)) == {"k1234567", "k7654321"}


def test_an_ilias_participant_folder_that_is_a_link_is_refused_not_followed(tmp_path: Path) -> None:
    """A symbolic link where ILIAS puts a participant's folder is that participant's row, refused; its target is
    never read."""
    outside = touch(tmp_path / "outside" / "secret.h5").parent
    touch(tmp_path / "download" / "Uebung_9" / "Abgaben" / "Mueller_Anna_uabcd_4711" / "model.h5")
    (tmp_path / "download" / "Uebung_9" / "Abgaben" / "Evil_Eve_ueve_4712").symlink_to(outside)
    found = by_id(tmp_path / "download")
    assert found["4711"].chosen.name == "model.h5"
    assert (found["4712"].problem_status, found["4712"].chosen) == ("refused", None)
    assert "symbolic link" in found["4712"].problem
