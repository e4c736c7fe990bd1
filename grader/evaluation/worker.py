"""The evaluation worker: the only module that imports TensorFlow.

Run as `python -m grader.evaluation.worker --images NAME=IMAGES.npy ...` in a child process (inside the
sandbox when there is one). It memory-maps each part's held-out images once (it never sees a label), then
answers requests, one JSON object per line on stdin, each naming a model file and the image set to
predict on. Each answer is one JSON line on stdout carrying the model's raw outputs as bytes; the grading
process takes the argmax and computes the accuracy. Nothing is pickled across the boundary.

Images are prepared as the part's data spec says (x / scale, then per-channel mean and std, then the
layout) and fed by the part's rule, which its assignment file states: 'declared' reshapes the images to the
input shape the model declares; 'by-rank' takes the first of the file's steps whose rank_above the model's
input rank exceeds, and reshapes to its shape (a test script's rule, step for step: Coursework 1's is in
kcl-dnn-cw1.toml). The model is loaded with safe_mode=True and compile=False and predicts in the part's batch
size. Two departures, each recorded in the answer: a Keras 2 file that Keras 3 (the evaluation's loader)
cannot load or run is tried again with tf_keras, TensorFlow 2.18's Keras 2 loader; and under an
assignment's 'adapt' input mode a model the rule's feed fails on is fed the shape it declares.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import re
import sys
import time
from pathlib import Path
from types import CodeType
from typing import Any

import numpy as np

from grader import formats
from grader.evaluation.protocol import open_channel
from grader.evaluation.tripwire import Tripwire, nested_codes
from grader.formats.base import installed

PROTOCOL_VERSION = 3
# The same image predicted in a fast batch and in an official one gives outputs that differ by float32
# rounding (sums taken in another order): its drift, measured relative to the row's largest output (at
# least 1). A drift above BATCH_DRIFT is not rounding: the model's outputs depend on the other images in
# its batch, and the whole set is predicted in official batches.
BATCH_DRIFT = 1e-3
# Below that, an image's class can change between batch sizes only when its top two outputs are within
# twice the drift (one rises by it, the other falls by it). The near-tie margin is NEAR_TIE_SAFETY times
# that, from the largest drift measured on the batches predicted both ways, and never below
# MIN_NEAR_TIE; every official batch holding an image inside the margin is predicted again as the
# official script predicts it. A drift found there that widens the margin brings in more batches.
NEAR_TIE_SAFETY = 10
MIN_NEAR_TIE = 1e-4
# What the worker computes from a file; part of every stored evaluation's key, so a change to it
# evaluates every file again instead of reusing what an older worker stored. (4: a Lambda's attempts; 5: one
# compiled forward pass per model, checked against net.predict, with its trace and check timed; 6: the check
# runs net.predict's own step function on its two batches.)
REVISION = 6
COLLECT_EVERY = 8
MAX_OUTPUT_COLUMNS = 4096
OUTPUT_DTYPES = ("float16", "float32", "float64")
# Keras imports these when they are installed (for DataFrames and plots); a worker feeds numpy arrays and
# draws nothing. Kept out, a worker's start costs 2.8-3.2 CPU-seconds instead of 4.0-4.1 (measured 2026-12-08).
NOT_IMPORTED = ("pandas", "matplotlib")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CONFIG_DUMP = re.compile(r" (?:using|with) config=\{.*\}\.?$")


def one_line(error: BaseException, *, path: str = "", name: str = "") -> str:
    """A Keras or TensorFlow error as one readable line: type, the message's first useful line."""
    text = _ANSI.sub("", str(error))
    if path and name:
        text = text.replace(path, name)
    # Keras's deserialising errors print the layer's whole config, then the cause on a later line.
    lines = [_CONFIG_DUMP.sub("", line.strip()) for line in text.splitlines() if line.strip()]
    causes = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Exception encountered:")]
    # Keras wraps the cause after a generic first line ("Exception encountered when calling ...").
    useful = [line for line in lines if not line.startswith(("Exception encountered", "Arguments received", "•"))]
    message = useful[0] if useful else (lines[0] if lines else "")
    if causes and causes[0] not in message:
        message = f"{message.rstrip('.')}: {causes[0]}"
    message = re.sub(r"\s+", " ", message)
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def by_rank(steps: list[dict[str, Any]], input_shape: Any) -> dict[str, Any] | None:
    """The first step of a 'by-rank' rule whose rank_above the model's input rank (len(net.input_shape))
    exceeds, or None when none does."""
    return next((step for step in steps if len(input_shape) > step.get("rank_above", 0)), None)


