"""What the inspection's facts mean for a submission: a list of checks, each pass, warn or fail.

A failed check refuses the file before any TensorFlow code sees it; a warning lets it be graded and
flags it for a person. Pure functions of the inspection and the assignment: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from grader.assignment import Assignment, Limit
from grader.inspection import Inspection

PASS, WARN, FAIL = "pass", "warn", "fail"
# Classes that carry Python code or call out of Keras: never built outside a sandbox, and only when
# the instructor allows it.
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


@dataclass(frozen=True)
class Check:
    """One check on a submission, and what to do about it."""

    name: str
    "What was checked, e.g. 'file size'."
    outcome: str
    "'pass', 'warn' (graded and flagged) or 'fail' (not graded)."
    message: str
    "What was found."
    advice: str = ""
    "What the student (or marker) should do; empty when nothing is needed."

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def limit_check(name: str, value: int, limit: Limit, unit: str, advice: str) -> Check:
    """A check of a number against a limit, failing or warning as the limit's policy says."""
    shown = f"{value:,} {unit}"
    if value <= limit.maximum:
        return Check(name, PASS, f"{shown} (limit {limit.maximum:,})")
    outcome = FAIL if limit.policy == "refuse" else WARN
    return Check(name, outcome, f"{shown}, over the limit of {limit.maximum:,}", advice)


def size_check(size: int, assignment: Assignment) -> Check:
    """The file size check, made from the listing before any byte of the file is read."""
    return limit_check("file size", size, assignment.limits.file_bytes, "bytes",
                       "make the model smaller (fewer or narrower layers) so that the .h5 file fits the upload limit")


def screen(inspection: Inspection, assignment: Assignment, *, allow_lambda: bool = False) -> list[Check]:
    """Every check that can be made from the file alone, in the order a TA reads them."""
    checks = [_format_check(inspection)]
    if checks[0].outcome == FAIL:
        return checks
    model = _model_check(inspection)
    checks.append(model)
    if model.outcome == FAIL:
        return checks
    checks.append(_layers_check(inspection, assignment, allow_lambda))
    checks.append(limit_check("parameters", inspection.parameter_count, assignment.limits.parameters,
                              "parameters", "use fewer or narrower layers"))
    checks.append(_output_check(inspection, assignment))
    return checks


def refused(checks: list[Check]) -> bool:
    return any(check.outcome == FAIL for check in checks)


def summary(checks: list[Check], outcome: str) -> str:
    """The messages of every check with this outcome, as one line."""
    return "; ".join(f"{check.name}: {check.message}" for check in checks if check.outcome == outcome)


def _format_check(inspection: Inspection) -> Check:
    if inspection.format == "empty":
        return Check("HDF5 file", FAIL, "the file is empty (0 bytes)",
                     "upload the .h5 file that model.save('name.h5') wrote")
    if inspection.format != "hdf5":
        return Check("HDF5 file", FAIL, f"the file is {inspection.format}",
                     "save the model with model.save('name.h5') and upload that file")
    if not inspection.readable:
        return Check("HDF5 file", FAIL, f"HDF5 cannot open it ({inspection.open_error}); it may be truncated "
                     "or corrupt", "save the model again and check the upload finished")
    return Check("HDF5 file", PASS, "valid HDF5")


def _model_check(inspection: Inspection) -> Check:
    if inspection.weights_only:
        return Check("model", FAIL, "the file holds weights only (save_weights), not a model",
                     "save the whole model with model.save('name.h5'), not model.save_weights()")
    if not inspection.has_model_config:
        return Check("model", FAIL, "the file holds no Keras model (no model_config)",
                     "save the model with model.save('name.h5')")
    if inspection.config_error:
        return Check("model", FAIL, inspection.config_error, "save the model again with model.save('name.h5')")
    saved = f", saved by Keras {inspection.keras_version}" if inspection.keras_version else ""
    return Check("model", PASS, f"{inspection.model_class} with {len(inspection.layers)} layers{saved}")


def _layers_check(inspection: Inspection, assignment: Assignment, allow_lambda: bool) -> Check:
    allowed = assignment.screening.allowed_layers
    code = sorted({layer.class_name for layer in inspection.layers if layer.class_name in CODE_LAYERS})
    unknown = sorted({layer.class_name for layer in inspection.layers
                      if layer.class_name not in allowed and layer.class_name not in CODE_LAYERS})
    if unknown:
        return Check("layers", FAIL, f"uses layer classes this assignment does not allow: {', '.join(unknown)}",
                     "use Keras's built-in layers only (custom layer classes cannot be loaded for marking)")
    if code and not allow_lambda:
        return Check("layers", FAIL, f"uses {', '.join(code)}: a layer that carries Python code, which is "
                     "never run on the marking machine", "replace the Lambda layer with built-in layers "
                     "(e.g. Rescaling, Reshape, Activation) and save again")
    if code:
        return Check("layers", WARN, f"uses {', '.join(code)} (Python code), allowed by the instructor "
                     "and run inside the sandbox only")
    return Check("layers", PASS, ", ".join(inspection.layer_classes) or "no layers")


def _output_check(inspection: Inspection, assignment: Assignment) -> Check:
    classes = assignment.data.classes
    units = inspection.output_units
    if units is None:
        return Check("outputs", PASS, "output width not stated in the config; checked after prediction")
    if units != classes:
        return Check("outputs", WARN, f"the last layer has {units} units; this assignment has {classes} classes",
                     f"end the model with Dense({classes}, activation='softmax')")
    return Check("outputs", PASS, f"{units} outputs, one per class")


def checks_from_json(items: list[dict[str, Any]]) -> list[Check]:
    return [Check(**item) for item in items]
