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

Before any of it runs, a statement that reaches Python's internals (`__subclasses__`, `__globals__`, a frame's
`f_back`) or a module the code may not import through another's attribute (`dataclasses.inspect.os`) is left out
and reported as an attempt. While the student's code runs, a tripwire (grader.evaluation.tripwire: an audit hook)
refuses and records what it must not do (open files other than Python's own modules, write any file, start
programs, use sockets or ctypes, look at the call stack, import other modules); printing is capped. The
sandbox, not the tripwire, is the security boundary: the tripwire gives a TA the reason. Expected outputs and
labels never enter this process.
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
from types import CodeType, ModuleType
from typing import Any

import numpy as np

# Numpy's own sub-modules, imported before any student code runs (a lazy import later would need files).
import numpy.lib.stride_tricks  # noqa: F401
import numpy.linalg  # noqa: F401

from grader.evaluation.protocol import open_channel
from grader.evaluation.tripwire import Refused, Tripwire

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
LOOP_CALLS = {"vectorize", "apply_along_axis", "apply_over_axes", "frompyfunc", "nditer", "ndindex", "map"}
STUDENT_MODULE = "student"
STUDENT_FILE = "<student"
"How the student's statements are compiled: '<student lab.py>', '<student cell 4>' (see Guard.untrusted)."
# Attributes a student's numpy code never needs and that lead out of it: to Python's internals (every class,
# a function's globals, the frames above it) or to modules it may not import (dataclasses.inspect.os). A statement
# naming one is not run; getattr and friends refuse them by name.
INTERNALS = frozenset(
    {
        "__subclasses__", "__bases__", "__base__", "__mro__", "mro", "__globals__", "__closure__", "__code__",
        "__builtins__", "__dict__", "__getattribute__", "__self__", "__func__", "__wrapped__", "__reduce__",
        "__reduce_ex__", "__loader__", "__spec__", "__import__", "__defaults__", "__kwdefaults__", "__traceback__",
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next", "gi_frame",
        "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts", "cell_contents",
        "attrgetter", "methodcaller",
    }
)  # fmt: skip
MODULES_OUT = frozenset(
    {
        "os", "sys", "inspect", "subprocess", "builtins", "importlib", "ctypes", "gc", "socket", "shutil", "io",
        "posix", "mmap", "pickle", "marshal", "signal", "threading", "_thread", "multiprocessing", "tempfile",
        "pathlib", "pty", "resource", "traceback", "linecache", "types", "codecs", "runpy", "zipimport",
    }
)  # fmt: skip


class Guard:
    """The tripwire and the capped output the student's code runs under."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.tripwire = Tripwire(self.untrusted, imports=allowed)
        self.printed = 0

    @staticmethod
    def untrusted(code: CodeType) -> bool:
        """The student's statements and whatever code was made while they ran ('<string>': a library's eval on
        their behalf): every code object not from a real file or Python's import machinery."""
        name = code.co_filename
        return name.startswith("<") and not name.startswith("<frozen ")

    @property
    def attempts(self) -> list[str]:
        """What the student's code tried since the last `take` (the guarded builtins add to it too)."""
        return self.tripwire.attempts

    def take(self) -> list[str]:
        """What the student's code tried since the last call (refused, each once)."""
        return self.tripwire.take()

    def run(self, call: Any) -> Any:
        """Run `call()` under the tripwire with printing capped; what it tried stays in the tripwire."""
        printed = Printed()
        saved = sys.stdout, sys.stderr, sys.stdin
        # stdin is the protocol: input() or sys.stdin.read() in the student's code reads nothing instead.
        sys.stdout = sys.stderr = printed
        sys.stdin = io.StringIO("")
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"), self.tripwire.watching():
                warnings.simplefilter("ignore")  # overflow in exp() is the student's NaN, not a warning
                return call()
        finally:
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


def reaches(node: ast.stmt, cell: int | None) -> list[str]:
    """Where a statement reaches Python's internals or a module through another's attribute: each place as a
    report says it ("`__subclasses__` at line 7"), in order; [] for a statement that does not."""
    found = []
    # In reading order: `a.__traceback__.tb_frame` names __traceback__ first (it ends first).
    ordered = sorted(ast.walk(node), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "end_col_offset", 0) or 0))
    for inner in ordered:
        named = ""
        if isinstance(inner, ast.Attribute) and (inner.attr in INTERNALS or inner.attr in MODULES_OUT):
            named = inner.attr
        elif isinstance(inner, ast.ImportFrom):
            named = next((a.name for a in inner.names if a.name in INTERNALS or a.name in MODULES_OUT), "")
        elif isinstance(inner, ast.Constant) and isinstance(inner.value, str) and inner.value in INTERNALS:
            named = inner.value  # getattr(x, "__globals__"), operator.attrgetter("f_back")
        if named:
            found.append(f"`{named}` at {where(cell, getattr(inner, 'lineno', node.lineno))}")
    return list(dict.fromkeys(found))


