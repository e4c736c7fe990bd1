"""Stage: each unit's listing checked (links, special files, size), its file hashed where it lies (or its hash
taken from the gradebook when its stat is unchanged), and a private copy made, checked against that hash, only
when something still has to read it; with the companion files a format names (an ONNX graph's external data)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from grader import formats
from grader.checks.screening import FAIL, size_check
from grader.discovery import Submission, SubmittedFile
from grader.evaluation.staging import StagingError, fingerprint, stage, stat_key
from grader.run.context import RunContext
from grader.run.rows import Rows
from grader.run.unit import Unit


class Stager:
    """Hashes and copies the run's files; a unit whose file cannot be read is finished with the reason."""

    def __init__(self, context: RunContext, rows: Rows) -> None:
        self.context, self.rows = context, rows
        self._staged = 0
        "Copies made so far (each copy's name is its number)."

    def identify(self, unit: Unit) -> bool:
        """Check the listing and hash the chosen file where it lies. False when the unit is decided."""
        submission = unit.submission
        if submission.chosen is None:
            self.rows.finish(unit, submission.problem_status, submission.problem)
            return False
        chosen = submission.chosen
        if chosen.kind == "link":
            self.rows.finish(
                unit, "refused", f"{chosen.name} is a symbolic link, which is never followed; upload the file itself"
            )
            return False
        if chosen.kind == "special":
            self.rows.finish(unit, "unreadable", f"{chosen.name} is not a regular file (a FIFO, socket or device)")
            return False
        size = size_check(chosen.size, self.context.rules)
        unit.checks.append(size)
        if size.outcome == FAIL:
            self.rows.finish(unit, "refused", f"file size: {size.message}")
            return False
        problem = self.hash(unit)
        if problem is not None:
            self.rows.finish(unit, "unreadable", problem)
            return False
        return True

    def hash(self, unit: Unit) -> str | None:
        """Set the unit's sha256 and size from the gradebook (a file unchanged since it was hashed) or by
        reading it; the reason when it cannot be read."""
        book, submission = self.context.book, unit.submission
        chosen = submission.chosen
        assert chosen is not None
        key = stat_key(submission) if not self.context.rehash else None
        known = book.fingerprint(chosen.location, key) if key else None
        if known is not None:
            # Unchanged since it was hashed: a re-mark reads no file. (Anything that must read the file
            # copies it and checks this sha256 against the copy.)
            unit.sha256, unit.size = known, chosen.size
            return None
        try:
            unit.sha256, unit.size = fingerprint(submission)
        except StagingError as error:
            return str(error)
        book.add_file(unit.sha256, unit.size)
        if key and key == stat_key(submission):
            book.add_fingerprint(chosen.location, key, unit.sha256)
        return None

    def copy(self, unit: Unit, *, quiet: bool = False) -> Path | None:
        """The private copy of the unit's file, made on first need; None (unit finished, unless quiet) if
        it fails."""
        if unit.staged is None:
            try:
                unit.staged = stage(
                    unit.submission,
                    self.context.staging / f"{self._staged}{suffix(unit, self.context.rules.formats_of(unit.part))}",
                    unit.sha256,
                )
                self._staged += 1
            except StagingError as error:
                if not quiet:
                    self.rows.finish(unit, "unreadable", str(error))
                return None
        return unit.staged.path

    def companions(self, unit: Unit) -> list[tuple[SubmittedFile, str]] | None:
        """The files an ONNX graph keeps its weights in (screening has checked each is a plain file of the
        same folder), hashed where they lie; the unit's sha256 becomes the hash of the graph and its data
        together, so a changed data file is evaluated again. None (unit finished) if one cannot be read."""
        graph = formats.of_inspection(unit.inspection)
        names = graph.companions(unit.inspection) if graph is not None and unit.inspection is not None else ()
        if not names:
            return []
        listed = {f.name: f for f in unit.submission.files}
        found = []
        for name in names:
            file = listed[name]
            try:
                sha256, _ = fingerprint(replace(unit.submission, chosen=file))
            except StagingError as error:
                self.rows.finish(unit, "unreadable", str(error))
                return None
            found.append((file, sha256))
        together = "".join(f"{file.name}\n{sha}\n" for file, sha in found)
        unit.sha256 = hashlib.sha256(f"{unit.sha256}\n{together}".encode()).hexdigest()
        return found

    def stage_companions(
        self, unit: Unit, companions: list[tuple[SubmittedFile, str]]
    ) -> tuple[tuple[Path, str], ...] | None:
        """Private copies of the companion files, checked against the hashes taken; None (unit finished) if
        one changed or cannot be read."""
        staged = []
        for file, sha256 in companions:
            target = self.context.staging / f"{self._staged}-{file.name}"
            self._staged += 1
            try:
                copy = stage(replace(unit.submission, chosen=file), target, sha256)
            except StagingError as error:
                self.rows.finish(unit, "unreadable", str(error))
                return None
            staged.append((copy.path, file.name))
        return tuple(staged)


def suffix(unit: Unit, accepted: tuple[str, ...]) -> str:
    """The suffix a staged copy keeps (loaders go by it): the chosen file's format's, else the part's first's."""
    chosen = unit.submission.chosen
    return formats.of_file(None, chosen.name if chosen is not None else "", accepted).suffixes[0]


def beside(submission: Submission) -> dict[str, int]:
    """The plain files at the top of a student's folder, by name, with their sizes (for external data)."""
    return {f.name: f.size for f in submission.files if "/" not in f.name and f.kind == "file"}
