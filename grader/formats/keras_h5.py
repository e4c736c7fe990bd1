"""What an .h5 file claims to be, read with h5py alone: no TensorFlow, no model built, no weight read.

The reader walks the HDF5 structure (links, dataset shapes and storage, attributes) and the model config
JSON, and reports facts. Deciding what those facts mean for a mark is `screening`'s job. A hostile file can
crash or stall a C library, so the grading run calls `inspect_h5` in a child process (see
`python -m grader.inspection`), never in the process that holds the labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from grader.formats.base import FAIL, PASS, Check, Inspection, LayerFact, Screening
from grader.formats.keras_config import KerasFormat
from grader.formats.keras_layers import analyse, config_of, declared_input, endpoints, inbound_names

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 looks for its superblock at 0 and then at every power of two from 512 (after a user block).
SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_CONFIG_DEPTH = 100
MAX_OBJECTS = 200_000
# A weight dataset stores its bytes; one that declares far more than it stores (4 GiB and 1000x, the
# bounds Keras 3 uses) would make a loader allocate memory the file never paid for.
SHAPE_BOMB_BYTES = 4 * 1024**3
SHAPE_BOMB_RATIO = 1000
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
NESTED_LAYER_KEYS = ("layer", "cell", "forward_layer", "backward_layer")
OTHER_FORMATS = {
    b"PK\x03\x04": "a zip archive (a .keras file or a zipped folder), not HDF5",
    b"\x80": "a Python pickle, not HDF5",
    b"{": "a text/JSON file (a notebook?), not HDF5",
}


def inspect_h5(path: str | Path) -> Inspection:
    """Read what an .h5 file claims to be without building or running anything."""
    path = Path(path)
    size = path.stat().st_size
    kind = sniff_format(path)
    if kind != "hdf5":
        return Inspection(path=str(path), size=size, format=kind)
    import h5py  # deferred: `grade --help` must not pay for it

    try:
        # locking=False: the file may sit on a read-only mount, and HDF5 locks are advisory anyway.
        handle = h5py.File(path, "r", locking=False)
    except OSError as error:
        return Inspection(path=str(path), size=size, format=kind, open_error=_first_line(error))
    with handle:
        return _inspect_open_file(handle, path, size)


def read_head(path: Path, size: int = 16) -> tuple[bytes, bool]:
    """A file's first bytes, and whether an HDF5 superblock signature is where HDF5 looks for one."""
    with open(path, "rb", buffering=0) as stream:
        head = stream.read(size)
        for offset in SIGNATURE_OFFSETS if head else ():
            stream.seek(offset)
            if stream.read(8) == HDF5_SIGNATURE:
                return head, True
    return head, False


def sniff_format(path: Path) -> str:
    """'hdf5' when an HDF5 superblock signature is where HDF5 looks for one, else what the file looks like."""
    head, hdf5 = read_head(path)
    if not head:
        return "empty"
    if hdf5:
        return "hdf5"
    for magic, description in OTHER_FORMATS.items():
        if head.startswith(magic):
            return description
    return "unknown (no HDF5 signature)"


def _inspect_open_file(handle: Any, path: Path, size: int) -> Inspection:
    facts: dict[str, Any] = {"path": str(path), "size": size, "format": "hdf5", "readable": True}
    facts.update(walk_storage(handle))
    attrs = handle.attrs
    facts["keras_version"] = _text_attr(attrs, "keras_version")
    facts["backend"] = _text_attr(attrs, "backend")
    facts["has_training_config"] = "training_config" in attrs
    has_config = "model_config" in attrs
    facts["has_model_config"] = has_config
    weights_root = handle.get("model_weights", handle)
    # save_weights() writes 'layer_names' (Keras 2 and legacy .h5) or a 'layers' group (Keras 3 .weights.h5).
    facts["weights_only"] = not has_config and ("layer_names" in weights_root.attrs or "layers" in handle)
    if has_config:
        facts.update(_read_config(attrs))
    if facts["keras_version"] is None and "keras_version" in getattr(weights_root, "attrs", {}):
        facts["keras_version"] = _text_attr(weights_root.attrs, "keras_version")
        facts["backend"] = facts["backend"] or _text_attr(weights_root.attrs, "backend")
    return Inspection(**facts)


