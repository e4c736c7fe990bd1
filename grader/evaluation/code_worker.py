"""The sandboxed child that reads a student's code, imports its definitions and calls its functions.

    python -m grader.evaluation.code_worker --source /submission/code.py [--notebook] [--allow numpy ...]

Started by grader.evaluation.code inside the same sandbox as the model workers, one child per file. It
speaks grader's line protocol (one JSON message per line each way, 'ready' first):

- {"prepare": {question: [names]}}: parse the file (a notebook's code cells with nbformat), keep only
  imports of allowed modules, function and class definitions and constant assignments (by the syntax tree:
  a training cell never runs), find each question's function and the loops in it and the functions it
  calls. Answered before any of the student's code runs, so that what it says cannot be forged by it.
- {"load": true}: run the kept statements one by one, each error noted with its line.
- {"call": name, "args": [...]}: call a function; arrays come and go as .npy bytes (never pickles).

While the student's code runs, an audit hook (PEP 578) refuses what it must not do (open files other than
Python's own modules, start programs, use sockets or ctypes, change files) and notes each attempt, which
the answer reports; printing is capped. The sandbox, not this hook, is the security boundary: the hook
gives a TA the reason. Expected outputs and labels never enter this process.
"""

from __future__ import annotations

import argparse
import ast
import base64
import builtins
import io
import json
import linecache  # noqa: F401 (warnings and tracebacks import it lazily; the student's code may not)
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

# Numpy's own sub-modules, imported before any student code runs (a lazy import later would need files).
import numpy.lib.stride_tricks  # noqa: F401
import numpy.linalg  # noqa: F401

from grader.evaluation.protocol import open_channel

PROTOCOL_VERSION = 1
# What a student's code may import unless the assignment says otherwise.
DEFAULT_IMPORTS = (
    "numpy",
    "math",
    "cmath",
    "typing",
    "functools",
    "itertools",
    "collections",
    "operator",
    "numbers",
    "dataclasses",
    "enum",
    "time",
    "__future__",
)
PRINT_LIMIT = 1024 * 1024
RETURN_LIMIT = 64 * 1024 * 1024
# What the student's code is refused while it runs, by audit event name (or prefix ending in '.'), and how
# a report says it.
REFUSED_EVENTS = {
    "os.system": "run a shell command",
    "os.exec": "start a program",
    "os.posix_spawn": "start a program",
    "os.spawn": "start a program",
    "os.fork": "start a process",
    "os.forkpty": "start a process",
    "subprocess.Popen": "start a program",
    "pty.spawn": "start a program",
    "socket.": "use the network",
    "ctypes.": "call C code through ctypes",
    "shutil.": "change files",
    "os.remove": "delete a file",
    "os.unlink": "delete a file",
    "os.rename": "rename a file",
    "os.rmdir": "delete a folder",
    "os.mkdir": "make a folder",
    "os.chmod": "change file permissions",
    "os.chown": "change file ownership",
    "os.truncate": "change a file",
    "os.link": "link a file",
    "os.symlink": "link a file",
    "os.listdir": "list a folder",
    "os.scandir": "list a folder",
    "os.walk": "list a folder",
    "os.chdir": "change folder",
    "os.kill": "signal a process",
    "os.killpg": "signal a process",
    "os.putenv": "change the environment",
    "os.unsetenv": "change the environment",
    "sys.addaudithook": "remove grader's watch",
    "gc.get_objects": "reach grader's own objects",
    "gc.get_referrers": "reach grader's own objects",
    "gc.get_referents": "reach grader's own objects",
    "urllib.Request": "use the network",
    "webbrowser.open": "open a browser",
}
LOOP_CALLS = {"vectorize", "apply_along_axis", "apply_over_axes", "frompyfunc", "nditer", "ndindex", "map"}


class Refused(BaseException):
    """Raised into the student's code when it tries what it may not. A BaseException, so that a plain
    `except Exception` in the student's code does not swallow it."""


