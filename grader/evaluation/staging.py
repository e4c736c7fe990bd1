"""Hash a chosen submission file where it lies, and copy it into the run's private work folder when
something still has to read it.

A file whose inspection and evaluation are already in the gradebook is only hashed (a re-mark reads
each file once and copies nothing). A file that must be inspected or evaluated is copied, and the copy
is hashed again: the bytes that were hashed are the bytes that are inspected and evaluated, whatever
happens to the student's folder meanwhile. The source is opened without following symbolic links, and
reading stops at the size the listing gave.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from grader.discovery import Submission
from grader.errors import StagingError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Staged:
    """A private copy of a submitted file."""

    path: Path
    sha256: str
    size: int


def fingerprint(submission: Submission) -> tuple[str, int]:
    """The sha256 and size of the chosen file, read where it lies."""
    return _read(submission, None)


def stat_key(submission: Submission) -> str | None:
    """What identifies an unchanged file on disk without reading it: device, inode, size, mtime and ctime in
    nanoseconds (as git's index does; ctime cannot be set back by any ordinary tool). None for a file in
    a zip, which is always read."""
    chosen = submission.chosen
    if chosen is None or submission.zip_path:
        return None
    try:
        info = os.stat(chosen.location, follow_symlinks=False)
    except OSError:
        return None
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def stage(submission: Submission, target: Path, expected_sha256: str) -> Staged:
    """Copy the chosen file to `target`; refuse a copy whose bytes differ from the ones fingerprinted."""
    sha256, size = _read(submission, target)
    if sha256 != expected_sha256:
        target.unlink(missing_ok=True)
        assert submission.chosen is not None
        raise StagingError(f"{submission.chosen.name} changed while it was being graded; run grade again")
    return Staged(path=target, sha256=sha256, size=size)


def _read(submission: Submission, target: Path | None) -> tuple[str, int]:
    chosen = submission.chosen
    assert chosen is not None
    digest = hashlib.sha256()
    size = 0
    try:
        with _open_source(submission) as source, open(target, "xb") if target else contextlib.nullcontext() as sink:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > chosen.size:
                    raise StagingError(f"{chosen.name} grew while it was read (listed as {chosen.size:,} bytes)")
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
    except OSError as error:
        _discard(target)
        raise StagingError(f"cannot read {chosen.name} ({error.strerror or error})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError) as error:
        _discard(target)
        raise StagingError(f"cannot extract {chosen.name} from the zip ({error})") from None
    except StagingError:
        _discard(target)
        raise
    return digest.hexdigest(), size


def _discard(target: Path | None) -> None:
    if target is not None:
        target.unlink(missing_ok=True)


@contextlib.contextmanager
def _open_source(submission: Submission) -> Iterator[IO[bytes]]:
    chosen = submission.chosen
    assert chosen is not None
    if submission.zip_path:
        with zipfile.ZipFile(submission.zip_path) as archive, archive.open(chosen.location) as member:
            yield member
        return
    # O_NOFOLLOW: a symbolic link swapped in after listing is refused, not followed out of the folder.
    fd = os.open(chosen.location, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as source:
        yield source
