"""The coursework's official test script (seed 000), verbatim, and a way to run it on a data set.

Pointing its data source at a data set takes two textual changes and no others: the line that calls
mnist.load_data() loads an .npz instead, and the MLP reshape's hard-coded 10000 becomes the set's size
(the script as given only works on exactly 10,000 images).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.courseworks.heldout import HeldoutSet
from grader.evaluation import sandbox

OFFICIAL_SCRIPT = """\
import numpy as np
import os
from tensorflow.keras.models import load_model

# Load .h5 file of arbitrary name for testing (last if more than one)
print(os.getcwd())
for file in os.listdir(os.getcwd()):
    if file.endswith(".h5"):
        print(file)
        net = load_model(file)
net.summary()

# Determine what type of network this is
input_dims = net.input_shape
netType = 'CNN' if len(input_dims) > 2 else 'MLP'

# Test with MNIST data
from tensorflow.keras.datasets import mnist
(x_train, labels_train), (x_test, labels_test) = mnist.load_data()
x_test = x_test.astype('float32') / 255
if netType == 'MLP':
    x_test = x_test.reshape(10000, 784)
else:
    x_test = x_test.reshape(x_test.shape[0], 28, 28, 1)

# Evaluate
outputs = net.predict(x_test)
labels_predicted = np.argmax(outputs, axis=1)
correct_classified = np.sum(labels_predicted == labels_test)
print('Percentage correctly classified MNIST =', 100 * correct_classified / labels_test.size)
"""

LOAD_LINE = "(x_train, labels_train), (x_test, labels_test) = mnist.load_data()"
MLP_RESHAPE = "x_test = x_test.reshape(10000, 784)"
PREFIX = "Percentage correctly classified MNIST = "
# Runs the script given on stdin in the folder given as argv[1], and prints a JSON line with what the
# script printed last for the accuracy, or how it failed.
RUNNER = (
    f"PREFIX = {PREFIX!r}\n"
    + """
import contextlib, io, json, os, sys
script = sys.stdin.read()
os.chdir(sys.argv[1])
printed = io.StringIO()
try:
    with contextlib.redirect_stdout(printed):
        exec(compile(script, "official_test_script.py", "exec"), {"__name__": "__main__"})
    lines = [line for line in printed.getvalue().splitlines() if line.startswith(PREFIX)]
    result = {"accuracy": lines[-1][len(PREFIX):]} if lines else {"error": "the script printed no accuracy"}
except BaseException as error:
    message = str(error).strip().splitlines()
    result = {"error": type(error).__name__ + (": " + message[0] if message else "")}
print("RESULT=" + json.dumps(result))
"""
)


@dataclass(frozen=True)
class Reference:
    """What the official script printed for a file, or why it failed."""

    accuracy: str | None
    "The number after 'Percentage correctly classified MNIST =', as printed."
    error: str | None
    "How the script failed, when it did."
    legacy_keras: bool = False
    "Whether it ran with TF_USE_LEGACY_KERAS=1 (tf_keras), after failing with Keras 3."
    keras3_error: str | None = None
    "How it failed with Keras 3, when it then ran with tf_keras."


def pointed_at(data: str | Path) -> str:
    """The official script with its data source pointed at `data` (an .npz with x/y or x_test/y_test)."""
    assert OFFICIAL_SCRIPT.count(LOAD_LINE) == 1 and OFFICIAL_SCRIPT.count(MLP_RESHAPE) == 1
    loader = (
        f"_heldout = np.load({str(data)!r}); "
        "_x, _y = ('x', 'y') if 'x' in _heldout else ('x_test', 'y_test'); "
        "(x_train, labels_train), (x_test, labels_test) = (None, None), (_heldout[_x], _heldout[_y])"
    )
    return OFFICIAL_SCRIPT.replace(LOAD_LINE, loader).replace(
        MLP_RESHAPE, "x_test = x_test.reshape(x_test.shape[0], 784)"
    )


def run_official(
    model: Path,
    data: HeldoutSet,
    *,
    isolation: sandbox.Isolation,
    workdir: Path,
    timeout: float = 600,
    legacy_keras: bool = False,
) -> Reference:
    """Run the official script on one file, in a folder holding only that file, inside the sandbox.

    `legacy_keras` sets TF_USE_LEGACY_KERAS=1, which makes the script's `tensorflow.keras` TensorFlow
    2.18's Keras 2 (tf_keras): the script as a marker would run it on a file Keras 3 cannot read.
    """
    folder = workdir / "official" / "submission"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / model.name)
    data_file = workdir / "official" / "data.npz"
    np.savez(data_file, x_test=data.images, y_test=data.labels)
    visible = sandbox.visible_paths(isolation, {str(folder): "/submission", str(data_file): "/data/data.npz"})
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", **({"TF_USE_LEGACY_KERAS": "1"} if legacy_keras else {})}
    argv, environment, cwd = sandbox.command(
        isolation, ["-c", RUNNER, visible[str(folder)]], readable=visible, workdir=workdir / "official", env=env
    )
    process = sandbox.popen(argv, environment, cwd, sandbox.Limits(), workdir / "official" / "script.log")
    try:
        stdout, _ = process.communicate(pointed_at(visible[str(data_file)]).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        sandbox.kill_tree(process)
        process.communicate()
        return Reference(None, f"the official script did not finish within {timeout:g} s")
    found = re.findall(rb"^RESULT=(.*)$", stdout, re.MULTILINE)
    if not found:
        return Reference(None, f"the official script's process ended with code {process.returncode}")
    import json

    result = json.loads(found[-1])
    return Reference(result.get("accuracy"), result.get("error"))
