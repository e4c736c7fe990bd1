"""Every exception grader defines, in one place.

`GraderError` and its subclasses stop a command before it can do its work: the CLI turns each into a
one-line message and exit code 1. The others describe one submission or one child process; the run
catches them and turns each into a student's status and reason, and goes on.
"""

from __future__ import annotations

# Errors that stop a command ----------------------------------------------------------------------------


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


class GradebookBusy(GraderError):
    "Another grade run is writing to this output folder"


class PartUnknown(GraderError):
    "A file fits no part, or several, of an assignment with parts: the user must say which"

    def __init__(self, why: str, parts: str) -> None:
        super().__init__(f"{why}: pass --part, one of {parts}")
        self.why, self.parts = why, parts


class NoData(GraderError):
    "The public MNIST test set could not be fetched and no --data was given"


class ExportError(GraderError):
    "The export would be rejected by its importer (the message lists why), so nothing was written"


# Failures of one submission or one child process (the run records them and goes on) -------------------


class StagingError(Exception):
    "The submitted file could not be read"


class WorkerError(Exception):
    "A worker process failed outside any one submission (it would not start, or broke the protocol)"


class WorkerTimeout(WorkerError):
    "The worker did not answer within the time limit"


class WorkerCrashed(WorkerError):
    "The worker process ended while evaluating a submission"


class WorkerOverBudget(WorkerError):
    "The worker's process tree went over the memory or process budget (`kind` says which)"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ModelLoadError(Exception):
    "A runtime (onnxruntime) could not load a submitted model: a fact about the file, reported as load_failed"
