"""What the inspection's facts mean for a submission: a list of checks, each pass, warn or fail.

A failed check refuses the file before any TensorFlow code sees it; a warning lets it be graded and
flags it for a person. Pure functions of the inspection and the assignment: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grader.checks.architecture_spec import EXACT, compare_inspection
from grader.courseworks.assignment import Assignment, Limit, Part
from grader.formats import DEFAULT_FORMATS, advice
from grader.formats.base import Inspection
from grader.versions import SavedWith, parse_release, saved_with, version_tag

PASS, WARN, FAIL = "pass", "warn", "fail"
# For information: shown to the student and the TA, changes no status (an architecture that a sign-off
# scheme weighs, or that the coursework only suggests).
INFO = "info"
OUTCOMES = (PASS, INFO, WARN, FAIL)
# Classes that run code the file chooses, and what they run: never built outside a sandbox, and only
# when the instructor allows it (--allow-lambda).
CODE_LAYER_KINDS = {
    "Lambda": "runs Python code stored in the file",
    "TFOpLambda": "calls a TensorFlow function the file names (tf.keras writes one for a TensorFlow op applied "
    "to a tensor in a functional model, such as inputs / 255 or tf.reshape)",
    "SlicingOpLambda": "calls a TensorFlow function the file names (tf.keras writes one for a tensor slice, "
    "such as x[:, 0])",
}
CODE_LAYERS = frozenset(CODE_LAYER_KINDS)
# Classes refused whatever the allow-list says, and why, in words a TA can pass on.
DANGEROUS_LAYERS = {
    "TFSMLayer": "loads a TensorFlow SavedModel from a path on disk",
    "StringLookup": "can read a vocabulary file from disk",
    "IntegerLookup": "can read a vocabulary file from disk",
    "TextVectorization": "can read vocabulary and IDF files from disk",
    "TorchModuleWrapper": "runs a pickled PyTorch module",
    "JaxLayer": "runs a JAX function",
    "FlaxLayer": "runs a Flax module",
}
# Python modules a Keras config may name for a class: the public Keras modules that hold layers,
# models and their parts (and the internal paths some versions wrote for them). Anything else, even
# inside Keras (keras.utils.get_file, keras.src.saving...), is how the module-path advisories worked.
KERAS_MODULES = (
    "keras",
    "keras.layers",
    "keras.models",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.activations",
    "keras.dtype_policies",
    "keras.mixed_precision",
    "keras.optimizers.schedules",
)
KERAS_INTERNAL_MODULES = (
    "keras.src.layers.",
    "keras.src.models.",
    "keras.src.initializers.",
    "keras.src.regularizers.",
    "keras.src.constraints.",
    "keras.src.activations.",
    "keras.src.dtype_policies.",
    "keras.src.engine.",
    "keras.engine.",
    "keras.src.layers",
    "keras.src.models",
    "keras.src.initializers",
    "keras.src.regularizers",
    "keras.src.constraints",
    "keras.src.activations",
    "keras.src.dtype_policies",
)
# A config may declare more parameters than the file stores by this much before it is called a lie
# (covers rounding in layers this grader does not model exactly).
CONFIG_SLACK = 1.05


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


def limit_check(name: str, value: int, limit: Limit, unit: str, advice: str) -> Check:
    """A check of a number against a limit, failing or warning as the limit's policy says."""
    shown = f"{value:,} {unit}"
    if value <= limit.maximum:
        return Check(name, PASS, f"{shown} (limit {limit.maximum:,})")
    outcome = FAIL if limit.policy == "refuse" else WARN
    return Check(name, outcome, f"{shown}, over the limit of {limit.maximum:,}", advice)


def size_check(size: int, assignment: Assignment) -> Check:
    """The file size check, made from the listing before any byte of the file is read."""
    return limit_check(
        "file size",
        size,
        assignment.limits.file_bytes,
        "bytes",
        "make the model smaller (fewer or narrower layers) so that the .h5 file fits the upload limit",
    )


