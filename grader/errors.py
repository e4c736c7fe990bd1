"""Domain errors. The CLI turns each into a one-line message and a non-zero exit."""

from __future__ import annotations


class GraderError(Exception):
    "Base class for errors that stop a command before it can do its work"


class AssignmentError(GraderError):
    "The assignment file is missing, unreadable or breaks a rule of the schema"


class HeldoutError(GraderError):
    "The held-out set is missing, ambiguous or not in a layout the assignment accepts"


class SubmissionsError(GraderError):
    "The submissions path is not a folder or a Moodle zip that can be read"


class SandboxUnavailable(GraderError):
    "bubblewrap was asked for and cannot start a sandbox on this machine"


class NotAnH5File(GraderError):
    "The file given to `grade inspect` cannot be opened as HDF5"


class WorkerError(Exception):
    "A worker process failed outside any one submission (it would not start, or broke the protocol)"


class WorkerTimeout(WorkerError):
    "The worker did not answer within the time limit"


class WorkerCrashed(WorkerError):
    "The worker process ended while evaluating a submission"