def adapted_shape(declared: Any, image_shape: tuple[int, ...]) -> tuple[tuple[int, ...], int] | None:
    """The per-image shape to feed a model that declares `declared`, and how many times to repeat a grey
    channel to fill it (1: a plain reshape). None when 28x28 digits cannot be fed to it faithfully."""
    if not isinstance(declared, list | tuple) or len(declared) < 2 or isinstance(declared[0], list | tuple):
        return None
    shape = tuple(declared[1:])
    if any(not isinstance(size, int) for size in shape):
        return None
    pixels = math.prod(image_shape)
    if math.prod(shape) == pixels:
        return shape, 1
    grey = len(image_shape) == 2
    if grey and len(shape) == 3 and shape[-1] == 3 and shape[:2] == image_shape:
        return shape, 3  # channels last: the grey image in each of R, G and B
    if grey and len(shape) == 3 and shape[0] == 3 and shape[1:] == image_shape:
        return shape, 3  # channels first
    return None


class Worker:
    """Holds the held-out images (one set per part, by name, memory-mapped) and answers evaluation requests."""

    def __init__(self, images: dict[str, np.ndarray]) -> None:
        self.images = images
        import keras  # imports TensorFlow through its backend
        import tensorflow as tf

        self.keras = keras
        self.versions = {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tf_keras": installed("tf_keras"),
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        }
        self._tf_keras: Any = None
        self._prepared: dict[tuple[str, str], np.ndarray] = {}
        self.model_code: set[CodeType] = set()
        "The code objects of the model being evaluated (its Lambda layers'), by value."
        self.tripwire = Tripwire(lambda code: code in self.model_code)
        sys.addaudithook(self._capture)

    def loader(self, name: str) -> Any:
        """The Keras module a loader name stands for; tf_keras is imported the first time it is needed."""
        if name == "keras3":
            return self.keras
        if self._tf_keras is None:
            import tf_keras

            self._tf_keras = tf_keras
        return self._tf_keras

    def evaluate(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one request with the file's format (grader.formats): Keras files through `keras`, an ONNX graph
        by onnxruntime, a course's own format as it says. A model whose Lambda bytecode the instructor let run
        (safe_mode off) runs under the tripwire: what its code tries is refused and listed as `attempts`."""
        found = formats.named(request["format"])
        if request.get("safe_mode", True):
            return found.evaluate(self, request)
        self.model_code.clear()
        with self.tripwire.watching():
            answer = found.evaluate(self, request)
        return {**answer, "attempts": self.tripwire.take()}

    def one_line(self, error: BaseException, *, path: str = "", name: str = "") -> str:
        return one_line(error, path=path, name=name)

    def encode(self, outputs: Any, count: int) -> dict[str, Any]:
        return _encode_outputs(outputs, count)

    def _capture(self, event: str, args: tuple[Any, ...]) -> None:
        """Note the code objects a model's Lambda layers carry as Keras makes functions of them (its func_load,
        under either Keras): the frames that run them are the model's, for the tripwire."""
        if not (event == "function.__new__" and self.tripwire.armed and args and isinstance(args[0], CodeType)):
            return
        if sys._getframe(1).f_code.co_name == "func_load":
            self.model_code.update(nested_codes(args[0]))

    def with_keras(self, request: dict[str, Any], *, compile_check: bool) -> dict[str, Any]:
        """Try each loader the request allows, in order; the first that loads and predicts answers.
        `compile_check`: also say whether load_model(file) would fail compiling the training setup the file saves."""
        failures: list[dict[str, Any]] = []
        for name in request.get("loaders", ["keras3"]):
            answer = self._evaluate_with(name, request, compile_check)
            if answer["ok"]:
                return {**answer, "fallback_from": failures}
            failures.append(answer)
        first = failures[0]
        return {**first, "fallback_from": failures[1:]}

    def _evaluate_with(self, loader: str, request: dict[str, Any], compile_check: bool) -> dict[str, Any]:
        path, name = request["model"], request.get("name", Path(request["model"]).name)
        module = self.loader(loader)
        version = getattr(module, "__version__", "")
        answer: dict[str, Any] = {
            "id": request.get("id"),
            "versions": self.versions,
            "loader": f"{'keras' if loader == 'keras3' else loader} {version}",
        }
        started = time.perf_counter()
        try:
            if loader == "keras3":
                net = module.models.load_model(path, safe_mode=request.get("safe_mode", True), compile=False)
            else:
                # tf_keras runs a Lambda's bytecode whatever safe_mode says: the grading process sends a
                # file here only when screening found no code in it, or the instructor allowed it.
                net = module.models.load_model(path, compile=False)
        except BaseException as error:  # any failure to load is a fact about this file
            return {**answer, "ok": False, "stage": "load", "error": one_line(error, path=path, name=name)}
        answer["load_seconds"] = round(time.perf_counter() - started, 3)
        try:
            input_shape = _plain(net.input_shape)
        except BaseException as error:
            return {**answer, "ok": False, "stage": "load", "error": one_line(error, path=path, name=name)}
        answer.update(input_shape=input_shape, summary=_summary(net), parameters=_count(net))
        if loader == "keras3" and compile_check:
            answer.update(_official_compile_problem(net, path, name))
        x = self.prepared_images(request)
        count = x.shape[0]
        if request["feed"] == "declared":
            shape, problem = declared_feed(input_shape, x.shape[1:])
            answer["net_type"] = None
            if shape is None:
                return {**answer, "ok": False, "stage": "predict", "error": problem, "declared_mismatch": True}
        else:
            step = by_rank(request["by_rank"], input_shape)
            if step is None:
                rank = len(input_shape)
                problem = f"no step of the coursework's feeding rule takes a model whose input has rank {rank}"
                return {**answer, "ok": False, "stage": "predict", "error": problem, "net_type": None}
            answer["net_type"] = step["name"]
            shape = tuple(step["shape"])
        answer["fed_shape"] = [count, *shape]
        started = time.perf_counter()
        try:
            outputs, answer["batches"] = _predict_as_official(net, x.reshape(count, *shape), request)
        except BaseException as error:
            failure = one_line(error, path=path, name=name)
            adapted = adapted_shape(input_shape, tuple(request["image_shape"]))
            if request.get("input_mode") != "adapt" or adapted is None or adapted[0] == shape:
                return {**answer, "ok": False, "stage": "predict", "error": failure}
            try:
                outputs, answer["batches"] = _predict_as_official(net, _repeated(x, *adapted), request)
            except BaseException as again:
                return {
                    **answer,
                    "ok": False,
                    "stage": "predict",
                    "error": failure,
                    "adapt_error": one_line(again, path=path, name=name),
                }
            answer["adapted"] = {
                "reference_error": failure,
                "fed_shape": [count, *adapted[0]],
                "channels_repeated": adapted[1],
            }
            answer["fed_shape"] = [count, *adapted[0]]
        batches = answer["batches"]
        # Timed apart: tracing the compiled pass, checking it against net.predict, and predicting.
        answer["compiled"] = bool(batches.pop("direct", False))
        spent = {key: float(batches.pop(key)) for key in ("trace_seconds", "check_seconds") if key in batches}
        answer.update({key: round(value, 3) for key, value in spent.items()})
        answer["predict_seconds"] = round(time.perf_counter() - started - sum(spent.values()), 3)
        return {**answer, **_encode_outputs(outputs, count)}

    def reset(self) -> None:
        """A clean Keras session (and tf_keras's, once used) for the next model."""
        self.keras.backend.clear_session(free_memory=False)
        if self._tf_keras is not None:
            self._tf_keras.backend.clear_session()

    def prepared_images(self, request: dict[str, Any]) -> np.ndarray:
        """A part's images as its data spec prepares them (see prepare); done once per worker and set, so
        every model reads the same array."""
        key = (request["images"], json.dumps(request.get("data", {}), sort_keys=True))
        if key not in self._prepared:
            prepared = prepare(np.asarray(self.images[key[0]]), request.get("data", {}))
            prepared.setflags(write=False)  # a model must not change what the next one reads
            self._prepared[key] = prepared
        return self._prepared[key]