class Guard:
    """The audit hook and the capped output the student's code runs under."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.active = False
        self.attempts: list[str] = []
        self.trusted_code: set[int] = set()
        here = os.path.dirname(os.path.realpath(__file__))
        self.grader_folder = os.path.dirname(here)
        self.python_folders = tuple(
            {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
        )
        sys.addaudithook(self.hook)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        what = self._refusal(event, args)
        if what:
            self.attempts.append(what)
            raise Refused(what)

    def _refusal(self, event: str, args: tuple[Any, ...]) -> str:
        if event == "open":
            path, mode = args[0], args[1]
            if isinstance(path, int):
                return ""  # an already open descriptor (numpy and io wrap fds); opening one needs os.open
            text = os.fsdecode(path) if isinstance(path, str | bytes) else str(path)
            reading = mode is None or (isinstance(mode, str) and set(mode) <= set("rbt"))
            if reading and self._python_module(text):
                return ""  # Python importing an allowed module's own files
            return f"open {text!r}"
        if event == "import":
            root = str(args[0]).split(".")[0]
            return "" if root in self.allowed or self._library_import() else f"import {root}"
        if event in ("exec", "compile"):
            if not args or id(args[0]) in self.trusted_code or self._library_import():
                return ""
            # Importing an allowed module runs its code (numpy.typing, first imported by the student's code).
            filename = getattr(args[0], "co_filename", None) if event == "exec" else args[1] if len(args) > 1 else None
            return "" if isinstance(filename, str) and self._python_module(filename) else "run code by exec"
        for name, what in REFUSED_EVENTS.items():
            if event == name or (name.endswith(".") and event.startswith(name)) or event.startswith(name + "."):
                return f"{what} ({event})"
        return ""

    def _python_module(self, path: str) -> bool:
        """Whether a path is one of Python's own module files (its installation's, never grader's)."""
        real = os.path.realpath(path)
        return (
            real.endswith((".py", ".pyc", ".so"))
            and real.startswith(self.python_folders)
            and not real.startswith(self.grader_folder + os.sep)
        )

    def _library_import(self) -> bool:
        """Whether an allowed library (numpy) is importing its own parts, rather than the student's code."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if name == STUDENT_MODULE:
                return False
            if name.split(".")[0] in self.allowed and name.split(".")[0] != "__future__":
                return True
            frame = frame.f_back  # type: ignore[assignment]
        return False

    def run(self, call: Any) -> Any:
        """Run `call()` with the hook refusing and printing capped; the attempts it made are in self.attempts."""
        self.attempts = []
        printed = Printed()
        saved = sys.stdout, sys.stderr, sys.stdin
        # stdin is the protocol: input() or sys.stdin.read() in the student's code reads nothing instead.
        sys.stdout = sys.stderr = printed
        sys.stdin = io.StringIO("")
        self.active = True
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # overflow in exp() is the student's NaN, not a warning
                return call()
        finally:
            self.active = False
            sys.stdout, sys.stderr, sys.stdin = saved
            self.printed = printed.count


class Printed(io.TextIOBase):
    """What the student's code prints: counted, dropped, and stopped past PRINT_LIMIT."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, text: str) -> int:
        self.count += len(text)
        if self.count > PRINT_LIMIT:
            raise Refused(f"print more than {PRINT_LIMIT // 1024 // 1024} MB")
        return len(text)

    def writable(self) -> bool:
        return True


STUDENT_MODULE = "student"


# Reading the file ----------------------------------------------------------------------------------


