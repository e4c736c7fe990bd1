"""grade serve's SQLite store: each upload under its random token, each check's result under the file's hash.

A result is stored by what decides it (the file's sha256, its name, the part asked for and the server's
setup: rules, data, limits, release), so a re-upload of the same file is answered at once. Uploads are found
by token only: nothing here lists them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.gradebook import try_lock

FILE_NAME = "serve.sqlite"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    token TEXT PRIMARY KEY,
    created REAL NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    part TEXT NOT NULL,                  -- the part the student chose ('' for: tell from the file)
    result_key TEXT NOT NULL,
    state TEXT NOT NULL,                 -- queued, running, done, failed
    message TEXT NOT NULL DEFAULT '',    -- why the check could not run (failed)
    started REAL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    seconds REAL NOT NULL,               -- how long the check took
    result TEXT NOT NULL                 -- JSON: CheckResult.to_json() with its verdict
);
"""
RESTARTED = "the server restarted before your file was checked: upload it again"


@dataclass(frozen=True)
class Upload:
    """One upload as its pages show it."""

    token: str
    created: float
    file_name: str
    sha256: str
    size: int
    part: str
    result_key: str
    state: str
    message: str
    started: float | None
    finished: float | None
    result: dict[str, Any] | None
    "The check's result once done."


class Store:
    """The server's SQLite file; safe to call from the event loop and the checker's threads."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # One server per state folder: a second would clear the first's uploads and workers at start.
        self._lock_file = open(folder / "serve.lock", "a+")  # noqa: SIM115 (held while the server runs)
        if not try_lock(self._lock_file):
            self._lock_file.close()
            raise GraderError(f"another grade serve is using {folder}: give each server its own --state")
        self._db = sqlite3.connect(folder / FILE_NAME, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()

    def interrupt_unfinished(self) -> int:
        """Uploads a previous server left queued or running: their files are gone, so say so on their pages."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE uploads SET state = ?, message = ?, finished = ? WHERE state IN (?, ?)",
                (FAILED, RESTARTED, time.time(), QUEUED, RUNNING),
            )
            return cursor.rowcount

    def add(self, token: str, *, file_name: str, sha256: str, size: int, part: str, result_key: str) -> str:
        """Record an upload; done at once when its result is stored already. Returns its state."""
        with self._lock:
            known = self._db.execute("SELECT 1 FROM results WHERE key = ?", (result_key,)).fetchone()
            state = DONE if known else QUEUED
            now = time.time()
            self._db.execute(
                "INSERT INTO uploads (token, created, file_name, sha256, size, part, result_key, state, started, "
                "finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (token, now, file_name, sha256, size, part, result_key, state, None, now if known else None),
            )
            return state

    def mark(self, tokens: list[str], state: str, message: str = "") -> None:
        now = time.time()
        column = "started" if state == RUNNING else "finished"
        with self._lock:
            self._db.executemany(
                f"UPDATE uploads SET state = ?, message = ?, {column} = ? WHERE token = ?",
                [(state, message, now, token) for token in tokens],
            )

    def save_result(self, key: str, sha256: str, seconds: float, result: dict[str, Any], tokens: list[str]) -> None:
        """Store a check's result and mark its uploads done, in one transaction."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO results (key, sha256, created, seconds, result) VALUES (?, ?, ?, ?, ?)",
                    (key, sha256, now, seconds, json.dumps(result)),
                )
                self._db.executemany(
                    "UPDATE uploads SET state = ?, finished = ?, result_key = ? WHERE token = ?",
                    [(DONE, now, key, token) for token in tokens],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def prune(self, before: float) -> int:
        """Delete uploads recorded before `before` (a Unix time) and the results no upload left refers to that are
        as old; return how many uploads were deleted. Their pages are then not found."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                gone = self._db.execute(
                    "DELETE FROM uploads WHERE created < ? AND state NOT IN (?, ?)", (before, QUEUED, RUNNING)
                ).rowcount
                self._db.execute(
                    "DELETE FROM results WHERE created < ? AND key NOT IN (SELECT result_key FROM uploads)", (before,)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return gone

    def upload(self, token: str) -> Upload | None:
        with self._lock:
            row = self._db.execute(
                "SELECT u.token, u.created, u.file_name, u.sha256, u.size, u.part, u.result_key, u.state, "
                "u.message, u.started, u.finished, r.result FROM uploads u "
                "LEFT JOIN results r ON r.key = u.result_key AND u.state = ? WHERE u.token = ?",
                (DONE, token),
            ).fetchone()
        if row is None:
            return None
        names = [each.name for each in fields(Upload)]
        return Upload(**dict(zip(names, [*row[:-1], json.loads(row[-1]) if row[-1] else None], strict=True)))
