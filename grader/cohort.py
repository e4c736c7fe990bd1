"""Grade a cohort: discover -> stage -> inspect -> screen -> evaluate -> score -> store -> render.

`grade_cohort` is the whole of `grade submissions/`: the CLI only parses options and prints. Every
student ends with a status and a reason; each result is committed to the gradebook as it is known;
marks.csv and the reports are rendered from the gradebook at the end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from grader import defaults, formats
from grader.checks.architecture_spec import Comparison, compare_inspection
from grader.checks.screening import (
    FAIL,
    WARN,
    Check,
    refused,
    screen,
    size_check,
    summary,
    unreadable_check,
)
from grader.courseworks.assignment import Assignment, EvaluationSpec, load_assignment
from grader.courseworks.heldout import HeldoutSet, heldout_paths, load_heldout, run_heldout, write_images
from grader.discovery import Submission, SubmittedFile, discover_submissions
from grader.errors import GraderError, HeldoutError
from grader.evaluation.code import CODE_EVALUATOR, CodeRun, CodeTests, evaluate_code, load_tests
from grader.evaluation.sandbox import Isolation, choose_isolation, was_isolated
from grader.evaluation.scheduler import (
    OUTCOME_STATUSES,
    Budget,
    Job,
    LentWorker,
    Outcome,
    Scheduler,
    answer_problem,
    inspect_files,
)
from grader.evaluation.staging import StagingError, fingerprint, stage, stat_key
from grader.evaluation.worker import REVISION as WORKER_REVISION
from grader.evidence import Evidence, gather, is_gradebook_folder, library_folder
from grader.formats.base import Inspection
from grader.formats.fingerprint import REVISION as FINGERPRINT_REVISION
from grader.gradebook import Evaluation, Gradebook
from grader.inspection import REVISION as INSPECTOR_REVISION
from grader.marking import scoring
from grader.marking.code import code_detail, file_attempts, mark_code
from grader.marking.code import reasons as code_reasons
from grader.marking.totals import student_rows
from grader.outputs.integrity import write_integrity
from grader.outputs.reports import write_reports, write_student_report
from grader.release import VERSION
from grader.run.plan import cost, image_set, worker_request
from grader.run.route import route
from grader.run.unit import Unit, declared_shape
from grader.run.verdict import (
    constant_check,
    evaluation_checks,
    evaluation_detail,
    failure_reason,
    legacy_refusal,
    mark_detail,
    ties_check,
    width_check,
)
from grader.shapes import shape_text
from grader.status import STATUSES

FAILED_RUNS = {"timeout": "timeout", "crashed": "crashed", "memory": "over_limit", "processes": "over_limit"}
FAILED_STAGES = {"load": "load_failed", "predict": "predict_failed", "output": "bad_output"}
WORK_FOLDER = ".work"
INSPECTOR = f"grader {VERSION} inspector {INSPECTOR_REVISION}"
# Stored evaluations are reused only when they were made by this grader and this worker's way of predicting.
EVALUATOR = f"{VERSION} worker {WORKER_REVISION}"


class Progress(Protocol):
    """What the run reports while it works (the CLI draws a progress bar from it)."""

    def start(self, total: int) -> None: ...
    def advance(self, student_id: str, status: str) -> None: ...
    def note(self, message: str) -> None: ...


class _Silent:
    def start(self, total: int) -> None:
        pass

    def advance(self, student_id: str, status: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


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
    progress = progress or _Silent()
    rules = assignment if isinstance(assignment, Assignment) else load_assignment(assignment)
    rules = rules.with_overrides(time_limit_seconds=time_limit)
    heldouts = load_heldouts(rules, heldout)
    for folder in libraries if integrity else ():
        if not Path(folder).is_dir():
            raise GraderError(f"--library {folder}: not a folder of models or of an earlier run's reports")
    transport = ""
    if cluster is not None:
        from grader.evaluation.cluster import check_address

        # A dask_jobqueue or distributed cluster object stands for its scheduler's address, and brings its security.
        if cluster_security is None:
            cluster_security = getattr(cluster, "security", None)
        cluster = str(getattr(cluster, "scheduler_address", cluster))
        transport = check_address(cluster, insecure=cluster_insecure)
    # Students' code (a code part's functions, a Lambda's bytecode) never loses the sandbox silently: without
    # bubblewrap the run stops here, before any of it runs, unless --isolation process was asked for.
    # (On a cluster a Lambda runs on the Dask workers, each of which requires its own sandbox.)
    untrusted = " and ".join(
        what
        for what, runs in (
            (f"{rules.name}'s code part", rules.code_parts),
            ("--allow-lambda", allow_lambda and cluster is None),
        )
        if runs
    )
    chosen_isolation = choose_isolation(isolation, untrusted=untrusted)
    found = discover_submissions(submissions, rules.formats)
    if not chosen_isolation.isolated:
        progress.note(f"isolation: {chosen_isolation.detail}")
    out = Path(out)
    with Gradebook(out) as book:
        _clear_stale_work(out)
        run_id = book.start_run(
            grader_version=VERSION,
            assignment_name=rules.name,
            assignment_path=rules.path,
            assignment_sha256=rules.sha256,
            **_heldout_fields(rules, heldouts),
            submissions=str(Path(submissions).resolve()),
            isolation=chosen_isolation.kind,
            options={
                "isolation_detail": chosen_isolation.detail,
                "assignment_title": rules.title,
                "max_score": rules.max_score,
                "workers": workers,
                "fresh_workers": fresh_workers,
                "allow_lambda": allow_lambda,
                "time_limit_seconds": max(
                    (part.evaluation.time_limit_seconds for part in rules.model_parts), default=None
                ),
                "memory_limit_gb": memory_limit_gb,
                **({} if rules.single else {"heldout": _heldout_record(heldouts)}),
                **({"cluster": cluster, "cluster_transport": transport} if cluster is not None else {}),
            },
        )
        budget = run_budget(rules, memory_limit_gb)
        run = _Run(
            book,
            run_id,
            rules,
            heldouts,
            chosen_isolation,
            (out / WORK_FOLDER / f"run-{run_id}").resolve(),
            progress,
            allow_lambda,
            budget,
            out if reports else None,
            rehash,
            integrity,
            cluster,
            isolation,
            scheduler,
            cluster_security=cluster_security,
            cluster_insecure=cluster_insecure,
        )
        try:
            run.grade(found, workers=workers, fresh_workers=fresh_workers)
        finally:
            shutil.rmtree(run.workdir, ignore_errors=True)
        book.finish_run(run_id)
        if reports:
            findings, problems = None, []
            if integrity:
                try:
                    known = [
                        index_library(Path(folder), rules, heldout, out, isolation, progress) for folder in libraries
                    ]
                    progress.note("integrity: comparing the networks")
                    evidence = gather(book, run_id, rules, heldouts, known)
                    problems = write_integrity(evidence, out, rules, heldouts)
                    findings = evidence.count
                except Exception as error:  # evidence is advice: the marks are written without it
                    problems = [f"integrity evidence could not be gathered: {error!r}"]
            rows, more = write_reports(book, run_id, out, rules, findings)
            problems += more
        else:
            rows, problems = student_rows(book.results(run_id), rules), []
    counts = Counter(row["status"] for row in rows)
    return RunSummary(
        run_id=run_id,
        out=out,
        marks_csv=out / "marks.csv",
        rows=rows,
        isolation=chosen_isolation,
        evaluated=run.evaluated,
        reused=run.reused,
        workers_started=run.workers_started,
        seconds=time.monotonic() - started,
        counts={status: counts[status] for status in STATUSES if counts[status]},
        problems=problems,
        code_parts=tuple(part.name for part in rules.parts if part.code is not None),
    )


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


class _Run:
    def __init__(
        self,
        book: Gradebook,
        run_id: int,
        rules: Assignment,
        heldouts: dict[str, HeldoutSet],
        isolation: Isolation,
        workdir: Path,
        progress: Progress,
        allow_lambda: bool,
        budget: Budget,
        reports: Path | None,
        rehash: bool = False,
        integrity: bool = False,
        cluster: str | None = None,
        isolation_preference: str = defaults.ISOLATION,
        lender: Scheduler | None = None,
        *,
        cluster_security: Any = None,
        cluster_insecure: bool = False,
    ) -> None:
        self.cluster_security, self.cluster_insecure = cluster_security, cluster_insecure
        self.book, self.run_id, self.rules, self.heldouts = book, run_id, rules, heldouts
        self.cluster = cluster
        "Where evaluations run: None for this machine's workers, else a Dask cluster (grader.evaluation.cluster)."
        self.isolation_preference = isolation_preference
        self.lender = lender
        "A warm Scheduler whose one worker evaluates this run's files and is kept after it (grade serve)."
        self.integrity = integrity
        "Whether each file's weights are summarised for integrity evidence (once per file and revision)."
        # Each student's report is written as soon as their results are known (while workers evaluate others).
        self.reports = reports
        self.run_info = book.run(run_id)
        self.isolation, self.workdir, self.progress = isolation, workdir, progress
        self.allow_lambda = allow_lambda
        self.rehash = rehash
        self.budget = budget
        self.evaluated = 0
        self.reused = 0
        self.workers_started = 0
        self._staged = 0
        self._waiting: dict[str, list[dict[str, Any]]] = {}
        "Each student's finished part rows, until every part is finished and the report can be written."

    def grade(self, submissions: list[Submission], *, workers: int | None, fresh_workers: bool) -> None:
        self.staging = self.workdir / "staging"
        self.staging.mkdir(parents=True)
        units = route(submissions, self.rules, self._declared_shapes)
        self.progress.start(len(units))
        identified = [unit for unit in units if self._identify(unit)]
        code_units = [unit for unit in identified if unit.part.code is not None]
        identified = [unit for unit in identified if unit.part.code is None]
        todo = self._stored_inspections(identified)
        # Files that will need a worker (no stored evaluation, and not refused by what is already known of
        # them): start the workers now, so that TensorFlow imports while the rest are inspected.
        unseen = {
            (unit.sha256, unit.part.name)
            for unit in identified
            if not self._refused_already(unit) and self._stored_evaluation_id(unit) is None
        }
        scheduler: Any = None
        if unseen and self.cluster is not None:
            from grader.evaluation.cluster import ClusterScheduler

            # Dask workers get the images (never the labels); each worker requires its own sandbox unless
            # --isolation process was asked for (see grader.evaluation.cluster).
            scheduler = ClusterScheduler(
                self.cluster,
                isolation=self.isolation_preference,
                images={image_set(each): each.images for each in self.heldouts.values()},
                budget=self.budget,
                fresh_each=fresh_workers,
                security=self.cluster_security,
                insecure=self.cluster_insecure,
            )
            scheduler.start(len(unseen))
        elif unseen and self.lender is not None:
            scheduler = LentWorker(self.lender)
            scheduler.start(len(unseen))
        elif unseen:
            scheduler = Scheduler(
                isolation=self.isolation,
                images={
                    image_set(each): write_images(each, self.workdir, image_set(each))
                    for each in self.heldouts.values()
                },
                workdir=self.workdir / "workers",
                workers=workers or defaults.worker_count(),
                fresh_each=fresh_workers,
                budget=self.budget,
            )
            scheduler.start(len(unseen))
        read = self._inspect(todo)
        waiting = [unit for unit in identified if unit.inspection is not None or id(unit) in read]
        # Identical files (a resubmission, a shared model) are evaluated once per part and marked for each.
        sharing: dict[str, list[Unit]] = {}
        jobs = []
        for unit in waiting:
            job = self._screen_or_reuse(unit)
            if job is None:
                continue
            if job.key not in sharing:
                jobs.append(job)
            sharing.setdefault(job.key, []).append(unit)
        if scheduler is not None:
            # The costliest models first: a large one left to the end would keep one worker busy while the
            # others wait with nothing to do.
            jobs.sort(key=lambda job: -cost(sharing[job.key][0].inspection))
            try:
                scheduler.run(jobs, lambda outcome: self._record_safely(sharing[outcome.key], outcome))
            finally:
                self.workers_started = scheduler.started
                scheduler.close()
        # Students' code runs once the models are done: its timed cases must not share the machine with
        # TensorFlow workers.
        self._grade_code(code_units, workers or defaults.worker_count())

    # Steps -----------------------------------------------------------------------------------------

    def _declared_shapes(self, files: list[tuple[Submission, SubmittedFile]]) -> dict[str, tuple | None]:
        """The input shape (without the batch axis) each file's model declares, read by the sandboxed
        inspector (stored inspections reused); None when it cannot be read."""
        probes = [
            (file, Unit(replace(submission, chosen=file, notes=()), self.rules.model_parts[0]))
            for submission, file in files
        ]
        readable = [unit for file, unit in probes if file.kind == "file" and self._hash(unit) is None]
        self._inspect(self._stored_inspections(readable), quiet=True)
        shapes: dict[str, tuple | None] = {}
        for file, unit in probes:
            shapes[file.location] = declared_shape(unit.inspection)
        return shapes

    def _identify(self, unit: Unit) -> bool:
        """Check the listing and hash the chosen file where it lies. False when the unit is decided."""
        submission = unit.submission
        if submission.chosen is None:
            self._finish(unit, submission.problem_status, submission.problem)
            return False
        chosen = submission.chosen
        if chosen.kind == "link":
            self._finish(
                unit, "refused", f"{chosen.name} is a symbolic link, which is never followed; upload the file itself"
            )
            return False
        if chosen.kind == "special":
            self._finish(unit, "unreadable", f"{chosen.name} is not a regular file (a FIFO, socket or device)")
            return False
        size = size_check(chosen.size, self.rules)
        unit.checks.append(size)
        if size.outcome == FAIL:
            self._finish(unit, "refused", f"file size: {size.message}")
            return False
        problem = self._hash(unit)
        if problem is not None:
            self._finish(unit, "unreadable", problem)
            return False
        return True

    def _hash(self, unit: Unit) -> str | None:
        """Set the unit's sha256 and size from the gradebook (a file unchanged since it was hashed) or by
        reading it; the reason when it cannot be read."""
        submission = unit.submission
        chosen = submission.chosen
        assert chosen is not None
        key = stat_key(submission) if not self.rehash else None
        known = self.book.fingerprint(chosen.location, key) if key else None
        if known is not None:
            # Unchanged since it was hashed: a re-mark reads no file. (Anything that must read the file
            # copies it and checks this sha256 against the copy.)
            unit.sha256, unit.size = known, chosen.size
            return None
        try:
            unit.sha256, unit.size = fingerprint(submission)
        except StagingError as error:
            return str(error)
        self.book.add_file(unit.sha256, unit.size)
        if key and key == stat_key(submission):
            self.book.add_fingerprint(chosen.location, key, unit.sha256)
        return None

    def _copy(self, unit: Unit, *, quiet: bool = False) -> Path | None:
        """The private copy of the unit's file, made on first need; None (unit finished, unless quiet) if
        it fails."""
        if unit.staged is None:
            try:
                unit.staged = stage(
                    unit.submission,
                    self.staging / f"{self._staged}{_suffix(unit, self.rules.formats_of(unit.part))}",
                    unit.sha256,
                )
                self._staged += 1
            except StagingError as error:
                if not quiet:
                    self._finish(unit, "unreadable", str(error))
                return None
        return unit.staged.path

    def _stored_inspections(self, units: list[Unit]) -> list[Unit]:
        """Take inspections from the gradebook; return the units whose file must still be inspected (or, for
        integrity evidence, have its weights summarised)."""
        todo = []
        for unit in units:
            cached = self.book.inspection(unit.sha256, INSPECTOR)
            if cached is not None:
                unit.inspection, unit.inspection_json = Inspection.from_json(cached), cached
            if cached is None or self.integrity and not self.book.has_weights(unit.sha256, FINGERPRINT_REVISION):
                todo.append(unit)
        return todo

    def _refused_already(self, unit: Unit) -> bool:
        """Whether a stored inspection already says screening will refuse the file (no worker needed)."""
        if unit.inspection is None:
            return False
        return refused(
            screen(
                unit.inspection,
                self.rules,
                part=unit.part,
                allow_lambda=self.allow_lambda,
                beside=_beside(unit.submission),
            )
        )

    def _stored_evaluation_id(self, unit: Unit) -> int | None:
        heldout = self.heldouts[unit.part.name]
        return self.book.evaluation_id(unit.sha256, heldout.images_sha256, unit.part.evaluation_key(), EVALUATOR)

    def _inspect(self, units: list[Unit], *, quiet: bool = False) -> set[int]:
        """Inspect files in the sandboxed reader (copying each first), and store what it read. Returns the
        ids of the units it read (the others could not be copied, and are finished unless quiet)."""
        todo: dict[Path, Unit] = {}
        for unit in units:
            if (path := self._copy(unit, quiet=quiet)) is not None:
                todo[path] = unit

        def collect(path: Path, answer: dict[str, Any]) -> None:
            unit = todo[path]
            if answer.get("ok"):
                unit.inspection = Inspection.from_json(answer["inspection"])
                unit.inspection_json = answer["inspection"]
                self.book.add_inspection(unit.sha256, INSPECTOR, answer["inspection"])
                if "fingerprint" in answer:
                    summary = dict(answer["fingerprint"])
                    kernels = summary.pop("kernels", None)
                    blob = base64.b64decode(kernels) if kernels else None
                    self.book.add_weights(unit.sha256, FINGERPRINT_REVISION, summary, blob)
            else:
                unit.checks.append(unreadable_check(answer.get("error", ""), self.rules.formats_of(unit.part)))

        if todo:
            inspect_files(
                list(todo),
                isolation=self.isolation,
                workdir=self.workdir / "inspector",
                on_result=collect,
                fingerprint=self.integrity,
            )
        return {id(unit) for unit in todo.values()}

    def _screen_or_reuse(self, unit: Unit) -> Job | None:
        """Screen a staged file; finish it now (refused, or a stored evaluation) or return its job."""
        submission, part = unit.submission, unit.part
        if unit.inspection is not None:
            name = Path(submission.chosen.name).name if submission.chosen else ""
            unit.checks.extend(
                screen(
                    unit.inspection,
                    self.rules,
                    part=part,
                    file_name=name,
                    allow_lambda=self.allow_lambda,
                    beside=_beside(submission),
                )
            )
        for note in submission.notes:
            unit.checks.append(Check("file choice", WARN, note, "leave only the model to be marked in the folder"))
        declared = declared_shape(unit.inspection)
        if part.input_shapes and declared is not None and declared not in part.input_shapes:
            wanted = " or ".join(shape_text(shape, "unknown") for shape in part.input_shapes)
            unit.checks.append(
                Check(
                    "input shape",
                    WARN,
                    f"the model declares input {shape_text(declared, 'unknown')}; "
                    f"part {part.name}'s models take {wanted}",
                    f"build the model for this part's input {wanted}, as the coursework asks",
                )
            )
        if refused(unit.checks):
            self._finish(unit, "refused", summary(unit.checks, FAIL))
            return None
        companions = self._companions(unit)
        if companions is None:
            return None
        stored_id = self._stored_evaluation_id(unit)
        if stored_id is not None:
            stored = self.book.evaluation_by_id(stored_id)
            assert stored is not None
            self.reused += 1
            self._mark(unit, stored, reused=True)
            return None
        assert submission.chosen is not None
        path = self._copy(unit)
        if path is None:
            return None
        staged_beside = self._stage_companions(unit, companions)
        if staged_beside is None:
            return None
        inspection = unit.inspection
        found = formats.of_inspection(inspection) or formats.named(
            formats.format_of(submission.chosen.name) or self.rules.formats_of(part)[0]
        )
        # Screening let a file that carries code through only under --allow-lambda (and warned).
        runs_code = self.allow_lambda and inspection is not None and found.runs_code(inspection)
        return Job(
            key=f"{part.name}:{unit.sha256}",
            model_path=path,
            name=Path(submission.chosen.name).name,
            request=worker_request(
                part, self.heldouts[part.name], inspection, found, allow_lambda=self.allow_lambda, runs_code=runs_code
            ),
            # A file that runs code gets a worker of its own, thrown away afterwards.
            fresh=runs_code,
            wall_seconds=part.evaluation.time_limit_seconds,
            model_name=f"model{_suffix(unit, self.rules.formats_of(unit.part))}",
            companions=staged_beside,
        )

    def _companions(self, unit: Unit) -> list[tuple[SubmittedFile, str]] | None:
        """The files an ONNX graph keeps its weights in (screening has checked each is a plain file of the
        same folder), hashed where they lie; the unit's sha256 becomes the hash of the graph and its data
        together, so a changed data file is evaluated again. None (unit finished) if one cannot be read."""
        graph = formats.of_inspection(unit.inspection)
        names = graph.companions(unit.inspection) if graph is not None and unit.inspection is not None else ()
        if not names:
            return []
        listed = {f.name: f for f in unit.submission.files}
        found = []
        for name in names:
            file = listed[name]
            try:
                sha256, _ = fingerprint(replace(unit.submission, chosen=file))
            except StagingError as error:
                self._finish(unit, "unreadable", str(error))
                return None
            found.append((file, sha256))
        together = "".join(f"{file.name}\n{sha}\n" for file, sha in found)
        unit.sha256 = hashlib.sha256(f"{unit.sha256}\n{together}".encode()).hexdigest()
        return found

    def _stage_companions(
        self, unit: Unit, companions: list[tuple[SubmittedFile, str]]
    ) -> tuple[tuple[Path, str], ...] | None:
        """Private copies of the companion files, checked against the hashes taken; None (unit finished) if
        one changed or cannot be read."""
        staged = []
        for file, sha256 in companions:
            target = self.staging / f"{self._staged}-{file.name}"
            self._staged += 1
            try:
                copy = stage(replace(unit.submission, chosen=file), target, sha256)
            except StagingError as error:
                self._finish(unit, "unreadable", str(error))
                return None
            staged.append((copy.path, file.name))
        return tuple(staged)

    def _record_safely(self, units: list[Unit], outcome: Outcome) -> None:
        """Record an outcome; a failure of grader's own while marking it is those units' row, not the end
        of the run (a gradebook that cannot be written still stops the run: nothing could be kept)."""
        try:
            self._record_outcome(units, outcome)
        except sqlite3.Error:
            raise
        except Exception as error:
            for unit in units:
                if not unit.status:
                    self._finish(unit, "crashed", f"grader could not mark this file: {error!r}; please report this")

    def _record_outcome(self, units: list[Unit], outcome: Outcome) -> None:
        self.evaluated += 1
        unit = units[0]
        # Checked as data before a byte of it is read: a worker's answer is the output of untrusted work.
        problem = (
            answer_problem(outcome.answer, self.heldouts[unit.part.name].size)
            if outcome.status == "answered"
            else ""
            if outcome.status in OUTCOME_STATUSES
            else f"an unknown status {outcome.status!r}"
        )
        if problem:
            reason = f"the worker's answer cannot be marked ({problem}); the file is evaluated again next run"
            outcome = replace(outcome, status="crashed", answer=None, reason=reason[:500])
        answer = outcome.answer
        outputs = None
        if answer is not None and answer.get("ok"):
            encoded = answer.pop("outputs")
            raw = base64.b64decode(encoded["base64"])
            outputs = np.frombuffer(raw, dtype=encoded["dtype"]).reshape(encoded["shape"])
        predictions = scoring.predicted_classes(outputs) if outputs is not None else None
        nonfinite = int((~np.isfinite(outputs)).any(axis=1).sum()) if outputs is not None else 0
        evaluation_id = self.book.add_evaluation(
            sha256=unit.sha256,
            images_sha256=self.heldouts[unit.part.name].images_sha256,
            evaluation_key=unit.part.evaluation_key(),
            grader_version=EVALUATOR,
            status=outcome.status,
            reason=outcome.reason,
            answer={**answer, "worker": outcome.worker} if answer is not None else {"worker": outcome.worker},
            predictions=predictions,
            outputs=outputs,
            nonfinite=nonfinite,
            ties=scoring.tied_top(outputs) if outputs is not None and outputs.ndim == 2 else None,
            seconds=outcome.seconds,
            isolation=outcome.isolation.detail,
            keep=outcome.status == "answered",
        )
        stored = self.book.evaluation_by_id(evaluation_id)
        assert stored is not None
        for each in units:
            self._mark(each, stored, reused=False)

    def _mark(self, unit: Unit, evaluation: Evaluation, *, reused: bool) -> None:
        """Turn an evaluation into a status, a reason and (when it can be marked) a mark."""
        part = unit.part
        detail = {"evaluation": evaluation_detail(evaluation, reused)}
        if evaluation.status != "answered":
            self._finish(unit, FAILED_RUNS.get(evaluation.status, "crashed"), evaluation.reason, detail)
            return
        answer = evaluation.answer or {}
        if not answer.get("ok"):
            status = FAILED_STAGES.get(answer.get("stage", ""), "load_failed")
            self._finish(unit, status, failure_reason(answer, part.evaluation.name), detail)
            return
        if answer.get("fallback_from") and self.rules.versions.legacy_loader_policy == "refuse":
            self._finish(unit, "load_failed", legacy_refusal(answer, self.rules, part), detail)
            return
        # The evaluation states the output width; screening's guess from the config gives way to it.
        unit.checks = [check for check in unit.checks if check.name != "outputs"]
        unit.checks.extend(evaluation_checks(answer, self.rules, part))
        assert evaluation.predictions is not None and evaluation.output_shape is not None
        labels = self.heldouts[part.name].labels
        correct = scoring.count_correct(evaluation.predictions, labels)
        classes = part.data.classes
        width = evaluation.output_shape[1]
        if width != classes and part.evaluation.output_width_policy == "refuse":
            official = scoring.accuracy_percent(correct, labels.size)
            self._finish(
                unit,
                "bad_output",
                f"the model outputs {width} scores per image; this assignment has {classes} classes "
                f"(end it with Dense({classes})); {part.evaluation.name} would report {official}% "
                '(output_width_policy = "refuse")',
                detail,
            )
            return
        unit.checks.append(width_check(width, classes, part.evaluation.name))
        if evaluation.nonfinite:
            message = (
                f"{evaluation.nonfinite:,} of {labels.size:,} images gave NaN or infinite outputs "
                f"({part.evaluation.name}'s argmax counts those as the class of the first NaN)"
            )
            if part.evaluation.nonfinite_policy == "refuse":
                self._finish(unit, "bad_output", message, detail)
                return
            unit.checks.append(Check("outputs", WARN, message, "check the model for overflow or division by zero"))
        if evaluation.ties and evaluation.ties["images"]:
            unit.checks.append(
                ties_check(evaluation.ties, labels.size, part.evaluation.tie_flag_share, part.evaluation.name)
            )
        if evaluation.ties and evaluation.ties.get("constant"):
            unit.checks.append(constant_check(int(evaluation.predictions[0]), labels.size))
        comparison = self._architecture(unit)
        result = scoring.mark(
            correct,
            labels.size,
            part.marking,
            comparison.status if comparison else None,
            "; ".join(comparison.problems[:3]) + ("; ..." if len(comparison.problems) > 3 else "")
            if comparison
            else "",
        )
        detail["mark"] = mark_detail(result, part)
        flagged = [check for check in unit.checks if check.outcome == WARN]
        status = "flagged" if flagged else "graded"
        self._finish(unit, status, summary(unit.checks, WARN), detail, result, evaluation.id)

    def _grade_code(self, units: list[Unit], workers: int) -> None:
        """Run each code file's functions in its own sandboxed child (a few at once), or reuse what the
        gradebook holds for the same file and test module; mark each unit."""
        pending: dict[str, list[Unit]] = {}
        for unit in units:
            spec = unit.part.code
            assert spec is not None
            key = spec.evaluation_key()
            stored_id = self.book.evaluation_id(unit.sha256, spec.tests_sha256, key, CODE_EVALUATOR)
            if stored_id is not None:
                stored = self.book.evaluation_by_id(stored_id)
                assert stored is not None
                self.reused += 1
                self._mark_code(unit, stored, reused=True)
            else:
                pending.setdefault(f"{unit.part.name}:{unit.sha256}", []).append(unit)
        if not pending:
            return
        tests: dict[str, CodeTests] = {}
        runs = {}
        for number, (key, sharing) in enumerate(pending.items()):
            unit = sharing[0]
            spec = unit.part.code
            assert spec is not None
            if unit.part.name not in tests:
                tests[unit.part.name] = load_tests(
                    Path(spec.tests), [question.name for question in spec.questions], spec.seed
                )
                tests[unit.part.name].time_references(
                    isolation=self.isolation, workdir=self.workdir / "code" / f"reference-{unit.part.name}"
                )
            # Each file staged (copied once, its hash checked) alone in a folder of its own: the child sees
            # that folder and nothing else.
            assert unit.submission.chosen is not None
            folder = self.workdir / "code" / str(number) / "in"
            folder.mkdir(parents=True)
            name = "code" + formats.suffix_of(unit.submission.chosen.name, "code.py")
            try:
                unit.staged = stage(unit.submission, folder / name, unit.sha256)
            except StagingError as error:
                self._finish(unit, "unreadable", str(error))
                continue
            os.chmod(folder / name, 0o444)
            runs[key] = CodeRun(
                path=folder / name,
                notebook=name.endswith(".ipynb"),
                functions={question.name: list(question.functions) for question in spec.questions},
                call_seconds=spec.call_seconds,
                timing_seconds=spec.timing_seconds,
                **({"imports": spec.imports} if spec.imports else {}),
            )
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {
                pool.submit(
                    evaluate_code,
                    run,
                    tests[pending[key][0].part.name],
                    isolation=self.isolation,
                    workdir=run.path.parent.parent / "child",
                ): key
                for key, run in runs.items()
            }
            for future in as_completed(futures):
                key = futures[future]
                started = time.monotonic()
                try:
                    answer = future.result()
                except Exception as error:  # grader's own failure: this file's row, not the run's end
                    answer = {"ok": False, "error": f"grader could not run the code: {error!r}", "crashed": True}
                self._record_code(pending[key], answer, time.monotonic() - started)

    def _record_code(self, units: list[Unit], answer: dict[str, Any], seconds: float) -> None:
        self.evaluated += 1
        unit = units[0]
        spec = unit.part.code
        assert spec is not None
        crashed = bool(answer.get("crashed"))
        evaluation_id = self.book.add_evaluation(
            sha256=unit.sha256,
            images_sha256=spec.tests_sha256,
            evaluation_key=spec.evaluation_key(),
            grader_version=CODE_EVALUATOR,
            status="crashed" if crashed else "answered",
            reason=answer.get("error", "") if crashed else "",
            answer=answer,
            predictions=None,
            outputs=None,
            nonfinite=0,
            seconds=seconds,
            isolation=self.isolation.detail,
            keep=not crashed,
        )
        stored = self.book.evaluation_by_id(evaluation_id)
        assert stored is not None
        for each in units:
            self._mark_code(each, stored, reused=False)

    def _mark_code(self, unit: Unit, evaluation: Evaluation, *, reused: bool) -> None:
        """A code unit's status, reason and points from its stored evaluation."""
        spec = unit.part.code
        assert spec is not None
        answer = evaluation.answer or {}
        detail: dict[str, Any] = {
            "evaluation": {
                "id": evaluation.id,
                "reused": reused,
                "seconds": evaluation.seconds,
                "isolation": evaluation.isolation,
            }
        }
        if evaluation.status != "answered":
            self._finish(unit, "crashed", evaluation.reason or "the code could not be run", detail)
            return
        if not answer.get("ok"):
            self._finish(unit, "unreadable", answer.get("error", "the file could not be read"), detail)
            return
        marks = mark_code(answer, spec)
        detail["code"] = code_detail(answer, marks)
        review = code_reasons(marks, "review")
        if review:
            unit.checks.append(Check("review", WARN, review, "a person should read these questions' code"))
        tried = file_attempts(answer)
        if tried:
            unit.checks.append(
                Check(
                    "tripwire",
                    WARN,
                    "the file's code tried to " + "; ".join(tried) + " (refused)",
                    "a person should read this file: its code tried what numpy functions never need",
                )
            )
        for note in unit.submission.notes:
            unit.checks.append(Check("file choice", WARN, note, "hand in one file with your functions"))
        flagged = [check for check in unit.checks if check.outcome == WARN]
        reason = "; ".join(filter(None, [summary(unit.checks, WARN) if flagged else "", code_reasons(marks)]))
        score = detail["code"]["score"]
        self._finish(
            unit,
            "flagged" if flagged else "graded",
            reason,
            detail,
            evaluation_id=evaluation.id,
            counts=(detail["code"]["passed"], detail["code"]["cases"], score),
        )

    def _architecture(self, unit: Unit) -> Comparison | None:
        """The file's layers against the part's required architecture (None when the part has none)."""
        if unit.part.architecture is None or unit.inspection is None:
            return None
        if unit.comparison is None:
            unit.comparison = compare_inspection(unit.inspection, unit.part.architecture)
        return unit.comparison

    def _finish(
        self,
        unit: Unit,
        status: str,
        reason: str,
        detail: dict[str, Any] | None = None,
        result: scoring.Mark | None = None,
        evaluation_id: int | None = None,
        counts: tuple[int, int, Any] | None = None,
    ) -> None:
        """Commit a unit's row. `result` is a model's mark; `counts` a code part's (cases passed, cases, points)."""
        submission = unit.submission
        comparison = self._architecture(unit)
        if comparison is not None:
            detail = {**(detail or {}), "architecture": comparison.to_json()}
        # Read (inspected) under the run's isolation, evaluated under the evaluation's (a reused one may have run
        # in an earlier, unsandboxed run): either unsandboxed, and every output of this row says so.
        evaluated_under = ((detail or {}).get("evaluation") or {}).get("isolation") or self.isolation.detail
        unsandboxed = next((way for way in (self.isolation.detail, evaluated_under) if not was_isolated(way)), "")
        if unsandboxed:
            detail = {**(detail or {}), "not_isolated": unsandboxed}
        row = {
            "student_id": submission.student_id,
            "part": unit.part.name,
            "student_name": submission.student_name,
            "folder": submission.folder,
            "file": submission.chosen.name if submission.chosen else "",
            "sha256": unit.sha256,
            "status": status,
            "reason": reason,
            "correct": result.correct if result else counts[0] if counts else None,
            "total": result.total if result else counts[1] if counts else None,
            "accuracy": result.accuracy if result else None,
            "score": result.score if result else counts[2] if counts else None,
            "band": result.band.text if result and result.band else None,
            "evaluation_id": evaluation_id,
            "detail": {
                "files": [{"name": f.name, "size": f.size} for f in submission.files],
                "size": unit.size if unit.size is not None else (submission.chosen.size if submission.chosen else None),
                "checks": [check.to_json() for check in unit.checks],
                "inspection": unit.inspection_json,
                **(detail or {}),
            },
        }
        self.book.add_result(self.run_id, row)
        unit.status = status
        self.progress.advance(submission.student_id, status)
        if self.reports is None:
            return
        finished = self._waiting.setdefault(submission.student_id, [])
        finished.append({**row, "detail": json.loads(json.dumps(row["detail"]))})
        if len(finished) < len(self.rules.parts):
            return
        del self._waiting[submission.student_id]
        try:
            notes = write_student_report(finished, self.run_info, self.book, self.heldouts, self.rules, self.reports)
        except Exception as error:  # a report that cannot be drawn is a note in the row, not a lost run
            notes = [f"report: could not be written ({error!r})"]
        if notes:
            self.book.note_result(self.run_id, submission.student_id, notes)


def _suffix(unit: Unit, accepted: tuple[str, ...]) -> str:
    """The suffix a staged copy keeps (loaders go by it): the chosen file's format's, else the part's first's."""
    chosen = unit.submission.chosen
    found = formats.format_of(chosen.name) if chosen is not None else None
    return formats.named(found or accepted[0]).suffixes[0]


def _beside(submission: Submission) -> dict[str, int]:
    """The plain files at the top of a student's folder, by name, with their sizes (for external data)."""
    return {f.name: f.size for f in submission.files if "/" not in f.name and f.kind == "file"}
