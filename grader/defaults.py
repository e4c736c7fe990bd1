"""The defaults of a grading run, each defined once.

The library's signatures (`grade_cohort`, `check`), the `grade` command's options and their help text all
read them from here, so the three cannot disagree. Precedence: command line > assignment file > these.
The per-submission time limit is the assignment's (`[evaluation] time_limit_seconds`), not a default here.
Kept free of heavy imports: the CLI reads it to draw `--help`.
"""

from __future__ import annotations

import os
from pathlib import Path

HELDOUT = Path("heldout")
"Where the held-out set is looked for: a folder holding one .npz or one pair of IDX files."
OUT = Path("reports")
"Where marks.csv, the reports and the gradebook go."
ISOLATION = "auto"
"The worker sandbox: bubblewrap where it works, else a plain subprocess (the run says so)."
MEMORY_LIMIT_GB = 6.0
"Resident memory one worker's process tree may use; a model over it is stopped (over_limit)."
PROCESS_LIMIT = 8
"Processes one worker's tree may hold (a TensorFlow worker needs 1-3)."
MAX_WORKERS = 8
WORKER_MEMORY_GB = 1.5
"About what one warm worker holds with a student's model loaded."
WORKERS = f"one per core, at most {MAX_WORKERS}, and no more than free memory allows at {WORKER_MEMORY_GB:g} GB each"
"The default worker count, in words (the help text and docs/commands.md say this)."


def worker_count() -> int:
    """One single-threaded warm worker per core (measured faster than fewer workers with more threads on
    the small models students train), as many as free memory allows, at most MAX_WORKERS."""
    import psutil

    by_memory = int(psutil.virtual_memory().available / (WORKER_MEMORY_GB * 1024**3))
    return max(1, min(os.cpu_count() or 1, by_memory, MAX_WORKERS))


# grade serve ------------------------------------------------------------------------------------------
SERVE_HOST = "127.0.0.1"
"Where grade serve listens: this machine only (a reverse proxy in front serves the course)."
SERVE_PORT = 8000
SERVE_STATE = Path("serve")
"Where grade serve keeps its SQLite store, the uploads being checked and its workers' files."
SERVE_WORKERS = 1
"Warm sandboxed workers checking uploads (each holds TensorFlow: about 1.5 GB)."
SPOOL_MB = 2048
"Disk the uploads waiting to be checked may use together; an upload past it is told to try again later."
UPLOADS_PER_HOUR = 20
"""Uploads taken from one client in an hour (its personal token's, else its IP address's); a re-upload of a
checked file counts too, a refused upload does not."""
MIN_UPLOAD_KB_PER_SECOND = 16
"An upload arriving slower than this on average (after the grace below) is cut off by the page itself."
UPLOAD_GRACE_SECONDS = 30.0
"How long an upload may take before its rate is judged, and the longest pause between two of its chunks."
KEEP_DAYS = 30.0
"Stored results, upload records and kept uploads older than this are deleted, at start and daily."
