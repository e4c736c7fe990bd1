"""What the instructor chose for `grade serve`, validated once at start."""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from grader import defaults
from grader import formats as model_formats
from grader.checking import data_for, describe_data
from grader.courseworks.assignment import Assignment, Part
from grader.courseworks.datasets import public_dataset
from grader.courseworks.heldout import HeldoutSet, load_heldout
from grader.errors import GraderError
from grader.release import VERSION


@dataclass(frozen=True)
class PublicSet:
    """A part's public test set, as the server measures uploads on it."""

    path: Path
    "The file or folder it was read from."
    heldout: HeldoutSet
    "Its images and labels (the labels stay in the server's process)."
    description: str
    "How pages name it: 'MNIST test set (10,000 images)'."


@dataclass(frozen=True)
class ServeSettings:
    """How a `grade serve` instance checks uploads (command line > built-in defaults)."""

    assignment: Assignment
    "The coursework whose checks the page makes."
    data: dict[str, PublicSet]
    "Each model part's public test set, by part name: never the private held-out set."
    state: Path = defaults.SERVE_STATE
    "The store (serve.sqlite), the uploads being checked (spool/) and working files (work/)."
    workers: int = defaults.SERVE_WORKERS
    "Uploads checked at once, each by its own warm sandboxed worker."
    isolation: str = defaults.ISOLATION
    "The worker sandbox, as for `grade`."
    time_limit: float | None = None
    "Seconds one file may take to load and predict (default: the assignment's)."
    memory_limit_gb: float = defaults.MEMORY_LIMIT_GB
    "Resident memory one worker may use."
    spool_bytes: int = defaults.SPOOL_MB * 1024 * 1024
    "Disk the uploads waiting to be checked may use together."
    uploads_per_hour: int = defaults.UPLOADS_PER_HOUR
    "Uploads one client may make in an hour."
    course_token: str | None = None
    "When set, an upload must carry it (the course page links to /?token=...)."
    course_tokens: frozenset[str] = frozenset()
    "Personal tokens (one per student or group: --course-tokens FILE): an upload must carry one of them (or the"
    " course token), and each has its own hourly allowance (a campus NAT gives many students one address)."
    keep_uploads: Path | None = None
    "When set, each checked file is kept there (named by its sha256); else it is deleted once checked."
    min_upload_rate: float = defaults.MIN_UPLOAD_KB_PER_SECOND * 1024
    "Bytes per second an upload must average once upload_grace_seconds have passed; slower ones are cut off."
    upload_grace_seconds: float = defaults.UPLOAD_GRACE_SECONDS
    "When an upload's rate starts to count, and the longest pause between two of its chunks."
    keep_days: float = defaults.KEEP_DAYS
    "Results, upload records and kept uploads older than this are deleted, at start and daily."

    def __post_init__(self) -> None:
        # Absolute from the start: the workers' sandbox binds paths under the state folder, and a path
        # relative to the folder the server was started in means nothing there.
        object.__setattr__(self, "state", self.state.absolute())
        if self.keep_uploads is not None:
            object.__setattr__(self, "keep_uploads", self.keep_uploads.absolute())
        if not self.formats:
            raise GraderError(f"{self.assignment.name} takes no model files: grade serve checks model files only")
        missing = [part.name for part in self.assignment.model_parts if part.name not in self.data]
        if missing:
            raise GraderError(f"no public test set for part {', '.join(missing)}: pass --data PART=PATH")
        if self.workers < 1 or self.uploads_per_hour < 1 or self.spool_bytes < self.max_upload_bytes:
            raise GraderError(
                "--workers and --uploads-per-hour must be at least 1, and --spool-mb must hold one upload "
                f"of the assignment's limit ({self.max_upload_bytes / 1024**2:,.0f} MB)"
            )

    def admits(self, given: str) -> bool:
        """Whether a visitor holding `given` may upload: anyone when no token is set, else the holder of the
        course token or of a personal token (compared in constant time: by hash for the personal ones)."""
        if self.course_token is None and not self.course_tokens:
            return True
        if self.course_token is not None and secrets.compare_digest(given.encode(), self.course_token.encode()):
            return True
        return _hashed(given) in self._personal

    def counted_as(self, given: str, client: str) -> str:
        """What an admitted upload counts against: its personal token, else its client's address."""
        hashed = _hashed(given)
        return f"token {hashed[:16]}" if hashed in self._personal else f"address {client}"

    @functools.cached_property
    def _personal(self) -> frozenset[str]:
        return frozenset(_hashed(token) for token in self.course_tokens)

    @property
    def formats(self) -> tuple[str, ...]:
        """The model formats the page takes: the assignment's (its code files are checked by `grade check`)."""
        return tuple(name for name in self.assignment.formats if name in model_formats.model_formats())

    @property
    def max_upload_bytes(self) -> int:
        """The assignment's file-size limit: the page refuses a larger upload while it streams."""
        return self.assignment.limits.file_bytes.maximum

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file name endings the page takes ('.h5', ...)."""
        return model_formats.suffixes(self.formats)

    @property
    def parts(self) -> tuple[Part, ...]:
        return self.assignment.model_parts

    @property
    def setup(self) -> str:
        """What a stored result depends on beyond the file: the rules, the data, the limits, grader's release.
        A result is reused only under the same setup."""
        facts = {
            "assignment": self.assignment.sha256,
            "data": {name: public.heldout.sha256 for name, public in sorted(self.data.items())},
            "time_limit": self.time_limit,
            "memory_limit_gb": self.memory_limit_gb,
            "isolation": self.isolation,
            "grader": VERSION,
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_tokens(path: Path) -> frozenset[str]:
    """Personal tokens from a file: one per line (anything after the first space is a note, such as the student's
    name); blank lines and lines starting with '#' are skipped. A clear error for an unreadable file, a short
    token or none at all."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise GraderError(f"--course-tokens {path}: cannot be read ({error})") from None
    tokens = [line.split()[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]
    short = [number for number, token in enumerate(tokens, start=1) if len(token) < 16]
    if not tokens or short:
        raise GraderError(
            f"--course-tokens {path}: give one token of at least 16 characters per line"
            + (f" (token {short[0]} is shorter)" if short else " (the file holds none)")
            + "; python -c 'import secrets; print(secrets.token_urlsafe(24))' makes one"
        )
    return frozenset(tokens)


def public_sets(
    assignment: Assignment, data: str | Path | Mapping[str, str | Path] | None = None
) -> dict[str, PublicSet]:
    """Each model part's public test set: `data` (a path for a one-part assignment, else PART=PATH), else keras's
    download of the part's public set. Read once, at start, so that a bad path stops the server before it
    listens."""
    found = {}
    for part in assignment.model_parts:
        given = data_for(part, data)
        path = Path(given) if given is not None else public_dataset(part.data.public)
        heldout = load_heldout(path, part.data)
        found[part.name] = PublicSet(path, heldout, describe_data(heldout, path, part, downloaded=given is None))
    return found
