"""The gradebook: an SQLite file in the output folder that holds every run, file, inspection, evaluation
and result. Each student's result is committed as soon as it is known, so a run that dies loses
nothing that finished; marks.csv and the reports are rendered from here, never from memory.

Evaluations are stored by what decides them (the file's sha256, the held-out images' hash, the
assignment's evaluation rules and the grader version), so a second run evaluates only what changed,
and re-marking with new bands reads stored predictions without starting TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from grader.errors import GradebookBusy, GraderError

FILE_NAME = "gradebook.sqlite"
RECENT_EVALUATIONS = 16
SCHEMA_VERSION = 4
# One result per student and part of the assignment ('main' when it has one part).
RESULTS = """
CREATE TABLE IF NOT EXISTS {table} (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    student_id TEXT NOT NULL,
    part TEXT NOT NULL DEFAULT 'main',
    student_name TEXT NOT NULL,
    folder TEXT NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    correct INTEGER,
    total INTEGER,
    accuracy REAL,
    score REAL,
    band TEXT,
    evaluation_id INTEGER REFERENCES evaluations(id),
    detail TEXT NOT NULL,                -- JSON: checks, inspection, evaluation, mark (report.json)
    PRIMARY KEY (run_id, student_id, part)
);
"""
_RESULT_COLUMNS = (
    "run_id, student_id, student_name, folder, file, sha256, status, reason, correct, total, accuracy, score, "
    "band, evaluation_id, detail"
)
# How a gradebook of an older schema is brought up to this one, step by step (nothing is lost).
MIGRATIONS = {
    # 1 -> 2: outputs are stored exactly, in the model's own dtype (schema 1 kept float16, so a figure of
    # a near-tie could show another class than the one graded); ties record the images the official
    # script's argmax rule decided.
    1: ("ALTER TABLE evaluations ADD COLUMN outputs_dtype TEXT", "ALTER TABLE evaluations ADD COLUMN ties TEXT"),
    # 2 -> 3: a result per student and part (an assignment may ask for several models); the results of a
    # one-part assignment become its part 'main'.
    2: (
        RESULTS.format(table="results_by_part"),
        f"INSERT INTO results_by_part ({_RESULT_COLUMNS}, part) SELECT {_RESULT_COLUMNS}, 'main' FROM results",
        "DROP TABLE results",
        "ALTER TABLE results_by_part RENAME TO results",
    ),
    # 3 -> 4: each file's weights summarised for integrity evidence (the table SCHEMA creates).
    3: (),
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,                -- running | completed | interrupted
    grader_version TEXT NOT NULL,
    assignment_name TEXT NOT NULL,
    assignment_path TEXT NOT NULL,
    assignment_sha256 TEXT NOT NULL,
    heldout_source TEXT NOT NULL,
    heldout_sha256 TEXT NOT NULL,
    heldout_images_sha256 TEXT NOT NULL,
    heldout_size INTEGER NOT NULL,
    submissions TEXT NOT NULL,
    isolation TEXT NOT NULL,
    options TEXT NOT NULL                -- JSON
);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    path TEXT PRIMARY KEY,               -- a submitted file on disk
    stat TEXT NOT NULL,                  -- device, inode, size, mtime_ns and ctime_ns when it was hashed
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inspections (
    sha256 TEXT NOT NULL,
    inspector TEXT NOT NULL,             -- grader version that inspected
    result TEXT NOT NULL,                -- JSON (Inspection)
    PRIMARY KEY (sha256, inspector)
);
CREATE TABLE IF NOT EXISTS weights (
    sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,           -- grader.formats.fingerprint.REVISION
    summary TEXT NOT NULL,               -- JSON: weights hash, layers and their hashes, or why it is skipped
    kernels BLOB,                        -- npz of float16 kernels (plain arrays, read without pickles)
    PRIMARY KEY (sha256, revision)
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL,
    images_sha256 TEXT NOT NULL,
    evaluation_key TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    status TEXT NOT NULL,                -- answered | timeout | crashed | memory | processes
    reason TEXT NOT NULL,
    answer TEXT,                         -- JSON: the worker's answer without its outputs
    predictions BLOB,                    -- zlib(int16 argmax per image)
    outputs BLOB,                        -- zlib(outputs as the model gave them, little-endian)
    output_shape TEXT,
    nonfinite INTEGER,                   -- images whose outputs hold NaN or inf
    seconds REAL,
    isolation TEXT,
    created_at TEXT NOT NULL,
    outputs_dtype TEXT,                  -- numpy dtype of outputs ('<f4'); NULL in schema 1: float16
    ties TEXT,                           -- JSON: images whose top outputs were exactly tied, by class given
    UNIQUE (sha256, images_sha256, evaluation_key, grader_version)
);
CREATE TABLE IF NOT EXISTS alignments (
    first TEXT NOT NULL,                 -- the two files' sha256, in the order they were matched
    second TEXT NOT NULL,
    revision TEXT NOT NULL,              -- kernels' and matching's revisions (grader.marking.integrity)
    layers TEXT NOT NULL,                -- JSON: per layer [index, cosine, units kept in order, size]
    PRIMARY KEY (first, second, revision)
);
CREATE TABLE IF NOT EXISTS findings (
    key TEXT PRIMARY KEY,                -- sha256 of all a part's evidence is computed from (grader.evidence)
    findings TEXT NOT NULL               -- JSON: the part's findings, strongest first
);
CREATE TABLE IF NOT EXISTS figures (
    key TEXT PRIMARY KEY,                -- evaluation id, held-out sha256 and figure name
    png BLOB NOT NULL
);
""" + RESULTS.format(table="results")


