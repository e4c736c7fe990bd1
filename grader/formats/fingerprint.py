"""A network's weights, summarised for integrity evidence: hashes, and its kernels for comparison.

Read in the sandboxed inspector child, after the file's inspection found nothing the screening refuses
(links, external or virtual storage, shape bombs): the weight arrays are read as plain numbers, never run.

- `weights_sha256`: a hash of every weight array in the model's layer order (shape and float32 values),
  independent of the file's layout, layer and weight names, and the Keras version that wrote it: the same
  weights saved by Keras 2 and Keras 3, as .h5 or .keras, hash alike.
- `layers`: each layer with weights, its shapes, parameter count and own hash (a network whose first layers
  are another's, with only the last one retrained, shares those layers' hashes).
- kernels: each layer's kernel (its first array of two or more axes) in float16, in Keras's layout (inputs
  first, units last; ONNX's Conv and Gemm weights are transposed to it), for the unit-by-unit comparison of
  grader.marking.integrity. At most KERNEL_VALUES values are kept (`kernels_complete` says when fewer).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REVISION = 1
"Raise when a fingerprint's content changes: stored fingerprints of another revision are read again."
KERNEL_VALUES = 4_000_000
"Most kernel values kept for comparison (8 MB in float16); layers beyond are compared by hash only."
SKIPPED_STORAGE = ("links", "external_datasets", "virtual_datasets", "unbacked_datasets", "code_objects")


def fingerprint_file(path: Path, inspection: Any) -> dict[str, Any]:
    """The fingerprint of a model file already inspected (see the module's docstring), or why there is none."""
    refused = [name for name in SKIPPED_STORAGE if getattr(inspection, name, ())]
    if refused or inspection.truncated_walk or inspection.archive_problems or not inspection.readable:
        return {"revision": REVISION, "skipped": "the file's storage or content is refused by the screening"}
    if inspection.external_data:
        return {"revision": REVISION, "skipped": "the weights are stored beside the graph, which is not read here"}
    if inspection.format == "onnx":
        from grader.formats.onnx import onnx_weight_layers

        return summarise(onnx_weight_layers(path) or [])
    if inspection.format == "keras-zip":
        import zipfile

        with zipfile.ZipFile(path) as archive:
            weights = io.BytesIO(archive.read("model.weights.h5"))
        return _summarise_h5(weights, [layer.name for layer in inspection.layers])
    return _summarise_h5(path, [])


def _summarise_h5(source: Path | io.BytesIO, order: list[str]) -> dict[str, Any]:
    """Weights of Keras's legacy HDF5 layout or Keras 3's, read one layer at a time."""
    import h5py

    with h5py.File(source, "r", locking=False) as handle:
        root = handle.get("model_weights", handle)
        if "layer_names" in root.attrs:
            return summarise(_legacy_layers(root))
        return summarise(_keras3_layers(handle, order))


def summarise(layers: Iterable[tuple[str, list[np.ndarray]]]) -> dict[str, Any]:
    """Hashes and kernels of (layer name, [arrays in the layer's own order]) pairs, taken one at a time."""
    whole = hashlib.sha256()
    facts: list[dict[str, Any]] = []
    kernels: dict[str, np.ndarray] = {}
    budget = KERNEL_VALUES
    complete = True
    for name, arrays in layers:
        digest = hashlib.sha256()
        for array in arrays:
            canonical = np.ascontiguousarray(array, dtype="<f4")
            digest.update(repr(canonical.shape).encode())
            digest.update(canonical.tobytes())
        entry: dict[str, Any] = {
            "name": name,
            "shapes": [list(array.shape) for array in arrays],
            "parameters": int(sum(array.size for array in arrays)),
            "sha256": digest.hexdigest(),
        }
        whole.update(entry["sha256"].encode())
        kernel = next((array for array in arrays if array.ndim >= 2), None)
        if kernel is not None:
            entry["kernel"] = list(kernel.shape)
            # A kernel that never left a constant initialisation (zeros, ones) is alike in every network.
            entry["varied"] = bool(kernel.size and np.ptp(kernel) > 0)
            if kernel.size <= budget and complete:
                kernels[f"k{len(facts)}"] = np.asarray(kernel, dtype=np.float16)
                budget -= kernel.size
            else:
                complete = False
        facts.append(entry)
    if not facts:
        return {"revision": REVISION, "skipped": "the file holds no weights"}
    buffer = io.BytesIO()
    # Stored as they are: float16 weights compress by a tenth at most, and compressing them took most of the
    # inspector's time (0.18 s for a 3M-parameter network), ahead of every evaluation.
    np.savez(buffer, **kernels)
    return {
        "revision": REVISION,
        "weights_sha256": whole.hexdigest(),
        "layers": facts,
        "kernels_complete": complete,
        "kernels": base64.b64encode(buffer.getvalue()).decode("ascii"),
    }


def read_kernels(blob: bytes) -> dict[int, np.ndarray]:
    """The kernels stored with a fingerprint, by layer index (plain arrays: no pickle is ever read)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
        return {int(key[1:]): stored[key].astype(np.float32) for key in stored.files}


def _numbers(dataset: Any) -> np.ndarray | None:
    """A dataset's values, when it holds plain numbers."""
    if dataset.dtype.kind not in "fiub" or dataset.dtype.fields is not None:
        return None
    return np.asarray(dataset[()])


def _legacy_layers(root: Any) -> Iterator[tuple[str, list[np.ndarray]]]:
    """Keras 2's and Keras 3's legacy HDF5 layout: layer_names in model order, weight_names in layer order."""
    for raw in root.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        group = root.get(name)
        if group is None:
            continue
        arrays = []
        for weight in group.attrs.get("weight_names", ()):
            dataset = group.get(weight.decode() if isinstance(weight, bytes) else str(weight))
            values = _numbers(dataset) if dataset is not None and hasattr(dataset, "dtype") else None
            if values is not None:
                arrays.append(values)
        if arrays:
            yield name, arrays


def _keras3_layers(handle: Any, order: list[str]) -> Iterator[tuple[str, list[np.ndarray]]]:
    """Keras 3's weights layout: layers/<name>/vars/<i> (nested models: layers/<model>/layers/...), the
    top-level layers in the config's order."""
    rank = {name: index for index, name in enumerate(order)}

    def collect(group: Any, prefix: str) -> Iterator[tuple[str, list[np.ndarray]]]:
        layers = group.get("layers")
        for name in sorted(layers or (), key=lambda each: (rank.get(each, len(rank)), _natural(each))):
            layer = layers[name]
            variables = layer.get("vars")
            arrays = [
                values
                for key in sorted(variables or (), key=_natural)
                if (values := _numbers(variables[key])) is not None
            ]
            if arrays:
                yield prefix + name, arrays
            yield from collect(layer, f"{prefix}{name}/")

    return collect(handle, "")


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key that puts 'dense_2' before 'dense_10' and '2' before '10'."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))
