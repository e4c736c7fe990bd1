"""Code questions: a student's functions run in the sandbox and their answers compared with the instructor's.

An assignment part with `kind = "code"` names a test module beside its TOML file. The module is the
instructor's: it holds the reference implementations and, for each question, a function that builds the
cases from a seeded random generator:

    from grader.evaluation.code import Case

    def relu_cases(rng):
        x = rng.normal(size=(6, 6, 3))
        return [Case("a stack of 3 maps", (x,), expect=np.maximum(x, 0), reference=reference_relu)]

    CASES = {"q21": relu_cases}

A case's `expect` is one array or, where the question leaves a choice open, a mapping from each accepted
variant's name to its array ('valid cross-correlation', 'flipped convolution'). A case with a `reference`
also times the student's function against it, to confirm that loops found in the code work through the
array element by element. The module runs here, in the grading process (it is the instructor's code);
the student's code runs only in the sandboxed child (grader.evaluation.code_worker), which gets each case's
inputs as .npy bytes and never its expected outputs.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from grader.errors import AssignmentError, WorkerError, WorkerOverBudget, WorkerTimeout
from grader.evaluation import sandbox
from grader.evaluation.code_worker import DEFAULT_IMPORTS
from grader.evaluation.code_worker import PROTOCOL_VERSION as CODE_PROTOCOL

# Stored answers are reused while this is the same (bump it when what a code evaluation records changes).
CODE_EVALUATOR = f"code-{CODE_PROTOCOL}"
SOURCE_INSIDE = "/submission"
STARTUP_SECONDS = 60.0
# Reference timings are the best of this many runs.
TIMING_REPEATS = 3
# A student's timed case quicker than this is called twice, and the quicker call counts.
AGAIN_BELOW_SECONDS = 5.0
# Timed calls run one at a time across the run's code children, so that two are never timed against each other.
TIMING_LOCK = threading.Lock()
# The child's resident memory and address space.
MEMORY_BYTES = 2 * 1024**3
ADDRESS_SPACE_BYTES = 4 * 1024**3
# Student code and the reference timings run with one numpy thread each, so that their times compare.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Case:
    """One call of a student's function and the answers accepted for it."""

    name: str
    "What the case tries, as a report shows it ('one 5x5 map, a 3x3 filter')."
    args: tuple[Any, ...]
    "Positional arguments, in the template's order: arrays, numbers or strings."
    expect: np.ndarray | Mapping[str, np.ndarray]
    "The answer, or each accepted variant's answer by name."
    rtol: float = 1e-5
    atol: float = 1e-6
    reference: Callable[..., Any] | None = None
    "The instructor's implementation: when given, the student's function is timed on this case against it."

    def variants(self) -> dict[str, np.ndarray]:
        if isinstance(self.expect, Mapping):
            return {name: np.asarray(value) for name, value in self.expect.items()}
        return {"": np.asarray(self.expect)}


@dataclass
class CodeTests:
    """An instructor's test module, loaded, with every question's cases built."""

    path: Path
    sha256: str
    seed: int
    cases: dict[str, list[Case]]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    "Each timed case's reference time, {question: {case index: seconds}}, once measured (see time_references)."
    timed_in: str = ""
    "Where the references were timed: 'child' (as students' code is) or 'parent' (this process)."

    def reference_seconds(self, question: str, index: int) -> float:
        if not self.timed_in:
            self.timings, self.timed_in = measure(self), "parent"
        return self.timings[question][str(index)]

    def time_references(self, *, isolation: sandbox.Isolation, workdir: Path) -> None:
        """Time the reference implementations in a child started as a student's is (one thread, the same
        sandbox), so that a student's time and the reference's are measured alike; in this process if the
        child cannot run (the ratios then lean against students, and the answer says where it was timed)."""
        from grader.evaluation.scheduler import Budget

        child = _file_child(
            self.path,
            "grader.evaluation.code",
            lambda inside: ["--tests", inside, "--seed", str(self.seed), *self.cases],
            isolation=isolation,
            workdir=workdir,
            limits=sandbox.Limits(address_space_bytes=ADDRESS_SPACE_BYTES),
        )
        try:
            child.start(timeout=STARTUP_SECONDS)
            answer = child.ask({"time": True}, Budget(STARTUP_SECONDS * 5, MEMORY_BYTES, 1))
            self.timings, self.timed_in = answer["timings"], "child"
        except (WorkerError, KeyError):
            self.timings, self.timed_in = measure(self), "parent"
        finally:
            child.kill()


