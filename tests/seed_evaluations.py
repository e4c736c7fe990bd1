"""The evaluation code of the SYDE 522 and UvA courseworks, as their documents write it, run in a child
process (the test process never imports TensorFlow): the reference the tests hold each part's accuracy to.

- SYDE 522 A4 (seed 003, lines 35, 107-108): x_test = x_test / 255.0; output = model.predict(x_test);
  category = np.argmax(output, axis=1). Its accuracy is the share of categories equal to the labels.
- KIT exercise 9 (seed 001, lines 40, 46): apply.py on PNGs of 28x28 grey digits; its code is not in the seed,
  so this reads each image as Keras's examples do: the grey pixels / 255 in the model's input shape, predict,
  argmax. Labels are the class folders the images sit in.
- onnxruntime's own prediction of an ONNX graph: x / 255 then mean and std, each image fed alone in the
  shape the graph's input declares (repeated to fill a fixed batch), argmax.
- Keras's own prediction of any file Keras loads (.h5 or .keras): load_model(file), x / 255 then the part's
  mean and std, reshaped to the model's input, predict, argmax.
- UvA Lab 1 (seed 004, lines 87-91, 116-117, 144, 179, 243): x_test reshaped as the question prepares it
  and divided by 255, y_test = keras.utils.to_categorical(y, 10), model.compile(loss='categorical_crossentropy',
  optimizer=keras.optimizers.RMSprop(), metrics='accuracy'); loss, accuracy = model.evaluate(x_test, y_test,
  verbose=0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .references import content, remembered

RUNNER = """
import json, os, sys
from pathlib import Path
import numpy as np
from PIL import Image
from tensorflow import keras

results = []
for job in json.loads(sys.argv[1]):
    if job["seed"] == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(job["model"], providers=["CPUExecutionProvider"])
        with np.load(job["heldout"]) as data:
            x_test, y = data["x"], data["y"]
        x = (x_test.astype("float32") / 255 - job.get("mean", 0.0)) / job.get("std", 1.0)
        declared = session.get_inputs()[0].shape
        batch_axis = len(session.get_outputs()[0].shape) != 1
        per_image = [d if isinstance(d, int) else 1 for d in (declared[1:] if batch_axis else declared)]
        name = session.get_inputs()[0].name
        fixed = declared[0] if batch_axis and isinstance(declared[0], int) else 1
        rows = []
        for image in x:  # one image at a time, repeated to fill a fixed batch: no batching of grader's
            fed = image.reshape(*per_image)
            fed = np.repeat(fed[None], fixed, axis=0) if batch_axis else fed
            out = np.asarray(session.run(None, {name: fed})[0])
            rows.append(out.reshape(fixed, -1)[0] if batch_axis else out.reshape(-1))
        predicted = np.argmax(np.stack(rows), axis=1)
        results.append({"correct": int(np.sum(predicted == y))})
        continue
    model = keras.models.load_model(job["model"])
    if job["seed"] == "kit":
        folder = Path(job["folder"])
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        x = np.stack([np.asarray(Image.open(p).convert("L"), dtype="float32") for p in files]) / 255
        x = x.reshape(len(files), *model.input_shape[1:])
        predicted = np.argmax(model.predict(x, verbose=0), axis=1)
        y = np.array([int(p.relative_to(folder).parts[0]) for p in files])
        names = [p.relative_to(folder).as_posix() for p in files]
        results.append({"correct": int(np.sum(predicted == y)), "total": len(files),
                        "predicted": dict(zip(names, map(int, predicted)))})
        continue
    with np.load(job["heldout"]) as data:
        x_test, y = data["x"], data["y"]
    if job["seed"] == "keras":
        x = (x_test.astype("float32") / 255 - job.get("mean", 0.0)) / job.get("std", 1.0)
        x = x.reshape(len(x), *model.input_shape[1:])
        predicted = np.argmax(model.predict(x, verbose=0), axis=1)
        results.append({"correct": int(np.sum(predicted == y))})
        continue
    if job["seed"] == "syde":
        x_test = x_test / 255.0
        output = model.predict(x_test, verbose=0)
        category = np.argmax(output, axis=1)
        results.append({"correct": int(np.sum(category == y))})
    else:
        shape = {"mlp": (784,), "cnn": (28, 28, 1), "cifar10": (32, 32, 3)}[job["question"]]
        x_test = x_test.reshape(x_test.shape[0], *shape)
        x_test = x_test / 255
        y_test = keras.utils.to_categorical(y, 10)
        model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"])
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        results.append({"accuracy": float(accuracy), "total": int(y.size)})
print("RESULTS=" + json.dumps(results))
"""


def run_seed_evaluations(jobs: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Each job: {"seed": "syde" | "uva" | "keras", "model": path, "heldout": .npz with x/y, "question": UvA
    part, "mean"/"std": Keras's preprocessing}, or
    {"seed": "kit", "model": path, "folder": a folder of class folders of PNG/JPEG digits}.
    A job whose files and versions were run before reads that run's result (references.py)."""

    def describe(job: dict[str, str]) -> dict[str, Any]:
        files = {key: content(Path(job[key])) for key in ("model", "heldout", "folder") if key in job}
        return {"runner": RUNNER, **job, **files}

    return remembered("seed", jobs, describe, _run)


def _run(jobs: list[dict[str, str]]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=900,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS="))
    return list(json.loads(line[len("RESULTS=") :]))