def screen(
    inspection: Inspection,
    assignment: Assignment,
    *,
    part: Part | None = None,
    file_name: str = "",
    allow_lambda: bool = False,
    beside: Mapping[str, int] | None = None,
) -> list[Check]:
    """Every check that can be made from the file alone, in the order a TA reads them (against `part`, the
    assignment's first part when not given). `beside` lists the plain files next to it in the student's
    folder (name: size), where an ONNX graph's external data must be."""
    part = part or assignment.parts[0]
    checks = [_format_check(inspection, assignment.formats_of(part))]
    if checks[0].outcome == FAIL:
        return checks
    if inspection.format == "onnx":
        return [*checks, *_onnx_checks(inspection, assignment, part, beside)]
    checks.append(_storage_check(inspection))
    model = _model_check(inspection)
    checks.append(model)
    if model.outcome == FAIL:
        return checks
    checks.append(_layers_check(inspection, assignment, allow_lambda))
    checks.append(_code_check(inspection, allow_lambda))
    checks.append(_parameters_check(inspection, assignment))
    checks.append(_output_check(inspection, part.data.classes))
    checks.append(version_check(inspection, assignment, file_name))
    if part.architecture is not None:
        checks.append(architecture_check(inspection, part))
    return checks


def architecture_check(inspection: Inspection, part: Part) -> Check:
    """The file's layers against the part's required architecture; a mismatch does what the policy says."""
    spec = part.architecture
    assert spec is not None
    comparison = compare_inspection(inspection, spec)
    if comparison.status == EXACT:
        return Check("architecture", PASS, comparison.summary())
    outcome = {"refuse": FAIL, "flag": WARN, "report": INFO}[spec.policy]
    return Check(
        "architecture",
        outcome,
        comparison.summary(),
        f"build the network layer by layer as {spec.document} asks"
        + (f" ({spec.source})" if spec.source else "")
        + "; the report compares every layer",
    )


def refused(checks: list[Check]) -> bool:
    return any(check.outcome == FAIL for check in checks)


def summary(checks: list[Check], outcome: str) -> str:
    """The messages of every check with this outcome, as one line."""
    return "; ".join(f"{check.name}: {check.message}" for check in checks if check.outcome == outcome)


# What the inspector calls each format it reads, as assignments name them.
INSPECTED_FORMATS = {"hdf5": "keras-h5", "keras-zip": "keras-zip", "onnx": "onnx"}


def _format_check(inspection: Inspection, accepted: tuple[str, ...] = DEFAULT_FORMATS) -> Check:
    found = INSPECTED_FORMATS.get(inspection.format)
    if found is None or found not in accepted:
        return _other_format(inspection, accepted)
    if found == "keras-zip":
        return _archive_check(inspection)
    if found == "onnx":
        if not inspection.readable:
            return Check("ONNX graph", FAIL, inspection.open_error, f"export the model again: {advice(accepted)}")
        return Check("ONNX graph", PASS, f"a valid ONNX protobuf ({inspection.size:,} bytes)")
    if not inspection.readable:
        return Check(
            "HDF5 file",
            FAIL,
            f"HDF5 cannot open it ({inspection.open_error}); it may be truncated or corrupt",
            "save the model again and check the upload finished",
        )
    return Check("HDF5 file", PASS, "valid HDF5")


def _other_format(inspection: Inspection, accepted: tuple[str, ...]) -> Check:
    """A file that is not one of the formats the assignment takes (or nothing any format reads)."""
    if inspection.format == "empty":
        return Check("HDF5 file", FAIL, "the file is empty (0 bytes)", f"upload {advice(accepted)}")
    if accepted == DEFAULT_FORMATS and inspection.format not in INSPECTED_FORMATS:
        # Coursework 1's wording, unchanged.
        return Check(
            "HDF5 file",
            FAIL,
            f"the file is {inspection.format}",
            "save the model with model.save('name.h5') and upload that file",
        )
    names = {"keras-h5": "a Keras .h5 file", "keras-zip": "a Keras .keras zip", "onnx": "an ONNX graph"}
    found = INSPECTED_FORMATS.get(inspection.format)
    what = names[found] if found else f"{inspection.format}"
    if inspection.archive_problems:
        what = f"a zip ({'; '.join(inspection.archive_problems)})"
    return Check(
        "model file",
        FAIL,
        f"the file is {what}; this assignment takes {_taken(accepted)}",
        f"hand in {advice(accepted)}",
    )


def _taken(accepted: tuple[str, ...]) -> str:
    names = {"keras-h5": "Keras .h5", "keras-zip": "Keras .keras", "onnx": "ONNX"}
    return " or ".join(names[name] for name in accepted) + " models"


def _archive_check(inspection: Inspection) -> Check:
    """A .keras zip's central directory: what it holds, before any member was opened."""
    fix = "save the model again with model.save('model.keras') and upload that file unchanged"
    if inspection.open_error:
        return Check("archive", FAIL, inspection.open_error, fix)
    if inspection.archive_problems:
        return Check("archive", FAIL, "; ".join(inspection.archive_problems[:3]), fix)
    members = ", ".join(f"{m['name']} ({m['size']:,} bytes)" for m in inspection.members)
    return Check("archive", PASS, f"a Keras zip: {members}")