def _file_child(
    path: Path,
    module: str,
    args: Callable[[str], list[str]],
    *,
    isolation: sandbox.Isolation,
    workdir: Path,
    limits: sandbox.Limits,
) -> Any:
    """A sandboxed child (numpy on one thread) that can read `path`'s folder and nothing else of the host's;
    `args` gets the path as the child sees it."""
    from grader.evaluation.scheduler import ChildProcess

    folder = path.parent
    visible = sandbox.visible_paths(isolation, {str(folder): SOURCE_INSIDE})
    inside = f"{visible[str(folder)]}/{path.name}"
    return ChildProcess(
        isolation=isolation,
        module=module,
        args=args(inside),
        readable=visible,
        workdir=workdir,
        limits=limits,
        env=ONE_THREAD,
    )


def measure(tests: CodeTests) -> dict[str, dict[str, float]]:
    """The best of TIMING_REPEATS runs of each timed case's reference, in this process."""
    timings: dict[str, dict[str, float]] = {}
    for question, cases in tests.cases.items():
        for index, case in enumerate(cases):
            if case.reference is None:
                continue
            best = float("inf")
            for _ in range(TIMING_REPEATS):
                started = time.perf_counter()
                case.reference(*case.args)
                best = min(best, time.perf_counter() - started)
            timings.setdefault(question, {})[str(index)] = best
    return timings


