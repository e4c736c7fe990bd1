"""What a model format is to the rest of grader, and what it reports.

- `Inspection`: the facts read from a file without running it (its layers, its storage, what it names outside
  itself), whatever the container. Each format's reader fills one in the sandboxed inspector child.
- `Check`: one finding of screening (pass, info, warn or fail), with what to do about it.
- `ModelFormat`: one format, whole: how a file of it is recognised by its first bytes, inspected without
  running it, screened (the checks only this format knows), which companion files it names, how it is
  described to a student, and, in the evaluation worker, how it is loaded and predicted. The built-in formats
  (keras_h5, keras_zip, onnx, and the code formats) and any a course installs are found through the entry-point
  group `grader.formats` (see grader.formats.registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol

PASS, WARN, FAIL = "pass", "warn", "fail"
# For information: shown to the student and the TA, changes no status (an architecture that a sign-off
# scheme weighs, or that the coursework only suggests).
INFO = "info"
OUTCOMES = (PASS, INFO, WARN, FAIL)


@dataclass(frozen=True)
class Check:
    """One check on a submission, and what to do about it."""

    name: str
    "What was checked, e.g. 'file size'."
    outcome: str
    "'pass', 'info' (shown, changes nothing), 'warn' (graded and flagged) or 'fail' (not graded)."
    message: str
    "What was found."
    advice: str = ""
    "What the student (or marker) should do; empty when nothing is needed."

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "outcome": self.outcome, "message": self.message, "advice": self.advice}


def checks_from_json(items: list[dict[str, Any]]) -> list[Check]:
    return [Check(**item) for item in items]


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


class Screening(Protocol):
    """What a format's `screen` is given: the part's rules as far as a format needs them, and the checks every
    format shares (made by grader.checks.screening), so that a format chooses their order and adds its own."""

    @property
    def accepted(self) -> tuple[str, ...]:
        """The formats the part takes, by name."""
        ...

    @property
    def allow_lambda(self) -> bool:
        """Whether the instructor lets a file's own code run (in the sandbox)."""
        ...

    @property
    def beside(self) -> Mapping[str, int]:
        """The plain files next to the model in the student's folder (name: size), for companion files."""
        ...

    @property
    def file_name(self) -> str: ...

    @property
    def allowed_layers(self) -> frozenset[str]:
        """Keras layer classes the assignment allows."""
        ...

    @property
    def onnx_operators(self) -> frozenset[str]:
        """ONNX operators the assignment allows."""
        ...

    def advice(self) -> str:
        """What to hand in instead, for the part's formats."""
        ...

    def parameters(self, inspection: Inspection) -> Check:
        """The parameter count against the assignment's limit."""
        ...

    def outputs(self, inspection: Inspection) -> Check:
        """The output width against the part's classes."""
        ...

    def version(self, inspection: Inspection) -> Check:
        """Saved-with against graded-with, and the coursework's rule for older releases."""
        ...

    def architecture(self, inspection: Inspection) -> Check | None:
        """The layers against the part's required architecture, when it has one."""
        ...


class Evaluator(Protocol):
    """What the evaluation worker offers a format's `evaluate`: the part's images as its data spec prepares
    them, the checked encoding of outputs, the versions it runs, and its Keras path (Keras formats)."""

    versions: dict[str, Any]

    def prepared_images(self, request: dict[str, Any]) -> Any:
        """The part's images as its data spec prepares them (float32, read-only), the same array for every model."""
        ...

    def encode(self, outputs: Any, count: int) -> dict[str, Any]:
        """Outputs checked (one 2-D array of numbers, one row per image) and encoded for the answer."""
        ...

    def one_line(self, error: BaseException, *, path: str = "", name: str = "") -> str:
        """An error as one line a TA can read, the worker's path of the file replaced by its name."""
        ...

    def with_keras(self, request: dict[str, Any], *, compile_check: bool) -> dict[str, Any]:
        """The Keras path: each loader the request allows, fed by the part's rule, predicted as its evaluation does."""
        ...