def _onnx_checks(
    inspection: Inspection, assignment: Assignment, part: Part, beside: Mapping[str, int] | None
) -> list[Check]:
    """An ONNX graph: operators, external data, parameters, outputs, producer, and the architecture."""
    checks = [_operators_check(inspection, assignment), _external_data_check(inspection, beside)]
    if inspection.checker_error:
        checks.append(
            Check(
                "ONNX checker",
                WARN,
                f"onnx.checker finds the graph malformed: {inspection.checker_error}",
                "export the model again with a current exporter",
            )
        )
    if inspection.unbacked_datasets:
        checks.append(
            Check(
                "parameters",
                FAIL,
                f"tensors declaring more bytes than the file stores: {', '.join(inspection.unbacked_datasets[:3])}",
                "export the trained model again",
            )
        )
    else:
        checks.append(_parameters_check(inspection, assignment))
    checks.append(_output_check(inspection, part.data.classes))
    opsets = ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in sorted(inspection.opsets.items()))
    batch = (
        "; no batch axis: predicted one image at a time"
        if not inspection.batch_axis
        else f"; a fixed batch of {inspection.fixed_batch}: predicted {inspection.fixed_batch} at a time"
        if inspection.fixed_batch
        else ""
    )
    checks.append(
        Check("exporter", PASS, f"exported by {inspection.producer or 'an unnamed exporter'}, opset {opsets}{batch}")
    )
    if part.architecture is not None:
        checks.append(architecture_check(inspection, part))
    return checks


def _operators_check(inspection: Inspection, assignment: Assignment) -> Check:
    """Standard-domain operators from the assignment's list only; no custom domain, no function of its own."""
    fix = "export with the standard operators only (torch.onnx.export with a default opset)"
    if inspection.functions:
        return Check(
            "operators", FAIL, f"the graph defines its own functions: {', '.join(inspection.functions[:5])}", fix
        )
    custom = [op for op in inspection.operators if ":" in op]
    if custom:
        return Check("operators", FAIL, f"operators outside the standard domains: {', '.join(custom[:5])}", fix)
    unknown = sorted(set(inspection.operators) - assignment.screening.onnx_operators)
    if unknown:
        return Check("operators", FAIL, f"operators this assignment does not allow: {', '.join(unknown[:8])}", fix)
    extra = sorted(domain for domain in inspection.opsets if domain not in ("", "ai.onnx"))
    imported = f" (it also imports {', '.join(extra)}, which no node uses)" if extra else ""
    return Check("operators", PASS, f"{', '.join(inspection.operators)}{imported}")


def _external_data_check(inspection: Inspection, beside: Mapping[str, int] | None) -> Check:
    """Weights stored beside the graph: only plain file names of the same submission folder, each read
    within its size; any other location could name any file on the disk, and is refused."""
    if not inspection.external_data:
        return Check("external data", PASS, "none: every weight is inside the graph file")
    fix = "export again so that the weights sit in the .onnx file, or hand in the .onnx.data file beside it unchanged"
    files = beside or {}
    problems = []
    for entry in inspection.external_data:
        location, tensor = entry["location"], entry["tensor"]
        if not _plain_name(location):
            problems.append(f"{tensor} names {location!r}, which is not a file name beside the graph")
            continue
        if location not in files:
            problems.append(f"{tensor} names {location!r}, which is not in the submission")
            continue
        try:
            offset = int(entry["offset"] or 0)
            length = int(entry["length"]) if entry["length"] != "" else entry["bytes"]
        except ValueError:
            problems.append(f"{tensor} gives an offset or length that is not a number")
            continue
        if offset < 0 or length < 0 or offset + length > files[location]:
            problems.append(
                f"{tensor} reads bytes {offset:,} to {offset + length:,} of {location} ({files[location]:,} bytes)"
            )
        elif length != entry["bytes"]:
            problems.append(f"{tensor} declares {entry['bytes']:,} bytes but names {length:,} in {location}")
    if problems:
        return Check("external data", FAIL, "; ".join(problems[:3]), fix)
    names = sorted({entry["location"] for entry in inspection.external_data})
    return Check(
        "external data",
        PASS,
        f"{len(inspection.external_data)} tensors in {', '.join(names)}, beside the graph (staged and hashed with it)",
    )


