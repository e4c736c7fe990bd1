"""The coursework's official test script (seed 000), verbatim, and a way to run it on a held-out set.

Pointing its data source at a held-out set takes two textual changes and no others: the line that
calls mnist.load_data() loads the held-out .npz instead, and the MLP reshape's hard-coded 10000
becomes the set's size (the script as given only works on exactly 10,000 images).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OFFICIAL_SCRIPT = '''\
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
'''

LOAD_LINE = "(x_train, labels_train), (x_test, labels_test) = mnist.load_data()"
MLP_RESHAPE = "x_test = x_test.reshape(10000, 784)"
PREFIX = "Percentage correctly classified MNIST = "


def pointed_at(heldout: Path) -> str:
    """The official script with its data source pointed at `heldout` (an .npz with x and y)."""
    assert OFFICIAL_SCRIPT.count(LOAD_LINE) == 1 and OFFICIAL_SCRIPT.count(MLP_RESHAPE) == 1
    loader = (f"_heldout = np.load({str(heldout)!r}); "
              "_x, _y = ('x', 'y') if 'x' in _heldout else ('x_test', 'y_test'); "
              "(x_train, labels_train), (x_test, labels_test) = (None, None), (_heldout[_x], _heldout[_y])")
    return (OFFICIAL_SCRIPT.replace(LOAD_LINE, loader)
            .replace(MLP_RESHAPE, "x_test = x_test.reshape(x_test.shape[0], 784)"))


RUNNER = f"PREFIX = {PREFIX!r}\n" + '''
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
'''


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
        input=pointed_at(heldout.resolve()), capture_output=True, text=True, env=env, timeout=900, check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS="))
    return {Path(folder): value for folder, value in json.loads(line[len("RESULTS="):]).items()}
