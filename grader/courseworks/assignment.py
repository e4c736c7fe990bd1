"""A coursework's rules, read from a TOML file into frozen dataclasses.

Adding a coursework means adding a TOML file: the parts a student hands in, their data and preprocessing,
the way each model is fed, the marking scheme, the limits and their policies all live there. Every error
names the file, the key and the fix. Precedence is command line > assignment file > the defaults below;
in a file with parts, a part's own table > the file's top-level table of the same name > the defaults.

Two layouts:
- one part (Coursework 1): top-level [data], [evaluation], [marking] and [[bands]];
- several parts (SYDE 522 A4, UvA Lab 1): [[parts]], each with its name, title, file-name patterns,
  declared input shapes, weight and its own [parts.data], [parts.evaluation], [parts.marking] and
  [[parts.bands]]. Top-level [data] and [evaluation] then hold what the parts share.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from grader.checks.architecture_spec import POLICIES as ARCHITECTURE_POLICIES
from grader.checks.architecture_spec import SETTINGS, ArchitectureSpec, LayerSpec
from grader.courseworks.catalogue import catalogue, lookup
from grader.courseworks.schema import problem as schema_problem
from grader.errors import AssignmentError
from grader.formats import code_formats, model_formats
from grader.formats.keras_layers import ALIASES
from grader.marking.code import RULES as CODE_RULES
from grader.marking.code import CodeSpec, Question
from grader.marking.schemes import (
    ARCHITECTURE_CONDITIONS,
    ROUNDINGS,
    Band,
    Bands,
    Linear,
    Points,
    Rule,
    Scheme,
    Signoff,
    as_score,
    coverage_problem,
    parse_interval,
)

DEFAULT_ASSIGNMENT = "kcl-dnn-cw1"
POLICIES = ("refuse", "flag")
# A file saved by an older release without a version tag in its name: refused, flagged, or graded (for a
# coursework that asks for no tag).
UNTAGGED_POLICIES = ("refuse", "flag", "grade")
# A file only TensorFlow's Keras 2 loader (tf_keras) can read: refused, graded and flagged, or graded.
LEGACY_LOADER_POLICIES = ("refuse", "flag", "grade")
INPUT_MODES = ("reference", "adapt")
# How a model is fed its images (see EvaluationSpec.feed).
FEEDS = ("by-rank", "declared")
# How images are laid out for the model: NHWC (Keras, TensorFlow) or NCHW (PyTorch exports).
LAYOUTS = ("nhwc", "nchw")
SCHEMES = ("bands", "linear", "signoff")
# What a part is judged by: a trained model's predictions, or the student's functions (grader.evaluation.code).
KINDS = ("model", "code")
# The layer classes a model may use unless an assignment says otherwise: Keras's own layers (Keras 2 and 3
# names), which compute from their inputs and weights alone. Everything else (Lambda and TFOpLambda: Python
# code; TFSMLayer, TorchModuleWrapper: other files or frameworks; StringLookup, IntegerLookup,
# TextVectorization: vocabulary files; custom classes) is refused before anything loads the file.
KERAS_LAYERS = frozenset(
    (
        "Activation",
        "ActivityRegularization",
        "AdaptiveAveragePooling1D",
        "AdaptiveAveragePooling2D",
        "AdaptiveAveragePooling3D",
        "AdaptiveMaxPooling1D",
        "AdaptiveMaxPooling2D",
        "AdaptiveMaxPooling3D",
        "Add",
        "AdditiveAttention",
        "AlphaDropout",
        "Attention",
        "AugMix",
        "AutoContrast",
        "Average",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "AvgPool1D",
        "AvgPool2D",
        "AvgPool3D",
        "BatchNormalization",
        "Bidirectional",
        "CategoryEncoding",
        "CenterCrop",
        "Concatenate",
        "ContrastLimitedAdaptiveHistogramEqualization",
        "Conv1D",
        "Conv1DTranspose",
        "Conv2D",
        "Conv2DTranspose",
        "Conv3D",
        "Conv3DTranspose",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "ConvLSTM3D",
        "Convolution1D",
        "Convolution1DTranspose",
        "Convolution2D",
        "Convolution2DTranspose",
        "Convolution3D",
        "Convolution3DTranspose",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "CutMix",
        "Dense",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "Discretization",
        "Dot",
        "Dropout",
        "ELU",
        "EinsumDense",
        "Embedding",
        "Equalization",
        "Flatten",
        "GRU",
        "GRUCell",
        "GaussianDropout",
        "GaussianNoise",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalAvgPool1D",
        "GlobalAvgPool2D",
        "GlobalAvgPool3D",
        "GlobalMaxPool1D",
        "GlobalMaxPool2D",
        "GlobalMaxPool3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "GroupNormalization",
        "GroupQueryAttention",
        "HashedCrossing",
        "Hashing",
        "Identity",
        "InputLayer",
        "LSTM",
        "LSTMCell",
        "LayerNormalization",
        "LeakyReLU",
        "Masking",
        "MaxPool1D",
        "MaxPool2D",
        "MaxPool3D",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "Maximum",
        "MelSpectrogram",
        "Minimum",
        "MixUp",
        "MultiHeadAttention",
        "Multiply",
        "Normalization",
        "PReLU",
        "Permute",
        "RMSNormalization",
        "RNN",
        "RandAugment",
        "RandomBrightness",
        "RandomColorDegeneration",
        "RandomColorJitter",
        "RandomContrast",
        "RandomCrop",
        "RandomElasticTransform",
        "RandomErasing",
        "RandomFlip",
        "RandomGaussianBlur",
        "RandomGrayscale",
        "RandomHue",
        "RandomInvert",
        "RandomPerspective",
        "RandomPosterization",
        "RandomRotation",
        "RandomSaturation",
        "RandomSharpness",
        "RandomShear",
        "RandomTranslation",
        "RandomZoom",
        "ReLU",
        "RepeatVector",
        "Rescaling",
        "Reshape",
        "Resizing",
        "STFTSpectrogram",
        "SeparableConv1D",
        "SeparableConv2D",
        "SeparableConvolution1D",
        "SeparableConvolution2D",
        "SimpleRNN",
        "SimpleRNNCell",
        "Softmax",
        "Solarization",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "SpectralNormalization",
        "StackedRNNCells",
        "Subtract",
        "TimeDistributed",
        "UnitNormalization",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "LocallyConnected1D",
        "LocallyConnected2D",
        "RandomHeight",
        "RandomWidth",
        "ThresholdedReLU",
        "Sequential",
        "Functional",
        "Model",
    )
)
# The top-level keys an assignment file may have ([[parts]] or the one part's [marking], [[bands]] and
# [architecture]).
# ONNX operators a graph may use unless an assignment says otherwise: the standard domain's arithmetic,
# layers, activations, pooling, normalisation and tensor plumbing. Control flow (If, Loop, Scan: subgraphs)
# and anything outside the standard domain are not among them.
ONNX_OPERATORS = frozenset(
    (
        "Abs",
        "Add",
        "And",
        "ArgMax",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Ceil",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Div",
        "Dropout",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "Flatten",
        "Floor",
        "Gather",
        "Gelu",
        "Gemm",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Greater",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "InstanceNormalization",
        "LRN",
        "LayerNormalization",
        "LeakyRelu",
        "Less",
        "Log",
        "LogSoftmax",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "MeanVarianceNormalization",
        "Min",
        "Mul",
        "Neg",
        "Not",
        "Or",
        "PRelu",
        "Pad",
        "Pow",
        "Range",
        "Reciprocal",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceSum",
        "Relu",
        "Reshape",
        "Resize",
        "Selu",
        "Shape",
        "Sigmoid",
        "Sign",
        "Slice",
        "Softmax",
        "Softplus",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tanh",
        "Tile",
        "Transpose",
        "Unsqueeze",
        "Upsample",
        "Where",
    )
)
# The name of the one part of a single-part assignment (never shown: its columns are the plain ones).
SINGLE_PART = "main"


@dataclass(frozen=True)
class DataSpec:
    """What the held-out images look like and how they are turned into model inputs."""

    image_shape: tuple[int, ...] = (28, 28)
    "Shape of one stored image: (height, width) for grey images, (height, width, channels) for colour."
    classes: int = 10
    "Number of classes; labels are 0 .. classes-1 and a model must output one score per class."
    class_names: tuple[str, ...] = ()
    "A name per class, for reports (CIFAR-10's 'airplane', 'automobile', ...); () names them by number."
    scale: int | float = 255
    "Images are fed as x.astype('float32') / scale, as the official script does."
    mean: tuple[float, ...] = ()
    "Per-channel means subtracted after scaling, as PyTorch's Normalize(mean, std) does; () for none."
    std: tuple[float, ...] = ()
    "Per-channel standard deviations divided by after subtracting the mean; () for none."
    layout: str = "nhwc"
    "'nhwc' (channels last, as Keras) or 'nchw' (channels first, as PyTorch exports)."
    public: str = ""
    "The public test set `grade check` fetches for this data with keras's loader ('mnist', 'cifar10')."
    label_pattern: str = ""
    "For a folder of images not sorted into class folders: a regular expression whose group 'label' (or"
    " first group) finds the class in each file name, e.g. '^(?P<label>[0-9])_' for '7_mine.png'."
    resize: bool = False
    "For a folder of images: scale images of another size to image_shape (else they are an error)."

    @property
    def channels(self) -> int:
        return self.image_shape[2] if len(self.image_shape) == 3 else 1

    @property
    def values(self) -> int:
        """How many values one image holds."""
        return math.prod(self.image_shape)

    @property
    def names(self) -> tuple[str, ...]:
        """A name for every class: the given names, else the class numbers."""
        return self.class_names or tuple(str(index) for index in range(self.classes))

    def describe(self) -> str:
        """'28x28 grey images, 10 classes' or '32x32 colour images (3 channels), 10 classes'."""
        size = "x".join(map(str, self.image_shape[:2]))
        kind = "grey" if self.channels == 1 else f"colour ({self.channels} channels)"
        return f"{size} {kind} images, {self.classes} classes"


@dataclass(frozen=True)
class RankFeed:
    """One step of a 'by-rank' feeding rule: a model whose input rank (len(net.input_shape), batch axis included)
    is above `rank_above` is fed each image reshaped to `shape`, and the rule calls it `name`."""

    name: str
    "What the rule calls such a model ('CNN', 'MLP'): reports say which step fed it."
    shape: tuple[int, ...]
    "One image's shape as fed to such a model; it holds the image's values."
    rank_above: int = 0
    "The step applies to a model whose input rank is above this; the steps are tried in order, the first wins."


@dataclass(frozen=True)
class EvaluationSpec:
    """How a model is fed and how long it may take."""

    feed: str = "declared"
    "'declared': the images reshaped to the input shape the model declares. 'by-rank': the first of `by_rank`'s"
    " steps whose rank_above the model's input rank exceeds says the shape (a coursework's own test script's rule)."
    input_mode: str = "reference"
    "Under 'by-rank': 'reference' gives predict_failed where the rule's feed fails; 'adapt' then feeds the"
    " shape the model declares, and flags it."
    by_rank: tuple[RankFeed, ...] = ()
    "The 'by-rank' rule's steps, in order ([[evaluation.by_rank]] tables: name, rank_above, shape)."
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
    name: str = "the coursework's own evaluation"
    "What reports call the coursework's own evaluation, whose result each mark equals ('the official script',"
    " 'the notebook's evaluation'): the checks that say what it would have done name it so."
    compiles_on_load: bool = False
    "Whether the coursework's own evaluation loads the file with the training setup compiled (Coursework 1's"
    " script calls load_model(file)): a .h5 file whose saved setup would not compile there is then flagged"
    " (it is graded with compile=False, which predicts the same). False where the evaluation never compiles."
    script: bool = False
    "Whether grader ships the coursework's own test script (grader/courseworks/official.py), which `grade check"
    " --reference` runs beside grader's evaluation."


# Evaluation settings that change how a result is marked, never the predictions: a stored evaluation is
# reused across changes to these (see Part.evaluation_key).
MARKING_ONLY = (
    "time_limit_seconds",
    "nonfinite_policy",
    "output_width_policy",
    "tie_flag_share",
    "name",
    "compiles_on_load",
    "script",
)


@dataclass(frozen=True)
class ScreeningSpec:
    """What a file may contain to be loaded at all."""

    allowed_layers: frozenset[str]
    "Layer classes a model may use. Anything else (custom classes, Lambda) is refused before loading."
    formats: tuple[str, ...]
    "The model formats accepted ('keras-h5', 'keras-zip', 'onnx', or one a package registers); others are refused."
    onnx_operators: frozenset[str] = ONNX_OPERATORS
    "ONNX operators (standard domain) a graph may use; custom domains and functions are always refused."


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

    file_bytes: Limit
    "File size in bytes (Moodle counts 1 MB as 1024 x 1024 bytes)."
    parameters: Limit
    "Parameter count of the model, from its stored weights."


@dataclass(frozen=True)
class VersionRules:
    """The framework version the coursework grades with, and the rule for files from other versions."""

    tensorflow: str
    "TensorFlow release the markers use."
    untagged_older_policy: str
    "What to do with a file saved by an older release without a version tag in its name: 'refuse', 'flag', or"
    " 'grade' (a coursework that asks for no tag)."
    legacy_loader_policy: str
    "A Keras 2 file that Keras 3 (the official script's loader under this TensorFlow) cannot load or run,"
    " which TensorFlow's Keras 2 loader (tf_keras) can: 'flag' (graded with tf_keras and flagged), 'grade'"
    " (graded with tf_keras, the report says so) or 'refuse' (load_failed, no mark)."


@dataclass(frozen=True)
class Part:
    """One model a student hands in, and how it is judged."""

    name: str
    "Short identifier ('mnist', 'cifar10'); prefixes this part's columns in marks.csv."
    title: str
    "What the coursework calls it ('Q16-17: the CIFAR-10 network')."
    data: DataSpec
    evaluation: EvaluationSpec
    marking: Scheme
    weight: Fraction = Fraction(1)
    "The part's score counts this many times in the student's total."
    files: tuple[str, ...] = ()
    "File-name patterns (shell style, any case) that say a file is for this part; () matches any."
    input_shapes: tuple[tuple[int, ...], ...] = ()
    "Input shapes (without the batch axis) a model for this part declares, used to tell parts apart when"
    " the file name does not; () accepts any shape holding one image's values."
    heldout: str = ""
    "Where this part's held-out set is, when the assignment says (else heldout/<part>/)."
    marking_title: str = ""
    "What the coursework calls its mark table ('Table 1'), for reports."
    architecture: ArchitectureSpec | None = None
    "The architecture this part's models must have, layer by layer, and what a mismatch does."
    formats: tuple[str, ...] = ()
    "The model formats this part takes, when they differ from the assignment's ([screening] formats)."
    code: CodeSpec | None = None
    "For a code part (kind = 'code'): its questions and test module; None for a model part."

    @property
    def max_score(self) -> int | float:
        return self.marking.max_score

    @property
    def marking_name(self) -> str:
        """What reports call this part's marking: the mark table's own name ('Table 1'), or the scheme's."""
        if self.marking_title:
            return self.marking_title
        return {"bands": "Mark table", "signoff": "Sign-off"}.get(self.marking.name, "Marking")

    def evaluation_key(self) -> str:
        """A hash of every rule that changes a model's predictions for this part (not its mark).

        Two runs with the same key may share stored predictions: changing only the marking, the limits
        or the policies re-marks a cohort without running a model again.
        """
        rules = {"data": asdict(self.data), "evaluation": asdict(self.evaluation)}
        for marking_only in MARKING_ONLY:
            rules["evaluation"].pop(marking_only)
        # What reports call the classes, grade check's set, and how labels are read: no prediction changes.
        for naming_only in ("class_names", "public", "label_pattern"):
            rules["data"].pop(naming_only)
        blob = json.dumps(rules, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()

    def name_matches(self, file_name: str) -> bool:
        """Whether a file name fits one of this part's patterns (any case); True when it has none."""
        name = file_name.lower()
        return not self.files or any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.files)

    def shape_matches(self, declared: tuple[int | None, ...] | None) -> bool:
        """Whether a model declaring this input shape (without the batch axis) fits this part."""
        if declared is None or any(size is None for size in declared):
            return False
        if self.input_shapes:
            return tuple(declared) in self.input_shapes
        return math.prod(size for size in declared if size is not None) == self.data.values