def _plain_name(location: str) -> bool:
    """A file name with no folder in it: no separator, no '..', not absolute, no drive, not hidden."""
    return bool(location) and not (
        "/" in location
        or "\\" in location
        or ":" in location
        or "\x00" in location
        or location.startswith(".")
        or location in ("..", ".")
    )


def _storage_check(inspection: Inspection) -> Check:
    """The HDF5 structure: nothing may point outside the file or declare bytes it does not store."""
    advice = "save the model with model.save('name.h5') and upload that file unchanged"
    found = [
        (inspection.links, "links that leave the file or point elsewhere in it"),
        (inspection.external_datasets, "datasets stored in other files (external storage)"),
        (inspection.virtual_datasets, "virtual datasets mapped from other files"),
        (inspection.unbacked_datasets, "datasets declaring far more bytes than the file stores"),
    ]
    for items, what in found:
        if items:
            return Check("HDF5 structure", FAIL, f"{what}: {', '.join(items[:3])}; Keras never writes these", advice)
    if inspection.truncated_walk:
        return Check(
            "HDF5 structure",
            FAIL,
            f"more than {inspection.objects - 1:,} HDF5 objects; a Keras model file holds far fewer",
            advice,
        )
    return Check("HDF5 structure", PASS, f"{inspection.objects:,} objects, all inside the file")


def _model_check(inspection: Inspection) -> Check:
    if inspection.weights_only:
        return Check(
            "model",
            FAIL,
            "the file holds weights only (save_weights), not a model",
            "save the whole model with model.save('name.h5'), not model.save_weights()",
        )
    if not inspection.has_model_config:
        return Check(
            "model",
            FAIL,
            "the file holds no Keras model (no model_config)",
            "save the model with model.save('name.h5')",
        )
    if inspection.config_error:
        return Check("model", FAIL, inspection.config_error, "save the model again with model.save('name.h5')")
    saved = f", saved by Keras {inspection.keras_version}" if inspection.keras_version else ""
    return Check("model", PASS, f"{inspection.model_class} with {len(inspection.layers)} layers{saved}")


def _layers_check(inspection: Inspection, assignment: Assignment, allow_lambda: bool) -> Check:
    classes = {layer.class_name for layer in inspection.layers}
    dangerous = sorted(classes & set(DANGEROUS_LAYERS))
    if dangerous:
        why = "; ".join(f"{name} {DANGEROUS_LAYERS[name]}" for name in dangerous)
        return Check("layers", FAIL, f"{why}: never loaded for marking", "use Keras's built-in computing layers only")
    allowed = assignment.screening.allowed_layers
    unknown = sorted(classes - allowed - CODE_LAYERS)
    if unknown:
        return Check(
            "layers",
            FAIL,
            f"uses layer classes this assignment does not allow: {', '.join(unknown)}",
            "use Keras's built-in layers only (custom layer classes cannot be loaded for marking)",
        )
    custom = sorted(
        {
            f"{layer.class_name} ({layer.registered_name})"
            for layer in inspection.layers
            if layer.registered_name and layer.registered_name != layer.class_name
        }
    )
    if custom:
        return Check(
            "layers", FAIL, f"registered as custom objects: {', '.join(custom)}", "use Keras's built-in layers only"
        )
    readers = [f"{layer.name}: {', '.join(layer.reads_files)}" for layer in inspection.layers if layer.reads_files]
    if readers:
        return Check(
            "layers",
            FAIL,
            f"layers that read files from disk: {'; '.join(readers)}",
            "remove the file paths from the model",
        )
    code = sorted(classes & CODE_LAYERS)
    what = "; ".join(f"{name}, which {CODE_LAYER_KINDS[name]}" for name in code)
    if code and not allow_lambda:
        return Check(
            "layers",
            FAIL,
            f"uses {what}: code chosen by the file is never run on the marking "
            "machine unless the instructor allows it (--allow-lambda)",
            "replace the Lambda layer or "
            "the TensorFlow ops on tensors with built-in layers (e.g. Rescaling(1/255), Reshape, "
            "Activation, Add) and save again",
        )
    if code:
        return Check("layers", WARN, f"uses {what}; allowed by the instructor and run inside the sandbox only")
    return Check("layers", PASS, ", ".join(inspection.layer_classes) or "no layers")


