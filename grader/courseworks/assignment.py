"""A coursework's rules, read from a TOML file into frozen dataclasses.

Adding a coursework means adding a TOML file: the mark bands, the limits and their policies, the data
layout and the way images are fed to a model all live there. Every error names the file, the key and
the fix. Precedence is command line > assignment file > the defaults below.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from grader.errors import AssignmentError

SCHEMA_VERSION = 1
DEFAULT_ASSIGNMENT = "kcl-dnn-cw1"
POLICIES = ("refuse", "flag")
# A file only TensorFlow's Keras 2 loader (tf_keras) can read: refused, graded and flagged, or graded.
LEGACY_LOADER_POLICIES = ("refuse", "flag", "grade")
INPUT_MODES = ("reference", "adapt")

# One number: an integer or a decimal written out (no exponent), so that a band edge such as 96.5 is
# read as the exact fraction 193/2 and no float ever decides which side of an edge a mark falls.
_NUMBER = r"\d+(?:\.\d+)?"
_INTERVAL = re.compile(rf"^\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*$")
_POINT = re.compile(rf"^\s*({_NUMBER})\s*$")


@dataclass(frozen=True)
class Band:
    """One row of a mark table: accuracies (in percent) inside the interval get `score`."""

    low: Fraction
    "Lower edge, in percent."
    high: Fraction
    "Upper edge, in percent."
    low_closed: bool
    "Whether an accuracy equal to `low` is inside the band."
    high_closed: bool
    "Whether an accuracy equal to `high` is inside the band."
    score: int | float
    "The mark given for an accuracy in this band."
    text: str
    "The interval as the assignment file writes it, e.g. '[96.5, 97)'."

    def overlaps(self, low: Fraction, high: Fraction) -> bool:
        """Whether any accuracy in the closed range [low, high] lies inside this band."""
        below_end = self.low < high or (self.low_closed and self.low == high)
        above_start = self.high > low or (self.high_closed and self.high == low)
        return below_end and above_start

    def contains(self, percent: Fraction) -> bool:
        """Whether an exact accuracy in percent lies inside this band."""
        above = percent > self.low or (self.low_closed and percent == self.low)
        below = percent < self.high or (self.high_closed and percent == self.high)
        return above and below


@dataclass(frozen=True)
class DataSpec:
    """What the held-out images look like and how they are turned into model inputs."""

    image_shape: tuple[int, ...] = (28, 28)
    "Shape of one stored image: (height, width) for grey digits, (height, width, channels) for colour."
    classes: int = 10
    "Number of classes; labels are 0 .. classes-1 and a model must output one score per class."
    scale: int = 255
    "Images are fed as x.astype('float32') / scale, as the official script does."


@dataclass(frozen=True)
class EvaluationSpec:
    """How a model is fed and how long it may take."""

    input_mode: str = "reference"
    "'reference': feed exactly as the official script does. 'adapt': feed the shape the model declares."
    mlp_input: tuple[int, ...] = (784,)
    "Shape of one image for a model the official rule calls an MLP (input rank 2)."
    cnn_input: tuple[int, ...] = (28, 28, 1)
    "Shape of one image for a model the official rule calls a CNN (input rank above 2)."
    batch_size: int = 32
    "Batch size of predict(); 32 is Keras's default, which the official script uses."
    time_limit_seconds: float = 300.0
    "Wall-clock limit for loading and predicting one submission."
    nonfinite_policy: str = "flag"
    "Outputs holding NaN or inf: 'flag' (graded as the official script's argmax takes them) or 'refuse'."
    output_width_policy: str = "flag"
    "A model with another number of outputs than classes: 'flag' (graded as the official script grades it,"
    " by the argmax over all its outputs, and flagged) or 'refuse' (bad_output, no mark)."
    tie_flag_share: float = 0.01
    "Flag a student when more than this share of the images had exactly tied top outputs, so that the"
    " official script's argmax rule (the first of the tied classes) decided their class."


# Evaluation settings that change how a result is marked, never the predictions: a stored evaluation is
# reused across changes to these (see Assignment.evaluation_key).
MARKING_ONLY = ("time_limit_seconds", "nonfinite_policy", "output_width_policy", "tie_flag_share")


@dataclass(frozen=True)
class ScreeningSpec:
    """What a file may contain to be loaded at all."""

    allowed_layers: frozenset[str]
    "Layer classes a model may use. Anything else (custom classes, Lambda) is refused before loading."


@dataclass(frozen=True)
class Limit:
    """A numeric limit and what happens to a file over it."""

    maximum: int
    "The largest value allowed."
    policy: str
    "'refuse': not graded. 'flag': graded, and flagged for a person to review."


@dataclass(frozen=True)
class Limits:
    """The limits a submission is checked against before it is evaluated."""

    file_bytes: Limit = field(default_factory=lambda: Limit(500 * 1024 * 1024, "refuse"))
    "File size in bytes (Moodle counts 1 MB as 1024 x 1024 bytes)."
    parameters: Limit = field(default_factory=lambda: Limit(50_000_000, "flag"))
    "Parameter count of the model, from its stored weights."


@dataclass(frozen=True)
class VersionRules:
    """The framework version the coursework grades with, and the rule for files from other versions."""

    tensorflow: str = "2.18.0"
    "TensorFlow release the markers use."
    untagged_older_policy: str = "flag"
    "What to do with a file saved by an older release without a version tag in its name."
    legacy_loader_policy: str = "flag"
    "A Keras 2 file that Keras 3 (the official script's loader under this TensorFlow) cannot load or run,"
    " which TensorFlow's Keras 2 loader (tf_keras) can: 'flag' (graded with tf_keras and flagged), 'grade'"
    " (graded with tf_keras, the report says so) or 'refuse' (load_failed, no mark)."


@dataclass(frozen=True)
class Assignment:
    """A coursework's rules, validated."""

    name: str
    "Short identifier, used in file names and exports."
    title: str
    "Title as the coursework document gives it."
    source: str
    "Where these rules come from (the coursework document)."
    max_score: int | float
    "The highest mark; exports refuse any mark above it."
    data: DataSpec
    evaluation: EvaluationSpec
    limits: Limits
    versions: VersionRules
    screening: ScreeningSpec
    bands: tuple[Band, ...]
    "The mark table, ordered from the lowest band to the highest."
    path: str
    "The file these rules were read from."
    sha256: str
    "sha256 of that file's bytes, recorded with every mark."

    def evaluation_key(self) -> str:
        """A hash of every rule that changes a model's predictions (not its mark).

        Two runs with the same key may share stored predictions: changing only the bands, the limits
        or the policies re-marks a cohort without running a model again.
        """
        rules = {"data": asdict(self.data), "evaluation": asdict(self.evaluation)}
        for marking_only in MARKING_ONLY:
            rules["evaluation"].pop(marking_only)
        blob = json.dumps(rules, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()

    def with_overrides(self, **evaluation: Any) -> Assignment:
        """A copy with some evaluation settings replaced (the command line outranks the file)."""
        values = {key: value for key, value in evaluation.items() if value is not None}
        if not values:
            return self
        merged = {**asdict(self.evaluation), **values}
        return replace(self, evaluation=EvaluationSpec(**merged))


def builtin_assignments() -> dict[str, Path]:
    """The assignment files shipped with grader, by name (file name without .toml)."""
    folder = resources.files("grader.courseworks")
    return {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir() if str(entry).endswith(".toml")}


def load_assignment(path_or_name: str | Path | None = None) -> Assignment:
    """Read and validate an assignment file; None gives the default (Coursework 1).

    A bare name such as 'kcl-dnn-cw1' picks a built-in assignment.
    """
    if path_or_name is None:
        path_or_name = DEFAULT_ASSIGNMENT
    builtins = builtin_assignments()
    path = builtins.get(str(path_or_name), Path(path_or_name))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        names = ", ".join(sorted(builtins))
        raise AssignmentError(f"{path}: no such assignment file (built-in assignments: {names})") from None
    except OSError as error:
        raise AssignmentError(f"{path}: cannot read the assignment file ({error.strerror})") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise AssignmentError(f"{path}: not valid TOML ({error}); fix the syntax and run again") from None
    return parse_assignment(document, path=str(path), sha256=hashlib.sha256(raw).hexdigest())


def parse_assignment(document: dict[str, Any], *, path: str, sha256: str) -> Assignment:
    """Validate a parsed TOML document into an Assignment."""
    reader = _Reader(document, path)
    schema = reader.get("schema", int, required=True)
    if schema != SCHEMA_VERSION:
        reader.fail("schema", f"is {schema}, but this grader reads schema {SCHEMA_VERSION}")

    info = _Reader(reader.table("assignment", required=True), path, "assignment")
    data = _Reader(reader.table("data"), path, "data")
    evaluation = _Reader(reader.table("evaluation"), path, "evaluation")
    limits = _Reader(reader.table("limits"), path, "limits")
    versions = _Reader(reader.table("versions"), path, "versions")
    screening = _Reader(reader.table("screening", required=True), path, "screening")
    defaults_data, defaults_eval = DataSpec(), EvaluationSpec()
    defaults_limits, defaults_versions = Limits(), VersionRules()

    data_spec = DataSpec(
        image_shape=data.shape("image_shape", defaults_data.image_shape),
        classes=data.positive_int("classes", defaults_data.classes),
        scale=data.positive_int("scale", defaults_data.scale),
    )
    if len(data_spec.image_shape) not in (2, 3):
        data.fail("image_shape", "must be [height, width] or [height, width, channels]")
    if data_spec.classes < 2:
        data.fail("classes", "must be at least 2")

    evaluation_spec = EvaluationSpec(
        input_mode=evaluation.choice("input_mode", INPUT_MODES, defaults_eval.input_mode),
        mlp_input=evaluation.shape("mlp_input", defaults_eval.mlp_input),
        cnn_input=evaluation.shape("cnn_input", defaults_eval.cnn_input),
        batch_size=evaluation.positive_int("batch_size", defaults_eval.batch_size),
        time_limit_seconds=evaluation.positive_number("time_limit_seconds", defaults_eval.time_limit_seconds),
        nonfinite_policy=evaluation.choice("nonfinite_policy", POLICIES, defaults_eval.nonfinite_policy),
        output_width_policy=evaluation.choice("output_width_policy", POLICIES, defaults_eval.output_width_policy),
        tie_flag_share=evaluation.share("tie_flag_share", defaults_eval.tie_flag_share),
    )
    pixels = 1
    for size in data_spec.image_shape:
        pixels *= size
    for key in ("mlp_input", "cnn_input"):
        shape = getattr(evaluation_spec, key)
        if _product(shape) != pixels:
            evaluation.fail(
                key,
                f"{list(shape)} holds {_product(shape)} values but one image of "
                f"{list(data_spec.image_shape)} holds {pixels}",
            )

    limits_spec = Limits(
        file_bytes=Limit(
            limits.positive_int("max_file_bytes", defaults_limits.file_bytes.maximum),
            limits.choice("file_size_policy", POLICIES, defaults_limits.file_bytes.policy),
        ),
        parameters=Limit(
            limits.positive_int("max_parameters", defaults_limits.parameters.maximum),
            limits.choice("parameters_policy", POLICIES, defaults_limits.parameters.policy),
        ),
    )
    version_rules = VersionRules(
        tensorflow=versions.get("tensorflow", str) or defaults_versions.tensorflow,
        untagged_older_policy=versions.choice(
            "untagged_older_policy", POLICIES, defaults_versions.untagged_older_policy
        ),
        legacy_loader_policy=versions.choice(
            "legacy_loader_policy", LEGACY_LOADER_POLICIES, defaults_versions.legacy_loader_policy
        ),
    )

    allowed = screening.get("allowed_layers", list, required=True)
    if not allowed or not all(isinstance(name, str) and name.isidentifier() for name in allowed):
        screening.fail("allowed_layers", "must be a list of layer class names, such as ['Dense', 'Conv2D']")
    screening_spec = ScreeningSpec(allowed_layers=frozenset(allowed))

    max_score = info.get("max_score", (int, float), required=True)
    bands = _parse_bands(reader, document.get("bands"), max_score)
    known = {"schema", "assignment", "data", "evaluation", "limits", "versions", "screening", "bands"}
    reader.reject_unknown(known)
    info.reject_unknown({"name", "title", "source", "max_score"})
    data.reject_unknown({"image_shape", "classes", "scale"})
    evaluation.reject_unknown(set(EvaluationSpec.__dataclass_fields__))
    limits.reject_unknown({"max_file_bytes", "file_size_policy", "max_parameters", "parameters_policy"})
    versions.reject_unknown(set(VersionRules.__dataclass_fields__))
    screening.reject_unknown({"allowed_layers"})

    name = info.get("name", str, required=True)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        info.fail("name", "may hold only letters, digits, '.', '_' and '-'")
    return Assignment(
        name=name,
        title=info.get("title", str) or name,
        source=info.get("source", str) or "",
        max_score=max_score,
        data=data_spec,
        evaluation=evaluation_spec,
        limits=limits_spec,
        versions=version_rules,
        screening=screening_spec,
        bands=bands,
        path=path,
        sha256=sha256,
    )


def parse_interval(text: str) -> tuple[Fraction, Fraction, bool, bool]:
    """Parse '[96.5, 97)', '(0, 50)' or '0' into exact edges and closedness.

    Raises ValueError with a message that says what is wrong.
    """
    point = _POINT.match(text)
    if point:
        value = Fraction(point.group(1))
        return value, value, True, True
    interval = _INTERVAL.match(text)
    if not interval:
        raise ValueError(
            f"{text!r} is not an interval: write it as in the mark table, e.g. '[96.5, 97)', '(0, 50)' or '0'"
        )
    opening, low, high, closing = interval.groups()
    low_value, high_value = Fraction(low), Fraction(high)
    if low_value >= high_value:
        raise ValueError(f"{text!r}: the lower edge must be below the upper edge")
    return low_value, high_value, opening == "[", closing == "]"


def _parse_bands(reader: _Reader, raw: Any, max_score: int | float) -> tuple[Band, ...]:
    if raw is None:
        reader.fail("bands", "is missing: give the mark table as [[bands]] entries with range and score")
    if not isinstance(raw, list) or not raw:
        reader.fail("bands", "must be a non-empty array of tables: [[bands]] range = '[97, 100]' score = 20")
    bands = []
    for index, entry in enumerate(raw):
        key = f"bands[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"range", "score"}:
            reader.fail(key, "must have exactly two keys: range (a string) and score (a number)")
        text, score = entry["range"], entry["score"]
        if not isinstance(text, str):
            reader.fail(f"{key}.range", "must be a string such as '[96.5, 97)'")
        if isinstance(score, bool) or not isinstance(score, int | float):
            reader.fail(f"{key}.score", "must be a number")
        if not 0 <= score <= max_score:
            reader.fail(f"{key}.score", f"is {score}, outside 0 .. max_score ({max_score})")
        try:
            low, high, low_closed, high_closed = parse_interval(text)
        except ValueError as error:
            reader.fail(f"{key}.range", str(error))
        if low < 0 or high > 100:
            reader.fail(f"{key}.range", f"{text!r} reaches outside 0 .. 100 percent")
        bands.append(Band(low, high, low_closed, high_closed, score, text.strip()))
    bands.sort(key=lambda band: (band.low, not band.low_closed, band.high))
    _check_coverage(reader, bands)
    return tuple(bands)


def _check_coverage(reader: _Reader, bands: list[Band]) -> None:
    """Every accuracy from 0 to 100 percent must fall in exactly one band."""
    first, last = bands[0], bands[-1]
    if first.low != 0 or not first.low_closed:
        reader.fail("bands", "leave 0% without a mark: the lowest band must start at '[0' or be '0'")
    for before, after in zip(bands, bands[1:], strict=False):
        if after.low < before.high or (after.low == before.high and before.high_closed and after.low_closed):
            reader.fail("bands", f"{before.text!r} and {after.text!r} overlap")
        if after.low > before.high or not (before.high_closed or after.low_closed):
            edge = _percent(before.high)
            reader.fail("bands", f"leave {edge}% without a mark, between {before.text!r} and {after.text!r}")
    if last.high != 100 or not last.high_closed:
        reader.fail(
            "bands",
            f"leave 100% without a mark: close the top band with ']' (e.g. '[{_percent(last.low)}, 100]')",
        )


def _percent(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


class _Reader:
    """Typed access to one TOML table, with errors that name the file, the key and the fix."""

    def __init__(self, table: dict[str, Any], path: str, prefix: str = "") -> None:
        self.values, self.path, self.prefix = table, path, prefix

    def fail(self, key: str, problem: str) -> Any:
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        raise AssignmentError(f"{self.path}: {dotted} {problem}")

    def get(self, key: str, kind: Any, *, required: bool = False) -> Any:
        if key not in self.values:
            if required:
                self.fail(key, "is missing")
            return None
        value = self.values[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(key, f"must be of type {expected}, not {type(value).__name__} ({value!r})")
        return value

    def table(self, key: str, *, required: bool = False) -> dict[str, Any]:
        value = self.get(key, dict, required=required)
        return value or {}

    def positive_int(self, key: str, default: int) -> int:
        value = self.get(key, int)
        if value is None:
            return default
        if value <= 0:
            self.fail(key, f"must be a positive integer, not {value}")
        return value

    def positive_number(self, key: str, default: float) -> float:
        value = self.get(key, (int, float))
        if value is None:
            return default
        if value <= 0:
            self.fail(key, f"must be positive, not {value}")
        return float(value)

    def share(self, key: str, default: float) -> float:
        value = self.get(key, (int, float))
        if value is None:
            return default
        if not 0 <= value <= 1:
            self.fail(key, f"must be a share between 0 and 1 (0.01 is 1%), not {value}")
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str)
        if value is None:
            return default
        if value not in choices:
            self.fail(key, f"is {value!r}; choose one of: {', '.join(choices)}")
        return value

    def shape(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.get(key, list)
        if value is None:
            return default
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            self.fail(key, f"must be a list of positive integers, such as [28, 28, 1], not {value!r}")
        return tuple(value)

    def reject_unknown(self, known: set[str]) -> None:
        for key in self.values:
            if key not in known:
                self.fail(key, f"is not a known key; known keys here: {', '.join(sorted(known))}")