@dataclass(frozen=True)
class Assignment:
    """A coursework's rules, validated."""

    name: str
    "Short identifier, used in file names and exports."
    title: str
    "Title as the coursework document gives it."
    source: str
    "Where these rules come from (the coursework document)."
    description: str
    "One line for `grade assignments`."
    parts: tuple[Part, ...]
    "What each student hands in: one part (Coursework 1) or several (a model per question)."
    limits: Limits
    versions: VersionRules
    screening: ScreeningSpec
    path: str
    "The file these rules were read from."
    sha256: str
    "sha256 of that file's bytes, recorded with every mark."

    @property
    def single(self) -> bool:
        """One model part: marks.csv, reports and exports keep the plain one-model layout."""
        return len(self.parts) == 1 and self.parts[0].code is None

    @property
    def max_score(self) -> int | float:
        """The highest total: each part's maximum times its weight."""
        return as_score(sum((Fraction(part.max_score) * part.weight for part in self.parts), Fraction(0)))

    def formats_of(self, part: Part) -> tuple[str, ...]:
        """The formats a part takes: its own list, else the assignment's (a code part: .py and notebooks)."""
        return part.formats or (code_formats() if part.code is not None else self.screening.formats)

    @property
    def model_parts(self) -> tuple[Part, ...]:
        """The parts judged by a model's predictions (every part but code parts)."""
        return tuple(part for part in self.parts if part.code is None)

    @property
    def code_parts(self) -> tuple[Part, ...]:
        """The parts whose students hand in code that runs (their functions are called)."""
        return tuple(part for part in self.parts if part.code is not None)

    @property
    def formats(self) -> tuple[str, ...]:
        """Every format any part takes: what makes a file in a student's folder a model file."""
        return tuple(dict.fromkeys(name for part in self.parts for name in self.formats_of(part)))

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)

    def with_overrides(self, **evaluation: Any) -> Assignment:
        """A copy with some evaluation settings replaced in every part (the command line outranks the file)."""
        values = {key: value for key, value in evaluation.items() if value is not None}
        if not values:
            return self
        parts = tuple(replace(part, evaluation=replace(part.evaluation, **values)) for part in self.parts)
        return replace(self, parts=parts)


