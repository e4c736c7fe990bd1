"""Find each student's submission in a folder of student folders or in Moodle's zip.

Moodle's "Download all submissions" names a folder `Full Name_123456_assignsubmission_file_` (the
name with '_' turned into spaces, then the participant id and the plugin); with folders turned off it
prefixes each file with the same words instead. Canvas's "Download Submissions" prefixes each file with
`lastfirst_<user id>_<attachment id>_`, and the Canvas user id is the student id. Any other folder name
is taken as the student id.

The model file is chosen as the official script does ("last if more than one"), made deterministic:
among the files at the top of the student's folder whose names end in .h5 (any case; or the suffixes of the
formats the assignment takes, .keras and .onnx), the last in Unicode code-point order of the name. A pickle
(.pt, .pth, .ckpt, .pkl) is refused by its name, never opened. Nothing here reads a file's content.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from grader import formats as model_formats
from grader.errors import SubmissionsError
from grader.formats import advice, refusal, suffixes

MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_$")
MOODLE_FLAT = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_(?P<file>.+)$")
# Canvas's "Download Submissions": sortablenamewithoutspaces[_LATE]_<user id>_<attachment id>_<file name>.
CANVAS_FLAT = re.compile(r"^(?P<name>[a-z-]+)(?:_LATE)?_(?P<id>\d+)_(?P<attachment>\d+)_(?P<file>.+)$")
IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class SubmittedFile:
    """One file in a student's folder, as listed (never opened here)."""

    name: str
    "Path inside the student's folder, '/'-separated."
    size: int
    "Size in bytes as the folder or zip listing gives it."
    location: str
    "Absolute path on disk, or the member name inside the zip."
    kind: str = "file"
    "'file', 'link' (a symbolic link: never followed) or 'special' (a FIFO, socket or device: never opened)."


@dataclass(frozen=True)
class Submission:
    """One student's entry in the download, and the file chosen for grading."""

    student_id: str
    "Moodle participant id, or the folder name when it is not a Moodle folder."
    student_name: str
    "Full name from the Moodle folder name, or ''."
    folder: str
    "The folder (or flat-file prefix) this entry came from."
    files: tuple[SubmittedFile, ...]
    "Every file seen for this student."
    chosen: SubmittedFile | None
    "The file to grade, or None with `problem` saying why."
    problem: str = ""
    "Why no file can be graded (empty when one was chosen)."
    problem_status: str = "no_file"
    "The status that problem gives: 'no_file', 'refused' (a link, a path leaving the zip) or 'unreadable'."
    notes: tuple[str, ...] = field(default=())
    "Things a marker should know about the choice (several .h5 files, an upper-case suffix, ...)."
    zip_path: str = ""
    "The Moodle zip the files are in, or '' for a folder on disk."


