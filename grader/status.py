"""The statuses a student's row can end with. Every way a submission can fail has one."""

from __future__ import annotations

# In the order a summary lists them. The first two carry a mark.
STATUSES = (
    "graded",  # marked
    "flagged",  # marked, with something for a person to look at (the reason says what)
    "no_file",  # nothing to grade: no .h5, a .keras instead, an .h5 in a subfolder
    "unreadable",  # the file or folder could not be read
    "refused",  # screening refused the file before anything loaded it
    "load_failed",  # Keras could not load the model
    "predict_failed",  # the model cannot take the input the official script feeds
    "bad_output",  # outputs of the wrong shape or class count (or NaN under a refuse policy)
    "timeout",  # over the per-submission time limit
    "crashed",  # the worker died
    "over_limit",  # over the memory or process budget
)
MARKED = ("graded", "flagged")
RETRIED = ("timeout", "crashed", "over_limit")
"Statuses of the machine's moment as much as of the file: never stored for reuse, so the next run tries again."

NOT_ISOLATED = "not isolated"
"""What every output says of work that ran without the sandbox (--isolation process, or no bubblewrap for model
files): marks.csv's isolation column, each report, index.html, the self-check page."""