def prepare(images: np.ndarray, data: dict[str, Any]) -> np.ndarray:
    """Stored uint8 images as a model gets them, in float32: x / scale (Coursework 1's
    x.astype('float32') / 255); then (x - mean) / std per channel when the data spec gives them (PyTorch's
    Normalize); then, for layout 'nchw', channels moved before the rows and columns."""
    x = images.astype(np.float32) / np.float32(data.get("scale", 255))
    if data.get("mean"):
        mean = np.asarray(data["mean"], np.float32)
        std = np.asarray(data["std"], np.float32)
        # Grey images have no channel axis: their one mean and std are scalars.
        x = (x - (mean if x.ndim == 4 else mean[0])) / (std if x.ndim == 4 else std[0])
    if data.get("layout") == "nchw" and x.ndim == 4:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def declared_feed(declared: Any, image: tuple[int, ...]) -> tuple[tuple[int, ...] | None, str]:
    """The per-image shape to feed a model under the 'declared' rule: the input shape it declares, when
    that holds exactly one image's values; else None and a reason a TA can act on. A dimension the model
    leaves open (None) is taken from the image's own shape."""
    values = math.prod(image)
    described = "x".join(map(str, image)) + f" ({values:,} values)"
    if not isinstance(declared, list) or not declared or isinstance(declared[0], list):
        return None, f"the model takes {_inputs(declared)}; this part feeds one input of {described} per image"
    wanted = list(declared[1:])
    if None in wanted:
        if len(wanted) == len(image):
            wanted = [size if size is not None else image[i] for i, size in enumerate(wanted)]
        elif len(wanted) == len(image) + 1 and wanted[-1] == 1:
            wanted = [size if size is not None else ([*image, 1])[i] for i, size in enumerate(wanted)]
    if None in wanted or math.prod(wanted) != values:
        shape = "(" + ", ".join("None" if s is None else str(s) for s in declared) + ")"
        held = f"{math.prod(s for s in declared[1:] if s is not None):,} values" if None not in wanted else "open sizes"
        return None, (
            f"the model declares input {shape} ({held} per image), but this part's images are {described}: "
            "train the model on this part's images"
        )
    return tuple(int(size) for size in wanted), ""


