"""Grade a cohort: discover -> stage -> inspect -> screen -> evaluate -> score -> store -> render.

`grade_cohort` is the whole of `grade submissions/`: the CLI only parses options and prints. Every
student ends with a status and a reason; each result is committed to the gradebook as it is known;
marks.csv and the reports are rendered from the gradebook at the end.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import defaults
from grader.courseworks.assignment import Assignment, EvaluationSpec, load_assignment
from grader.courseworks.heldout import HeldoutSet, heldout_paths, load_heldout, run_heldout
from grader.discovery import discover_submissions
from grader.errors import GraderError, HeldoutError
from grader.evaluation.sandbox import Isolation, choose_isolation
from grader.evaluation.scheduler import (
    Budget,
    Scheduler,
)
from grader.evidence import Evidence, gather, is_gradebook_folder, library_folder
from grader.gradebook import Gradebook
from grader.marking.totals import student_rows
from grader.outputs.integrity import write_integrity
from grader.outputs.reports import write_reports
from grader.release import VERSION
from grader.run.context import Progress, RunContext, Silent, Tally, Where
from grader.run.pipeline import Run
from grader.status import STATUSES

WORK_FOLDER = ".work"


@dataclass(frozen=True)
class RunSummary:
    """What a run did, for the CLI to print and tests to check."""

    run_id: int
    out: Path
    marks_csv: Path
    rows: list[dict[str, Any]]
    "One row per student, as in marks.csv."
    isolation: Isolation
    evaluated: int
    "Submissions evaluated by a worker in this run."
    reused: int
    "Submissions whose stored evaluation was reused."
    workers_started: int
    "TensorFlow worker processes started (0 when every evaluation was reused)."
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    "What could not be written (the summary page), while every mark was."
    code_parts: tuple[str, ...] = ()
    "The parts marked by points for code (shown by their points, having no accuracy)."

    def marks(self) -> Any:
        """marks.csv as a pandas DataFrame (grader.read_marks)."""
        from grader.outputs.frames import read_marks

        return read_marks(self.marks_csv)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: what the run did, then the marks as a table."""
        from markupsafe import Markup

        from grader.outputs.reports import template

        return str(
            template("notebook_run.html.j2").render(
                students=len(self.rows),
                counts=", ".join(f"{count} {status}" for status, count in self.counts.items()),
                evaluated=self.evaluated,
                reused=self.reused,
                seconds=self.seconds,
                isolation=self.isolation.detail,
                marks_csv=str(self.marks_csv),
                marks_table=Markup(self.marks().to_html(na_rep="")),  # pandas escapes the cells itself
            )
        )


