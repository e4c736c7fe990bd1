"""A tripwire for untrusted Python code in a child process: a student's functions (the code worker) or a
Lambda layer's bytecode (the TensorFlow worker, under --allow-lambda).

An audit hook (PEP 578) sees what the code asks Python to do and refuses what such code never needs: opening any
file but Python's own modules, writing any file, starting programs, the network, C code through ctypes, looking
at the call stack, walking Python's objects, making code at run time, and (for a student's code) importing other
modules than the assignment allows. Each attempt is refused (a `Refused` is raised into the code) and recorded in
words a TA reads ("open a file of Python's installation for writing"); the run reports it and flags the student.

It is a tripwire, not the security boundary: the bubblewrap sandbox is (grader.evaluation.sandbox). Code in the
same process as the hook can, with effort, reach past it (numpy's as_strided reads and writes memory); under
`--isolation process` it is all that stands between the code and the grading user's files, and every output of
such a run says "not isolated".

Whose code an event comes from is decided from the code objects on the stack (never from names a module can
assign, such as `__name__`): `untrusted(code)` says which are the student's or the model's. Frames of Python's
import machinery (`<frozen ...>`) stand between and decide nothing; any other frame is a library's. The hook
judges only while the untrusted code runs (`watching()`), so grader's own work around it is never refused.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from types import CodeType, FrameType
from typing import Any

# Audit events refused while untrusted code is on the stack, whoever raises them (a library called by the code
# does what the code asked), by name or prefix ending in '.', and how a report says them.
REFUSED_EVENTS = {
    "os.system": "run a shell command",
    "os.exec": "start a program",
    "os.posix_spawn": "start a program",
    "os.spawn": "start a program",
    "os.fork": "start a process",
    "os.forkpty": "start a process",
    "subprocess.Popen": "start a program",
    "pty.spawn": "start a program",
    "_thread.start_new_thread": "start a thread",
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
    "os.utime": "change a file's times",
    "os.truncate": "change a file",
    "os.link": "link a file",
    "os.symlink": "link a file",
    "os.setxattr": "change a file's attributes",
    "os.removexattr": "change a file's attributes",
    "os.listdir": "list a folder",
    "os.scandir": "list a folder",
    "os.walk": "list a folder",
    "os.fwalk": "list a folder",
    "glob.glob": "list a folder",
    "os.chdir": "change folder",
    "os.kill": "signal a process",
    "os.killpg": "signal a process",
    "signal.pthread_kill": "signal a process",
    "sys.addaudithook": "remove grader's watch",
    "sys.settrace": "watch Python run (sys.settrace)",
    "sys.setprofile": "watch Python run (sys.setprofile)",
    "sys._current_frames": "look at the call stack",
    "gc.get_objects": "walk Python's objects (gc)",
    "gc.get_referrers": "walk Python's objects (gc)",
    "gc.get_referents": "walk Python's objects (gc)",
    "urllib.Request": "use the network",
    "webbrowser.open": "open a browser",
    "code.__new__": "make code at run time",
    "marshal.loads": "make code at run time (marshal)",
    "mmap.__new__": "map memory",
}
# Events refused when the untrusted code itself raises them (the nearest frame that decides is its own), and
# allowed when a library does, for its own work (namedtuple compiles its class; typing looks at the caller's
# module name).
OWN_EVENTS = {
    "exec": "run code made at run time (exec)",
    "compile": "make code at run time (compile)",
    "function.__new__": "make a function at run time",
    "object.__getattr__": "reach Python's internals",
    "object.__setattr__": "change Python's internals",
    "object.__delattr__": "change Python's internals",
}
# What Python's import machinery does to import a module the code may import: list the folders on sys.path, read
# a cached .pyc. Allowed when the machinery itself raises them (the import was judged by its own event).
IMPORT_EVENTS = ("os.listdir", "os.scandir", "marshal.loads")
# Libraries that look at the call stack only for the caller's module name, never handing a frame back.
FRAME_READERS = ("collections/__init__.py", "typing.py", "enum.py")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MODULE_FILES = (".py", ".pyc", ".so")


class Refused(BaseException):
    """Raised into untrusted code when it tries what it may not. A BaseException, so that a plain `except
    Exception` in that code does not swallow it."""


class Tripwire:
    """An audit hook that refuses and records what untrusted code tries (see the module's docstring)."""

    def __init__(self, untrusted: Callable[[CodeType], bool], *, imports: tuple[str, ...] | None = None) -> None:
        """`untrusted(code)` says whether a code object is the untrusted code's. `imports` are the top-level
        modules it may import (None: any, the model's code in the TensorFlow worker)."""
        self.untrusted = untrusted
        self.imports = imports
        self.attempts: list[str] = []
        "What the untrusted code tried, in words ('open /etc/passwd for reading'), since the last reset."
        self.armed = False
        "Whether untrusted code may be on the stack: set only while it runs (see `watching`)."
        here = os.path.dirname(os.path.realpath(__file__))
        self.grader_folder = os.path.dirname(here)
        self.python_folders = tuple(
            sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)})
        )
        self._local = threading.local()
        sys.addaudithook(self._hook)

    def watching(self) -> Any:
        """A context in which the hook judges events (the untrusted code runs inside it)."""
        return _Armed(self)

    def take(self) -> list[str]:
        """The attempts recorded since the last call, in order, each once."""
        attempts, self.attempts = list(dict.fromkeys(self.attempts)), []
        return attempts

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        local = self._local
        if not self.armed or getattr(local, "busy", False):
            return
        local.busy = True  # the hook's own work (sys._getframe raises an event too) is never judged
        try:
            what = self._judge(event, args, sys._getframe(1))
        finally:
            local.busy = False
        if what:
            self.attempts.append(what)
            raise Refused(what)

    def _judge(self, event: str, args: tuple[Any, ...], frame: FrameType) -> str:
        """'' when the event is allowed, else what it tries, in words."""
        actor = self._actor(frame)
        if actor is None or actor == "import":
            return ""  # no untrusted code on the stack, or an allowed module starting up: a library's own work
        if event == "open":
            return self._open(args)
        if event == "import":
            root = str(args[0]).split(".")[0] if args else ""
            if self.imports is None or actor == "library" or root in self.imports:
                return ""
            return f"import {root}"
        if event == "sys._getframe":
            if frame.f_code.co_filename.endswith(FRAME_READERS):  # the frame that called sys._getframe
                return ""
            return "look at the call stack (sys._getframe)"
        if event in OWN_EVENTS:
            if actor == "library":
                return ""
            if event == "exec" and args and self._module_code(args[0]):
                return ""  # importing an allowed module runs its code
            if event == "compile" and _importing(frame):
                return ""  # a module without a cached .pyc is compiled by the import system
            name = f" ({args[1]})" if event.startswith("object.") and len(args) > 1 and isinstance(args[1], str) else ""
            return OWN_EVENTS[event] + name
        if event in IMPORT_EVENTS and _importing(frame):
            return ""  # the import system finding and reading an allowed module (its folder, its cached .pyc)
        for name, what in REFUSED_EVENTS.items():
            if event == name or (name.endswith(".") and event.startswith(name)) or event.startswith(name + "."):
                return f"{what} ({event})"
        return ""

    def _actor(self, frame: FrameType | None) -> str | None:
        """'untrusted' or 'library': whose frame, nearest the event, decides; 'import' when the event comes from an
        import the untrusted code started (an allowed module's own start-up: the import itself was judged);
        None with no untrusted code on the stack."""
        nearest = None
        for code in _codes(frame):
            if self.untrusted(code):
                return nearest or "untrusted"
            if code.co_filename.startswith("<frozen importlib") and nearest == "library":
                nearest = "import"
            elif nearest is None and not code.co_filename.startswith("<frozen "):
                nearest = "library"
        return None

    def _module_code(self, code: Any) -> bool:
        return isinstance(code, CodeType) and self._python_module(code.co_filename)

    def _open(self, args: tuple[Any, ...]) -> str:
        path, mode = args[0], args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if isinstance(path, int):
            return f"use an open file descriptor ({path})"
        text = os.fsdecode(path) if isinstance(path, str | bytes) else f"a {type(path).__name__}"
        # os.open gives no mode, only flags: write, create, truncate and append are writes however it is asked.
        writing = bool(flags & WRITE_FLAGS) or (isinstance(mode, str) and bool(set(mode) & set("wax+")))
        if not writing and self._python_module(text):
            return ""  # Python importing an allowed module's own files
        return f"open {self._place(text)} for {'writing' if writing else 'reading'}"

    def _python_module(self, path: str) -> bool:
        """Whether a path is one of Python's own module files (its installation's, never grader's)."""
        real = os.path.realpath(path)
        return real.endswith(MODULE_FILES) and self._under(real, self.python_folders) and not self._grader(real)

    def _grader(self, real: str) -> bool:
        return real.startswith(self.grader_folder + os.sep)

    @staticmethod
    def _under(real: str, folders: tuple[str, ...]) -> bool:
        return any(real == folder or real.startswith(folder + os.sep) for folder in folders)

    def _place(self, path: str) -> str:
        """A path as a TA reads it: whose file it is, then the path."""
        real = os.path.realpath(path)
        if self._grader(real):
            return f"grader's own code ({path})"
        if self._under(real, self.python_folders):
            return f"a file of Python's installation ({path})"
        return repr(path)


class _Armed:
    def __init__(self, tripwire: Tripwire) -> None:
        self.tripwire = tripwire

    def __enter__(self) -> None:
        self.tripwire.armed = True

    def __exit__(self, *exc: object) -> None:
        self.tripwire.armed = False


def _importing(frame: FrameType) -> bool:
    """Whether Python's import machinery itself raised the event (its frames are `<frozen importlib...>`)."""
    return frame.f_code.co_filename.startswith("<frozen importlib")


def _codes(frame: FrameType | None) -> Iterator[CodeType]:
    while frame is not None:
        yield frame.f_code
        frame = frame.f_back


def nested_codes(code: CodeType) -> Iterator[CodeType]:
    """A code object and every code object defined inside it (its functions, lambdas, comprehensions)."""
    todo = [code]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(const for const in current.co_consts if isinstance(const, CodeType))