def read_source(path: str, notebook: bool) -> list[dict[str, Any]]:
    """The file's code as chunks: one for a .py file; for a notebook, one per code cell (numbered among
    all its cells from 1), with IPython's magics and shell lines blanked so that the rest parses."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if not notebook:
        return [{"cell": None, "source": raw.decode("utf-8", errors="replace")}]
    import nbformat

    document = nbformat.reads(raw.decode("utf-8", errors="replace"), as_version=4)
    chunks = []
    for number, cell in enumerate(document.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        lines = str(cell.get("source", "")).splitlines()
        if lines and lines[0].lstrip().startswith("%%") and not lines[0].lstrip().startswith(("%%time", "%%capture")):
            chunks.append({"cell": number, "source": "", "magic": lines[0].strip()})
            continue
        kept = ["" if line.lstrip().startswith(("%", "!")) else line for line in lines]
        chunks.append({"cell": number, "source": "\n".join(kept)})
    return chunks


def where(cell: int | None, line: int) -> str:
    """'line 12', or 'cell 4, line 2' in a notebook."""
    return f"line {line}" if cell is None else f"cell {cell}, line {line}"


def describe(node: ast.stmt, source: str) -> str:
    """The first line of a statement, shortened."""
    text = (ast.get_source_segment(source, node) or "").splitlines()
    first = text[0].strip() if text else type(node).__name__
    return first if len(first) <= 80 else first[:77] + "..."


def take(node: ast.stmt, allowed: tuple[str, ...]) -> str:
    """'' when a top-level statement is kept, else why it is not run."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return ""
    if isinstance(node, ast.Import | ast.ImportFrom):
        if isinstance(node, ast.ImportFrom) and node.level:
            return "a relative import: only the modules grader allows may be imported"
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        refused = sorted({name.split(".")[0] for name in names} - set(allowed))
        if refused:
            return f"imports {', '.join(refused)}: only {', '.join(allowed[:-1])} may be imported"
        return ""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return ""  # a docstring
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        plain = all(isinstance(name, ast.Name) for target in targets for name in _names(target))
        if plain and node.value is not None and _constant(node.value):
            return ""
        return "not a constant (only imports, definitions and assignments of constants are run)"
    return "not a definition (only imports, definitions and assignments of constants are run)"


def _needs_left_out(node: ast.stmt, kept: set[str], left_out: set[str]) -> str:
    """For a constant's assignment that reads a name only a statement left out defines ('input_img =
    train_X[2]' after the data loading is left out): why it is left out too; '' otherwise."""
    if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
        return ""
    used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    missing = sorted((used & left_out) - kept)
    return f"uses {', '.join(missing)}, which only statements left out define" if missing else ""


def _names(target: ast.expr) -> list[ast.expr]:
    return [n for element in target.elts for n in _names(element)] if isinstance(target, ast.Tuple) else [target]


def _constant(value: ast.expr) -> bool:
    """Whether evaluating an expression runs nothing: no calls, awaits or comprehensions (a lambda's body
    is not run when it is defined)."""
    todo = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Call | ast.Await | ast.Yield | ast.YieldFrom | ast.NamedExpr | ast.comprehension):
            return False
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return True


def defined_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*"]
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for target in targets for n in _names(target) if isinstance(n, ast.Name)]
    return []


Program = list[tuple[Any, str]]
"The kept statements, each compiled on its own, with where it is."


def prepare(
    path: str, notebook: bool, questions: dict[str, list[str]], allowed: tuple[str, ...]
) -> tuple[dict[str, Any], Program]:
    """What the file holds, before any of it runs: the statements kept and left out, syntax errors, each
    question's function and its loops; and the program that `load` runs."""
    program: Program = []
    chunks = read_source(path, notebook)
    syntax_errors, dropped, used_cells = [], [], []
    kept: set[str] = set()
    left_out: set[str] = set()
    functions: dict[str, tuple[ast.AST, int | None]] = {}
    for chunk in chunks:
        cell = chunk["cell"]
        if chunk.get("magic"):
            dropped.append({"where": f"cell {cell}", "what": chunk["magic"], "why": "a cell magic", "names": []})
            continue
        try:
            tree = ast.parse(chunk["source"])
        except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
            line = getattr(error, "lineno", None) or 0
            message = getattr(error, "msg", None) or str(error)
            syntax_errors.append({"where": where(cell, line) if cell or line else "the file", "message": message})
            continue
        used = False
        for node in tree.body:
            why = take(node, allowed) or _needs_left_out(node, kept, left_out)
            if why:
                dropped.append(
                    {
                        "where": where(cell, node.lineno),
                        "line": node.lineno,
                        "cell": cell,
                        "what": describe(node, chunk["source"]),
                        "why": why,
                        "names": defined_names(node),
                    }
                )
                left_out.update(defined_names(node))
                continue
            kept.update(defined_names(node))
            used = True
            if isinstance(node, ast.FunctionDef):
                functions[node.name] = (node, cell)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        functions[target.id] = (node.value, cell)
            module = ast.Module(body=[node], type_ignores=[])
            filename = f"cell {cell}" if cell is not None else os.path.basename(path)
            program.append((compile(module, filename, "exec", dont_inherit=True), where(cell, node.lineno)))
        if used and cell is not None:
            used_cells.append(cell)
    found: dict[str, dict[str, Any]] = {}
    for question, names in questions.items():
        name = next((n for n in names if n in functions), None)
        if name is None:
            # Spelled another way: fullyConnected or Fully_Connected for fully_connected.
            loose = {_loose(n): n for n in functions}
            name = next((loose[_loose(n)] for n in names if _loose(n) in loose), None)
        if name is None:
            found[question] = {"function": None}
            continue
        node, cell = functions[name]
        found[question] = {
            "function": name,
            "where": where(cell, getattr(node, "lineno", 0)),
            "loops": loops(name, functions),
        }
    answer = {
        "ok": True,
        "notebook": notebook,
        "cells": len(chunks) if notebook else None,
        "used_cells": used_cells,
        "syntax_errors": syntax_errors,
        "dropped": dropped,
        "defined": sorted(functions),
        "questions": found,
    }
    return answer, program


