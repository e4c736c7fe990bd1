"""The worker's check of its compiled pass runs net.predict's own step function on the first and the last official
batch (worker.predict_steps). That is only a check against net.predict if net.predict then runs those very
functions: shown here on real Keras models, in a subprocess (the test process never imports TensorFlow)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
from keras import layers
from grader.evaluation.worker import predict_steps

keras.utils.set_random_seed(0)
image = keras.Input((12, 12, 1))
hidden = layers.MaxPooling2D()(layers.Conv2D(4, 3, activation="relu")(image))
functional = keras.Model(image, layers.Dense(10, activation="softmax")(layers.Flatten()(hidden)))
models = {
    "sequential": keras.Sequential([keras.Input((144,)), layers.Dense(16, activation="relu"), layers.Dense(10)]),
    "functional": functional,
}
x = np.random.default_rng(0).random((103, 144), dtype=np.float32)
answers = {}
for name, net in models.items():
    images = x.reshape(-1, *net.input_shape[1:])
    batches = [images[:32], images[96:]]  # the first official batch and the remainder (7 images)
    steps = predict_steps(net, batches)
    traced = net.predict_function.experimental_get_tracing_count()
    whole = net.predict(images, batch_size=32, verbose=0)
    answers[name] = {
        "traced_by_steps": traced,
        "traced_after_predict": net.predict_function.experimental_get_tracing_count(),
        "same": bool(np.array_equal(np.concatenate(steps), np.concatenate([whole[:32], whole[96:]]))),
        "float64_refused": predict_steps(net, [b.astype(np.float64) for b in batches]) is None,
    }
print("ANSWER=" + json.dumps(answers))
"""


@pytest.mark.tensorflow
def test_net_predict_runs_the_very_functions_the_check_ran() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("ANSWER="))
    answers = json.loads(line.removeprefix("ANSWER="))
    for name, answer in answers.items():
        # Two traces (a full batch's shape, then the open batch axis for the remainder), and net.predict on the
        # whole set traces nothing more: it calls the same concrete functions the check called.
        assert answer["traced_by_steps"] == 2, name
        assert answer["traced_after_predict"] == 2, name
        assert answer["same"], name
        # Images net.predict would cast to float32 first are not fed so: the check falls back to net.predict.
        assert answer["float64_refused"], name