def grade_cohort(
    submissions: str | Path,
    *,
    assignment: Assignment | str | Path | None = None,
    heldout: str | Path | Mapping[str, str | Path] = defaults.HELDOUT,
    out: str | Path = defaults.OUT,
    isolation: str = defaults.ISOLATION,
    workers: int | None = None,
    fresh_workers: bool = False,
    allow_lambda: bool = False,
    time_limit: float | None = None,
    memory_limit_gb: float = defaults.MEMORY_LIMIT_GB,
    progress: Progress | None = None,
    reports: bool = True,
    rehash: bool = False,
    integrity: bool = True,
    libraries: Sequence[str | Path] = (),
    cluster: Any = None,
    scheduler: Scheduler | None = None,
    cluster_security: Any = None,
    cluster_insecure: bool = False,
) -> RunSummary:
    """Grade every student under `submissions` (a folder or Moodle zip) and write marks and reports to `out`.

    `heldout` is the held-out set of a one-part assignment, or for several parts a mapping from part name
    to its set (a part left out is looked for in heldout/<part>/), or a folder holding <part>/ folders.
    `reports=False` keeps the results in the gradebook only (`grade check` needs no pages). `rehash=True`
    reads every file again even when its stat says it is unchanged since the last run. `integrity` compares
    the networks (grader.evidence) and writes integrity.html and integrity.csv; `libraries` are folders of
    known models (or earlier runs' reports) every network is also compared with. `cluster` evaluates on Dask
    (a scheduler's address, 'local:N', or a cluster object such as dask_jobqueue's SLURMCluster;
    grader.evaluation.cluster) instead of this machine's workers. `scheduler` is a warm Scheduler the caller
    keeps (`grade serve`): the run evaluates on its one worker and leaves it running; its images must hold the
    held-out sets' (named by image_set). A tls:// cluster is reached with `cluster_security` (Dask's Security:
    grader.evaluation.cluster.tls_security), else the cluster object's own, else Dask's configuration; a plain
    tcp:// address off this machine is refused unless `cluster_insecure` (recorded with the run).
    """
    started = time.monotonic()
    given = {"workers": workers, "fresh_workers": fresh_workers, "allow_lambda": allow_lambda}
    progress = progress or Silent()
    rules = assignment if isinstance(assignment, Assignment) else load_assignment(assignment)
    rules = rules.with_overrides(time_limit_seconds=time_limit)
    heldouts = load_heldouts(rules, heldout)
    _check_libraries(libraries if integrity else ())
    where = _where(cluster, isolation, scheduler, cluster_security, cluster_insecure)
    chosen_isolation = _isolation(rules, isolation, allow_lambda=allow_lambda and where.cluster is None)
    found = discover_submissions(submissions, rules.formats)
    if not chosen_isolation.isolated:
        progress.note(f"isolation: {chosen_isolation.detail}")
    out = Path(out)
    with Gradebook(out) as book:
        _clear_stale_work(out)
        options = _options(rules, heldouts, chosen_isolation, memory_limit_gb, where, given)
        run_id = _start_run(book, rules, heldouts, submissions, chosen_isolation, options)
        budget = run_budget(rules, memory_limit_gb)
        run = Run(
            RunContext(
                book=book,
                run_id=run_id,
                rules=rules,
                heldouts=heldouts,
                isolation=chosen_isolation,
                workdir=(out / WORK_FOLDER / f"run-{run_id}").resolve(),
                progress=progress,
                budget=budget,
                allow_lambda=allow_lambda,
                reports=out if reports else None,
                rehash=rehash,
                integrity=integrity,
                where=where,
            )
        )
        try:
            run.grade(found, workers=workers, fresh_workers=fresh_workers)
        finally:
            shutil.rmtree(run.context.workdir, ignore_errors=True)
        book.finish_run(run_id)
        if reports:
            findings, problems = (
                _integrity(book, run_id, rules, heldouts, heldout, out, isolation, progress, libraries)
                if integrity
                else (None, [])
            )
            rows, more = write_reports(book, run_id, out, rules, findings)
            problems += more
        else:
            rows, problems = student_rows(book.results(run_id), rules), []
    return _summary(run_id, out, rows, chosen_isolation, run.context.tally, time.monotonic() - started, problems, rules)


def _summary(
    run_id: int,
    out: Path,
    rows: list[dict[str, Any]],
    isolation: Isolation,
    tally: Tally,
    seconds: float,
    problems: list[str],
    rules: Assignment,
) -> RunSummary:
    counts = Counter(row["status"] for row in rows)
    return RunSummary(
        run_id=run_id,
        out=out,
        marks_csv=out / "marks.csv",
        rows=rows,
        isolation=isolation,
        evaluated=tally.evaluated,
        reused=tally.reused,
        workers_started=tally.workers_started,
        seconds=seconds,
        counts={status: counts[status] for status in STATUSES if counts[status]},
        problems=problems,
        code_parts=tuple(part.name for part in rules.parts if part.code is not None),
    )


def _start_run(
    book: Gradebook,
    rules: Assignment,
    heldouts: dict[str, HeldoutSet],
    submissions: str | Path,
    isolation: Isolation,
    options: dict[str, Any],
) -> int:
    """The run's row in the gradebook: the release, the coursework and its held-out sets, the submissions, the
    sandbox and the options (everything a mark is reproduced from)."""
    return book.start_run(
        grader_version=VERSION,
        assignment_name=rules.name,
        assignment_path=rules.path,
        assignment_sha256=rules.sha256,
        **_heldout_fields(rules, heldouts),
        submissions=str(Path(submissions).resolve()),
        isolation=isolation.kind,
        options=options,
    )


