"""Run the coursework's official test script (grader.official) over many folders in one process, as a
marker would run it in each folder: the reference the tests hold grader's marks to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from grader.official import PREFIX, pointed_at

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


def run_official(folders: list[Path], heldout: Path, *, legacy_keras: bool = False) -> dict[Path, str]:
    """Run the official script in each folder (one Python process, as many runs); return what it prints.

    With `legacy_keras`, TF_USE_LEGACY_KERAS=1 makes the script's `tensorflow.keras` TensorFlow 2.18's
    Keras 2 loader (tf_keras): the script as a marker would run it on a file Keras 3 cannot read.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if legacy_keras:
        env["TF_USE_LEGACY_KERAS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps([str(f) for f in folders])],
        input=pointed_at(heldout.resolve()),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS="))
    return {Path(folder): value for folder, value in json.loads(line[len("RESULTS=") :]).items()}