def builtin_assignments() -> dict[str, Path]:
    """The assignment files grader ships and installed packages register, by name (file name without .toml);
    grader's own where a name is taken twice (grader.courseworks.catalogue)."""
    return {name: sources[0].path for name, sources in catalogue().items()}


def load_assignment(path_or_name: str | Path | None = None) -> Assignment:
    """Read and validate an assignment file; None gives the default (Coursework 1).

    A bare name such as 'kcl-dnn-cw1' picks a built-in assignment.
    """
    if path_or_name is None:
        path_or_name = DEFAULT_ASSIGNMENT
    path = lookup(str(path_or_name)) or Path(path_or_name)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        names = ", ".join(sorted(catalogue()))
        raise AssignmentError(f"{path}: no such assignment file (assignments by name: {names})") from None
    except OSError as error:
        raise AssignmentError(f"{path}: cannot read the assignment file ({error.strerror})") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise AssignmentError(f"{path}: not valid TOML ({error}); fix the syntax and run again") from None
    return parse_assignment(document, path=str(path), sha256=hashlib.sha256(raw).hexdigest())


def parse_assignment(document: dict[str, Any], *, path: str, sha256: str) -> Assignment:
    """Validate a parsed TOML document into an Assignment: against the declared schema first
    (grader.courseworks.schema), then what one key means for another."""
    wrong = schema_problem(document)
    if wrong:
        raise AssignmentError(f"{path}: {wrong}")
    reader = _Reader(document, path)
    info = _Reader(reader.table("assignment"), path, "assignment")
    limits = _Reader(reader.table("limits"), path, "limits")
    versions = _Reader(reader.table("versions"), path, "versions")
    screening = _Reader(reader.table("screening"), path, "screening")

    name = info.get("name")
    title = info.get("title") or name
    declared_max = info.get("max_score")

    if "parts" in document:
        for key in ("bands", "marking", "architecture"):
            if key in document:
                reader.fail(key, "belongs to each part in an assignment with [[parts]]: move it into the part")
        raw_parts = reader.get("parts")
        parts = tuple(_parse_part(reader, document, entry, index, path) for index, entry in enumerate(raw_parts))
        seen = [part.name for part in parts]
        if len(set(seen)) != len(seen):
            reader.fail("parts", f"names repeat ({', '.join(seen)}): give each part its own name")
    else:
        parts = (_parse_single_part(reader, document, title, declared_max, path),)

    limits_spec = _limits(limits)
    version_rules = _version_rules(versions, any(part.code is None for part in parts))
    screening_spec = _screening(screening, parts)
    assignment = Assignment(
        name=name,
        title=title,
        source=info.get("source") or "",
        description=info.get("description") or title,
        parts=parts,
        limits=limits_spec,
        versions=version_rules,
        screening=screening_spec,
        path=path,
        sha256=sha256,
    )
    if declared_max is not None and Fraction(str(declared_max)) != Fraction(str(assignment.max_score)):
        info.fail(
            "max_score",
            f"is {declared_max}, but the parts' maximum scores times their weights add up to "
            f"{assignment.max_score}: correct one or the other",
        )
    return assignment


