"""Find each student's submission in a folder of student folders or in Moodle's zip.

Moodle's "Download all submissions" names a folder `Full Name_123456_assignsubmission_file_` (the
name with '_' turned into spaces, then the participant id and the plugin); with folders turned off it
prefixes each file with the same words instead. Canvas's "Download Submissions" prefixes each file with
`lastfirst_<user id>_<attachment id>_`, and the Canvas user id is the student id. Brightspace's (D2L) "Download"
of an assignment's submissions is flat, beside an index.html: each file named `<number>-<number> - First Last-
<Mon D, YYYY HMM AM> - <file>`, or with the student's org defined id before the name (`... - <org id> - First
Last- ...`); the student is the org id when the name carries one, else the name, and of several submissions the
latest counts. ILIAS's "Download all submissions" of an exercise unit nests a folder per participant,
`Lastname_Firstname_login_<user id>` (inside the exercise's and assignment's folders, and `Team <n>` for team
assignments); the ILIAS user id is the student id. Any other folder name is taken as the student id.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader import formats as model_formats
from grader.errors import SubmissionsError
from grader.formats import advice, refusal, suffixes

MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_$")
MOODLE_FLAT = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_(?P<file>.+)$")
# Canvas's "Download Submissions": sortablenamewithoutspaces[_LATE]_<user id>_<attachment id>_<file name>.
CANVAS_FLAT = re.compile(r"^(?P<name>[a-z-]+)(?:_LATE)?_(?P<id>\d+)_(?P<attachment>\d+)_(?P<file>.+)$")
# Brightspace's download: <number>-<number> - [<org defined id> - ]First Last- <Mon D, YYYY HMM AM> - <file name>.
BRIGHTSPACE_FLAT = re.compile(
    r"^(?P<submission>\d+)-(?P<number>\d+) - (?:(?P<org>[A-Za-z]{0,3}\d[\w.]*) - )?(?P<name>\S.*?)- "
    r"(?P<date>[A-Z][a-z]{2,8}\.? \d{1,2}, \d{4} \d{1,2}:?\d{2} ?[AP]M) - (?P<file>.+)$"
)
BRIGHTSPACE_INDEX = "index.html"
# ILIAS's download: a folder per participant, Lastname_Firstname_login_<user id> (ASCII only), and per team.
ILIAS_PARTICIPANT = re.compile(r"^(?P<last>.+)_(?P<first>[^_]+)_(?P<login>[^_]+)_(?P<id>\d+)$")
ILIAS_TEAM = re.compile(r"^Team (?P<id>\d+)$")
ILIAS_LATE = ("Late Submission - ", "Verspaetete Abgabe - ", "Verspätete Abgabe - ")
"How ILIAS's download prefixes a file handed in after the deadline (English and German)."
ILIAS_DEPTH = 4
"How deep below the download's top an ILIAS participant folder is looked for (exercise, assignment, team)."
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
    facts: tuple[str, ...] = field(default=())
    "What the download says of the choice that needs no review (the latest of several submissions, a late file)."
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
    if any(entry.attempt for entry in entries):
        # Brightspace's index.html lists the download; it is nobody's submission.
        entries = [e for e in entries if not (e.folder == BRIGHTSPACE_INDEX and e.file and "/" not in e.file.name)]
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
    submitted: str = ""
    "When the platform says this submission was handed in, as its download writes it (Brightspace's)."
    attempt: tuple[Any, ...] = ()
    "How a student's submissions order in time, the latest last; empty where the download holds only one."


def _folder_entries(root: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    try:
        children = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise SubmissionsError(f"{root}: cannot list this folder ({error.strerror})") from None
    participants = _ilias_folders(root)
    if participants:
        return [
            entry
            for folder, student in participants
            for entry in (
                [
                    _Entry(
                        folder.name, *student, None, f"{folder.name} is a symbolic link; it was not followed", "refused"
                    )
                ]
                if folder.is_symlink()
                else _student_folder(folder, *student)
            )
        ]
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
            entries.extend(_student_folder(Path(child.path), student_id, student_name))
        else:
            entries.append(_flat_entry(child.name, _listed(Path(child.path), child.name)))
    return entries


def _student_folder(folder: Path, student_id: str, student_name: str) -> list[_Entry]:
    """One student's folder: an entry per file in it (subfolders walked), or one saying it is empty or unreadable."""
    try:
        files = list(_walk(folder, ""))
    except OSError as error:
        return [
            _Entry(
                folder.name, student_id, student_name, None, f"cannot read the folder ({error.strerror})", "unreadable"
            )
        ]
    if not files:
        return [_Entry(folder.name, student_id, student_name, None)]
    return [_Entry(folder.name, student_id, student_name, f) for f in files]


