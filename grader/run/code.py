"""Evaluate a code part: each student's file of functions runs in its own sandboxed child (a few at once), or the
gradebook's evaluation of the same file and test module is reused; recorded through the same path as models."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from grader import formats
from grader.evaluation.code import CodeRun, CodeTests, evaluate_code, load_tests
from grader.evaluation.staging import StagingError, stage
from grader.formats.code import CodeFormat
from grader.run.context import RunContext
from grader.run.record import Recorder
from grader.run.rows import Rows
from grader.run.unit import Unit


def grade_code(context: RunContext, recorder: Recorder, rows: Rows, units: list[Unit], workers: int) -> None:
    """Mark each code unit: reused, or run (once per part and file) and recorded."""
    pending: dict[str, list[Unit]] = {}
    for unit in units:
        if not recorder.reuse(unit):
            pending.setdefault(f"{unit.part.name}:{unit.sha256}", []).append(unit)
    if not pending:
        return
    tests: dict[str, CodeTests] = {}
    runs = {}
    for number, (key, sharing) in enumerate(pending.items()):
        unit = sharing[0]
        if unit.part.name not in tests:
            tests[unit.part.name] = _tests(context, unit)
        run = _stage(unit, context.workdir / "code" / str(number) / "in")
        if isinstance(run, str):
            for each in sharing:
                rows.finish(each, "unreadable", run)
            continue
        runs[key] = run
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {
            pool.submit(
                evaluate_code,
                run,
                tests[pending[key][0].part.name],
                isolation=context.isolation,
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
            recorder.record_code(pending[key], answer, time.monotonic() - started)


def notebook(file_name: str) -> bool:
    """Whether a code file is a notebook (its format says so), whose code cells are what the worker runs."""
    found = formats.named(formats.format_of(file_name) or "python")
    return isinstance(found, CodeFormat) and found.cells


def _tests(context: RunContext, unit: Unit) -> CodeTests:
    """The part's test module, loaded here (the instructor's), with its reference functions timed in the sandbox."""
    spec = unit.part.code
    assert spec is not None
    tests = load_tests(Path(spec.tests), [question.name for question in spec.questions], spec.seed)
    tests.time_references(isolation=context.isolation, workdir=context.workdir / "code" / f"reference-{unit.part.name}")
    return tests


def _stage(unit: Unit, folder: Path) -> CodeRun | str:
    """The unit's file staged (copied once, its hash checked) alone in a folder of its own, which is all the child
    sees, and what the child is to run; the reason when it cannot be copied."""
    spec, chosen = unit.part.code, unit.submission.chosen
    assert spec is not None and chosen is not None
    folder.mkdir(parents=True)
    name = "code" + formats.suffix_of(chosen.name, "code.py")
    try:
        unit.staged = stage(unit.submission, folder / name, unit.sha256)
    except StagingError as error:
        return str(error)
    os.chmod(folder / name, 0o444)
    return CodeRun(
        path=folder / name,
        notebook=notebook(name),
        functions={question.name: list(question.functions) for question in spec.questions},
        call_seconds=spec.call_seconds,
        timing_seconds=spec.timing_seconds,
        **({"imports": spec.imports} if spec.imports else {}),
    )