def _limits(limits: _Reader) -> Limits:
    """[limits]: the largest file and model the coursework takes, and what happens to one larger. The schema
    requires every key: no coursework's limits (an upload limit, a parameter budget) are another's default."""
    return Limits(
        file_bytes=Limit(limits.get("max_file_bytes"), limits.get("file_size_policy")),
        parameters=Limit(limits.get("max_parameters"), limits.get("parameters_policy")),
    )


def _version_rules(versions: _Reader, models: bool) -> VersionRules:
    """[versions]: the TensorFlow the coursework names, and what happens to files saved by others; stated in every
    file that takes models (a coursework of code alone has no use for it)."""
    if not models and not versions.values:
        return VersionRules(tensorflow="", untagged_older_policy="grade", legacy_loader_policy="grade")
    return VersionRules(
        tensorflow=versions.get("tensorflow", required=True),
        untagged_older_policy=versions.choice("untagged_older_policy", UNTAGGED_POLICIES, ""),
        legacy_loader_policy=versions.choice("legacy_loader_policy", LEGACY_LOADER_POLICIES, ""),
    )


def _screening(screening: _Reader, parts: tuple[Part, ...]) -> ScreeningSpec:
    """[screening]: the formats the coursework takes, and the layers and operators a model may use."""
    allowed = screening.get("allowed_layers", sorted(KERAS_LAYERS))
    formats = screening.get("formats") or []
    if not formats and any(part.code is None and not part.formats for part in parts):
        screening.fail(
            "formats",
            f"is missing: name the model formats this coursework takes, such as ['keras-h5'] (choose from: "
            f"{', '.join(model_formats())})",
        )
    for format_name in formats:
        if format_name not in model_formats():
            screening.fail("formats", f"holds {format_name!r}; choose from: {', '.join(model_formats())}")
    operators = screening.get("onnx_operators")
    return ScreeningSpec(
        allowed_layers=frozenset(allowed),
        formats=tuple(dict.fromkeys(formats)),
        onnx_operators=frozenset(operators) if operators is not None else ONNX_OPERATORS,
    )


