"""The evaluation worker: the only module that imports TensorFlow.

Run as `python -m grader.worker --images IMAGES.npy` in a child process (inside the sandbox when there
is one). It memory-maps the held-out images once (it never sees a label), then answers requests, one
JSON object per line on stdin, each naming a model file to load and predict on. Each answer is one JSON
line on stdout carrying the model's raw outputs as bytes; the grading process takes the argmax and
computes the accuracy. Nothing is pickled across the boundary.

The reference path is the official test script's, step for step:

    net = load_model(file)                       # here: safe_mode=True, compile=False
    netType = 'CNN' if len(net.input_shape) > 2 else 'MLP'
    x_test = x_test.astype('float32') / 255
    x_test = x_test.reshape(N, 784) or x_test.reshape(N, 28, 28, 1)
    outputs = net.predict(x_test)                # batch size 32
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import re
import sys
import time
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_OUTPUT_COLUMNS = 4096
OUTPUT_DTYPES = ("float16", "float32", "float64")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(error: BaseException, *, path: str = "", name: str = "") -> str:
    """A Keras or TensorFlow error as one readable line: type, the message's first useful line."""
    text = _ANSI.sub("", str(error))
    if path and name:
        text = text.replace(path, name)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Keras wraps the cause after a generic first line ("Exception encountered when calling ...").
    useful = [line for line in lines if not line.startswith(("Exception encountered", "Arguments received", "•"))]
    message = useful[0] if useful else (lines[0] if lines else "")
    message = re.sub(r"\s+", " ", message)
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def net_type(input_shape: Any) -> str:
    """The official script's rule, verbatim: 'CNN' if len(net.input_shape) > 2 else 'MLP'."""
    return "CNN" if len(input_shape) > 2 else "MLP"


class Worker:
    """Holds the images and answers evaluation requests."""

    def __init__(self, images_path: str) -> None:
        self.images = np.load(images_path, mmap_mode="r", allow_pickle=False)
        import keras  # noqa: F401  (imports TensorFlow through its backend)
        import tensorflow as tf

        self.keras = keras
        self.versions = {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        }

    def evaluate(self, request: dict[str, Any]) -> dict[str, Any]:
        path, name = request["model"], request.get("name", "model.h5")
        answer: dict[str, Any] = {"id": request.get("id"), "versions": self.versions}
        started = time.perf_counter()
        try:
            net = self.keras.models.load_model(path, safe_mode=request.get("safe_mode", True), compile=False)
        except BaseException as error:  # any failure to load is a fact about this file
            return {**answer, "ok": False, "stage": "load", "error": one_line(error, path=path, name=name)}
        answer["load_seconds"] = round(time.perf_counter() - started, 3)
        answer["loader"] = f"keras {self.versions['keras']}"
        try:
            input_shape = net.input_shape
            kind = net_type(input_shape)
        except BaseException as error:
            return {**answer, "ok": False, "stage": "load", "error": one_line(error, path=path, name=name)}
        answer["input_shape"] = _plain(input_shape)
        answer["net_type"] = kind
        answer["summary"] = _summary(net)
        answer["parameters"] = _count(net)
        count = self.images.shape[0]
        shape = request["mlp_input"] if kind == "MLP" else request["cnn_input"]
        answer["fed_shape"] = [count, *shape]
        started = time.perf_counter()
        try:
            x = np.asarray(self.images).astype("float32") / request["scale"]
            x = x.reshape(count, *shape)
            outputs = net.predict(x, batch_size=request["batch_size"], verbose=0)
        except BaseException as error:
            return {**answer, "ok": False, "stage": "predict", "error": one_line(error, path=path, name=name)}
        answer["predict_seconds"] = round(time.perf_counter() - started, 3)
        return {**answer, **_encode_outputs(outputs, count)}


def _encode_outputs(outputs: Any, count: int) -> dict[str, Any]:
    if isinstance(outputs, list | tuple | dict):
        return {"ok": False, "stage": "output",
                "error": f"the model has {len(outputs)} outputs; the official script needs one"}
    array = np.asarray(outputs)
    if array.dtype.name not in OUTPUT_DTYPES:
        try:
            array = array.astype(np.float32)  # bfloat16 and integer outputs widen exactly
        except (TypeError, ValueError):
            return {"ok": False, "stage": "output", "error": f"outputs of type {array.dtype} are not numbers"}
    if array.ndim != 2 or array.shape[0] != count or array.shape[1] > MAX_OUTPUT_COLUMNS:
        return {"ok": False, "stage": "output", "output_shape": list(array.shape),
                "error": f"outputs have shape {tuple(array.shape)}; the official script needs ({count}, classes)"}
    array = np.ascontiguousarray(array)
    return {
        "ok": True,
        "output_shape": list(array.shape),
        "outputs": {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "base64": base64.b64encode(array.tobytes()).decode("ascii"),
        },
    }


def _summary(net: Any) -> list[dict[str, Any]]:
    rows = []
    for layer in getattr(net, "layers", []):
        try:
            shape = _plain(layer.output.shape)
        except Exception:
            shape = None
        rows.append({"name": layer.name, "class_name": type(layer).__name__, "output_shape": shape,
                     "parameters": _count(layer)})
    return rows


def _count(layer: Any) -> int | None:
    try:
        return int(layer.count_params())
    except Exception:
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return None if value is None else int(value)


def serve(images_path: str, threads: int) -> None:
    """Answer requests on stdin until it closes. The protocol has stdout to itself."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    # Whatever Keras, TensorFlow or a model prints must not corrupt the protocol: send it to stderr.
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    started = time.perf_counter()
    _limit_threads(threads)
    worker = Worker(images_path)
    send({"event": "ready", "protocol": PROTOCOL_VERSION, "versions": worker.versions,
          "images": list(worker.images.shape), "startup_seconds": round(time.perf_counter() - started, 3)})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        send(worker.evaluate(request))
        worker.keras.backend.clear_session()
        gc.collect()


def _limit_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="the held-out images as .npy (no labels)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads for this worker")
    args = parser.parse_args()
    serve(args.images, args.threads)


if __name__ == "__main__":
    main()