def walk_storage(handle: Any) -> dict[str, Any]:
    """Visit every link without following any, and every dataset's layout, shape and stored size."""
    import h5py

    links: list[str] = []
    external: list[str] = []
    virtual: list[str] = []
    unbacked: list[str] = []
    weights = {"parameter_count": 0, "weight_arrays": 0, "largest_declared_bytes": 0}
    by_layer: dict[str, int] = {}
    state = {"objects": 0, "truncated": False}

    def visit(name: str) -> Any:
        state["objects"] += 1
        if state["objects"] > MAX_OBJECTS:
            state["truncated"] = True
            return True  # stop visiting
        link = handle.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink):
            links.append(f"/{name} -> {link.path} (soft link)")
            return None
        if isinstance(link, h5py.ExternalLink):
            links.append(f"/{name} -> {link.filename}:{link.path} (external link)")
            return None
        obj = handle.get(name)
        if isinstance(obj, h5py.Dataset):
            counted = _check_dataset(name, obj, external, virtual, unbacked, weights)
            if counted:
                group = _weights_group(name)
                by_layer[group] = by_layer.get(group, 0) + counted
        return None

    handle.visit_links(visit)
    return {
        "links": tuple(links),
        "external_datasets": tuple(external),
        "virtual_datasets": tuple(virtual),
        "unbacked_datasets": tuple(unbacked),
        "objects": state["objects"],
        "truncated_walk": state["truncated"],
        "stored_by_layer": by_layer,
        **weights,
    }


def _weights_group(name: str) -> str:
    """The top-level layer a weight array belongs to: Keras writes model_weights/<layer>/... in a full
    model file, <layer>/... in a weights file, and layers/<layer>/vars/... in a .keras zip's weights (Keras
    2.13 wrote '_layer_checkpoint_dependencies\\<layer>/vars/...')."""
    parts = name.replace("\\", "/").split("/")
    if parts[0] in ("model_weights", "layers", "_layer_checkpoint_dependencies") and len(parts) > 2:
        return parts[1]
    return parts[0]


def _check_dataset(
    name: str, dataset: Any, external: list[str], virtual: list[str], unbacked: list[str], weights: dict[str, int]
) -> int:
    """Record a dataset's storage facts; returns how many parameters it holds (0 for anything else)."""
    import h5py

    plist = dataset.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        virtual.append(f"/{name}")
        return 0
    if plist.get_external_count() > 0:
        external.append(f"/{name} -> {plist.get_external(0)[0].decode(errors='replace')}")
        return 0
    shape = dataset.shape or ()
    count = 1
    for size in shape:
        count *= int(size)
    declared = count * dataset.dtype.itemsize
    weights["largest_declared_bytes"] = max(weights["largest_declared_bytes"], declared)
    stored = dataset.id.get_storage_size()
    if declared > SHAPE_BOMB_BYTES and declared > SHAPE_BOMB_RATIO * max(stored, 1):
        unbacked.append(f"/{name} declares {declared:,} bytes, stores {stored:,}")
        return 0
    # Optimizer state (and a .keras file's metric counters) is saved beside the weights; only the model's
    # own arrays are parameters.
    if name.startswith(("optimizer", "metrics")):
        return 0
    weights["parameter_count"] += count
    weights["weight_arrays"] += 1
    return count


def _read_config(attrs: Any) -> dict[str, Any]:
    # A variable-length string attribute does not say its size until it is read; reading it is bounded
    # by the file size (itself checked against the upload limit) and by the reader's memory budget.
    raw = attrs["model_config"]
    return read_config_text(raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw))


def read_config_text(text: str) -> dict[str, Any]:
    """The facts a model config (Keras's JSON, from an .h5 attribute or a .keras zip's config.json) states."""
    facts: dict[str, Any] = {}
    facts["config_bytes"] = len(text)
    if len(text) > MAX_CONFIG_BYTES:
        facts["config_error"] = f"model config is {len(text):,} bytes (limit {MAX_CONFIG_BYTES:,})"
        return facts
    depth = json_depth(text)
    facts["config_depth"] = depth
    if depth > MAX_CONFIG_DEPTH:
        facts["config_error"] = f"model config is nested {depth} levels deep (limit {MAX_CONFIG_DEPTH})"
        return facts
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:
        facts["config_error"] = f"model config is not valid JSON ({_first_line(error)})"
        return facts
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        facts["config_error"] = "model config has no class_name at its top"
        return facts
    facts["model_class"] = config["class_name"]
    layers = list(_layer_facts(config, ""))
    facts["layers"] = tuple(layers)
    facts["layer_classes"] = tuple(dict.fromkeys(layer.class_name for layer in layers))
    facts["modules"] = tuple(sorted(_modules(config)))
    facts["code_objects"] = tuple(_code_objects(config))
    facts["input_shape"] = _input_shape(config)
    declared = analyse(config)
    facts["config_parameters"] = declared.parameters
    facts["config_complete"] = declared.complete
    sizes = [
        math.prod(layer["output_shape"][1:])
        for layer in declared.layers
        if layer["output_shape"] and all(isinstance(d, int) for d in layer["output_shape"][1:])
    ]
    facts["largest_activation"] = max(sizes) if declared.complete and sizes else None
    facts["multiply_adds"] = declared.multiply_adds if declared.complete else None
    facts["layer_table"] = tuple(declared.layers)
    if declared.complete:
        facts["trainable_parameters"] = declared.trainable
        facts["non_trainable_parameters"] = declared.non_trainable
    if declared.complete and declared.output_shape is not None:
        facts["output_shape"] = list(declared.output_shape)
        width = declared.output_shape[-1]
        facts["output_units"] = width if isinstance(width, int) else None
    else:
        facts["output_units"] = _output_units(config)
    return facts