def _parse_single_part(reader: _Reader, document: dict[str, Any], title: str, max_score: Any, path: str) -> Part:
    """Coursework 1's layout: the one part's rules at the top of the file."""
    data = _parse_data(_Reader(reader.table("data"), path, "data"))
    evaluation = _parse_evaluation(_Reader(reader.table("evaluation"), path, "evaluation"), data)
    marking_reader = _Reader(reader.table("marking"), path, "marking")
    marking = _parse_marking(marking_reader, reader, document.get("bands"), "bands", max_score)
    architecture = _parse_architecture(reader, data, (), marking)
    return Part(
        name=SINGLE_PART,
        title=title,
        data=data,
        evaluation=evaluation,
        marking=marking,
        marking_title=marking_reader.get("name") or "",
        architecture=architecture,
    )


def _parse_part(reader: _Reader, document: dict[str, Any], entry: dict[str, Any], index: int, path: str) -> Part:
    where = f"parts[{index}]"
    part = _Reader(entry, path, where)
    name = part.get("name")
    if name == SINGLE_PART:
        part.fail("name", f"is {name!r}, the name a file without parts gives its one part: choose another")
    if part.choice("kind", KINDS, "model") == "code":
        return _parse_code_part(part, entry, name, path)
    # A part's own table outranks the file's top-level one of the same name, key by key.
    data_table = {**reader.table("data"), **part.table("data")}
    evaluation_table = {**reader.table("evaluation"), **part.table("evaluation")}
    data = _parse_data(_Reader(data_table, path, f"{where}.data"))
    evaluation = _parse_evaluation(_Reader(evaluation_table, path, f"{where}.evaluation"), data)
    marking_reader = _Reader(part.table("marking"), path, f"{where}.marking")
    marking = _parse_marking(marking_reader, part, entry.get("bands"), "bands", None)
    weight = part.get("weight")
    files = part.get("files") or []
    shapes = part.get("input_shapes") or []
    parsed_shapes = []
    for number, shape in enumerate(shapes):
        if math.prod(shape) != data.values:
            part.fail(
                f"input_shapes[{number}]",
                f"{shape} holds {math.prod(shape)} values but one image of {list(data.image_shape)} holds "
                f"{data.values}",
            )
        parsed_shapes.append(tuple(shape))
    architecture = _parse_architecture(part, data, tuple(parsed_shapes), marking)
    formats = part.get("formats") or []
    for format_name in formats:
        if format_name not in model_formats():
            part.fail("formats", f"holds {format_name!r}; choose from: {', '.join(model_formats())}")
    return Part(
        name=name,
        title=part.get("title") or name,
        data=data,
        evaluation=evaluation,
        marking=marking,
        weight=Fraction(str(weight)) if weight is not None else Fraction(1),
        files=tuple(files),
        input_shapes=tuple(parsed_shapes),
        heldout=part.get("heldout") or "",
        marking_title=marking_reader.get("name") or "",
        architecture=architecture,
        formats=tuple(dict.fromkeys(formats)),
    )


