"""Model formats: how a file is recognised, inspected without running it, screened, described, and fed in the
worker. Each format is one module holding one `ModelFormat` (grader.formats.base):

- `keras-h5`: a Keras model saved as HDF5 (`model.save('name.h5')`), read with h5py (grader.formats.keras_h5);
- `keras-zip`: Keras 3's `.keras` zip (config.json, metadata.json, model.weights.h5), its archive checked
  before any member is opened (grader.formats.keras_zip);
- `onnx`: an ONNX graph (torch.onnx.export, tf2onnx, jax2onnx), parsed with the onnx package, never run
  here (grader.formats.onnx);
- `python`, `notebook`: a code part's files (grader.formats.code), run by the code worker.

Formats are found through the entry-point group `grader.formats` (each entry point names a `ModelFormat`
instance; its name is the format's): grader registers its own there, and a course can ship a format in a package
of its own the same way. A file is recognised by its content, not its name; each assignment part lists the formats
it accepts (`[screening] formats`), and a file of another format is refused with advice. Files that are pickles
(PyTorch's .pt, .pth, .ckpt, .pkl) run code when loaded and are never opened.

Everything here that reads a file runs in the sandboxed inspector child (`python -m grader.inspection`).
Nothing outside this package compares a format's name or suffix: it asks the format.
"""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path

from grader.errors import AssignmentError
from grader.formats.base import Inspection, ModelFormat
from grader.formats.keras_h5 import read_head, sniff_format

ENTRY_POINTS = "grader.formats"
BUILT_IN = {
    "keras-h5": "grader.formats.keras_h5:FORMAT",
    "keras-zip": "grader.formats.keras_zip:FORMAT",
    "onnx": "grader.formats.onnx:FORMAT",
    "python": "grader.formats.code:PYTHON",
    "notebook": "grader.formats.code:NOTEBOOK",
}
"grader's own formats, as pyproject.toml registers them (used as they are when grader runs uninstalled)."
# What a file that is never opened is, and what to do instead (by suffix, any case).
REFUSED_SUFFIXES = {
    ".pt": "a PyTorch file, which is a pickle that runs code when it is loaded",
    ".pth": "a PyTorch file, which is a pickle that runs code when it is loaded",
    ".ckpt": "a checkpoint, which is a pickle that runs code when it is loaded",
    ".pkl": "a Python pickle, which runs code when it is loaded",
    ".pickle": "a Python pickle, which runs code when it is loaded",
    ".joblib": "a joblib pickle, which runs code when it is loaded",
    ".safetensors": "weights without the network (safetensors holds tensors, not the model)",
    ".pb": "a TensorFlow SavedModel part (a folder of files, not one model file)",
}


@functools.cache
def registry() -> dict[str, ModelFormat]:
    """Every format, by name: those other packages register first (so that a course's format recognises its files
    before grader's catch-alls do), then grader's own, in the order of BUILT_IN."""
    found: dict[str, ModelFormat] = {}
    points: dict[str, metadata.EntryPoint] = {}
    for point in metadata.entry_points(group=ENTRY_POINTS):
        # A name is one format: a package may not replace grader's own, nor two packages share one.
        if (point.name in BUILT_IN and point.value != BUILT_IN[point.name]) or (
            point.name in points and points[point.name].value != point.value
        ):
            owner = point.dist.name if point.dist is not None else point.value
            raise AssignmentError(
                f"{owner} registers the model format {point.name!r} ({point.value}), a name that is already "
                f"taken ({BUILT_IN.get(point.name) or points[point.name].value}): give its format another name"
            )
        points[point.name] = point
    for name in sorted(set(points) - set(BUILT_IN)):
        found[name] = _loaded(name, points[name])
    for name, target in BUILT_IN.items():
        found[name] = _loaded(name, metadata.EntryPoint(name, target, ENTRY_POINTS))
    return found