def _code_check(inspection: Inspection, allow_lambda: bool) -> Check:
    """Module paths and embedded code anywhere in the config (activations, initializers, nested objects)."""
    foreign = sorted(m for m in inspection.modules if not _keras_module(m))
    if foreign:
        return Check(
            "config",
            FAIL,
            f"names Python modules outside Keras's layers and their parts: {', '.join(foreign)}",
            "use Keras's built-in layers, activations and initializers only",
        )
    if inspection.code_objects and not allow_lambda:
        return Check(
            "config",
            FAIL,
            f"embeds Python code at {', '.join(inspection.code_objects[:3])}",
            "replace lambdas and custom functions with Keras's built-in layers and activations",
        )
    if inspection.code_objects:
        return Check(
            "config",
            WARN,
            f"embeds Python code at {', '.join(inspection.code_objects[:3])}, allowed "
            "by the instructor and run inside the sandbox only",
        )
    return Check("config", PASS, "Keras classes only, no embedded code")


def _keras_module(module: str) -> bool:
    return module in KERAS_MODULES or module.startswith(KERAS_INTERNAL_MODULES)


def _parameters_check(inspection: Inspection, assignment: Assignment) -> Check:
    """The parameter count from the stored weights and from the config; both must agree with the limit."""
    stored, declared = inspection.parameter_count, inspection.config_parameters
    limit = assignment.limits.parameters
    advice = "use fewer or narrower layers"
    if declared is not None and declared > stored * CONFIG_SLACK + 1000 and declared > limit.maximum:
        return Check(
            "parameters",
            FAIL,
            f"the config declares {declared:,} parameters but the file stores "
            f"{stored:,}: building it would allocate what the file never held",
            "save the trained model with model.save('name.h5')",
        )
    counted = max(stored, declared or 0)
    check = limit_check("parameters", counted, limit, "parameters", advice)
    if check.outcome == PASS and declared is not None and inspection.config_complete and declared != stored:
        return Check(
            "parameters",
            WARN,
            f"the config declares {declared:,} parameters, the file stores {stored:,}",
            "save the model again with model.save('name.h5')",
        )
    return check


def _output_check(inspection: Inspection, classes: int) -> Check:
    units = inspection.output_units
    if units is None:
        return Check("outputs", PASS, "output width not stated in the config; checked after prediction")
    if units != classes:
        return Check(
            "outputs",
            WARN,
            f"the last layer has {units} units; this assignment has {classes} classes",
            f"end the model with Dense({classes}, activation='softmax')",
        )
    return Check("outputs", PASS, f"{units} outputs, one per class")


def version_check(inspection: Inspection, assignment: Assignment, file_name: str) -> Check:
    """Saved-with against graded-with, and the coursework's rule: an older release carries a tag."""
    grading = assignment.versions.tensorflow
    release = parse_release(grading)
    saved = saved_with(inspection.keras_version, inspection.backend)
    tag = version_tag(file_name)
    tag_text = f"tf{tag[0]}.{tag[1]}" if tag else ""
    if saved.older_than(release):
        if tag is None and assignment.versions.untagged_older_policy == "grade":
            return Check(
                "TF version",
                PASS,
                f"saved by {saved.description}, older than TensorFlow {grading}; this coursework asks for no "
                "version tag",
            )
        if tag is None:
            outcome = FAIL if assignment.versions.untagged_older_policy == "refuse" else WARN
            return Check(
                "TF version",
                outcome,
                f"saved by {saved.description}, older than TensorFlow {grading}, and the file name has no version tag",
                f"put the TensorFlow version in the file name, e.g. {_tagged(file_name, saved)}, as the "
                "coursework asks for older versions",
            )
        low, high = saved.tensorflow or (tag, tag)
        if not low <= tag <= high and saved.family != "keras1":
            return Check(
                "TF version",
                WARN,
                f"the name's tag says TensorFlow {tag[0]}.{tag[1]} but the file was saved by {saved.description}",
                "tag the file with the version that saved it",
            )
        return Check("TF version", PASS, f"saved by {saved.description}; tagged {tag_text} as the coursework asks")
    tagged = f"; tagged {tag_text}" if tag else ""
    return Check("TF version", PASS, f"saved by {saved.description}{tagged}; graded with TensorFlow {grading}")


def _tagged(file_name: str, saved: SavedWith) -> str:
    """The file name with a tag for the newest release that could have saved it (model_tf213.h5)."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "model"
    major, minor = saved.tensorflow[1] if saved.tensorflow else (2, 13)
    return f"{stem}_tf{major}{minor}.h5"


def checks_from_json(items: list[dict[str, Any]]) -> list[Check]:
    return [Check(**item) for item in items]