def _parse_code_part(part: _Reader, entry: dict[str, Any], name: str, path: str) -> Part:
    """A code part: [parts.code] (the test module and limits) and its [[parts.questions]]."""
    code = _Reader(part.table("code"), path, f"{part.prefix}.code")
    folder = Path(path).parent
    tests_name = code.get("tests")
    tests = folder / tests_name
    try:
        tests_sha256 = hashlib.sha256(tests.read_bytes()).hexdigest()
    except OSError:
        code.fail("tests", f"names {tests_name!r}, which is not a readable file beside {Path(path).name}")
    template = code.get("template") or ""
    if template and not (folder / template).is_file():
        code.fail("template", f"names {template!r}, which is not a file beside {Path(path).name}")
    step = code.get("step")
    deduction = code.get("loop_deduction")
    defaults = {
        "step": Fraction(str(step)) if step is not None else Question.step,
        "loop_deduction": Fraction(str(deduction)) if deduction is not None else Question.loop_deduction,
    }
    raw = part.get("questions")
    questions = tuple(
        _parse_question(_Reader(item, path, f"{part.prefix}.questions[{n}]"), defaults) for n, item in enumerate(raw)
    )
    seen = [question.name for question in questions]
    if len(set(seen)) != len(seen):
        part.fail("questions", f"names repeat ({', '.join(seen)}): give each question its own name")
    imports = code.get("imports") or []
    spec = CodeSpec(
        tests=str(tests),
        tests_sha256=tests_sha256,
        questions=questions,
        template=str(folder / template) if template else "",
        seed=code.get("seed") or 0,
        call_seconds=float(code.get("call_seconds", CodeSpec.call_seconds)),
        timing_seconds=float(code.get("timing_seconds", CodeSpec.timing_seconds)),
        loop_factor=float(code.get("loop_factor", CodeSpec.loop_factor)),
        imports=tuple(imports),
    )
    formats = part.get("formats") or []
    for format_name in formats:
        if format_name not in code_formats():
            part.fail("formats", f"holds {format_name!r}; a code part takes: {', '.join(code_formats())}")
    files = part.get("files") or []
    weight = part.get("weight")
    return Part(
        name=name,
        title=part.get("title") or name,
        data=DataSpec(),
        evaluation=EvaluationSpec(),
        marking=Points(spec.max_score),
        weight=Fraction(str(weight)) if weight is not None else Fraction(1),
        files=tuple(files),
        formats=tuple(dict.fromkeys(formats)),
        code=spec,
    )


def _parse_question(question: _Reader, defaults: dict[str, Fraction]) -> Question:
    name, functions, points = question.get("name"), question.get("functions"), question.get("points")
    step, deduction = question.get("step"), question.get("loop_deduction")
    return Question(
        name=name,
        title=question.get("title") or name,
        functions=tuple(functions),
        points=Fraction(str(points)),
        rule=question.choice("rule", CODE_RULES, "all"),
        step=Fraction(str(step)) if step is not None else defaults["step"],
        loop_deduction=Fraction(str(deduction)) if deduction is not None else defaults["loop_deduction"],
    )


def _parse_data(data: _Reader) -> DataSpec:
    # No coursework's images are assumed: each file says what its images are.
    for key, example in (("image_shape", "[28, 28] for grey digits, [32, 32, 3] for colour images"), ("classes", "10")):
        if key not in data.values:
            data.fail(key, f"is missing: give it for the part's images (for example {example})")
    defaults = DataSpec()
    shape = tuple(data.get("image_shape"))
    classes = data.get("classes")
    names = data.get("class_names") or []
    if names and len(names) != classes:
        data.fail("class_names", f"must be {classes} names, one per class, in label order")
    scale = data.get("scale")
    channels = shape[2] if len(shape) == 3 else 1
    mean, std = (tuple(float(v) for v in data.get(key, ())) for key in ("mean", "std"))
    if bool(mean) != bool(std):
        given, missing = ("std", "mean") if std else ("mean", "std")
        data.fail(missing, f"is missing: give it with {given}, as PyTorch's Normalize(mean, std) takes both")
    for key, values in (("mean", mean), ("std", std)):
        if values and len(values) != channels:
            data.fail(key, f"needs one number per channel ({channels}), not {len(values)}")
    public = data.get("public") or ""
    pattern = data.get("label_pattern") or ""
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            data.fail("label_pattern", f"is not a regular expression ({error})")
        if compiled.groups < 1:
            data.fail("label_pattern", "needs a group that holds the label, such as '^(?P<label>[0-9])_'")
    return DataSpec(
        label_pattern=pattern,
        resize=bool(data.get("resize", False)),
        image_shape=shape,
        classes=classes,
        class_names=tuple(names),
        scale=scale if scale is not None else defaults.scale,
        mean=mean,
        std=std,
        layout=data.choice("layout", LAYOUTS, defaults.layout),
        public=public,
    )