@dataclass(frozen=True)
class Evaluation:
    """A stored evaluation: what the worker answered for one file on one held-out image set."""

    id: int
    status: str
    reason: str
    answer: dict[str, Any] | None
    predictions: np.ndarray | None
    output_shape: tuple[int, ...] | None
    nonfinite: int
    seconds: float
    isolation: str
    ties: dict[str, Any] | None = None
    "Images whose top outputs were exactly tied: {'images': n, 'classes': {class: n}} (see scoring.tied_top)."
    images_sha256: str = ""
    "The held-out images it predicted (predictions compare only on the same images)."


class Gradebook:
    """One output folder's SQLite gradebook, open for one run at a time (`Gradebook(folder)`, the writer), or read
    while anything else goes on (`Gradebook.reading(folder)`)."""

    def __init__(self, folder: Path) -> None:
        local_disk(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        self._lock_file: Any = open(folder / ".gradebook.lock", "a+")  # noqa: SIM115 (held for the run)
        if not try_lock(self._lock_file):
            self._lock_file.close()
            raise GradebookBusy(
                f"{folder}: another grade run is using this output folder; wait for it or pass another --out"
            )
        self._recent: dict[int, Evaluation] = {}
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        # WAL keeps every committed result through a crash or SIGKILL of this process.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        stored = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if stored is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        else:
            self._migrate(int(stored[0]))

    @classmethod
    def reading(cls, folder: Path) -> Gradebook:
        """The gradebook opened read-only (SQLite's mode=ro): no lock, no migration, nothing written, so a run
        writing it meanwhile is never blocked (and sees nothing of this reader). A gradebook of another schema is
        refused with the command that brings it up to date."""
        local_disk(folder)
        path = folder / FILE_NAME
        if not path.is_file():
            raise GraderError(f"{folder}: no gradebook here; pass the output folder of a grade run")
        book = cls.__new__(cls)
        book.path, book._lock_file, book._recent = path, None, {}
        book.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        book.db.row_factory = sqlite3.Row
        try:
            stored = book.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as error:
            book.db.close()
            raise GraderError(f"{path}: not a gradebook grader can read ({error})") from None
        schema = int(stored[0]) if stored else 0
        if schema != SCHEMA_VERSION:
            book.db.close()
            newer = schema > SCHEMA_VERSION
            raise GraderError(
                f"{path}: gradebook schema {schema}, this grader reads schema {SCHEMA_VERSION}; "
                + ("use the grader that wrote it" if newer else f"bring it up to date with `grade upgrade {folder}`")
            )
        return book

    def _migrate(self, schema: int) -> None:
        """Bring a gradebook written by an older grader up to SCHEMA_VERSION, in one transaction."""
        if schema > SCHEMA_VERSION or any(step not in MIGRATIONS for step in range(schema, SCHEMA_VERSION)):
            raise GraderError(
                f"{self.path}: gradebook schema {schema}, this grader reads schema {SCHEMA_VERSION}; "
                "use the grader that wrote it, or another --out folder"
            )
        if schema == SCHEMA_VERSION:
            return
        with self.transaction() as db:
            for step in range(schema, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        if self._lock_file is not None:
            # Back to a rollback journal when the run is done: SQLite then removes the -wal and -shm files, and
            # a read-only reader of a finished run makes none (a reader of a WAL database creates both and, read
            # only, cannot remove them). A reader still open keeps it in WAL (the switch waits for no one).
            with contextlib.suppress(sqlite3.OperationalError):
                self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # Runs -------------------------------------------------------------------------------------------

    def start_run(self, **fields: Any) -> int:
        fields = {**fields, "options": json.dumps(fields.get("options", {}), sort_keys=True)}
        columns = ", ".join(["started_at", "status", *fields])
        marks = ", ".join("?" * (len(fields) + 2))
        with self.transaction() as db:
            # A run still marked 'running' was killed: say so, keep its results.
            db.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
            cursor = db.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", (_now(), "running", *fields.values()))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status='completed', finished_at=? WHERE id=?", (_now(), run_id))

    def run(self, run_id: int | None = None) -> dict[str, Any]:
        """A run's metadata (the latest completed one when run_id is None)."""
        if run_id is None:
            row = self.db.execute("SELECT * FROM runs WHERE status='completed' ORDER BY id DESC LIMIT 1").fetchone()
        else:
            row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise GraderError(f"{self.path}: no completed run in this gradebook")
        run = dict(row)
        run["options"] = json.loads(run["options"])
        return run

    # Files and inspections --------------------------------------------------------------------------

    def add_file(self, sha256: str, size: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO files VALUES (?, ?)", (sha256, size))

    def fingerprint(self, path: str, stat: str) -> str | None:
        """The sha256 recorded for a file whose stat is unchanged since it was hashed, else None."""
        row = self.db.execute("SELECT sha256 FROM fingerprints WHERE path=? AND stat=?", (path, stat)).fetchone()
        return row[0] if row else None

    def add_fingerprint(self, path: str, stat: str, sha256: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?)", (path, stat, sha256))

    def inspection(self, sha256: str, inspector: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT result FROM inspections WHERE sha256=? AND inspector=?", (sha256, inspector)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def add_inspection(self, sha256: str, inspector: str, result: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO inspections VALUES (?, ?, ?)",
                (sha256, inspector, json.dumps(result, sort_keys=True)),
            )

    def weights(self, sha256: str, revision: int) -> tuple[dict[str, Any], bytes | None] | None:
        """A file's stored weights summary and kernels (grader.formats.fingerprint), or None."""
        row = self.db.execute(
            "SELECT summary, kernels FROM weights WHERE sha256=? AND revision=?", (sha256, revision)
        ).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def has_weights(self, sha256: str, revision: int) -> bool:
        query = "SELECT 1 FROM weights WHERE sha256=? AND revision=?"
        return self.db.execute(query, (sha256, revision)).fetchone() is not None

    def add_weights(self, sha256: str, revision: int, summary: dict[str, Any], kernels: bytes | None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO weights VALUES (?, ?, ?, ?)",
                (sha256, revision, json.dumps(summary, sort_keys=True), kernels),
            )

    def alignment(self, first: str, second: str, revision: str) -> list[list[Any]] | None:
        """Two files' kernels as matched unit by unit (grader.marking.integrity.align), when stored; None in a
        gradebook written before alignments were kept."""
        try:
            row = self.db.execute(
                "SELECT layers FROM alignments WHERE first=? AND second=? AND revision=?", (first, second, revision)
            ).fetchone()
        except sqlite3.OperationalError:
            return None
        return json.loads(row[0]) if row else None

    def add_alignment(self, first: str, second: str, revision: str, layers: list[Any]) -> None:
        """Keep a pair's matching for the next run; a gradebook open for reading keeps nothing."""
        if self._lock_file is None:
            return
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO alignments VALUES (?, ?, ?, ?)", (first, second, revision, json.dumps(layers))
            )

    def findings(self, key: str) -> list[dict[str, Any]] | None:
        """A part's integrity findings kept under `key` (grader.evidence), or None (never kept, or a gradebook
        written before findings were)."""
        try:
            row = self.db.execute("SELECT findings FROM findings WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return json.loads(row[0]) if row else None

    def add_findings(self, key: str, findings: list[dict[str, Any]]) -> None:
        """Keep a part's findings for the next run; a gradebook open for reading keeps nothing."""
        if self._lock_file is None:
            return
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO findings VALUES (?, ?)", (key, json.dumps(findings)))

    # Evaluations ------------------------------------------------------------------------------------

    def evaluation(
        self, sha256: str, images_sha256: str, evaluation_key: str, grader_version: str
    ) -> Evaluation | None:
        found = self.evaluation_id(sha256, images_sha256, evaluation_key, grader_version)
        return self.evaluation_by_id(found) if found is not None else None

    def evaluation_id(self, sha256: str, images_sha256: str, evaluation_key: str, grader_version: str) -> int | None:
        """The id of the stored evaluation of a file, or None: a lookup that reads no predictions."""
        row = self.db.execute(
            "SELECT id FROM evaluations WHERE sha256=? AND images_sha256=? AND evaluation_key=? AND grader_version=?",
            (sha256, images_sha256, evaluation_key, grader_version),
        ).fetchone()
        return row[0] if row else None

    def add_evaluation(
        self,
        *,
        sha256: str,
        images_sha256: str,
        evaluation_key: str,
        grader_version: str,
        status: str,
        reason: str,
        answer: dict[str, Any] | None,
        predictions: np.ndarray | None,
        outputs: np.ndarray | None,
        nonfinite: int,
        seconds: float,
        isolation: str,
        keep: bool,
        ties: dict[str, Any] | None = None,
    ) -> int:
        """Store an evaluation. `keep=False` (timeouts, crashes) records it for this run only: the next
        run tries the file again instead of reusing a failure that may not recur. Outputs are kept exactly
        as the model gave them, so that their argmax is the stored predictions."""
        exact = outputs.astype(outputs.dtype.newbyteorder("<")) if outputs is not None else None
        values = (
            sha256,
            images_sha256,
            evaluation_key if keep else f"{evaluation_key}:once:{_now()}",
            grader_version,
            status,
            reason,
            json.dumps(answer, sort_keys=True) if answer is not None else None,
            _pack(predictions.astype("<i2")) if predictions is not None else None,
            _pack(exact, level=0) if exact is not None else None,
            json.dumps(list(exact.shape)) if exact is not None else None,
            nonfinite,
            seconds,
            isolation,
            _now(),
            exact.dtype.str if exact is not None else None,
            json.dumps(ties, sort_keys=True) if ties is not None else None,
        )
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR REPLACE INTO evaluations (sha256, images_sha256, evaluation_key, grader_version, status, "
                "reason, answer, predictions, outputs, output_shape, nonfinite, seconds, isolation, created_at, "
                "outputs_dtype, ties) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return int(cursor.lastrowid or 0)

    def evaluation_by_id(self, evaluation_id: int) -> Evaluation | None:
        # Marking a student and writing the report both read the evaluation: keep the last few.
        if evaluation_id in self._recent:
            return self._recent[evaluation_id]
        row = self.db.execute("SELECT * FROM evaluations WHERE id=?", (evaluation_id,)).fetchone()
        evaluation = _evaluation(row) if row else None
        if evaluation is not None:
            self._recent[evaluation_id] = evaluation
            if len(self._recent) > RECENT_EVALUATIONS:
                self._recent.pop(next(iter(self._recent)))
        return evaluation

    def outputs(self, evaluation_id: int) -> np.ndarray | None:
        """The model's outputs as stored: exact, except in evaluations of schema 1 (float16)."""
        row = self.db.execute(
            "SELECT outputs, output_shape, outputs_dtype FROM evaluations WHERE id=?", (evaluation_id,)
        ).fetchone()
        if row is None or row["outputs"] is None:
            return None
        shape = tuple(json.loads(row["output_shape"]))
        return _unpack(row["outputs"], row["outputs_dtype"] or "<f2").reshape(shape)

    # Figures ----------------------------------------------------------------------------------------

    def figure(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT png FROM figures WHERE key=?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def add_figure(self, key: str, png: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO figures VALUES (?, ?)", (key, png))

    # Results ----------------------------------------------------------------------------------------

    def add_result(self, run_id: int, row: dict[str, Any]) -> None:
        """Commit one student's result for this run."""
        values = {**row, "run_id": run_id, "detail": json.dumps(row["detail"], sort_keys=True)}
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        with self.transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO results ({columns}) VALUES ({marks})", tuple(values.values()))

    def note_result(self, run_id: int, student_id: str, notes: list[str], part: str | None = None) -> None:
        """Add notes to a committed result (a report that could not be written): appended to its reason,
        so marks.csv shows them, and kept in its detail under 'notes'. Without `part`, to each of the
        student's parts."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT part, reason, detail FROM results WHERE run_id=? AND student_id=? AND part=COALESCE(?, part)",
                (run_id, student_id, part),
            ).fetchall()
            for row in rows:
                detail = json.loads(row["detail"])
                detail["notes"] = [*detail.get("notes", []), *notes]
                reason = "; ".join([row["reason"], *notes] if row["reason"] else notes)
                db.execute(
                    "UPDATE results SET reason=?, detail=? WHERE run_id=? AND student_id=? AND part=?",
                    (reason, json.dumps(detail, sort_keys=True), run_id, student_id, row["part"]),
                )

    def results(self, run_id: int) -> list[dict[str, Any]]:
        """A run's results, one per student and part, in folder order."""
        rows = self.db.execute("SELECT * FROM results WHERE run_id=? ORDER BY folder, student_id, part", (run_id,))
        out = []
        for row in rows:
            item = dict(row)
            item["detail"] = json.loads(item["detail"])
            out.append(item)
        return out


# File systems on which SQLite's WAL mode (its shared-memory index) does not work: a gradebook there is refused.
NETWORK_FILE_SYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "sshfs", "afs", "ncpfs", "glusterfs",
        "fuse.glusterfs", "ceph", "fuse.ceph", "lustre", "gpfs", "beegfs", "fuse.s3fs", "davfs", "fuse.davfs2",
    }
)  # fmt: skip


def file_system(folder: Path, mounts: list[tuple[str, str]] | None = None) -> str:
    """The type of the file system a folder is on ('ext4', 'nfs4'; '' when unknown): the mount point that holds
    it, as /proc/mounts lists them (`mounts`: (mount point, type) pairs, else this machine's)."""
    if mounts is None:
        import psutil

        try:
            mounts = [(part.mountpoint, part.fstype) for part in psutil.disk_partitions(all=True)]
        except (OSError, RuntimeError):
            return ""
    place = os.path.realpath(folder)
    holding = [(point, kind) for point, kind in mounts if place == point or place.startswith(point.rstrip("/") + "/")]
    return max(holding, key=lambda found: len(found[0]))[1] if holding else ""


def local_disk(folder: Path, mounts: list[tuple[str, str]] | None = None) -> None:
    """Refuse a gradebook folder on a network file system, where SQLite's WAL mode does not work."""
    kind = file_system(folder, mounts)
    if kind in NETWORK_FILE_SYSTEMS:
        raise GraderError(
            f"{folder}: on a network file system ({kind}); the gradebook is SQLite in WAL mode, which does not "
            "work there: put --out on a local disk (copy the reports to the share afterwards)"
        )


def try_lock(handle: Any) -> bool:
    """Take an exclusive lock on an open file without waiting (fcntl on POSIX, msvcrt on Windows)."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _evaluation(row: sqlite3.Row) -> Evaluation:
    return Evaluation(
        id=row["id"],
        status=row["status"],
        reason=row["reason"],
        answer=json.loads(row["answer"]) if row["answer"] else None,
        predictions=_unpack(row["predictions"], "<i2").astype(np.int64) if row["predictions"] is not None else None,
        output_shape=tuple(json.loads(row["output_shape"])) if row["output_shape"] else None,
        nonfinite=row["nonfinite"] or 0,
        seconds=row["seconds"] or 0.0,
        isolation=row["isolation"] or "",
        ties=json.loads(row["ties"]) if row["ties"] else None,
        images_sha256=row["images_sha256"],
    )


def _pack(array: np.ndarray, *, level: int = 6) -> bytes:
    """An array's bytes in a zlib stream. Outputs are stored at level 0: a model's float outputs shrink by about 6%
    at level 6, for 15 ms per model of the run's time; the stream is zlib's either way, so every reader is the same."""
    return zlib.compress(np.ascontiguousarray(array).tobytes(), level)


def _unpack(blob: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype=dtype)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
