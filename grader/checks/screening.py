"""What the inspection's facts mean for a submission: a list of checks, each pass, warn or fail.

A failed check refuses the file before any TensorFlow code sees it; a warning lets it be graded and
flags it for a person. Pure functions of the inspection and the assignment: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from grader import formats
from grader.checks.architecture_spec import EXACT, compare_inspection
from grader.formats.base import FAIL, INFO, OUTCOMES, PASS, WARN, Check, Inspection, checks_from_json
from grader.formats.keras_versions import SavedWith, parse_release, saved_with, version_tag

if TYPE_CHECKING:
    # Type-only: the coursework's rules come in as arguments (the layer contract in pyproject.toml).
    from grader.courseworks.assignment import Assignment, Limit, Part

__all__ = ["FAIL", "INFO", "OUTCOMES", "PASS", "WARN", "Check", "checks_from_json", "screen", "size_check"]
# A config may declare more parameters than the file stores by this much before it is called a lie
# (covers rounding in layers this grader does not model exactly).
CONFIG_SLACK = 1.05


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
        f"make the model smaller (fewer or narrower layers) so that {_the_file(assignment.screening.formats)} fits "
        "the upload limit",
    )


def _the_file(accepted: tuple[str, ...]) -> str:
    """'the .h5 file' for a part that takes one format with a suffix of its own, else 'the file'."""
    sole = formats.sole(accepted)
    return f"the {sole.kind} file" if sole is not None and sole.kind != "model" else "the file"


@dataclass(frozen=True)
class _Screening:
    """A part's rules as a format's `screen` sees them (grader.formats.base.Screening)."""

    assignment: Assignment
    part: Part
    accepted: tuple[str, ...]
    allow_lambda: bool
    file_name: str
    beside: Mapping[str, int] = field(default_factory=dict)

    @property
    def allowed_layers(self) -> frozenset[str]:
        return self.assignment.screening.allowed_layers

    @property
    def onnx_operators(self) -> frozenset[str]:
        return self.assignment.screening.onnx_operators

    def advice(self) -> str:
        return formats.advice(self.accepted)

    def parameters(self, inspection: Inspection) -> Check:
        return _parameters_check(inspection, self.assignment)

    def outputs(self, inspection: Inspection) -> Check:
        return _output_check(inspection, self.part.data.classes)

    def version(self, inspection: Inspection) -> Check:
        return version_check(inspection, self.assignment, self.file_name)

    def architecture(self, inspection: Inspection) -> Check | None:
        return None if self.part.architecture is None else architecture_check(inspection, self.part)


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
    accepted = assignment.formats_of(part)
    rules = _Screening(assignment, part, accepted, allow_lambda, file_name, beside or {})
    found = formats.of_inspection(inspection)
    if found is None or found.name not in accepted:
        return [_other_format(inspection, accepted, found)]
    first = found.container_check(inspection, rules)
    if first.outcome == FAIL:
        return [first]
    return [first, *found.screen(inspection, rules)]


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


def _other_format(inspection: Inspection, accepted: tuple[str, ...], found: formats.ModelFormat | None) -> Check:
    """A file that is not one of the formats the assignment takes (or nothing any format reads). A part that
    takes one format speaks of it in its own words (Coursework 1: 'HDF5 file')."""
    sole = formats.sole(accepted)
    name = sole.container if sole is not None else "model file"
    if inspection.format == "empty":
        return Check(name, FAIL, "the file is empty (0 bytes)", f"upload {formats.advice(accepted)}")
    if sole is not None and sole.resave and found is None:
        return Check(name, FAIL, f"the file is {inspection.format}", sole.resave)
    what = found.described if found else f"{inspection.format}"
    if inspection.archive_problems:
        what = f"a zip ({'; '.join(inspection.archive_problems)})"
    return Check(
        "model file",
        FAIL,
        f"the file is {what}; this assignment takes {formats.taken(accepted)}",
        f"hand in {formats.advice(accepted)}",
    )


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
            _save_again(inspection),
        )
    counted = max(stored, declared or 0)
    check = limit_check("parameters", counted, limit, "parameters", advice)
    if check.outcome == PASS and declared is not None and inspection.config_complete and declared != stored:
        return Check(
            "parameters",
            WARN,
            f"the config declares {declared:,} parameters, the file stores {stored:,}",
            _save_again(inspection),
        )
    return check


def _save_again(inspection: Inspection) -> str:
    """How to write this file's format again from the trained model (its format's words)."""
    found = formats.of_inspection(inspection)
    return found.save_again if found is not None else "save the trained model again"


def unreadable_check(error: str, accepted: tuple[str, ...]) -> Check:
    """A file the sandboxed inspector could not read at all, in the words of the part's one format if it has one."""
    sole = formats.sole(accepted)
    return Check(
        sole.container if sole is not None else "model file",
        FAIL,
        error or "could not be read",
        sole.again if sole is not None and sole.again else f"hand in {formats.advice(accepted)} again",
    )


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
                f"put the TensorFlow version in the file name, e.g. {_tagged(file_name, saved, inspection)}, as the "
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


def _tagged(file_name: str, saved: SavedWith, inspection: Inspection) -> str:
    """The file name with a tag for the newest release that could have saved it (model_tf213.h5), ending as its
    format's files do."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "model"
    major, minor = saved.tensorflow[1] if saved.tensorflow else (2, 13)
    found = formats.of_inspection(inspection)
    return f"{stem}_tf{major}{minor}{found.suffixes[0] if found and found.suffixes else ''}"
