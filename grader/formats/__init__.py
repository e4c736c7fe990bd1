"""Model formats: how a file is recognised, inspected without running it, and fed in the worker.

Three formats are graded:
- `keras-h5`: a Keras model saved as HDF5 (`model.save('name.h5')`), read with h5py (grader.formats.keras_h5);
- `keras-zip`: Keras 3's `.keras` zip (config.json, metadata.json, model.weights.h5), its archive checked
  before any member is opened (grader.formats.keras_zip);
- `onnx`: an ONNX graph (torch.onnx.export, tf2onnx, jax2onnx), parsed with the onnx package, never run
  here (grader.formats.onnx).
A file is recognised by its content, not its name: `sniff` reads its first bytes. Each assignment part lists
the formats it accepts (`[screening] formats`); a file of another format is refused with advice. Files that
are pickles (PyTorch's .pt, .pth, .ckpt, .pkl) run code when loaded and are never opened.

Everything here that reads a file runs in the sandboxed inspector child (`python -m grader.inspection`).
"""

from __future__ import annotations

from pathlib import Path

from grader.formats.base import Inspection
from grader.formats.keras_h5 import inspect_h5, read_head

FORMATS = {
    "keras-h5": (".h5",),
    "keras-zip": (".keras",),
    "onnx": (".onnx",),
    "python": (".py",),
    "notebook": (".ipynb",),
}
"Each format and the file-name suffixes (any case) that make a file in a student's folder one to grade."
DEFAULT_FORMATS = ("keras-h5",)
CODE_FORMATS = ("python", "notebook")
"Code a code part takes (grader.evaluation.code): never inspected as a model."
MODEL_FORMATS = tuple(name for name in FORMATS if name not in CODE_FORMATS)
NAMES = {
    "keras-h5": "a Keras .h5 file",
    "keras-zip": "a Keras .keras file",
    "onnx": "an ONNX graph (.onnx)",
    "python": "a Python file (.py)",
    "notebook": "a Jupyter notebook (.ipynb)",
}
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


def suffixes(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The file-name suffixes of these formats."""
    return tuple(suffix for name in formats for suffix in FORMATS[name])


def format_of(file_name: str) -> str | None:
    """The format a file's name says, or None."""
    lowered = file_name.lower()
    return next((name for name, ends in FORMATS.items() if lowered.endswith(ends)), None)


def refusal(file_name: str, formats: tuple[str, ...]) -> str | None:
    """Why a file that is never opened was not graded, with what to hand in instead; None for other files."""
    what = REFUSED_SUFFIXES.get(Path(file_name).suffix.lower())
    if what is None:
        return None
    return f"{file_name} is {what}: it is never opened. Hand in {advice(formats)}"


def advice(formats: tuple[str, ...]) -> str:
    """What to hand in, for these formats."""
    ways = {
        "keras-h5": "a Keras model saved with model.save('model.h5')",
        "keras-zip": "a Keras model saved with model.save('model.keras')",
        "onnx": "an ONNX export (PyTorch: torch.onnx.export(model, example_input, 'model.onnx'))",
        "python": "a .py file with your functions",
        "notebook": "a Jupyter notebook (.ipynb) with them",
    }
    return " or ".join(ways[name] for name in formats)


def sniff(path: Path) -> str:
    """What a file is, from its first bytes: 'hdf5', 'zip', 'onnx' (a protobuf that starts as ONNX's
    ModelProto does), 'pickle', 'safetensors', 'empty', or 'unknown'."""
    head, hdf5 = read_head(path)
    if not head:
        return "empty"
    if hdf5:
        return "hdf5"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30):
        return "safetensors"
    # ONNX's ModelProto begins with ir_version (field 1, varint: 0x08), as every exporter writes it.
    if head[0] == 0x08 and 3 <= head[1] <= 20:
        return "onnx"
    return "unknown"


def inspect_file(path: str | Path) -> Inspection:
    """Inspect a model file of any format, recognised by its content (in the sandboxed inspector child)."""
    path = Path(path)
    kind = sniff(path)
    if kind == "zip":
        from grader.formats.keras_zip import inspect_keras_zip

        return inspect_keras_zip(path)
    if kind == "onnx":
        from grader.formats.onnx import inspect_onnx

        return inspect_onnx(path)
    return inspect_h5(path)
