"""Run the coursework's official test script over many folders in one process, as a marker would run it in
each folder: the reference the tests hold grader's marks to.

The script is tests/fixtures/official_test_script.txt, copied verbatim from the coursework document
(seed 000), never built from grader.courseworks.official, so that the reference and the code under test cannot drift
together. Pointing it at a held-out set takes the two textual changes a marker would make, done here on
their own: the line that calls mnist.load_data() loads an .npz instead, and the MLP reshape's
hard-coded 10000 becomes the set's size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .references import content, remembered

SCRIPT = Path(__file__).parent / "fixtures" / "official_test_script.txt"
PREFIX = "Percentage correctly classified MNIST = "
LOAD_LINE = "(x_train, labels_train), (x_test, labels_test) = mnist.load_data()"
MLP_RESHAPE = "x_test = x_test.reshape(10000, 784)"

RUNNER = (
    f"PREFIX = {PREFIX!r}\n"
    + """
import contextlib, io, json, os, sys
script = sys.stdin.read()
results = {}
for folder in json.loads(sys.argv[1]):
    os.chdir(folder)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(script, "official_test_script.py", "exec"), {"__name__": "__main__"})
    except BaseException as error:
        results[folder] = "error: " + type(error).__name__
        continue
    lines = [l for l in printed.getvalue().splitlines() if l.startswith(PREFIX)]
    results[folder] = lines[-1][len(PREFIX):] if lines else "error: nothing printed"
print("RESULTS=" + json.dumps(results))
"""
)


def official_script(heldout: Path) -> str:
    """The verbatim script, its data source pointed at `heldout` (an .npz with x/y or x_test/y_test)."""
    script = SCRIPT.read_text()
    assert script.count(LOAD_LINE) == 1 and script.count(MLP_RESHAPE) == 1, "the fixture is not the script"
    loader = (
        f"_data = np.load({str(heldout)!r}); _keys = ('x', 'y') if 'x' in _data else ('x_test', 'y_test'); "
        "(x_train, labels_train), (x_test, labels_test) = (None, None), (_data[_keys[0]], _data[_keys[1]])"
    )
    return script.replace(LOAD_LINE, loader).replace(MLP_RESHAPE, "x_test = x_test.reshape(x_test.shape[0], 784)")


def run_official(folders: list[Path], heldout: Path, *, legacy_keras: bool = False) -> dict[Path, str]:
    """Run the official script in each folder (one Python process, as many runs); return what it prints.
    A folder whose files, held-out set and versions were run before reads what that run printed (references.py).

    With `legacy_keras`, TF_USE_LEGACY_KERAS=1 makes the script's `tensorflow.keras` TensorFlow 2.18's
    Keras 2 loader (tf_keras): the script as a marker would run it on a file Keras 3 cannot read.
    """
    held, script = content(heldout), official_script(Path("HELDOUT"))  # the script as pointed at any held-out set

    def describe(folder: Path) -> dict[str, Any]:
        return {"runner": RUNNER, "script": script, "heldout": held, "folder": content(folder), "legacy": legacy_keras}

    printed = remembered("official", list(folders), describe, lambda missing: _run(missing, heldout, legacy_keras))
    return dict(zip(folders, printed, strict=True))


def _run(folders: list[Path], heldout: Path, legacy_keras: bool) -> list[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if legacy_keras:
        env["TF_USE_LEGACY_KERAS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps([str(f) for f in folders])],
        input=official_script(heldout.resolve()),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS="))
    printed = json.loads(line[len("RESULTS=") :])
    return [printed[str(folder)] for folder in folders]
