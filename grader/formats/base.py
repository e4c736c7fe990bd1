"""What every model format's inspection reports: the facts read from a file without running it (its layers,
its storage, what it names outside itself), whatever the container. Each format's reader (keras_h5, keras_zip,
onnx) fills one in the sandboxed inspector child; screening judges it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerFact:
    """One layer as the model config describes it."""

    name: str
    class_name: str
    module: str | None
    "The Python module the config names for the class (Keras 3 files), if any."
    registered_name: str | None
    "Set for classes registered with a custom name (custom objects)."
    path: str
    "Where in the model the layer sits, e.g. 'sequential/dense' or 'model/time_distributed/conv2d'."
    units: int | None = None
    "Output width for Dense-like layers."
    reads_files: tuple[str, ...] = ()
    "Config values that name files on disk (vocabularies and the like)."


@dataclass(frozen=True)
class Inspection:
    """Facts about one file, all read without running any model code."""

    path: str
    size: int
    "File size in bytes."
    format: str
    "'hdf5', 'empty', or what the file looks like instead (zip, pickle, text, unknown)."
    readable: bool = False
    "Whether HDF5 opened the file."
    open_error: str = ""
    "Why HDF5 could not open it (truncated, corrupt), if it could not."
    keras_version: str | None = None
    backend: str | None = None
    has_model_config: bool = False
    has_training_config: bool = False
    weights_only: bool = False
    "The file holds weights (save_weights) but no model: there is nothing to build."
    model_class: str | None = None
    input_shape: list[Any] | None = None
    "Batch input shape from the config, e.g. [None, 28, 28, 1]; a list of shapes for several inputs."
    output_units: int | None = None
    "Width of the last Dense-like layer, when the config makes it plain."
    output_shape: list[Any] | None = None
    "Output shape worked out from the config (see `architecture`), when every layer was understood."
    config_parameters: int | None = None
    "Parameter count the config declares, worked out layer by layer."
    config_complete: bool = False
    "Whether every layer of the config was understood (else config_parameters is a lower bound)."
    multiply_adds: int | None = None
    "Roughly how many multiply-adds one image costs (when every layer was understood): orders the work."
    largest_activation: int | None = None
    "The most values any layer outputs for one image (when every layer was understood); sets batch sizes."
    code_objects: tuple[str, ...] = ()
    "Places in the config that carry Python code (Lambda bytecode, serialized functions)."
    layers: tuple[LayerFact, ...] = ()
    layer_classes: tuple[str, ...] = ()
    "Distinct layer class names, in order of first use."
    parameter_count: int = 0
    "Sum of the sizes of the stored weight arrays (from their shapes; nothing is read)."
    stored_by_layer: dict[str, int] = field(default_factory=dict)
    "Stored weight values per top-level layer (the HDF5 group Keras writes a layer's weights to)."
    layer_table: tuple[dict[str, Any], ...] = ()
    "Each layer as the config builds it: shapes in and out, parameters and the formula behind them,"
    " attributes (see `architecture.analyse`)."
    trainable_parameters: int | None = None
    "Parameters training updates, worked out from the config (when every layer was understood)."
    non_trainable_parameters: int | None = None
    "Parameters training leaves alone (BatchNormalization's moving statistics, frozen layers)."
    weight_arrays: int = 0
    config_bytes: int = 0
    config_depth: int = 0
    config_error: str = ""
    "Why the model config could not be read (not JSON, oversized, nested too deep)."
    modules: tuple[str, ...] = ()
    "Every Python module the config names for a class."
    links: tuple[str, ...] = ()
    "Soft or external links, as 'path -> target' (Keras never writes them)."
    external_datasets: tuple[str, ...] = ()
    "Datasets whose bytes live in other files (external storage)."
    virtual_datasets: tuple[str, ...] = ()
    "Datasets mapped from other files or datasets (virtual layout)."
    unbacked_datasets: tuple[str, ...] = ()
    "Datasets declaring far more bytes than the file stores for them."
    largest_declared_bytes: int = 0
    objects: int = 0
    "HDF5 objects visited."
    truncated_walk: bool = False
    "The file holds more objects than the inspector visits."
    producer: str | None = None
    "What wrote the file, when it says: 'pytorch 2.6.0', 'tf2onnx 1.16.1' (ONNX)."
    opsets: dict[str, int] = field(default_factory=dict)
    "ONNX: the operator sets the graph imports, by domain ('' is the standard one)."
    operators: tuple[str, ...] = ()
    "ONNX: the operators the graph uses, as 'Conv' (standard domains) or 'domain:Op'."
    functions: tuple[str, ...] = ()
    "ONNX: functions the model defines itself (custom operators)."
    external_data: tuple[dict[str, Any], ...] = ()
    "ONNX: tensors whose bytes live in other files: tensor, location, offset, length (as the graph says)."
    fixed_batch: int | None = None
    "ONNX: the batch size the graph's input fixes (1 for many exports), or None when it is open."
    batch_axis: bool = True
    "ONNX: whether the graph's input and output have a batch axis (a few exports take one image, no batch)."
    checker_error: str = ""
    "ONNX: what onnx.checker found wrong with the graph, if anything."
    members: tuple[dict[str, Any], ...] = ()
    "A .keras zip: each member's name, size, compressed size and whether it is a link."
    archive_problems: tuple[str, ...] = ()
    "A .keras zip: what is wrong with the archive itself (bombs, paths leaving it, unexpected members)."
    inference_graph: bool = False
    "The layers come from an inference graph (ONNX), where training-only layers such as Dropout are gone."

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inspection:
        values = dict(data)
        values["layers"] = tuple(
            LayerFact(**{**layer, "reads_files": tuple(layer.get("reads_files", ()))})
            for layer in values.get("layers", ())
        )
        for key in (
            "layer_classes",
            "modules",
            "links",
            "external_datasets",
            "virtual_datasets",
            "unbacked_datasets",
            "code_objects",
            "layer_table",
            "operators",
            "functions",
            "external_data",
            "members",
            "archive_problems",
        ):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)