def load_tests(path: Path, questions: Sequence[str], seed: int) -> CodeTests:
    """Import an instructor's test module and build each question's cases; a clear error when it is
    missing, broken, or lacks a question."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise AssignmentError(f"{path}: the code part's test module cannot be read ({error.strerror})") from None
    sha256 = hashlib.sha256(raw).hexdigest()
    module_name = f"grader_code_tests_{sha256[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AssignmentError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise AssignmentError(f"{path}: the test module failed to import: {error!r}") from None
    builders = _builders(module, path)
    cases = {}
    for number, question in enumerate(questions):
        if question not in builders:
            raise AssignmentError(f"{path}: CASES has no entry for question {question!r}")
        rng = np.random.default_rng([seed, number])
        built = list(builders[question](rng))
        if not built or not all(isinstance(case, Case) for case in built):
            raise AssignmentError(f"{path}: CASES[{question!r}] must return a non-empty list of Case")
        cases[question] = built
    return CodeTests(path=path, sha256=sha256, seed=seed, cases=cases)


def _builders(module: ModuleType, path: Path) -> dict[str, Callable[[np.random.Generator], Sequence[Case]]]:
    builders = getattr(module, "CASES", None)
    if not isinstance(builders, dict) or not all(callable(build) for build in builders.values()):
        raise AssignmentError(f"{path}: the test module must define CASES = {{question: function(rng) -> [Case]}}")
    return builders


# Running a file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRun:
    """What the sandboxed child needs for one file."""

    path: Path
    "The staged copy of the student's file."
    notebook: bool
    functions: dict[str, list[str]]
    "Each question's accepted function names, the template's first."
    call_seconds: float
    "Wall-clock limit for one call of a student's function (a timed case gets timing_seconds)."
    timing_seconds: float
    imports: tuple[str, ...] = DEFAULT_IMPORTS


def evaluate_code(run: CodeRun, tests: CodeTests, *, isolation: sandbox.Isolation, workdir: Path) -> dict[str, Any]:
    """Run one student's file against every question's cases and judge each answer.

    The answer records, per question, the function found, each case's result, the loops found and the
    timing of a timed case, and whatever the code tried and was refused. A call that hangs, over-uses memory
    or kills the child ends that question (its remaining cases are not run); a fresh child takes the next.
    """
    session = _Session(run, isolation, workdir)
    answer: dict[str, Any] = {"questions": {}}
    try:
        prepared = session.start()
        if prepared is None and session.stage == "start":
            return {"ok": False, "error": session.failure, "crashed": True}  # this machine's: tried again next run
        if prepared is None and session.stage == "load":
            # The student's definitions hang or kill the child: every question, with the reason.
            return {"ok": True, "stopped": session.failure, "questions": {}, "syntax_errors": [], "dropped": []}
        if prepared is None or not prepared.get("ok"):
            return {
                "ok": False,
                "error": session.failure or (prepared or {}).get("error", "the file could not be read"),
            }
        answer.update(
            {key: prepared[key] for key in ("notebook", "cells", "used_cells", "syntax_errors", "dropped", "defined")}
        )
        answer["load_errors"] = session.loaded.get("errors", [])
        answer["load_attempts"] = session.loaded.get("attempts", [])
        # Statements not run because they reach out of the student's code: attempts found before anything ran.
        answer["prepare_attempts"] = prepared.get("attempts", [])
        for question, found in prepared["questions"].items():
            answer["questions"][question] = _question(session, question, found, tests)
            for case in answer["questions"][question]["cases"]:
                if not case["passed"]:
                    case["message"] += _left_out(case["message"], prepared["dropped"])
        answer["ok"] = True
        answer["child"] = session.ready
        return answer
    finally:
        session.close()


def _question(session: _Session, question: str, found: dict[str, Any], tests: CodeTests) -> dict[str, Any]:
    result: dict[str, Any] = {"function": found.get("function"), "cases": [], "attempts": []}
    if found.get("function") is None:
        # Not found, or found and left out because it reaches out of the student's code (then said so).
        return {**result, **{key: found[key] for key in ("refused", "where", "name") if key in found}}
    result["where"], result["loops"] = found["where"], found["loops"]
    stopped = ""
    for index, case in enumerate(tests.cases[question]):
        if stopped:
            result["cases"].append({"name": case.name, "passed": False, "message": f"not run: {stopped}"})
            continue
        limit = session.run.timing_seconds if case.reference is not None else session.run.call_seconds
        if case.reference is not None:
            with TIMING_LOCK:
                reply, failure, wall = session.call(result["function"], case.args, limit)
        else:
            reply, failure, wall = session.call(result["function"], case.args, limit)
        if failure:
            stopped = "an earlier case stopped the function"
            result["cases"].append({"name": case.name, "passed": False, "message": failure, "stopped": True})
            if case.reference is not None and failure.startswith("did not finish"):
                result["timing"] = _timing(tests, question, index, limit, timed_out=True)
            continue
        assert reply is not None
        result["attempts"] += reply.get("attempts", [])
        judged = judge(case, reply)
        if reply.get("printed"):
            judged["printed"] = reply["printed"]
        result["cases"].append(judged)
        if case.reference is not None and reply.get("ok"):
            seconds = _seconds(reply, wall)
            if seconds < AGAIN_BELOW_SECONDS:
                # The best of two calls: one slow call on a busy machine must not decide a deduction.
                with TIMING_LOCK:
                    again, failure, wall = session.call(result["function"], case.args, limit)
                if again is not None and again.get("ok"):
                    seconds = min(seconds, _seconds(again, wall))
            result["timing"] = _timing(tests, question, index, seconds)
    return result


def _left_out(message: str, dropped: list[dict[str, Any]]) -> str:
    """For a NameError on a name that a statement left out of the run would have defined: which statement,
    and why it was not run ('' otherwise)."""
    found = re.search(r"NameError: name '(\w+)' is not defined", message)
    if found is None:
        return ""
    name = found.group(1)
    statement = next((item for item in dropped if name in item.get("names", [])), None)
    if statement is None:
        return ""
    return f"; {name} comes from `{statement['what']}` at {statement['where']}, which was not run: {statement['why']}"


def _seconds(reply: dict[str, Any], wall: float) -> float:
    """The child times the call itself (without the transfer); a time it reports that the parent's own
    clock contradicts is not believed."""
    seconds = float(reply.get("seconds", wall))
    return wall if not 0 <= seconds <= wall or wall > 5 * seconds + 0.5 else seconds


def _timing(tests: CodeTests, question: str, index: int, seconds: float, timed_out: bool = False) -> dict[str, Any]:
    case = tests.cases[question][index]
    shapes = [list(np.shape(arg)) for arg in case.args if isinstance(arg, np.ndarray)]
    return {
        "case": case.name,
        "shapes": shapes,
        "seconds": seconds,
        "reference_seconds": tests.reference_seconds(question, index),
        "reference_timed_in": tests.timed_in,
        "timed_out": timed_out,
    }


class _Session:
    """The child for one file: started, prepared and loaded; replaced when a call breaks it."""

    def __init__(self, run: CodeRun, isolation: sandbox.Isolation, workdir: Path) -> None:
        self.run, self.isolation, self.workdir = run, isolation, workdir
        self.child: Any = None
        self.ready: dict[str, Any] = {}
        self.loaded: dict[str, Any] = {}
        self.failure = ""
        self.stage = ""

    def start(self) -> dict[str, Any] | None:
        """Start a child, prepare and load the file; its analysis, or None with `failure` set and `stage` saying
        where: 'start' (the child did not start: this machine's failure), 'prepare' (reading the file broke the
        child: the file's) or 'load' (running its definitions hung or broke the child: the student's code)."""
        from grader.evaluation.scheduler import Budget

        flags = ["--notebook"] if self.run.notebook else []
        self.child = _file_child(
            self.run.path,
            "grader.evaluation.code_worker",
            lambda inside: ["--source", inside, *flags, *(f"--allow={name}" for name in self.run.imports)],
            isolation=self.isolation,
            workdir=self.workdir,
            limits=sandbox.Limits(address_space_bytes=ADDRESS_SPACE_BYTES, cpu_seconds=3600, file_bytes=16 * 1024**2),
        )
        self.child.protocol = CODE_PROTOCOL
        budget = Budget(wall_seconds=STARTUP_SECONDS, memory_bytes=MEMORY_BYTES, processes=1)
        self.stage = "start"
        try:
            self.ready = self.child.start(timeout=STARTUP_SECONDS)
            self.stage = "prepare"
            prepared = self.child.ask({"prepare": self.run.functions}, budget)
            if prepared.get("ok"):
                self.stage = "load"
                self.loaded = self.child.ask({"load": True}, Budget(self.run.call_seconds, MEMORY_BYTES, 1))
            return prepared
        except WorkerTimeout:
            self.failure = {
                "start": f"the code child did not start within {STARTUP_SECONDS:g} s",
                "prepare": f"reading the file did not finish within {STARTUP_SECONDS:g} s",
                "load": f"running the file's definitions did not finish within {self.run.call_seconds:g} s",
            }[self.stage]
        except WorkerError as error:
            self.failure = {
                "start": f"the code child did not start: {error}",
                "prepare": f"reading the file stopped the reader: {error}",
                "load": f"running the file's definitions stopped the child: {error}",
            }[self.stage]
        self.close()
        return None

    def call(self, function: str, args: tuple[Any, ...], limit: float) -> tuple[dict[str, Any] | None, str, float]:
        """Call a function in the child: (its reply, '', wall seconds), or (None, why it was stopped, ...)."""
        from grader.evaluation.scheduler import Budget

        if self.child is None and self.start() is None:
            return None, f"the child could not start again: {self.failure}", 0.0
        started = time.perf_counter()
        failure = ""
        try:
            reply = self.child.ask(
                {"call": function, "args": [_encode(arg) for arg in args]}, Budget(limit, MEMORY_BYTES, 1)
            )
            return reply, "", time.perf_counter() - started
        except WorkerTimeout:
            failure = f"did not finish within {limit:g} s (stopped)"
        except WorkerOverBudget as error:
            failure = f"stopped: {error}".replace("the model needed", "the function needed")
        except WorkerError as error:
            failure = f"the function stopped the child ({error})"
        self.close()
        return None, failure, time.perf_counter() - started

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None


def _encode(arg: Any) -> dict[str, Any]:
    if isinstance(arg, np.ndarray):
        buffer = io.BytesIO()
        np.save(buffer, arg, allow_pickle=False)
        return {"npy": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(arg, bool | int | float | str) or arg is None:
        return {"value": arg}
    raise AssignmentError(f"a case's argument must be an array, number or string, not {type(arg).__name__}")


# Judging -------------------------------------------------------------------------------------------


def judge(case: Case, reply: dict[str, Any]) -> dict[str, Any]:
    """One case's result: passed, and else the first thing that differs, shown minimally."""
    result: dict[str, Any] = {"name": case.name, "passed": False}
    inputs = ", ".join(_shape_text(arg) for arg in case.args)
    if not reply.get("ok"):
        error = reply.get("error", "an error")
        result["message"] = (
            f"{error} on inputs {inputs}" if reply.get("refused") else f"raised {error} on inputs {inputs}"
        )
        return result
    if "npy" not in reply:
        result["message"] = f"returned {reply.get('returned', 'nothing')} on inputs {inputs}"
        return result
    got = np.load(io.BytesIO(base64.b64decode(reply["npy"])), allow_pickle=False)
    variants = case.variants()
    shaped = {name: want for name, want in variants.items() if want.shape == got.shape}
    if not shaped:
        wanted = " or ".join(sorted({str(tuple(want.shape)) for want in variants.values()}))
        result["message"] = f"output shape {tuple(got.shape)}, expected {wanted} (inputs {inputs})"
        return result
    first_problem = ""
    for name, want in shaped.items():
        problem = _differs(want, got, case.rtol, case.atol)
        if not problem:
            result.update(passed=True, variant=name)
            return result
        first_problem = first_problem or problem
    result["message"] = f"{first_problem} (inputs {inputs})"
    return result


