"""The run as its stages, in order: route (files to parts) -> stage (hash; copy on need) -> read (inspect) ->
screen -> plan (reuse a stored evaluation, or a job) -> evaluate (local workers, a lent worker or Dask) -> record
-> verdict -> rows (each row committed, each student's report written). docs/architecture.md draws it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grader import defaults, formats
from grader.checks.screening import FAIL, refused, summary
from grader.discovery import Submission
from grader.evaluation.scheduler import Job
from grader.run.code import grade_code
from grader.run.context import RunContext
from grader.run.evaluate import start_evaluator
from grader.run.plan import cost, job_for
from grader.run.read import declared_shapes, inspect, stored_inspections
from grader.run.record import Recorder
from grader.run.route import route
from grader.run.rows import Rows
from grader.run.screen import refused_already, screen_unit
from grader.run.stage import Stager, suffix
from grader.run.unit import Unit


class Run:
    """One run of `grade`: every unit of every student ends with a committed row."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.rows = Rows(context)
        self.stager = Stager(context, self.rows)
        self.recorder = Recorder(context, self.rows)

    def grade(self, submissions: list[Submission], *, workers: int | None, fresh_workers: bool) -> None:
        context = self.context
        context.staging.mkdir(parents=True)
        units = route(submissions, context.rules, lambda files: declared_shapes(context, self.stager, files))
        context.progress.start(len(units))
        identified = [unit for unit in units if self.stager.identify(unit)]
        code_units = [unit for unit in identified if unit.part.code is not None]
        identified = [unit for unit in identified if unit.part.code is None]
        todo = stored_inspections(context, identified)
        # Files that will need a worker (no stored evaluation, and not refused by what is already known of
        # them): start the workers now, so that TensorFlow imports while the rest are inspected.
        unseen = {
            (unit.sha256, unit.part.name)
            for unit in identified
            if not refused_already(context, unit) and self.recorder.stored_id(unit) is None
        }
        evaluator = start_evaluator(context, len(unseen), workers=workers, fresh_workers=fresh_workers)
        read = inspect(context, self.stager, todo)
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
        if evaluator is not None:
            self._evaluate(evaluator, jobs, sharing)
        # Students' code runs once the models are done: its timed cases must not share the machine with
        # TensorFlow workers.
        grade_code(context, self.recorder, self.rows, code_units, workers or defaults.worker_count())

    def _evaluate(self, evaluator: Any, jobs: list[Job], sharing: dict[str, list[Unit]]) -> None:
        # The costliest models first: a large one left to the end would keep one worker busy while the
        # others wait with nothing to do.
        jobs.sort(key=lambda job: -cost(sharing[job.key][0].inspection))
        try:
            evaluator.run(jobs, lambda outcome: self.recorder.record_outcome(sharing[outcome.key], outcome))
        finally:
            self.context.tally.workers_started = evaluator.started
            evaluator.close()

    def _screen_or_reuse(self, unit: Unit) -> Job | None:
        """Screen a file; finish it now (refused, or a stored evaluation) or return its job."""
        context, submission, part = self.context, unit.submission, unit.part
        unit.checks.extend(screen_unit(context, unit))
        if refused(unit.checks):
            self.rows.finish(unit, "refused", summary(unit.checks, FAIL))
            return None
        companions = self.stager.companions(unit)
        if companions is None or self.recorder.reuse(unit):
            return None
        assert submission.chosen is not None
        path = self.stager.copy(unit)
        if path is None:
            return None
        staged_beside = self.stager.stage_companions(unit, companions)
        if staged_beside is None:
            return None
        found = formats.of_file(unit.inspection, submission.chosen.name, context.rules.formats_of(part))
        return job_for(
            part,
            context.heldouts[part.name],
            sha256=unit.sha256,
            inspection=unit.inspection,
            found=found,
            model_path=path,
            name=Path(submission.chosen.name).name,
            suffix=suffix(unit, context.rules.formats_of(part)),
            companions=staged_beside,
            allow_lambda=context.allow_lambda,
        )