def _ilias_folders(root: Path) -> list[tuple[Path, tuple[str, str]]]:
    """ILIAS's participant folders below `root` (found by `_ilias_level`), each with its student id and name; none
    when the download is not ILIAS's. A `Team <n>` folder's own folders are its members', or the team's files.
    Symbolic links are never followed."""

    def folders_in(where: tuple[str, ...]) -> list[str]:
        place = root.joinpath(*where)
        return [] if where and place.is_symlink() else [path.name for path in _subfolders(place)]

    level = _ilias_level(folders_in)
    if level is None:
        return []
    found: list[tuple[Path, tuple[str, str] | None]] = []
    for path in _subfolders(root.joinpath(*level)):
        team = ILIAS_TEAM.match(path.name)
        if team and path.is_symlink():
            found.append((path, (f"team-{team.group('id')}", path.name)))
        elif team:
            found += [(inner, _ilias_identity(inner.name, path.name)) for inner in _subfolders(path)]
        else:
            found.append((path, _ilias_identity(path.name, "")))
    return [(path, student) for path, student in found if student is not None]


def _ilias_level(folders_in: Callable[[tuple[str, ...]], list[str]]) -> tuple[str, ...] | None:
    """Where ILIAS's participant folders lie in a download, given the folders in each place (a folder's on disk, a
    zip's in its member paths): ILIAS wraps them in one folder per level (the exercise's, the assignment's); a
    level holding one folder is entered, and the first level whose folders all name participants (or `Team <n>`)
    is the cohort's. None when the download is not ILIAS's."""
    where: tuple[str, ...] = ()
    for _ in range(ILIAS_DEPTH):
        names = folders_in(where)
        if names and all(ILIAS_PARTICIPANT.match(name) or ILIAS_TEAM.match(name) for name in names):
            return where
        if len(names) != 1:
            return None
        where = (*where, names[0])
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        children = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    # A symbolic link named like a folder is kept (and refused by its caller), never followed.
    return [
        Path(c.path) for c in children if not _ignored(c.name) and (c.is_dir(follow_symlinks=False) or c.is_symlink())
    ]


def _ilias_identity(name: str, parent: str) -> tuple[str, str] | None:
    """A folder's student id and name when ILIAS names it for a participant, or for a team's own files (a folder
    inside `Team <n>` that names no participant); else None."""
    match = ILIAS_PARTICIPANT.match(name)
    if match:
        return match.group("id"), f"{match.group('first')} {match.group('last')}".replace("_", " ")
    team = ILIAS_TEAM.match(parent)
    if team:
        return f"team-{team.group('id')}", parent
    return None


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
    named = [(info, PurePosixPath(_member_name(info).replace("\\", "/")).parts) for info in infos]
    ilias = _ilias_zip_depth([parts for _, parts in named])
    for info, parts in named:
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
        # Zips made on Windows store no Unix mode (0): those are plain files.
        kind = _kind(mode) if mode else "file"
        if ilias is not None:
            # ILIAS: the participant's folder at its depth (or inside `Team <n>`); files outside are nobody's.
            at = ilias + 1 if ILIAS_TEAM.match(parts[ilias]) and len(parts) > ilias + 2 else ilias
            student = _ilias_identity(parts[at], parts[at - 1] if at > ilias else "") if len(parts) > at + 1 else None
            if student is not None:
                listed = SubmittedFile("/".join(parts[at + 1 :]), info.file_size, info.filename, kind)
                entries.append(_Entry(parts[at], *student, listed))
            continue
        listed = SubmittedFile(
            name="/".join(parts[1:]) if len(parts) > 1 else parts[0],
            size=info.file_size,
            location=info.filename,
            kind=kind,
        )
        if len(parts) == 1:
            entries.append(_flat_entry(parts[0], listed))
        else:
            student_id, student_name = _identity(parts[0])
            entries.append(_Entry(parts[0], student_id, student_name, listed))
    return entries


