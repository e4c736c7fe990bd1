"""The tripwire (grader.evaluation.tripwire): an audit hook that refuses and names what students' code tries,
a second layer under the sandbox. It decides whose code an event comes from by the code objects on the stack,
treats os.open by its flags, refuses looking at frames, gc and making code, and lets libraries and Python's
import machinery do their own work. Each case runs in a child Python (an audit hook cannot be removed)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

PROBE = r"""
import json, os, sys
from grader.evaluation.tripwire import Refused, Tripwire

tripwire = Tripwire(lambda code: code.co_filename == "<payload>", imports=("numpy", "collections", "math"))
results = {}
for name, source, scope in json.loads(sys.argv[1]):
    code = compile(source, "<payload>", "exec")
    namespace = {"os": os, "sys": sys, "VICTIM": sys.argv[2], "INSTALLED": sys.argv[3], **scope}
    try:
        with tripwire.watching():
            exec(code, namespace)
        outcome = "ran"
    except Refused as refused:
        outcome = f"refused: {refused}"
    except Exception as error:
        outcome = f"error: {type(error).__name__}: {error}"
    results[name] = {"outcome": outcome, "attempts": tripwire.take()}
print(json.dumps(results))
"""

CASES = [
    # os.open raises 'open' with mode None: its flags say it writes.
    ("os_open_for_writing", "os.close(os.open(VICTIM, os.O_WRONLY | os.O_TRUNC))", {}),
    ("os_open_appending", "os.close(os.open(VICTIM, os.O_WRONLY | os.O_APPEND))", {}),
    ("os_open_creating", "os.close(os.open(VICTIM + '.new', os.O_WRONLY | os.O_CREAT))", {}),
    ("os_open_reading", "os.close(os.open(VICTIM, os.O_RDONLY))", {}),
    # The review's target: a module file in grader's own virtualenv, which the next `grade` would import.
    ("python_installation", "os.close(os.open(INSTALLED, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))", {}),
    # __name__ is a name a module can assign: it decides nothing.
    ("name_as_a_library", "import xml.dom.minidom", {"__name__": "numpy"}),
    ("getframe", "sys._getframe(0)", {}),
    ("traceback_walk", "try:\n    1/0\nexcept Exception as e:\n    e.__traceback__.tb_frame", {}),
    ("gc", "import gc\ngc.get_objects()", {"__name__": "collections"}),
    ("compile_as_a_library", "compile('1', '/usr/lib/python3.11/os.py', 'exec')", {}),
    ("fd", "open(1, 'w')", {}),
    ("shell", "os.system('true')", {}),
    # What libraries do for their own work stays allowed while the payload is on the stack.
    ("namedtuple", "import collections\ncollections.namedtuple('P', 'x y')(1, 2)", {}),
    ("allowed_import", "import math\nimport numpy.typing", {}),
]


INSTALLED = Path(sysconfig.get_paths()["purelib"]) / "grader_tripwire_probe.py"


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    victim = tmp_path_factory.mktemp("tripwire") / "victim.py"
    victim.write_text("original = True\n")
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(CASES), str(victim), str(INSTALLED)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        created = INSTALLED.exists()
    finally:
        INSTALLED.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr
    assert not created, "a payload created a module file in the virtualenv"
    return json.loads(done.stdout), victim


@pytest.mark.parametrize(
    ("case", "refused"),
    [
        ("os_open_for_writing", "open '{victim}' for writing"),
        ("os_open_appending", "open '{victim}' for writing"),
        ("os_open_creating", "open '{victim}.new' for writing"),
        ("os_open_reading", "open '{victim}' for reading"),
        ("python_installation", f"open a file of Python's installation ({INSTALLED}) for writing"),
        ("name_as_a_library", "import xml"),
        ("getframe", "look at the call stack (sys._getframe)"),
        ("traceback_walk", "reach Python's internals (tb_frame)"),
        ("gc", "import gc"),
        ("compile_as_a_library", "make code at run time (compile)"),
        ("fd", "use an open file descriptor (1)"),
        ("shell", "run a shell command (os.system)"),
    ],
)
def test_the_tripwire_refuses_and_names_each_attempt(probed, case: str, refused: str) -> None:
    """Each technique is refused while the payload runs, and recorded in the words a report shows."""
    results, victim = probed
    expected = refused.format(victim=victim)
    assert results[case] == {"outcome": f"refused: {expected}", "attempts": [expected]}


def test_nothing_was_changed(probed) -> None:
    """The file the payloads opened for writing and truncating is as it was; none was created."""
    _, victim = probed
    assert victim.read_text() == "original = True\n" and not Path(f"{victim}.new").exists()


@pytest.mark.parametrize("case", ["namedtuple", "allowed_import"])
def test_libraries_and_the_import_machinery_do_their_own_work(probed, case: str) -> None:
    """namedtuple compiles its class and reads its caller's module name; importing an allowed module lists
    folders and reads .pyc files: allowed, while the payload is on the stack."""
    results, _ = probed
    assert results[case] == {"outcome": "ran", "attempts": []}
