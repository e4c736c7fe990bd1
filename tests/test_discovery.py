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
