"""What every stage of a run shares: the gradebook, the coursework, the held-out sets, the sandbox and the options
(a RunContext, built by keywords once per run), and what the run has counted so far (a Tally)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from grader.courseworks.assignment import Assignment
from grader.courseworks.heldout import HeldoutSet
from grader.evaluation.sandbox import Isolation
from grader.evaluation.scheduler import Budget, Scheduler
from grader.gradebook import Gradebook


class Progress(Protocol):
    """How a run reports progress (the CLI draws a bar; the API is silent)."""

    def start(self, total: int) -> None: ...
    def advance(self, student_id: str, status: str) -> None: ...
    def note(self, message: str) -> None: ...


class Silent:
    """Progress that reports nothing."""

    def start(self, total: int) -> None:
        pass

    def advance(self, student_id: str, status: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class Tally:
    """What a run did: evaluations made, evaluations reused from the gradebook, workers started."""

    evaluated: int = 0
    reused: int = 0
    workers_started: int = 0


@dataclass(kw_only=True)
class Where:
    """Where evaluations run: this machine's workers (the default), a warm lent worker (`grade serve`), or a Dask
    cluster (grader.evaluation.cluster)."""

    cluster: str | None = None
    "A Dask scheduler's address or local:N; None for this machine's workers."
    isolation_preference: str = "auto"
    "The --isolation asked for (each Dask worker chooses its own sandbox from it)."
    lender: Scheduler | None = None
    "A warm Scheduler whose one worker evaluates this run's files and is kept after it (grade serve)."
    security: Any = None
    "Dask's Security for a tls:// cluster."
    insecure: bool = False
    "--cluster-insecure: a plain tcp:// address off this machine, recorded with the run."
    transport: str = ""
    "How the coordinator talks to the cluster, in words ('TLS', 'tcp on this machine', ...)."


@dataclass(kw_only=True)
class RunContext:
    """One run's shared state, handed to each stage."""

    book: Gradebook
    run_id: int
    rules: Assignment
    heldouts: dict[str, HeldoutSet]
    isolation: Isolation
    "The sandbox this machine's children run in."
    workdir: Path
    "The run's private work folder (staged copies, images, children's folders), removed when it ends."
    progress: Progress
    budget: Budget
    allow_lambda: bool = False
    reports: Path | None = None
    "Where each student's report is written as soon as their results are known (None: no reports)."
    rehash: bool = False
    "Read every file again, even one whose stat says it is unchanged since it was hashed."
    integrity: bool = False
    "Whether each file's weights are summarised for integrity evidence (once per file and revision)."
    where: Where = field(default_factory=Where)
    tally: Tally = field(default_factory=Tally)

    @property
    def staging(self) -> Path:
        """Where the private copies of the files are made."""
        return self.workdir / "staging"