def _loaded(name: str, point: metadata.EntryPoint) -> ModelFormat:
    try:
        loaded = point.load()
    except Exception as error:  # a broken plug-in is named, not a traceback from deep inside the run
        raise AssignmentError(f"the model format {name!r} ({point.value}) could not be loaded: {error}") from error
    if not isinstance(loaded, ModelFormat) or loaded.name != name:
        raise AssignmentError(
            f"the entry point {name!r} in group {ENTRY_POINTS} ({point.value}) must name a ModelFormat called {name!r}"
        )
    return loaded


def named(name: str) -> ModelFormat:
    """The format of this name (assignment files have been checked to name only registered ones)."""
    return registry()[name]


def model_formats() -> tuple[str, ...]:
    """The names of the formats a model part can take."""
    return tuple(name for name, found in registry().items() if not found.code)


def code_formats() -> tuple[str, ...]:
    """The names of the formats a code part can take."""
    return tuple(name for name, found in registry().items() if found.code)


def is_code(file_name: str) -> bool:
    """Whether a file's name makes it a code part's file."""
    found = format_of(file_name)
    return found is not None and named(found).code


def suffixes(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The file-name suffixes of these formats."""
    return tuple(suffix for name in formats for suffix in named(name).suffixes)


def all_suffixes() -> tuple[str, ...]:
    """The suffixes of every format."""
    return suffixes(tuple(registry()))


def format_of(file_name: str) -> str | None:
    """The format a file's name says, or None."""
    lowered = file_name.lower()
    return next((name for name, found in registry().items() if lowered.endswith(found.suffixes)), None)


def suffix_of(file_name: str, default: str) -> str:
    """The suffix a staged copy of the file keeps (loaders go by it): its format's first, else `default`'s."""
    found = format_of(file_name) or format_of(default)
    return named(found).suffixes[0] if found else Path(default).suffix


def of_inspection(inspection: Inspection | dict | None) -> ModelFormat | None:
    """The format whose reader produced this inspection (or its stored JSON), if any did."""
    if inspection is None:
        return None
    kind = inspection.get("format") if isinstance(inspection, dict) else inspection.format
    return next((found for found in registry().values() if found.inspected_as and found.inspected_as == kind), None)


def of_file(inspection: Inspection | dict | None, file_name: str, accepted: tuple[str, ...]) -> ModelFormat:
    """A submitted file's format: the one whose reader inspected it, else the one its name says, else the first the
    part accepts."""
    return of_inspection(inspection) or named(format_of(file_name) or accepted[0])


def sole(formats: tuple[str, ...]) -> ModelFormat | None:
    """The part's one format, when it takes exactly one (messages then use its own words)."""
    return named(formats[0]) if len(formats) == 1 else None


def refusal(file_name: str, formats: tuple[str, ...]) -> str | None:
    """Why a file that is never opened was not graded, with what to hand in instead; None for other files."""
    what = REFUSED_SUFFIXES.get(Path(file_name).suffix.lower())
    if what is None:
        return None
    return f"{file_name} is {what}: it is never opened. Hand in {advice(formats)}"


def advice(formats: tuple[str, ...]) -> str:
    """What to hand in, for these formats."""
    return " or ".join(named(name).how for name in formats)


def taken(formats: tuple[str, ...]) -> str:
    """'Keras .h5 or ONNX models': the formats a part takes, in a sentence."""
    return " or ".join(named(name).short for name in formats) + " models"


def recognised(path: str | Path) -> ModelFormat | None:
    """The first model format that recognises the file by its content, or None (an empty file, a pickle)."""
    path = Path(path)
    head, hdf5 = read_head(path)
    if not head:
        return None
    return next((found for found in registry().values() if not found.code and found.recognise(path, head, hdf5)), None)


def inspect_file(path: str | Path) -> Inspection:
    """Inspect a model file of any format, recognised by its content (in the sandboxed inspector child): the format
    that recognises it reads it; a file none recognises is reported by what it looks like."""
    path = Path(path)
    found = recognised(path)
    if found is not None:
        return found.inspect(path)
    return Inspection(path=str(path), size=path.stat().st_size, format=sniff_format(path))
