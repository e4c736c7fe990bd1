"""Hostile .h5 files, made from a benign Keras model with h5py alone (no TensorFlow needed).

Each maker copies `source` (a Keras 3 MLP: Input 784 -> Dense 32 -> Dense 10) to `target` and plants
one attack. They are the attacks of the 2025-2026 Keras advisories and of HDF5 itself: files that
point at host files, declare memory they do not store, or smuggle code and foreign classes in the config.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

KERNEL = "model_weights/dense/sequential/dense/kernel"


def _copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target


def _edit_config(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    _copy(source, target)
    with h5py.File(target, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        change(config)
        handle.attrs["model_config"] = json.dumps(config)
    return target


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["config"]["layers"]


def external_dataset(source: Path, target: Path, secret: Path) -> Path:
    """The first kernel's bytes live in a host file: loading it would read that file as weights."""
    _copy(source, target)
    with h5py.File(target, "r+") as handle:
        shape, dtype = handle[KERNEL].shape, handle[KERNEL].dtype
        del handle[KERNEL]
        handle.create_dataset(KERNEL, shape=shape, dtype=dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    return target


def virtual_dataset(source: Path, target: Path, secret_h5: Path) -> Path:
    """The first kernel is a virtual dataset mapped from another HDF5 file on the host."""
    with h5py.File(secret_h5, "w") as other:
        other.create_dataset("secret", data=np.arange(784 * 32, dtype="float32").reshape(784, 32))
    _copy(source, target)
    with h5py.File(target, "r+") as handle:
        del handle[KERNEL]
        layout = h5py.VirtualLayout(shape=(784, 32), dtype="float32")
        layout[:] = h5py.VirtualSource(str(secret_h5), "secret", shape=(784, 32))
        handle.create_virtual_dataset(KERNEL, layout)
    return target


def external_link(source: Path, target: Path, secret_h5: Path) -> Path:
    """A weight group is an external link into another file on the host."""
    with h5py.File(secret_h5, "w") as other:
        other.create_dataset("kernel", data=np.zeros((784, 32), "float32"))
    _copy(source, target)
    with h5py.File(target, "r+") as handle:
        del handle[KERNEL]
        handle[KERNEL] = h5py.ExternalLink(str(secret_h5), "/kernel")
    return target


def soft_link(source: Path, target: Path) -> Path:
    """A weight is a soft link elsewhere in the file."""
    _copy(source, target)
    with h5py.File(target, "r+") as handle:
        handle["model_weights/dense/sequential/dense/alias"] = h5py.SoftLink("/" + KERNEL)
    return target


def shape_bomb(source: Path, target: Path) -> Path:
    """A dataset declaring a terabyte of float32 in a file of kilobytes (chunked, nothing written)."""
    _copy(source, target)
    with h5py.File(target, "r+") as handle:
        del handle[KERNEL]
        handle.create_dataset(KERNEL, shape=(2**19, 2**19), dtype="float32", chunks=(64, 64))
    return target


def oversized_config(source: Path, target: Path) -> Path:
    """A model config of 20 MB."""
    return _edit_config(source, target, lambda config: config.update(padding="x" * (20 * 1024 * 1024)))


def deep_config(source: Path, target: Path) -> Path:
    """A model config nested 5,000 levels deep (a recursive JSON parser's stack overflow)."""
    _edit_config(source, target, lambda config: _layers(config)[1]["config"].update(trap="TRAP"))
    with h5py.File(target, "r+") as handle:
        text = handle.attrs["model_config"]
        handle.attrs["model_config"] = text.replace('"TRAP"', "[" * 5000 + "0" + "]" * 5000)
    return target


def foreign_module(source: Path, target: Path, module: str = "os", class_name: str = "system") -> Path:
    """An initializer whose class the config says lives in another module (the module-path advisories:
    `os.system`, or Keras's own `get_file` that downloads and writes files)."""

    def change(config: dict[str, Any]) -> None:
        _layers(config)[1]["config"]["kernel_initializer"] = {
            "module": module,
            "class_name": class_name,
            "config": {"command": "touch /tmp/pwned"},
            "registered_name": None,
        }

    return _edit_config(source, target, change)


def renamed_class(source: Path, target: Path, class_name: str, **config: Any) -> Path:
    """The first Dense layer renamed to another class (custom, TFSMLayer, StringLookup, TFOpLambda...)."""

    def change(document: dict[str, Any]) -> None:
        layer = _layers(document)[1]
        layer["class_name"] = class_name
        layer["config"].update(config)

    return _edit_config(source, target, change)


def layer_setting(source: Path, target: Path, **config: Any) -> Path:
    """The first Dense layer's config with settings Keras refuses (units=-5, an unknown activation)."""

    def change(document: dict[str, Any]) -> None:
        _layers(document)[1]["config"].update(config)

    return _edit_config(source, target, change)


def registered_custom(source: Path, target: Path) -> Path:
    """A Dense layer registered as a custom object (`registered_name`)."""

    def change(config: dict[str, Any]) -> None:
        _layers(config)[1]["registered_name"] = "my_package>Dense"

    return _edit_config(source, target, change)


def keras2_lambda(source: Path, target: Path) -> Path:
    """A Keras-2 style Lambda: bytecode in the config, which tf_keras runs whatever safe_mode says."""

    def change(config: dict[str, Any]) -> None:
        _layers(config).insert(
            1,
            {
                "class_name": "Lambda",
                "config": {
                    "name": "lambda",
                    "function": [
                        "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA",
                        None,
                        None,
                    ],
                    "function_type": "lambda",
                    "output_shape_type": "raw",
                    "arguments": {},
                },
            },
        )

    return _edit_config(source, target, change)


def config_bomb(source: Path, target: Path) -> Path:
    """A config declaring a Dense of 10^9 units over stored weights of a few kilobytes."""

    def change(config: dict[str, Any]) -> None:
        _layers(config)[1]["config"]["units"] = 10**9

    return _edit_config(source, target, change)


def oversized_file(target: Path, size: int = 600 * 1024 * 1024) -> Path:
    """A sparse file over KEATS's 500 MB limit (takes no disk space; grader must not read it)."""
    with open(target, "wb") as handle:
        handle.write(b"\x89HDF\r\n\x1a\n")
        handle.truncate(size)
    return target


def cases(models: Path, work: Path, traps: Any) -> dict[str, Path]:
    """Every hostile or broken file of the suite, by case name: made in `work` from the fixture models
    (tests/build_models.py), aimed at the session's traps."""
    mlp = models / "mlp.h5"
    return {
        "external_dataset": external_dataset(mlp, work / "a.h5", traps.secret),
        "virtual_dataset": virtual_dataset(mlp, work / "b.h5", work / "other1.h5"),
        "external_link": external_link(mlp, work / "c.h5", work / "other2.h5"),
        "soft_link": soft_link(mlp, work / "d.h5"),
        "shape_bomb": shape_bomb(mlp, work / "e.h5"),
        "oversized_config": oversized_config(mlp, work / "f.h5"),
        "deep_config": deep_config(mlp, work / "g.h5"),
        "foreign_module": foreign_module(mlp, work / "h.h5"),
        "keras_utils_module": foreign_module(
            mlp, work / "h2.h5", module="keras.src.utils.file_utils", class_name="get_file"
        ),
        "custom_class": renamed_class(mlp, work / "i.h5", "MyDense"),
        "tfsm_layer": renamed_class(mlp, work / "j.h5", "TFSMLayer", filepath=str(traps.secret)),
        "string_lookup": renamed_class(mlp, work / "k.h5", "StringLookup", vocabulary=str(traps.secret)),
        "tfoplambda": renamed_class(mlp, work / "l.h5", "TFOpLambda", function="math.add"),
        "registered_custom": registered_custom(mlp, work / "m.h5"),
        "keras2_lambda": keras2_lambda(mlp, work / "n.h5"),
        "config_bomb": config_bomb(mlp, work / "o.h5"),
        "oversized_file": oversized_file(work / "p.h5"),
        "payload_lambda": models / "payload.h5",
        "weights_only": models / "weights_only.weights.h5",
        "truncated": models / "truncated.h5",
        "text": models / "text.h5",
        "empty": models / "empty.h5",
        "slow": models / "slow.h5",
        "memory_hog": models / "memory_hog.h5",
        "nan": models / "nan.h5",
        "five_outputs": models / "five_outputs.h5",
        "rgb32": models / "rgb32.h5",
    }


# What grading makes of each case (with a 10 s time limit and 1.5 GB of memory): status and the reason's start.
EXPECTED = [
    ("external_dataset", "refused", "HDF5 structure: datasets stored in other files (external storage)"),
    ("virtual_dataset", "refused", "HDF5 structure: virtual datasets mapped from other files"),
    ("external_link", "refused", "HDF5 structure: links that leave the file"),
    ("soft_link", "refused", "HDF5 structure: links that leave the file or point elsewhere in it"),
    ("shape_bomb", "refused", "HDF5 structure: datasets declaring far more bytes than the file stores"),
    ("oversized_config", "refused", "model: model config is 20,"),
    ("deep_config", "refused", "model: model config is nested 50"),
    ("foreign_module", "refused", "config: names Python modules outside Keras's layers and their parts: os"),
    (
        "keras_utils_module",
        "refused",
        "config: names Python modules outside Keras's layers and their parts: keras.src.utils.file_utils",
    ),
    ("custom_class", "refused", "layers: uses layer classes this assignment does not allow: MyDense"),
    ("tfsm_layer", "refused", "layers: TFSMLayer loads a TensorFlow SavedModel from a path on disk"),
    ("string_lookup", "refused", "layers: StringLookup can read a vocabulary file from disk"),
    ("tfoplambda", "refused", "layers: uses TFOpLambda, which calls a TensorFlow function the file names"),
    ("registered_custom", "refused", "layers: registered as custom objects: Dense (my_package>Dense)"),
    (
        "keras2_lambda",
        "refused",
        "layers: uses Lambda, which runs Python code stored in the file: code "
        "chosen by the file is never run on the marking machine",
    ),
    (
        "config_bomb",
        "refused",
        "parameters: the config declares 795,000,000,010 parameters but the file stores 25,450",
    ),
    ("oversized_file", "refused", "file size: 629,145,600 bytes, over the limit of 524,288,000"),
    ("payload_lambda", "refused", "layers: uses Lambda"),
    ("weights_only", "refused", "model: the file holds weights only"),
    ("truncated", "refused", "HDF5 file: HDF5 cannot open it"),
    ("text", "refused", "HDF5 file: the file is a text/JSON file"),
    ("empty", "refused", "HDF5 file: the file is empty"),
    ("slow", "timeout", "no answer within the 10 s limit"),
    ("memory_hog", "over_limit", "the model needed more than the 1.5 GB of memory a worker may use"),
    ("nan", "flagged", "outputs: 3,000 of 3,000 images gave NaN or infinite outputs"),
    ("five_outputs", "flagged", "outputs: the model outputs 5 scores per image; this assignment has 10 classes"),
    ("rgb32", "predict_failed", "the model takes input (None, 32, 32, 3) but the official script feeds"),
    ("Cy Link", "refused", "model.h5 is a symbolic link, which is never followed"),
    ("Ben Good", "flagged", "file choice: MODEL.H5: the official script only loads names ending in lower-case"),
    ("Ann Good", "graded", ""),
]