def json_depth(text: str) -> int:
    """Nesting depth of a JSON text, counted without parsing it (so without recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _inner_layers(model: dict[str, Any]) -> list[Any]:
    """The layer list of a Sequential or Functional config, in any Keras version's layout."""
    config = model.get("config")
    if isinstance(config, list):  # Keras <= 2.2 wrote a Sequential's config as a bare list of layers
        return config
    if isinstance(config, dict) and isinstance(config.get("layers"), list):
        return config["layers"]
    return []


def _layer_facts(model: dict[str, Any], prefix: str) -> Any:
    name = _config_name(model) or model.get("class_name", "model")
    here = f"{prefix}{name}"
    for layer in _inner_layers(model):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            continue
        yield from _describe_layer(layer, f"{here}/")


def _describe_layer(layer: dict[str, Any], prefix: str) -> Any:
    config = config_of(layer)
    name = _config_name(layer) or layer["class_name"].lower()
    units = config.get("units")
    yield LayerFact(
        name=str(name),
        class_name=layer["class_name"],
        module=layer.get("module") if isinstance(layer.get("module"), str) else None,
        registered_name=layer.get("registered_name") if isinstance(layer.get("registered_name"), str) else None,
        path=f"{prefix}{name}",
        units=units if isinstance(units, int) and not isinstance(units, bool) else None,
        reads_files=tuple(_file_references(config)),
    )
    if layer["class_name"] in MODEL_CLASSES or _inner_layers(layer):
        yield from _layer_facts(layer, prefix)
    for key in NESTED_LAYER_KEYS:
        inner = config.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("class_name"), str):
            yield from _describe_layer(inner, f"{prefix}{name}/")
    cells = config.get("cells")
    if isinstance(cells, list):
        for cell in cells:
            if isinstance(cell, dict) and isinstance(cell.get("class_name"), str):
                yield from _describe_layer(cell, f"{prefix}{name}/")


def _config_name(node: dict[str, Any]) -> str | None:
    config = node.get("config")
    if isinstance(config, dict) and isinstance(config.get("name"), str):
        return config["name"]
    return node.get("name") if isinstance(node.get("name"), str) else None


# Keys under which a layer config can name a file that the layer reads when it is built.
FILE_KEYS = ("vocabulary", "vocabulary_path", "vocab_file", "idf_weights", "filepath", "file_path", "path")


def _file_references(config: dict[str, Any]) -> list[str]:
    found = []
    for key in FILE_KEYS:
        value = config.get(key)
        if isinstance(value, str) and value:
            found.append(f"{key}={value}")
    return found


