"""Rows: a unit's end. Its row (status, reason, mark, the evidence behind them) is committed to the gradebook as
soon as it is known, and a student's report is written once every part of theirs has its row (while workers
evaluate others)."""

from __future__ import annotations

import json
from typing import Any

from grader.evaluation.sandbox import was_isolated
from grader.marking import scoring
from grader.outputs.reports import write_student_report
from grader.run.context import RunContext
from grader.run.unit import Unit, architecture


class Rows:
    """Commits each unit's row; writes each student's report when their last part is committed."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.run_info = context.book.run(context.run_id)
        self._waiting: dict[str, list[dict[str, Any]]] = {}
        "Each student's finished part rows, until every part is finished and the report can be written."

    def finish(
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
        context, submission = self.context, unit.submission
        comparison = architecture(unit)
        if comparison is not None:
            detail = {**(detail or {}), "architecture": comparison.to_json()}
        # Read (inspected) under the run's isolation, evaluated under the evaluation's (a reused one may have run
        # in an earlier, unsandboxed run): either unsandboxed, and every output of this row says so.
        evaluated_under = ((detail or {}).get("evaluation") or {}).get("isolation") or context.isolation.detail
        unsandboxed = next((way for way in (context.isolation.detail, evaluated_under) if not was_isolated(way)), "")
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
        context.book.add_result(context.run_id, row)
        unit.status = status
        context.progress.advance(submission.student_id, status)
        if context.reports is not None:
            self._report_when_complete(submission.student_id, row)

    def _report_when_complete(self, student_id: str, row: dict[str, Any]) -> None:
        context = self.context
        assert context.reports is not None
        finished = self._waiting.setdefault(student_id, [])
        finished.append({**row, "detail": json.loads(json.dumps(row["detail"]))})
        if len(finished) < len(context.rules.parts):
            return
        del self._waiting[student_id]
        try:
            notes = write_student_report(
                finished, self.run_info, context.book, context.heldouts, context.rules, context.reports
            )
        except Exception as error:  # a report that cannot be drawn is a note in the row, not a lost run
            notes = [f"report: could not be written ({error!r})"]
        if notes:
            context.book.note_result(context.run_id, student_id, notes)