def _parse_evaluation(evaluation: _Reader, data: DataSpec) -> EvaluationSpec:
    # No coursework's feeding rule is assumed: each file says how its models are fed.
    if "feed" not in evaluation.values:
        evaluation.fail(
            "feed",
            "is missing: 'declared' (the images in the shape each model declares) or 'by-rank' (a test script's "
            "rule: the shape by the model's input rank, given by [[evaluation.by_rank]] tables)",
        )
    defaults = EvaluationSpec()
    feed = evaluation.choice("feed", FEEDS, defaults.feed)
    spec = EvaluationSpec(
        feed=feed,
        input_mode=evaluation.choice("input_mode", INPUT_MODES, defaults.input_mode),
        by_rank=_parse_by_rank(evaluation, data) if feed == "by-rank" else (),
        batch_size=evaluation.get("batch_size", defaults.batch_size),
        time_limit_seconds=float(evaluation.get("time_limit_seconds", defaults.time_limit_seconds)),
        nonfinite_policy=evaluation.choice("nonfinite_policy", POLICIES, defaults.nonfinite_policy),
        output_width_policy=evaluation.choice("output_width_policy", POLICIES, defaults.output_width_policy),
        tie_flag_share=float(evaluation.get("tie_flag_share", defaults.tie_flag_share)),
        name=evaluation.get("name") or defaults.name,
        compiles_on_load=bool(evaluation.get("compiles_on_load", defaults.compiles_on_load)),
        script=bool(evaluation.get("script", defaults.script)),
    )
    if feed != "by-rank" and "by_rank" in evaluation.values:
        evaluation.fail("by_rank", f"is used only with feed = 'by-rank' (this part's feed is {feed!r}): remove it")
    return spec


def _parse_by_rank(evaluation: _Reader, data: DataSpec) -> tuple[RankFeed, ...]:
    """feed = 'by-rank''s steps: [[evaluation.by_rank]] tables of name, rank_above (default 0) and shape."""
    example = "[[evaluation.by_rank]] name = 'CNN', rank_above = 2, shape = [28, 28, 1]"
    raw = evaluation.get("by_rank")
    if not raw:
        evaluation.fail("by_rank", f"is missing: feed = 'by-rank' needs its steps as tables, such as {example}")
    steps = []
    for index, entry in enumerate(raw):
        step = _Reader(entry, evaluation.path, f"{evaluation.prefix}.by_rank[{index}]")
        name, shape = step.get("name"), tuple(step.get("shape"))
        if math.prod(shape) != data.values:
            step.fail(
                "shape",
                f"{list(shape)} holds {math.prod(shape)} values but one image of {list(data.image_shape)} "
                f"holds {data.values}",
            )
        steps.append(RankFeed(name=name, shape=shape, rank_above=step.get("rank_above", 0)))
    return tuple(steps)


def _parse_marking(
    marking: _Reader, owner: _Reader, raw_bands: Any, bands_key: str, max_score: int | float | None
) -> Scheme:
    """A part's marking: [marking] scheme = 'bands' with [[bands]] (the default when bands are given), or
    scheme = 'linear' with min_accuracy, full_accuracy, rounding and step."""
    scheme = marking.choice("scheme", SCHEMES, "bands" if raw_bands is not None or not marking.values else "")
    given_max = marking.get("max_score")
    if given_max is not None:
        max_score = given_max
    if max_score is None:
        marking.fail("max_score", "is missing: give the most this part can score")
    assert max_score is not None
    if max_score <= 0:
        marking.fail("max_score", f"must be positive, not {max_score}")
    if scheme == "bands":
        marking.reject_unknown({"scheme", "max_score", "name"})
        return Bands(_parse_bands(owner, raw_bands, max_score, bands_key), max_score)
    if raw_bands is not None:
        owner.fail(bands_key, f"are for scheme = 'bands'; this part's marking is {scheme}")
    if scheme == "signoff":
        marking.reject_unknown({"scheme", "name", "max_score", "rules"})
        return _parse_signoff(marking, max_score)
    low, high = marking.percent("min_accuracy"), marking.percent("full_accuracy")
    if low >= high:
        marking.fail("full_accuracy", f"must be above min_accuracy ({float(low):g}%)")
    rounding = marking.choice("rounding", ROUNDINGS, "none")
    step_value = marking.get("step")
    step = Fraction(str(step_value)) if step_value is not None else None
    if rounding != "none":
        if step is None or step <= 0:
            marking.fail("step", f"is needed with rounding = {rounding!r}: the score's smallest step, such as 0.5")
        assert step is not None
        if (Fraction(str(max_score)) / step).denominator != 1:
            marking.fail("step", f"must divide max_score ({max_score}) into whole steps")
    elif step is not None:
        marking.fail("step", "needs a rounding ('down', 'up' or 'nearest')")
    marking.reject_unknown({"scheme", "name", "max_score", "min_accuracy", "full_accuracy", "rounding", "step"})
    return Linear(low, high, max_score, rounding, step)


def _parse_signoff(marking: _Reader, max_score: int | float) -> Signoff:
    """[[marking.rules]]: label, score, and optional conditions architecture and min_accuracy; best first,
    the last with no condition."""
    raw = marking.get("rules", required=True)
    rules = []
    for index, entry in enumerate(raw):
        rule = _Reader(entry, marking.path, f"{marking.prefix}.rules[{index}]")
        label = rule.get("label").strip()
        if not label:
            rule.fail("label", "must not be empty")
        score = rule.get("score")
        if not 0 <= score <= max_score:
            rule.fail("score", f"is {score}, outside 0 .. max_score ({max_score})")
        minimum = rule.percent("min_accuracy") if "min_accuracy" in entry else None
        rules.append(
            Rule(
                label=label,
                score=score,
                architecture=rule.choice("architecture", ARCHITECTURE_CONDITIONS, "any"),
                min_accuracy=minimum,
                says=rule.get("says") or "",
            )
        )
    labels = [rule.label for rule in rules]
    if len(set(labels)) != len(labels):
        marking.fail("rules", f"repeat a label ({', '.join(labels)}): give each rule its own")
    last = rules[-1]
    if last.architecture != "any" or last.min_accuracy is not None:
        marking.fail(
            f"rules[{len(rules) - 1}]",
            f"({last.label!r}) must have no condition: it is the label every other marked file gets",
        )
    for better, worse in zip(rules, rules[1:], strict=False):
        if worse.score > better.score:
            marking.fail("rules", f"go best first: {worse.label!r} scores more than {better.label!r} before it")
    if max(rule.score for rule in rules) != max_score:
        marking.fail("max_score", f"is {max_score}, but the best rule scores {max(rule.score for rule in rules)}")
    return Signoff(tuple(rules), max_score)