def installed(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class ModelFormat:
    """One model format. Subclasses set the class attributes and override what they do differently; every
    method has the behaviour of a format that has nothing to say about it."""

    name: ClassVar[str]
    "How assignment files name the format ('keras-h5'); the entry point's name."
    suffixes: ClassVar[tuple[str, ...]]
    "File-name suffixes (any case) that make a file in a student's folder one of this format."
    described: ClassVar[str]
    "The format as a sentence names it: 'a Keras .h5 file'."
    short: ClassVar[str]
    "The format in a list of formats: 'Keras .h5'."
    how: ClassVar[str]
    "How a student makes such a file: 'a Keras model saved with model.save('model.h5')'."
    code: ClassVar[bool] = False
    "A code part's file (a .py, a notebook): run by the code worker, never inspected as a model."
    inspected_as: ClassVar[str] = ""
    "What the inspection's `format` says for a file of this format ('hdf5')."
    container: ClassVar[str] = "model file"
    "The first check's name when a part takes this format alone ('HDF5 file')."
    kind: ClassVar[str] = "model"
    "What a file is called when a part takes this format alone ('.h5': 'no .h5 file')."
    other_suffixes: ClassVar[Mapping[str, str]] = {}
    "What a file with another suffix is, said when a part takes this format alone (by suffix, lower case)."
    resave: ClassVar[str] = ""
    "The advice for a file that is no model at all, when a part takes this format alone (else: hand in ...)."
    again: ClassVar[str] = ""
    "The advice for a file the inspector could not read, when a part takes this format alone."
    save_again: ClassVar[str] = "save the trained model again"
    "How to write a file of this format again from the trained model (when what it stores disagrees with itself)."
    has_companions: ClassVar[bool] = False
    "Whether a file of this format may read files beside it (ONNX external data), which travel with it."

    def recognise(self, path: Path, head: bytes, hdf5: bool) -> bool:
        """Whether the file at `path`, whose first bytes are `head`, is of this format (`hdf5`: HDF5's signature
        was found where HDF5 looks for one). Called in the sandboxed inspector child."""
        return False

    def notes(self, file_name: str) -> tuple[str, ...]:
        """What a marker should know about the chosen file's name (an upper-case suffix a loader ignores)."""
        return ()

    def inspect(self, path: Path) -> Inspection:
        """The file's facts, read without running anything in it (in the sandboxed inspector child)."""
        raise NotImplementedError(f"{self.name} files are not inspected")

    def container_check(self, inspection: Inspection, screening: Screening) -> Check:
        """Whether the container itself is sound (readable, a valid archive or protobuf)."""
        if inspection.readable:
            return Check(self.container, PASS, f"{self.described} ({inspection.size:,} bytes)")
        return Check(
            self.container, FAIL, inspection.open_error or "could not be read", f"hand in {screening.advice()}"
        )

    def screen(self, inspection: Inspection, screening: Screening) -> list[Check]:
        """The checks after the container's, in the order a TA reads them."""
        checks = [screening.parameters(inspection), screening.outputs(inspection)]
        architecture = screening.architecture(inspection)
        return checks if architecture is None else [*checks, architecture]

    def companions(self, inspection: Inspection) -> tuple[str, ...]:
        """Files beside this one that it reads (ONNX external data), by the names it gives them."""
        return ()

    def runs_code(self, inspection: Inspection) -> bool:
        """Whether loading the file would run code it carries (a Keras Lambda)."""
        return False

    def request(self, inspection: Inspection | None, *, allow_lambda: bool) -> dict[str, Any]:
        """What the worker needs beyond the part's rules to evaluate this file."""
        return {}

    def saved_with(self, inspection: Mapping[str, Any], *, brief: bool = False) -> str | None:
        """What wrote the file, as reports say it ('Keras 3.8.0', 'pytorch 2.6 (ONNX, opset ai.onnx 17)'), from
        its stored inspection; `brief` for one line of a check result."""
        return inspection.get("producer")

    def graded_with(
        self, loader: str | None, versions: Mapping[str, Any], tensorflow: str, *, brief: bool = False
    ) -> str:
        """What predicted the file, from the evaluation's loader and versions (`tensorflow`: the release the
        assignment grades with, for a file not evaluated)."""
        return loader or f"{self.short} (not evaluated)"

    def evaluate(self, worker: Evaluator, request: dict[str, Any]) -> dict[str, Any]:
        """In the evaluation worker: load the file named by request['model'] and predict the part's images;
        an answer as grader.evaluation.worker documents it."""
        raise NotImplementedError(f"{self.name} files are not evaluated")