def discover_submissions(path: str | Path, formats: tuple[str, ...]) -> list[Submission]:
    """List every student's submission under a folder or inside a Moodle zip, sorted by folder name; a model
    file is one whose name ends as one of `formats` says (Coursework 1: .h5)."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        entries = _zip_entries(path)
        zip_path = str(path.resolve())
    elif path.is_dir():
        entries = _folder_entries(path)
        zip_path = ""
    elif path.exists():
        raise SubmissionsError(f"{path}: not a folder of submissions or a Moodle zip")
    else:
        raise SubmissionsError(f"{path}: no such folder or zip")
    groups = _group_by_student(entries)
    submissions = [_choose(key, group, zip_path, formats) for key, group in groups.items()]
    return sorted(submissions, key=lambda s: (s.folder, s.student_id))


@dataclass
class _Entry:
    folder: str
    student_id: str
    student_name: str
    file: SubmittedFile | None
    problem: str = ""
    status: str = "no_file"


def _folder_entries(root: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    try:
        children = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise SubmissionsError(f"{root}: cannot list this folder ({error.strerror})") from None
    for child in children:
        if _ignored(child.name):
            continue
        student_id, student_name = _identity(child.name)
        if child.is_symlink():
            entries.append(
                _Entry(
                    child.name,
                    student_id,
                    student_name,
                    None,
                    f"{child.name} is a symbolic link; it was not followed",
                    "refused",
                )
            )
        elif child.is_dir(follow_symlinks=False):
            try:
                files = list(_walk(Path(child.path), ""))
            except OSError as error:
                entries.append(
                    _Entry(
                        child.name,
                        student_id,
                        student_name,
                        None,
                        f"cannot read the folder ({error.strerror})",
                        "unreadable",
                    )
                )
                continue
            if not files:
                entries.append(_Entry(child.name, student_id, student_name, None))
            entries.extend(_Entry(child.name, student_id, student_name, f) for f in files)
        else:
            entries.append(_flat_entry(child.name, _listed(Path(child.path), child.name)))
    return entries


def _walk(folder: Path, prefix: str) -> Iterable[SubmittedFile]:
    for child in sorted(os.scandir(folder), key=lambda e: e.name):
        if _ignored(child.name):
            continue
        name = f"{prefix}{child.name}"
        if child.is_dir(follow_symlinks=False):
            yield from _walk(Path(child.path), f"{name}/")
        else:
            yield _listed(Path(child.path), name)


def _listed(path: Path, name: str) -> SubmittedFile:
    info = path.lstat()
    return SubmittedFile(name=name, size=info.st_size, location=str(path.absolute()), kind=_kind(info.st_mode))


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    return "file" if stat.S_ISREG(mode) else "special"


def _zip_entries(path: Path) -> list[_Entry]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile) as error:
        raise SubmissionsError(f"{path}: cannot read this zip ({error})") from None
    entries: list[_Entry] = []
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if parts and (parts[0] == "/" or ".." in parts):
            # A zip that climbs out of its folder is not something Moodle writes: list it, never read it.
            entries.append(
                _Entry(
                    info.filename,
                    info.filename,
                    "",
                    None,
                    "the zip entry's path leaves the archive (absolute or '..'); not extracted",
                    "refused",
                )
            )
            continue
        if info.is_dir() or not parts or any(_ignored(part) for part in parts):
            continue
        mode = info.external_attr >> 16
        listed = SubmittedFile(
            name="/".join(parts[1:]) if len(parts) > 1 else parts[0],
            size=info.file_size,
            location=info.filename,
            # Zips made on Windows store no Unix mode (0): those are plain files.
            kind=_kind(mode) if mode else "file",
        )
        if len(parts) == 1:
            entries.append(_flat_entry(parts[0], listed))
        else:
            student_id, student_name = _identity(parts[0])
            entries.append(_Entry(parts[0], student_id, student_name, listed))
    return entries


def _flat_entry(name: str, listed: SubmittedFile) -> _Entry:
    """A file at the top of the download: Moodle's or Canvas's flat naming, or a loose file named for a student."""
    for pattern in (MOODLE_FLAT, CANVAS_FLAT):
        match = pattern.match(name)
        if match:
            prefix = name[: match.start("file")]
            renamed = SubmittedFile(match.group("file"), listed.size, listed.location, listed.kind)
            return _Entry(prefix, match.group("id"), match.group("name"), renamed)
    return _Entry(name, Path(name).stem or name, "", listed)


def _identity(folder: str) -> tuple[str, str]:
    match = MOODLE_FOLDER.match(folder)
    if match:
        return match.group("id"), match.group("name")
    return folder, ""


def _ignored(name: str) -> bool:
    # Hidden entries (.DS_Store, ._resource forks, .git) are never submissions.
    return name in IGNORED_NAMES or name.startswith(".")


def _group_by_student(entries: list[_Entry]) -> dict[str, list[_Entry]]:
    groups: dict[str, list[_Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.student_id, []).append(entry)
    return groups


def _choose(student_id: str, group: list[_Entry], zip_path: str, formats: tuple[str, ...]) -> Submission:
    # A participant can have one folder per submission plugin (file, onlinetext): the file folder names
    # the row, and only its files are graded.
    folders = sorted({entry.folder for entry in group})
    file_folders = [f for f in folders if f.endswith("_file_")] or folders
    folder = file_folders[0]
    name = next((entry.student_name for entry in group if entry.student_name), "")
    files = tuple(entry.file for entry in group if entry.file is not None and entry.folder in file_folders)
    problems = [entry for entry in group if entry.problem]
    base: dict[str, Any] = {
        "student_id": student_id,
        "student_name": name,
        "folder": folder,
        "files": files,
        "zip_path": zip_path,
    }
    if problems:
        return Submission(**base, chosen=None, problem=problems[0].problem, problem_status=problems[0].status)
    models = model_files(files, formats)
    if not models:
        problem, status = _why_no_model(files, formats)
        return Submission(**base, chosen=None, problem=problem, problem_status=status)
    chosen, notes = _last(models, formats)
    return Submission(**base, chosen=chosen, notes=notes)


def model_files(files: tuple[SubmittedFile, ...], formats: tuple[str, ...]) -> list[SubmittedFile]:
    """The files a model may be graded from: at the top of the folder, named as one of the formats (any
    case; Coursework 1: .h5), by name."""
    ends = suffixes(formats)
    return sorted((f for f in files if "/" not in f.name and f.name.lower().endswith(ends)), key=lambda f: f.name)


def choose_for_part(
    submission: Submission,
    files: list[SubmittedFile],
    *,
    part: str,
    elsewhere: list[str],
    formats: tuple[str, ...],
) -> Submission:
    """The student's entry with the file chosen for one part of a several-part assignment: the last in
    name order of the files matched to it, or a problem saying why there is none (`elsewhere` says where
    each of the student's other model files went, and why)."""
    if submission.problem:
        return submission
    if files:
        chosen, notes = _last(sorted(files, key=lambda f: f.name), formats)
        return replace(submission, chosen=chosen, notes=notes)
    status = "no_file"
    if not model_files(submission.files, formats):
        problem, status = _why_no_model(submission.files, formats)
    else:
        problem = f"no {_kind_of_file(formats)} file for part {part}: {'; '.join(elsewhere)}"
    return replace(submission, chosen=None, problem=problem, problem_status=status, notes=())


def _kind_of_file(formats: tuple[str, ...]) -> str:
    """'code (.py or .ipynb)' for a code part; for a part that takes one format, its word ('.h5'); else 'model'."""
    if formats and all(model_formats.named(name).code for name in formats):
        return "code (" + " or ".join(model_formats.named(name).suffixes[0] for name in formats) + ")"
    sole = model_formats.sole(formats)
    return sole.kind if sole is not None else "model"


def _last(models: list[SubmittedFile], formats: tuple[str, ...]) -> tuple[SubmittedFile, tuple[str, ...]]:
    """The official script's "last if more than one", in name order, and what a marker should know of it."""
    chosen = models[-1]
    notes = []
    if len(models) > 1:
        others = ", ".join(f.name for f in models[:-1])
        notes.append(
            f"{len(models)} {_kind_of_file(formats)} files: graded {chosen.name} (last in name order), not {others}"
        )
    found = model_formats.format_of(chosen.name)
    if found is not None:
        notes.extend(model_formats.named(found).notes(chosen.name))
    return chosen, tuple(notes)


def _why_no_model(files: tuple[SubmittedFile, ...], formats: tuple[str, ...]) -> tuple[str, str]:
    """Why no file can be graded, and the status that gives: 'refused' for a file that is never opened (a
    pickle), else 'no_file'."""
    kind = _kind_of_file(formats)
    if not files:
        return "no file submitted", "no_file"
    for listed in files:
        refused = refusal(Path(listed.name).name, formats)
        if refused and "/" not in listed.name:
            return refused, "refused"
    saved_model = next((f.name for f in files if f.name.lower().endswith("saved_model.pb")), None)
    sole = model_formats.sole(formats)
    other_suffixes = sole.other_suffixes if sole is not None else {}
    if saved_model is not None and not other_suffixes:
        return (
            f"{saved_model} belongs to a TensorFlow SavedModel folder, which this assignment does not take: "
            f"hand in {advice(formats)}",
            "refused",
        )
    ends = suffixes(formats)
    nested = [f.name for f in files if "/" in f.name and f.name.lower().endswith(ends)]
    if nested:
        return (
            f"no {kind} file at the top of the folder (found {nested[0]} in a subfolder; upload the file itself)",
            "no_file",
        )
    for listed in files:
        suffix = Path(listed.name).suffix.lower()
        reason = other_suffixes.get(suffix)
        if reason:
            return f"no {kind} file: found {listed.name}, {reason}", "no_file"
        if suffix in model_formats.all_suffixes() and not other_suffixes:
            return f"no {kind} file: found {listed.name}; this assignment takes {advice(formats)}", "no_file"
    names = ", ".join(f.name for f in files[:3]) + (", ..." if len(files) > 3 else "")
    return f"no {kind} file (found {names})", "no_file"


def person(name: str, student_id: str) -> str:
    """How reports name a student: 'Ada Lovelace (100001)', or the id alone when there is no name."""
    return f"{name} ({student_id})" if name else student_id