def _options(
    rules: Assignment,
    heldouts: dict[str, HeldoutSet],
    isolation: Isolation,
    memory_limit_gb: float,
    where: Where,
    given: dict[str, Any],
) -> dict[str, Any]:
    """The run's options as the gradebook records them (each report shows them)."""
    return {
        "isolation_detail": isolation.detail,
        "assignment_title": rules.title,
        "max_score": rules.max_score,
        **given,
        "time_limit_seconds": max((part.evaluation.time_limit_seconds for part in rules.model_parts), default=None),
        "memory_limit_gb": memory_limit_gb,
        **({} if rules.single else {"heldout": _heldout_record(heldouts)}),
        **({"cluster": where.cluster, "cluster_transport": where.transport} if where.cluster is not None else {}),
    }


def _check_libraries(libraries: Sequence[str | Path]) -> None:
    for folder in libraries:
        if not Path(folder).is_dir():
            raise GraderError(f"--library {folder}: not a folder of models or of an earlier run's reports")


def _where(cluster: Any, isolation: str, lender: Scheduler | None, security: Any, insecure: bool) -> Where:
    """Where the run evaluates. For a cluster: its address, security and transport (a clear error for an address
    that is not one, or a plain one off this machine without `insecure`); a dask_jobqueue or distributed cluster
    object stands for its scheduler's address, and brings its security."""
    if cluster is None:
        return Where(isolation_preference=isolation, lender=lender, security=security, insecure=insecure)
    from grader.evaluation.cluster import check_address  # Dask is imported only for a cluster run

    if security is None:
        security = getattr(cluster, "security", None)
    address = str(getattr(cluster, "scheduler_address", cluster))
    transport = check_address(address, insecure=insecure)
    return Where(
        cluster=address,
        isolation_preference=isolation,
        lender=lender,
        security=security,
        insecure=insecure,
        transport=transport,
    )


def _isolation(rules: Assignment, isolation: str, *, allow_lambda: bool) -> Isolation:
    """The sandbox this machine's children run in. Students' code (a code part's functions, a Lambda's bytecode
    under --allow-lambda) never loses the sandbox silently: without bubblewrap the run stops here, before any of it
    runs, unless --isolation process was asked for. (On a cluster a Lambda runs on the Dask workers, each of which
    requires its own sandbox: the caller passes allow_lambda=False then.)"""
    untrusted = " and ".join(
        what
        for what, runs in ((f"{rules.name}'s code part", rules.code_parts), ("--allow-lambda", allow_lambda))
        if runs
    )
    return choose_isolation(isolation, untrusted=untrusted)


def _integrity(
    book: Gradebook,
    run_id: int,
    rules: Assignment,
    heldouts: dict[str, HeldoutSet],
    heldout: str | Path | Mapping[str, str | Path],
    out: Path,
    isolation: str,
    progress: Progress,
    libraries: Sequence[str | Path],
) -> tuple[int | None, list[str]]:
    """Compare the run's networks with each other and with the libraries' (integrity.html and .csv): the number of
    findings, and what could not be written. Evidence is advice: when it cannot be gathered, the marks are written
    without it and the reason is kept."""
    try:
        known = [index_library(Path(folder), rules, heldout, out, isolation, progress) for folder in libraries]
        progress.note("integrity: comparing the networks")
        evidence = gather(book, run_id, rules, heldouts, known)
        return evidence.count, write_integrity(evidence, out, rules, heldouts)
    except Exception as error:
        return None, [f"integrity evidence could not be gathered: {error!r}"]


def index_library(
    folder: Path,
    rules: Assignment,
    heldout: str | Path | Mapping[str, str | Path],
    out: Path,
    isolation: str = defaults.ISOLATION,
    progress: Progress | None = None,
) -> Path:
    """A library of known models, graded (once: the gradebook keeps it) into out/library/<name>-<hash>/ with the
    run's rules and held-out sets; a folder that already holds a gradebook (earlier reports) is used as it is."""
    if is_gradebook_folder(folder):
        return folder
    target = library_folder(out, folder)
    if progress is not None:
        progress.note(f"library {folder}: indexing its models (once; stored in {target})")
    grade_cohort(
        folder, assignment=rules, heldout=heldout, out=target, isolation=isolation, reports=False, integrity=True
    )
    return target