def reach_words(places: list[str]) -> str:
    """What a statement that is not run because it reaches out tried, as an attempt is worded."""
    shown = ", ".join(places[:3]) + (", ..." if len(places) > 3 else "")
    return f"reach Python's internals or a module it may not import ({shown})"


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
            reached = [] if why else reaches(node, cell)
            if reached:
                why = f"not run: it tried to {reach_words(reached)}"
            if why:
                dropped.append(
                    {
                        "where": where(cell, node.lineno),
                        "line": node.lineno,
                        "cell": cell,
                        "what": describe(node, chunk["source"]),
                        "why": why,
                        "names": defined_names(node),
                        **({"refused": reach_words(reached)} if reached else {}),
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
            # The file name marks the code as the student's for the tripwire (a module cannot change it).
            filename = (
                f"{STUDENT_FILE} cell {cell}>" if cell is not None else f"{STUDENT_FILE} {os.path.basename(path)}>"
            )
            program.append((compile(module, filename, "exec", dont_inherit=True), where(cell, node.lineno)))
        if used and cell is not None:
            used_cells.append(cell)
    found: dict[str, dict[str, Any]] = {}
    told: list[dict[str, Any]] = []
    "Statements left out for reaching out that a question's result names (the rest are the file's attempts)."
    for question, names in questions.items():
        name = next((n for n in names if n in functions), None)
        if name is None:
            # Spelled another way: fullyConnected or Fully_Connected for fully_connected.
            loose = {_loose(n): n for n in functions}
            name = next((loose[_loose(n)] for n in names if _loose(n) in loose), None)
        if name is None:
            refused = next((item for item in dropped if item.get("refused") and set(item["names"]) & set(names)), None)
            found[question] = {"function": None}
            if refused is not None:
                found[question].update(refused=refused["refused"], where=refused["where"], name=refused["names"][0])
                told.append(refused)
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
        "attempts": [item["refused"] for item in dropped if item.get("refused") and item not in told],
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
    """Python's builtins without input and breakpoint; import limited to the allowed modules; getattr, setattr,
    delattr, hasattr and vars refusing what a statement may not name (INTERNALS, and a module the code may not
    import): by a computed name, they would reach what `reaches` keeps out."""

    def refuse(what: str) -> Refused:
        guard.attempts.append(what)
        return Refused(what)

    def named(name: Any) -> str:
        if not isinstance(name, str) or name in INTERNALS or name in MODULES_OUT:
            raise refuse(f"reach Python's internals or a module it may not import ({name!r} by name)")
        return name

    def outside(value: Any) -> Any:
        if isinstance(value, ModuleType) and value.__name__.split(".")[0] not in guard.allowed:
            raise refuse(f"reach the module {value.__name__} through another's attribute")
        return value

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        # A module already loaded is imported without an audit event: the import statement is judged here too.
        root = str(name).split(".")[0]
        if level or root not in guard.allowed:
            raise refuse(f"import {name}")
        return outside(real_import(name, globals, locals, fromlist, level))

    def guarded_getattr(target: Any, name: Any, *default: Any) -> Any:
        return outside(getattr(target, named(name), *default))

    def guarded_hasattr(target: Any, name: Any) -> bool:
        return hasattr(target, named(name))

    def guarded_setattr(target: Any, name: Any, value: Any) -> None:
        setattr(target, named(name), value)

    def guarded_delattr(target: Any, name: Any) -> None:
        delattr(target, named(name))

    def guarded_vars(*target: Any) -> Any:
        if target and isinstance(target[0], ModuleType | type):
            raise refuse(f"read the namespace of {getattr(target[0], '__name__', 'a module')} (vars)")
        return vars(*target)

    real_import = builtins.__import__
    table = dict(vars(builtins))
    # open stays: the tripwire refuses it, and records the attempt a plain NameError would hide.
    for name in ("input", "breakpoint", "exit", "quit", "help"):
        table.pop(name, None)
    table.update(
        __import__=guarded_import, getattr=guarded_getattr, hasattr=guarded_hasattr, setattr=guarded_setattr,
        delattr=guarded_delattr, vars=guarded_vars,
    )  # fmt: skip
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
        if filename.startswith(STUDENT_FILE):
            cell = filename[len(STUDENT_FILE) :].strip(" >")
            line = f"{cell}, line {trace.tb_lineno}" if cell.startswith("cell ") else f"line {trace.tb_lineno}"
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
            try:
                self.guard.run(lambda code=code: exec(code, self.namespace))
            except BaseException as error:  # noqa: BLE001 (each statement's failure is the student's, and noted)
                errors.append({"where": at, "error": self.explain(error)})
            attempts += self.guard.take()
        return {"ok": True, "errors": errors, "attempts": list(dict.fromkeys(attempts))}

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
            explained = self.explain(error)
            return {
                "ok": False,
                "error": explained,
                "refused": isinstance(error, Refused),
                "attempts": self.guard.take(),
                "seconds": time.perf_counter() - started,
            }
        return {
            "ok": True,
            "seconds": seconds,
            "printed": self.guard.printed,
            "attempts": self.guard.take(),
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
