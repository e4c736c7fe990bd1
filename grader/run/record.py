"""Record: one path for model parts and code parts alike. An evaluation is looked up in the gradebook (the same
file, the same inputs, the same rules and evaluator: reused, nothing runs), or a worker's outcome is checked as
data, stored, and every unit sharing that file is given its verdict (grader.run.verdict) and its row."""

from __future__ import annotations

import base64
import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grader.evaluation.code import CODE_EVALUATOR
from grader.evaluation.scheduler import OUTCOME_STATUSES, Outcome, answer_problem
from grader.evaluation.worker import REVISION as WORKER_REVISION
from grader.gradebook import Evaluation
from grader.marking import scoring
from grader.release import VERSION
from grader.run.context import RunContext
from grader.run.rows import Rows
from grader.run.unit import Unit
from grader.run.verdict import Verdict, code_verdict, model_verdict

# Stored evaluations are reused only when they were made by this grader and this worker's way of predicting.
EVALUATOR = f"{VERSION} worker {WORKER_REVISION}"


@dataclass(frozen=True)
class EvaluationKey:
    """What makes two evaluations the same: the inputs' hash (a model part's held-out images, a code part's test
    module), the part's evaluation rules, and the evaluator's release."""

    inputs_sha256: str
    rules: str
    evaluator: str


class Recorder:
    """Reuses, stores and marks evaluations; each unit's end goes to `rows`."""

    def __init__(self, context: RunContext, rows: Rows) -> None:
        self.context, self.rows = context, rows

    def key(self, unit: Unit) -> EvaluationKey:
        code = unit.part.code
        if code is not None:
            return EvaluationKey(code.tests_sha256, code.evaluation_key(), CODE_EVALUATOR)
        heldout = self.context.heldouts[unit.part.name]
        return EvaluationKey(heldout.images_sha256, unit.part.evaluation_key(), EVALUATOR)

    def stored_id(self, unit: Unit) -> int | None:
        """The id of the gradebook's evaluation of this unit's file, or None (a lookup that reads no outputs)."""
        key = self.key(unit)
        return self.context.book.evaluation_id(unit.sha256, key.inputs_sha256, key.rules, key.evaluator)

    def reuse(self, unit: Unit) -> bool:
        """Mark the unit from the gradebook's evaluation of its file, if there is one (True)."""
        stored_id = self.stored_id(unit)
        if stored_id is None:
            return False
        stored = self.context.book.evaluation_by_id(stored_id)
        assert stored is not None
        self.context.tally.reused += 1
        self.mark(unit, stored, reused=True)
        return True

    def mark(self, unit: Unit, evaluation: Evaluation, *, reused: bool) -> None:
        """Give the unit its verdict and commit its row."""
        verdict: Verdict
        if unit.part.code is not None:
            verdict = code_verdict(unit, evaluation, reused=reused)
        else:
            labels = self.context.heldouts[unit.part.name].labels
            verdict = model_verdict(unit, evaluation, reused=reused, rules=self.context.rules, labels=labels)
        self.rows.finish(
            unit, verdict.status, verdict.reason, verdict.detail, verdict.result, verdict.evaluation_id, verdict.counts
        )

    def record_outcome(self, units: list[Unit], outcome: Outcome) -> None:
        """Store a model worker's outcome and mark the units sharing its file."""
        with self._marking(units):
            self._record_outcome(units, outcome)

    def record_code(self, units: list[Unit], answer: dict[str, Any], seconds: float) -> None:
        """Store a code child's answer and mark the units sharing its file."""
        crashed = bool(answer.get("crashed"))
        with self._marking(units):
            self._store(
                units,
                status="crashed" if crashed else "answered",
                reason=answer.get("error", "") if crashed else "",
                answer=answer,
                outputs=None,
                seconds=seconds,
                isolation=self.context.isolation.detail,
            )

    @contextlib.contextmanager
    def _marking(self, units: list[Unit]) -> Iterator[None]:
        """A failure of grader's own while storing or marking an evaluation is those units' row, not the end of
        the run (a gradebook that cannot be written still stops the run: nothing could be kept)."""
        try:
            yield
        except sqlite3.Error:
            raise
        except Exception as error:
            for unit in units:
                if not unit.status:
                    self.rows.finish(unit, "crashed", f"grader could not mark this file: {error!r}; please report this")

    def _record_outcome(self, units: list[Unit], outcome: Outcome) -> None:
        unit = units[0]
        # Checked as data before a byte of it is read: a worker's answer is the output of untrusted work.
        problem = (
            answer_problem(outcome.answer, self.context.heldouts[unit.part.name].size)
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
        self._store(
            units,
            status=outcome.status,
            reason=outcome.reason,
            answer={**answer, "worker": outcome.worker} if answer is not None else {"worker": outcome.worker},
            outputs=outputs,
            seconds=outcome.seconds,
            isolation=outcome.isolation.detail,
        )

    def _store(
        self,
        units: list[Unit],
        *,
        status: str,
        reason: str,
        answer: dict[str, Any],
        outputs: np.ndarray | None,
        seconds: float,
        isolation: str,
    ) -> None:
        """Store one evaluation (kept for reuse only when it answered) and mark every unit sharing it."""
        self.context.tally.evaluated += 1
        key = self.key(units[0])
        evaluation_id = self.context.book.add_evaluation(
            sha256=units[0].sha256,
            images_sha256=key.inputs_sha256,
            evaluation_key=key.rules,
            grader_version=key.evaluator,
            status=status,
            reason=reason,
            answer=answer,
            predictions=scoring.predicted_classes(outputs) if outputs is not None else None,
            outputs=outputs,
            nonfinite=int((~np.isfinite(outputs)).any(axis=1).sum()) if outputs is not None else 0,
            ties=scoring.tied_top(outputs) if outputs is not None and outputs.ndim == 2 else None,
            seconds=seconds,
            isolation=isolation,
            keep=status == "answered",
        )
        stored = self.context.book.evaluation_by_id(evaluation_id)
        assert stored is not None
        for each in units:
            self.mark(each, stored, reused=False)