def _ilias_zip_depth(paths: list[tuple[str, ...]]) -> int | None:
    """The depth (0 at the top) of ILIAS's participant or team folders in a zip's member paths (`_ilias_level`);
    None when the zip is not an ILIAS download. A zip's folders are the parts of its members' paths."""

    def folders_in(where: tuple[str, ...]) -> list[str]:
        depth = len(where)
        return sorted({parts[depth] for parts in paths if len(parts) > depth + 1 and parts[:depth] == where})

    level = _ilias_level(folders_in)
    return None if level is None else len(level)


def _member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as its writer meant it: UTF-8 where the zip did not flag it (Python then reads it as
    cp437, and 'Zoë' would come out as 'ZoÙ'), when those bytes are UTF-8."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _flat_entry(name: str, listed: SubmittedFile) -> _Entry:
    """A file at the top of the download: Moodle's, Canvas's or Brightspace's flat naming, or a loose file named
    for a student."""
    for pattern in (MOODLE_FLAT, CANVAS_FLAT):
        match = pattern.match(name)
        if match:
            prefix = name[: match.start("file")]
            renamed = SubmittedFile(match.group("file"), listed.size, listed.location, listed.kind)
            return _Entry(prefix, match.group("id"), match.group("name"), renamed)
    match = BRIGHTSPACE_FLAT.match(name)
    if match:
        prefix = name[: match.start("file")]
        renamed = SubmittedFile(match.group("file"), listed.size, listed.location, listed.kind)
        student_name = match.group("name").strip()
        return _Entry(
            prefix.rstrip(" -"),
            match.group("org") or student_name,
            student_name,
            renamed,
            submitted=match.group("date"),
            attempt=(_brightspace_time(match.group("date")), int(match.group("submission"))),
        )
    return _Entry(name, Path(name).stem or name, "", listed)


def _brightspace_time(text: str) -> datetime:
    """When Brightspace's file name says a submission was made ('Sep 5, 2026 1159 PM'); the earliest time
    when it cannot be read (the submission's number then orders it)."""
    plain = text.replace(".", "").replace(":", "").replace("AM", " AM").replace("PM", " PM")
    plain = " ".join(plain.split())
    for form in ("%b %d, %Y %I%M %p", "%B %d, %Y %I%M %p"):
        try:
            return datetime.strptime(plain, form)
        except ValueError:
            continue
    return datetime.min


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
    name = next((entry.student_name for entry in group if entry.student_name), "")
    facts: tuple[str, ...] = ()
    if any(entry.attempt for entry in group):
        # Several submissions (Brightspace keeps each): the latest counts; the others are named.
        latest = max((entry for entry in group if entry.attempt), key=lambda entry: entry.attempt)
        file_folders = [latest.folder]
        times = sorted({(entry.attempt, entry.submitted) for entry in group if entry.attempt})
        if len(times) > 1:
            before = "; ".join(text for _, text in times[:-1])
            facts = (f"{len(times)} submissions: graded the latest, of {latest.submitted} (not {before})",)
    folder = file_folders[0]
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
    if chosen.name.startswith(ILIAS_LATE):
        facts += (f"{chosen.name}: ILIAS marks it as handed in after the deadline",)
    return Submission(**base, chosen=chosen, notes=notes, facts=facts)


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