def _loose(name: str) -> str:
    return name.replace("_", "").lower()


def loops(name: str, functions: dict[str, tuple[ast.AST, int | None]]) -> list[dict[str, Any]]:
    """Every loop in a function and in the student's functions it calls (by name, transitively): for and
    while loops, comprehensions, and numpy's element-by-element helpers (np.vectorize, apply_along_axis)."""
    found, seen, todo = [], set(), [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in functions:
            continue
        seen.add(current)
        node, cell = functions[current]
        for inner in ast.walk(node):
            kind = ""
            if isinstance(inner, ast.For | ast.While):
                kind = "for loop" if isinstance(inner, ast.For) else "while loop"
            elif isinstance(inner, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
                kind = "comprehension"
            elif isinstance(inner, ast.Call):
                callee = inner.func
                called = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
                if called in LOOP_CALLS:
                    kind = f"{called}()"
                elif isinstance(callee, ast.Name) and callee.id in functions:
                    todo.append(callee.id)
            if kind:
                found.append({"where": where(cell, getattr(inner, "lineno", 0)), "kind": kind, "function": current})
    return found


# Running it ----------------------------------------------------------------------------------------


def restricted_builtins(guard: Guard) -> dict[str, Any]:
    """Python's builtins with import limited to the allowed modules and without open, input and
    breakpoint (the audit hook still refuses what gets past this)."""
    real_import = builtins.__import__

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        root = name.split(".")[0]
        if level or root not in guard.allowed:
            guard.attempts.append(f"import {name}")
            raise Refused(f"import {name}")
        return real_import(name, globals, locals, fromlist, level)

    table = dict(vars(builtins))
    # open stays: the audit hook refuses it, and records the attempt a plain NameError would hide.
    for name in ("input", "breakpoint", "exit", "quit", "help"):
        table.pop(name, None)
    table["__import__"] = guarded_import
    return table


def one_line(error: BaseException) -> str:
    """An error as a TA reads it, with the student's line: "ZeroDivisionError: division by zero (line 7)"."""
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    if isinstance(error, Refused):
        text = f"tried to {error}, which is not allowed"
    line = ""
    trace = error.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.startswith("cell ") or trace.tb_frame.f_globals.get("__name__") == STUDENT_MODULE:
            line = f"{filename}, line {trace.tb_lineno}" if filename.startswith("cell ") else f"line {trace.tb_lineno}"
        trace = trace.tb_next
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{text} ({line})" if line else text


class Student:
    """The student's definitions, run under the guard."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.program: Program = []
        self.namespace: dict[str, Any] = {
            "__name__": STUDENT_MODULE,
            "__builtins__": restricted_builtins(guard),
        }

    def load(self) -> dict[str, Any]:
        errors, attempts = [], []
        for code, at in self.program:
            self.guard.trusted_code = {id(code)}
            try:
                self.guard.run(lambda code=code: exec(code, self.namespace))
            except BaseException as error:  # noqa: BLE001 (each statement's failure is the student's, and noted)
                attempts += self.guard.attempts
                errors.append({"where": at, "error": self.explain(error)})
            else:
                attempts += self.guard.attempts
            finally:
                self.guard.trusted_code = set()
        return {"ok": True, "errors": errors, "attempts": attempts}

    def call(self, name: str, args: list[Any]) -> dict[str, Any]:
        function = self.namespace.get(name)
        if not callable(function):
            return {"ok": False, "error": f"{name} is not defined when the file's definitions are run"}
        values = [decode(arg) for arg in args]

        def timed() -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            result = function(*values)
            seconds = time.perf_counter() - started
            return seconds, encode(result)  # under the guard too: a returned object's __array__ is its code

        started = time.perf_counter()
        try:
            seconds, encoded = self.guard.run(timed)
        except BaseException as error:  # noqa: BLE001 (whatever the student's function raises is its result)
            attempts = self.guard.attempts
            return {
                "ok": False,
                "error": self.explain(error),
                "refused": isinstance(error, Refused),
                "attempts": attempts,
                "seconds": time.perf_counter() - started,
            }
        return {
            "ok": True,
            "seconds": seconds,
            "printed": self.guard.printed,
            "attempts": self.guard.attempts,
            **encoded,
        }

    def explain(self, error: BaseException) -> str:
        """The error in one line (its text is the student's code too: made under the guard)."""
        try:
            return str(self.guard.run(lambda: one_line(error)))
        except BaseException:  # noqa: BLE001
            return f"{type(error).__name__} (its message could not be shown)"


def decode(arg: dict[str, Any]) -> Any:
    if "npy" in arg:
        return np.load(io.BytesIO(base64.b64decode(arg["npy"])), allow_pickle=False)
    return arg["value"]


def encode(result: Any) -> dict[str, Any]:
    """A returned value as .npy bytes, or why it cannot be compared."""
    if result is None:
        return {"returned": "None"}
    try:
        array = np.asarray(result)
    except Exception as error:  # noqa: BLE001 (any object a student returns)
        return {"returned": f"{type(result).__name__} that is not an array ({type(error).__name__})"}
    if array.dtype.hasobject or array.dtype.kind not in "biufc":
        return {"returned": f"{type(result).__name__} of {array.dtype} values, not numbers (a ragged list?)"}
    if array.nbytes > RETURN_LIMIT:
        return {"returned": f"an array of {array.nbytes / 1024**2:.0f} MB (shape {list(array.shape)})"}
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return {"npy": base64.b64encode(buffer.getvalue()).decode("ascii"), "type": type(result).__name__}


def serve(source: str, notebook: bool, allowed: tuple[str, ...]) -> None:
    """Answer requests on stdin until it closes. The protocol has stdout to itself."""
    send = open_channel()
    guard = Guard(allowed)
    student = Student(guard)
    send({"event": "ready", "protocol": PROTOCOL_VERSION, "numpy": np.__version__, "python": sys.version.split()[0]})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "prepare" in request:
            try:
                answer, student.program = prepare(source, notebook, request["prepare"], allowed)
                send(answer)
            except Exception as error:  # noqa: BLE001 (a file that cannot be read is the answer)
                send({"ok": False, "error": f"the file could not be read: {type(error).__name__}: {error}"[:400]})
        elif "load" in request:
            send(student.load())
        elif "call" in request:
            send(student.call(request["call"], request.get("args", [])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the student's .py file or notebook")
    parser.add_argument("--notebook", action="store_true", help="the file is a Jupyter notebook (.ipynb)")
    parser.add_argument("--allow", action="append", default=[], help="a module the code may import; repeatable")
    args = parser.parse_args()
    serve(args.source, args.notebook, tuple(args.allow) or DEFAULT_IMPORTS)


if __name__ == "__main__":
    main()
