"""Copy a chosen submission file into the run's private work folder, hashing it on the way.

Everything after this step reads the staged copy: the bytes that were hashed are the bytes that are
inspected and evaluated, whatever happens to the student's folder meanwhile. The source is opened
without following symbolic links, and reading stops at the size the listing gave.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from grader.discovery import Submission

CHUNK = 1 << 20


class StagingError(Exception):
    "The submitted file could not be read"


@dataclass(frozen=True)
class Staged:
    """A private copy of a submitted file."""

    path: Path
    sha256: str
    size: int


def stage(submission: Submission, target: Path) -> Staged:
    """Copy the chosen file of `submission` to `target`, returning its sha256 and size."""
    chosen = submission.chosen
    assert chosen is not None
    digest = hashlib.sha256()
    size = 0
    try:
        with _open_source(submission) as source, open(target, "xb") as sink:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > chosen.size:
                    raise StagingError(f"{chosen.name} grew while it was read (listed as {chosen.size:,} bytes)")
                digest.update(chunk)
                sink.write(chunk)
    except OSError as error:
        target.unlink(missing_ok=True)
        raise StagingError(f"cannot read {chosen.name} ({error.strerror or error})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError) as error:
        target.unlink(missing_ok=True)
        raise StagingError(f"cannot extract {chosen.name} from the zip ({error})") from None
    except StagingError:
        target.unlink(missing_ok=True)
        raise
    return Staged(path=target, sha256=digest.hexdigest(), size=size)


@contextlib.contextmanager
def _open_source(submission: Submission) -> Iterator[BinaryIO]:
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