def _modules(node: Any) -> set[str]:
    """Every 'module' string anywhere in the config (Keras 3 names a module for each object)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if isinstance(module, str) and "class_name" in item:
                found.add(module)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _code_objects(config: Any) -> list[str]:
    """Where the config embeds Python code: Keras 3 '__lambda__' objects, Keras 2 Lambda bytecode."""
    found = []
    stack: list[tuple[str, Any]] = [("", config)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "__lambda__":
                found.append(path or "/")
            if item.get("function_type") in ("lambda", "raw") or item.get("output_shape_type") in ("lambda", "raw"):
                found.append(f"{path}/{item.get('name', 'lambda')}")
            stack.extend((f"{path}/{key}", value) for key, value in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}/{index}", value) for index, value in enumerate(item))
    return sorted(set(found))


def _endpoint_names(model: dict[str, Any], key: str) -> list[str]:
    """Layer names a functional config lists under 'input_layers' or 'output_layers' ([] for Sequential)."""
    config = config_of(model)
    return endpoints(config.get(key))


def _input_shape(model: dict[str, Any]) -> list[Any] | None:
    layers = [layer for layer in _inner_layers(model) if isinstance(layer, dict)]
    names = _endpoint_names(model, "input_layers")
    if names:
        shapes = [_declared_shape(layer) for layer in layers if _config_name(layer) in names]
        if len(shapes) == 1:
            return shapes[0]
        return shapes or None
    if layers:
        first = layers[0]
        if first.get("class_name") in MODEL_CLASSES:
            return _input_shape(first)
        return _declared_shape(first)
    return None


def _declared_shape(layer: dict[str, Any]) -> list[Any] | None:
    shape = declared_input(layer)
    return list(shape) if shape is not None else None


# Layers that keep the width of what they are given, so a Dense before them sets the output width.
WIDTH_KEEPING = {
    "Activation",
    "Softmax",
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "ThresholdedReLU",
    "BatchNormalization",
    "LayerNormalization",
    "ActivityRegularization",
    "Identity",
    "UnitNormalization",
}


def _output_units(model: dict[str, Any]) -> int | None:
    layers = [layer for layer in _inner_layers(model) if isinstance(layer, dict)]
    names = _endpoint_names(model, "output_layers")
    if names:
        if len(names) != 1:
            return None
        by_name = {_config_name(layer): layer for layer in layers}
        layer = by_name.get(names[0])
        while layer is not None and layer.get("class_name") in WIDTH_KEEPING:
            inbound = inbound_names(layer)
            layer = by_name.get(inbound[0]) if len(inbound) == 1 else None
        return _units(layer) if layer is not None else None
    for layer in reversed(layers):
        if layer.get("class_name") in WIDTH_KEEPING:
            continue
        if layer.get("class_name") in MODEL_CLASSES:
            return _output_units(layer)
        return _units(layer)
    return None


def _units(layer: dict[str, Any]) -> int | None:
    config = layer.get("config")
    units = config.get("units") if isinstance(config, dict) else None
    return units if isinstance(units, int) and not isinstance(units, bool) else None


def _text_attr(attrs: Any, key: str) -> str | None:
    if key not in attrs:
        return None
    value = attrs[key]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class KerasH5(KerasFormat):
    """`keras-h5`: a Keras model saved as HDF5 (`model.save('name.h5')`), Coursework 1's format."""

    name = "keras-h5"
    suffixes = (".h5",)
    described = "a Keras .h5 file"
    short = "Keras .h5"
    how = "a Keras model saved with model.save('model.h5')"
    inspected_as = "hdf5"
    container = "HDF5 file"
    kind = ".h5"
    # load_model(file) compiles the training setup an .h5 file saves.
    compile_check = True
    resave = "save the model with model.save('name.h5') and upload that file"
    again = "save the model again with model.save('name.h5') and re-upload"
    save_again = "save the model again with model.save('name.h5')"
    other_suffixes = {
        ".keras": "a .keras file (Keras 3 zip format), not .h5: save the model with model.save('name.h5')",
        ".hdf5": "an .hdf5 file: the official script loads only files ending in .h5; rename it to .h5",
        ".pb": "a TensorFlow SavedModel part, not .h5: save the model with model.save('name.h5')",
        ".zip": "a zip archive: upload the .h5 file itself, not an archive",
        ".pt": "a PyTorch file: the coursework needs a Keras model saved as .h5",
        ".pth": "a PyTorch file: the coursework needs a Keras model saved as .h5",
    }

    def recognise(self, path: Path, head: bytes, hdf5: bool) -> bool:
        return hdf5

    def inspect(self, path: Path) -> Inspection:
        return inspect_h5(path)

    def container_check(self, inspection: Inspection, screening: Screening) -> Check:
        if not inspection.readable:
            return Check(
                "HDF5 file",
                FAIL,
                f"HDF5 cannot open it ({inspection.open_error}); it may be truncated or corrupt",
                "save the model again and check the upload finished",
            )
        return Check("HDF5 file", PASS, "valid HDF5")

    def notes(self, file_name: str) -> tuple[str, ...]:
        if file_name.lower().endswith(".h5") and not file_name.endswith(".h5"):
            return (f"{file_name}: the official script only loads names ending in lower-case .h5",)
        return ()


FORMAT = KerasH5()