def _parse_architecture(
    owner: _Reader, data: DataSpec, input_shapes: tuple[tuple[int, ...], ...], marking: Scheme
) -> ArchitectureSpec | None:
    """[architecture] (or [parts.architecture]): policy, document, source, input_shape and [[...layers]],
    each a kind and the settings the coursework asks for."""
    table = owner.table("architecture")
    where = f"{owner.prefix}.architecture" if owner.prefix else "architecture"
    if not table:
        if isinstance(marking, Signoff) and marking.needs_architecture:
            owner.fail(
                "architecture",
                "is missing: the sign-off rules ask about the architecture, so give it as [architecture] with layers",
            )
        return None
    spec = _Reader(table, owner.path, where)
    raw = spec.get("layers")
    layers = tuple(_parse_layer_spec(_Reader(entry, owner.path, f"{where}.layers[{i}]")) for i, entry in enumerate(raw))
    default_shape = input_shapes[0] if input_shapes else (*data.image_shape, *((1,) if data.channels == 1 else ()))
    shape = tuple(spec.get("input_shape", default_shape))
    ignore = spec.get("ignore") or []
    for kind in ignore:
        if kind not in KERAS_LAYERS and kind not in ALIASES:
            spec.fail("ignore", f"holds {kind!r}, not a Keras layer class (such as 'Reshape')")
    return ArchitectureSpec(
        layers=layers,
        policy=spec.choice("policy", ARCHITECTURE_POLICIES, "flag"),
        input_shape=tuple(shape),
        document=spec.get("document") or "the assignment",
        source=spec.get("source") or "",
        ignore=tuple(ignore),
    )


def _parse_layer_spec(layer: _Reader) -> LayerSpec:
    kind = layer.get("kind")
    if kind not in KERAS_LAYERS and kind not in ALIASES:
        layer.fail("kind", f"is {kind!r}, not a Keras layer class (such as 'Conv2D', 'MaxPooling2D', 'Dense')")
    settings: list[tuple[str, Any]] = []
    for key in SETTINGS:
        if key not in layer.values:
            continue
        value = layer.values[key]
        if key in ("kernel_size", "strides", "pool_size") and isinstance(value, list):
            value = tuple(value)
        elif key == "activation":
            value = tuple(name.lower() for name in (value if isinstance(value, list) else [value]))
        settings.append((key, value))
    return LayerSpec(kind=kind, settings=tuple(settings), says=layer.get("says") or "")


def _parse_bands(owner: _Reader, raw: Any, max_score: int | float, key: str) -> tuple[Band, ...]:
    if raw is None:
        owner.fail(key, "is missing: give the mark table as [[bands]] entries with range and score")
    bands = []
    for index, entry in enumerate(raw):
        where = f"{key}[{index}]"
        text, score = entry["range"], entry["score"]
        if not 0 <= score <= max_score:
            owner.fail(f"{where}.score", f"is {score}, outside 0 .. max_score ({max_score})")
        try:
            low, high, low_closed, high_closed = parse_interval(text)
        except ValueError as error:
            owner.fail(f"{where}.range", str(error))
        if low < 0 or high > 100:
            owner.fail(f"{where}.range", f"{text!r} reaches outside 0 .. 100 percent")
        bands.append(Band(low, high, low_closed, high_closed, score, text.strip()))
    bands.sort(key=lambda band: (band.low, not band.low_closed, band.high))
    problem = coverage_problem(bands)
    if problem:
        owner.fail(key, problem)
    return tuple(bands)


class _Reader:
    """One table of a file the schema has validated (grader.courseworks.schema): its values with their defaults,
    and errors that name the file, the key and the fix for what only grader can judge (one key against another,
    a key that several tables fill in)."""

    def __init__(self, table: dict[str, Any], path: str, prefix: str = "") -> None:
        self.values, self.path, self.prefix = table, path, prefix

    def fail(self, key: str, problem: str) -> Any:
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        raise AssignmentError(f"{self.path}: {dotted} {problem}")

    def get(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        if key not in self.values and required:
            self.fail(key, "is missing")
        return self.values.get(key, default)

    def table(self, key: str, *, required: bool = False) -> dict[str, Any]:
        return dict(self.get(key, {}, required=required))

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        """One of `choices` (the schema has checked it is), else `default`; with no default, a required choice."""
        if key not in self.values and not default:
            self.fail(key, f"is missing; choose one of: {', '.join(choices)}")
        return str(self.get(key, default))

    def percent(self, key: str) -> Fraction:
        """A required accuracy in percent, read exactly as written (96.5 is 193/2)."""
        return Fraction(str(self.get(key, required=True)))

    def reject_unknown(self, known: set[str]) -> None:
        """Keys the schema takes that this table, as its other keys make it, does not (a marking's scheme)."""
        for key in self.values:
            if key not in known:
                self.fail(key, f"is not a known key; known keys here: {', '.join(sorted(known))}")