def _differs(want: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str:
    """'' when `got` matches `want` in kind and value, else the first difference."""
    if got.dtype.kind not in "biuf" or (want.dtype.kind == "f" and got.dtype.kind == "c"):
        return f"values of type {got.dtype}, expected {want.dtype.kind == 'f' and 'real numbers' or want.dtype}"
    finite = np.isfinite(got.astype(np.float64))
    if not finite.all() and np.isfinite(want).all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        return f"{int((~finite).sum())} NaN or infinite values, the first at {list(index)} (expected {want[index]:.6g})"
    close = np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
    if close.all():
        return ""
    index = tuple(int(i) for i in np.argwhere(~close)[0])
    differ = int((~close).sum())
    return f"{differ} of {close.size} values differ; at {list(index)} expected {want[index]:.6g}, got {got[index]:.6g}"


def _shape_text(arg: Any) -> str:
    if isinstance(arg, np.ndarray):
        return "x".join(map(str, arg.shape)) if arg.ndim else "a scalar array"
    return repr(arg)


def main() -> None:
    """The reference-timing child: load the instructor's tests, then answer one request with the timings."""
    import argparse
    import json
    import sys

    # Run as __main__, this module is a second copy: the test module's Case is the package's.
    from grader.evaluation.code import load_tests, measure

    parser = argparse.ArgumentParser(description="time a code part's reference implementations")
    parser.add_argument("--tests", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("questions", nargs="+")
    args = parser.parse_args()
    protocol = sys.stdout
    sys.stdout = sys.stderr
    tests = load_tests(Path(args.tests), args.questions, args.seed)
    protocol.write(json.dumps({"event": "ready"}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if line.strip():
            protocol.write(json.dumps({"timings": measure(tests)}) + "\n")
            protocol.flush()


if __name__ == "__main__":
    main()