def _inputs(declared: Any) -> str:
    if isinstance(declared, list) and declared and isinstance(declared[0], list):
        return f"{len(declared)} inputs"
    return f"input {declared}"


def _repeated(x: np.ndarray, shape: tuple[int, ...], repeat: int) -> np.ndarray:
    """The images reshaped to `shape`, a grey channel repeated when a model takes three."""
    count = x.shape[0]
    if repeat == 1:
        return x.reshape(count, *shape)
    axis = -1 if shape[-1] == repeat else 1
    return np.repeat(np.expand_dims(x, axis), repeat, axis=axis).reshape(count, *shape)


def _predict_as_official(net: Any, x: np.ndarray, request: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Outputs whose classes equal the official script's net.predict(x) at its batch size, computed faster.

    The model's forward pass is compiled once for every batch size (Direct), and used only where it gives, bit
    for bit, what net.predict gives on the first and the last official batch; otherwise net.predict itself runs
    throughout. The whole set is predicted in large batches. Then the first, middle and last official batches
    (32 images, in order) are predicted again exactly as the official script predicts them, as probes of how far
    the two batch sizes' outputs drift apart. A drift beyond rounding (BATCH_DRIFT) means the model's outputs
    depend on the other images in its batch: the whole set is predicted at the official batch size. Otherwise
    every official batch holding an image whose top two outputs lie within the near-tie margin (from the largest
    drift measured, see NEAR_TIE_SAFETY), or a NaN, is predicted again the official way, and those outputs are
    kept; a batch that drifts further widens the margin and brings in the batches the wider margin reaches. The
    answer says how many batches were re-run, the drift and margin, which images changed class, and whether the
    compiled pass was used (with its trace and check times).
    """
    official = int(request["batch_size"])
    fast = max(official, int(request.get("fast_batch_size") or official))
    predict, facts = _predictor(net, x, official)
    outputs = np.array(predict(x, fast), copy=True)
    facts.update({"official": official, "fast": fast, "rechecked": 0, "changed": []})
    if fast == official or outputs.ndim != 2 or outputs.shape[0] != x.shape[0] or outputs.shape[1] < 2:
        return outputs, facts
    total = -(-x.shape[0] // official)
    gaps = top_two_gaps(outputs)
    corrected = outputs.copy()
    drift, margin = 0.0, MIN_NEAR_TIE
    checked: set[int] = set()
    pending = {0, total // 2, total - 1}
    while pending:
        if len(checked | pending) * 4 > total:
            # Near-ties everywhere (a model gone to NaN, constant outputs): one official pass beats many.
            return _official_pass(predict, x, outputs, facts)
        for batch in sorted(pending):
            start = batch * official
            stop = min(start + official, x.shape[0])
            exact = np.asarray(predict(x[start:stop], official))
            seen = batch_drift(exact, outputs[start:stop])
            if seen > BATCH_DRIFT:
                return _official_pass(predict, x, outputs, facts)
            drift = max(drift, seen)
            facts["changed"].extend(start + index for index in _flipped(exact, outputs[start:stop]))
            corrected[start:stop] = exact
            checked.add(batch)
        margin = near_tie_margin(drift)
        pending = {int(b) for b in np.unique(np.nonzero(gaps <= margin)[0] // official)} - checked
    facts.update(rechecked=len(checked), drift=drift, margin=margin)
    facts["changed"].sort()
    return corrected, facts


def _predictor(net: Any, x: np.ndarray, official: int) -> tuple[Any, dict[str, Any]]:
    """How this model's batches are predicted: predict(images, batch_size) -> outputs. The compiled forward pass
    where it equals net.predict bit for bit on the first and the last official batch (its own batch shapes:
    a full one and the remainder), else net.predict; and the facts of that choice."""

    def keras_predict(images: np.ndarray, batch_size: int) -> np.ndarray:
        return np.asarray(net.predict(images, batch_size=batch_size, verbose=0))

    direct = Direct.of(net, x)
    if direct is None:
        return keras_predict, {"direct": False}
    facts: dict[str, Any] = {"trace_seconds": round(direct.trace_seconds, 4)}
    started = time.perf_counter()
    # The first official batch and the last (a remainder, when the set does not divide), as net.predict runs
    # them, against the compiled pass on the same batches.
    count = x.shape[0]
    last = (count - 1) // official * official
    batches = [x[: min(official, count)]] if last == 0 else [x[:official], x[last:]]
    sample = np.concatenate(batches)
    try:
        steps = predict_steps(net, batches)
        reference = np.concatenate(steps) if steps is not None else keras_predict(sample, official)
        same = _identical(reference, direct(sample, official))
    except BaseException:  # the compiled pass cannot run these images: net.predict says what it says
        same = False
    facts.update(direct=same, check_seconds=round(time.perf_counter() - started, 4))
    return (direct if same else keras_predict), facts


def predict_steps(net: Any, batches: list[np.ndarray]) -> list[np.ndarray] | None:
    """Each batch's outputs from net.predict's own step, net.predict_function, fed as net.predict feeds it (one
    float32 tensor in a list): the very functions net.predict traces and runs for those batch shapes, without
    the dataset and callbacks it builds on every call (tests/test_worker_steps.py shows net.predict traces
    nothing new after them). None where that feeding is not net.predict's: another Keras than 3's TensorFlow
    trainer, several steps per call, or images net.predict would cast first."""
    tf = sys.modules.get("tensorflow")
    keras = sys.modules.get("keras")
    if tf is None or keras is None or not isinstance(net, keras.Model):
        return None
    if getattr(net, "steps_per_execution", 1) != 1 or any(b.dtype != np.dtype(keras.config.floatx()) for b in batches):
        return None
    function = net.make_predict_function() or net.predict_function
    return [np.asarray(function([tf.convert_to_tensor(batch)])) for batch in batches]


class Direct:
    """A model's forward pass, net(x, training=False), compiled once with the batch axis left open: every batch
    size runs the same trace (net.predict builds a dataset and callbacks on each call and may trace again for a
    new batch size, which for a small model costs more than its arithmetic)."""

    def __init__(self, concrete: Any, trace_seconds: float) -> None:
        self.concrete, self.trace_seconds = concrete, trace_seconds

    @classmethod
    def of(cls, net: Any, x: np.ndarray) -> Direct | None:
        """The compiled pass for images shaped as x, or None when the model cannot be called so (several inputs,
        a layer that refuses a symbolic batch), or when TensorFlow is not what runs it (a net that is not Keras's)."""
        tf = sys.modules.get("tensorflow")
        if tf is None or not callable(net):
            return None
        started = time.perf_counter()
        try:
            spec = tf.TensorSpec([None, *x.shape[1:]], tf.as_dtype(x.dtype))
            concrete = tf.function(lambda images: net(images, training=False)).get_concrete_function(spec)
        except BaseException:
            return None
        if not isinstance(concrete.structured_outputs, tf.Tensor):
            return None  # several outputs: net.predict's own handling answers
        return cls(concrete, time.perf_counter() - started)

    def __call__(self, images: np.ndarray, batch_size: int) -> np.ndarray:
        parts = [
            self.concrete(images[start : start + batch_size]).numpy() for start in range(0, images.shape[0], batch_size)
        ]
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    """The same outputs bit for bit (NaN where both have NaN counts as the same)."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=True))


def near_tie_margin(drift: float) -> float:
    """The top-two gap (relative) within which an image's class could depend on the batch size, given the
    largest drift measured between the two batch sizes: NEAR_TIE_SAFETY times twice it, at least MIN_NEAR_TIE."""
    return max(MIN_NEAR_TIE, NEAR_TIE_SAFETY * 2 * drift)


def top_two_gaps(outputs: np.ndarray) -> np.ndarray:
    """Each row's top output minus its second, relative to the top's size (at least 1); -inf for a row
    holding NaN or infinity, which is always re-predicted."""
    wide = outputs.astype(np.float64)
    top = np.sort(wide, axis=1)[:, -2:]
    with np.errstate(invalid="ignore"):
        gaps = (top[:, 1] - top[:, 0]) / np.maximum(1.0, np.abs(top[:, 1]))
    gaps[~np.isfinite(wide).all(axis=1)] = -np.inf
    return gaps


def batch_drift(exact: np.ndarray, fast: np.ndarray) -> float:
    """The largest difference between two predictions of the same images, each relative to its row's
    largest output (at least 1). NaN where both hold NaN counts as no difference; NaN on one side only,
    or any infinity that differs, as an infinite one."""
    a, b = exact.astype(np.float64), fast.astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        difference = np.where(same, 0.0, np.abs(a - b))
    difference[np.isnan(difference)] = np.inf
    scale = np.maximum(1.0, np.abs(np.where(np.isfinite(b), b, 0.0)).max(axis=1, keepdims=True))
    return float((difference / scale).max(initial=0.0))


def _official_pass(predict: Any, x: np.ndarray, fast: np.ndarray, facts: dict[str, Any]) -> tuple[np.ndarray, dict]:
    """The whole set predicted at the official batch size, the images whose class that changed, and
    whether the outputs differ by more than rounding (the model depends on the batch)."""
    official = facts["official"]
    exact = np.asarray(predict(x, official))
    drift = batch_drift(exact, fast)
    if drift > BATCH_DRIFT:
        facts["batch_dependent"] = True
    facts["changed"] = _flipped(exact, fast)
    facts["rechecked"] = -(-x.shape[0] // official)
    facts["drift"] = drift
    return exact, facts


def _flipped(exact: np.ndarray, fast: np.ndarray) -> list[int]:
    """The rows whose predicted class (argmax) differs between the two outputs."""
    return [int(i) for i in np.nonzero(np.argmax(exact, axis=1) != np.argmax(fast, axis=1))[0]]


def _official_compile_problem(net: Any, path: str, name: str) -> dict[str, str]:
    """Whether the official script's load_model(file), which compiles from the file's training config,
    would fail where compile=False succeeded (Keras 2 losses with reduction='auto', for example):
    {"official_load_error": ...} when it would, {"official_load_unchecked": why} when that cannot be
    told here, {} when it would not."""
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("training_config")
        if raw is None:
            return {}
        from keras.src.legacy.saving import json_utils, saving_utils
    except ImportError as error:
        # Another Keras layout than the pinned one: say the check could not be made, never drop it.
        return {"official_load_unchecked": one_line(error)}
    try:
        config = json_utils.decode(raw.decode() if isinstance(raw, bytes) else raw)
        net.compile(**saving_utils.compile_args_from_training_config(config))
    except BaseException as error:
        return {"official_load_error": one_line(error, path=path, name=name)}
    return {}


def _encode_outputs(outputs: Any, count: int) -> dict[str, Any]:
    if isinstance(outputs, list | tuple | dict):
        return {
            "ok": False,
            "stage": "output",
            "error": f"the model has {len(outputs)} outputs; the official script needs one",
        }
    array = np.asarray(outputs)
    if array.dtype.name not in OUTPUT_DTYPES:
        try:
            array = array.astype(np.float32)  # bfloat16 and integer outputs widen exactly
        except (TypeError, ValueError):
            return {"ok": False, "stage": "output", "error": f"outputs of type {array.dtype} are not numbers"}
    if array.ndim != 2 or array.shape[0] != count or array.shape[1] > MAX_OUTPUT_COLUMNS:
        return {
            "ok": False,
            "stage": "output",
            "output_shape": list(array.shape),
            "error": f"outputs have shape {tuple(array.shape)}; the official script needs ({count}, classes)",
        }
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
        rows.append(
            {"name": layer.name, "class_name": type(layer).__name__, "output_shape": shape, "parameters": _count(layer)}
        )
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


def serve(images: dict[str, str], threads: int) -> None:
    """Answer requests on stdin until it closes. The protocol has stdout to itself: whatever Keras,
    TensorFlow or a model prints goes to stderr."""
    send = open_channel()

    started = time.perf_counter()
    # The images first: a set that cannot be read fails the start at once, not after TensorFlow's import.
    held = {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in images.items()}
    _limit_threads(threads)
    worker = Worker(held)
    send(
        {
            "event": "ready",
            "protocol": PROTOCOL_VERSION,
            "versions": worker.versions,
            "images": {name: list(array.shape) for name, array in worker.images.items()},
            "startup_seconds": round(time.perf_counter() - started, 3),
        }
    )
    served = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        send(worker.evaluate(request))
        # A clean Keras session for the next model, after the answer is on its way. A full garbage
        # collection costs a fifth of a second in a TensorFlow process: run it every few models (the
        # grading process watches this worker's memory meanwhile).
        served += 1
        worker.reset()
        if served % COLLECT_EVERY == 0:
            gc.collect()


def _limit_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a held-out set's images as .npy (no labels), by the name requests give it; repeatable",
    )
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads for this worker")
    args = parser.parse_args()
    images = dict(item.split("=", 1) for item in args.images)
    for name in NOT_IMPORTED:
        # None in sys.modules: `import name` raises ImportError, as where the package is not installed.
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    serve(images, args.threads)


if __name__ == "__main__":
    main()