def rerun_integrity(
    reports: Path, libraries: Sequence[Path] = (), heldout: Path | Mapping[str, Path] | None = None
) -> tuple[Evidence, list[str]]:
    """`grade integrity`: the latest run's evidence again, with these libraries; writes integrity.html/.csv."""
    with Gradebook.reading(reports) as book:
        run = book.run()
        rules = load_assignment(run["assignment_path"])
        heldouts = {}
        for part in rules.model_parts:
            given = heldout.get(part.name) if isinstance(heldout, Mapping) else heldout
            heldouts[part.name] = run_heldout(run, rules, part, given)
        sources = {part.name: heldouts[part.name].source for part in rules.model_parts}
        known = [index_library(folder, rules, sources, reports, run["isolation"]) for folder in libraries]
        evidence = gather(book, run["id"], rules, heldouts, known)
    return evidence, write_integrity(evidence, reports, rules, heldouts)


def load_heldouts(rules: Assignment, given: str | Path | Mapping[str, str | Path]) -> dict[str, HeldoutSet]:
    """Each part's held-out set, read and checked against the part's data spec (a set several parts share
    is read once)."""
    if not rules.model_parts:
        return {}
    paths = heldout_paths(list(rules.model_parts), given, rules.single)
    sets: dict[str, HeldoutSet] = {}
    read: dict[tuple[Path, str], HeldoutSet] = {}
    for part in rules.model_parts:
        key = (paths[part.name].resolve(), repr(part.data))
        try:
            if key not in read:
                read[key] = load_heldout(paths[part.name], part.data)
        except HeldoutError as error:
            if rules.single:
                raise
            where = f"{part.name}=PATH" + (f" or {part.data.public}=PATH" if part.data.public else "")
            raise HeldoutError(f"part {part.name} ({part.data.describe()}): {error}; pass --heldout {where}") from None
        sets[part.name] = read[key]
    return sets


def run_budget(rules: Assignment, memory_limit_gb: float) -> Budget:
    """What one evaluation may use: the longest of the parts' time limits (each job carries its own part's) and
    the memory a worker may hold."""
    wall = max((part.evaluation.time_limit_seconds for part in rules.model_parts), default=None)
    return Budget(
        wall_seconds=wall if wall is not None else EvaluationSpec.time_limit_seconds,
        memory_bytes=int(memory_limit_gb * 1024**3),
    )


def _heldout_fields(rules: Assignment, heldouts: dict[str, HeldoutSet]) -> dict[str, Any]:
    """The run's held-out columns: the one set's, or for several parts each part's joined in part order."""
    if rules.single:
        only = next(iter(heldouts.values()))
        return {
            "heldout_source": only.source,
            "heldout_sha256": only.sha256,
            "heldout_images_sha256": only.images_sha256,
            "heldout_size": only.size,
        }

    def joined(field_name: str) -> str:
        return "; ".join(f"{name}={getattr(heldouts[name], field_name)}" for name in heldouts)

    return {
        "heldout_source": joined("source"),
        "heldout_sha256": hashlib.sha256(joined("sha256").encode()).hexdigest(),
        "heldout_images_sha256": hashlib.sha256(joined("images_sha256").encode()).hexdigest(),
        "heldout_size": sum(each.size for each in heldouts.values()),
    }


def _heldout_record(heldouts: dict[str, HeldoutSet]) -> dict[str, Any]:
    return {
        name: {"source": each.source, "sha256": each.sha256, "images_sha256": each.images_sha256, "size": each.size}
        for name, each in heldouts.items()
    }


def _clear_stale_work(out: Path) -> None:
    """Remove work folders left by runs that were killed (the gradebook lock says none is running)."""
    shutil.rmtree(out / WORK_FOLDER, ignore_errors=True)
