"""Keras 3's `.keras` format: a zip of config.json, metadata.json and model.weights.h5 (and, rarely, assets).

The archive is checked from its central directory before any member is opened: how many entries, each one's
and the total uncompressed size, the compression ratio (a zip bomb expands a few kilobytes into gigabytes),
the names (no absolute path, no '..', no link, nothing but the members Keras writes). Only then are
config.json and metadata.json read (bounded), and model.weights.h5 given the same HDF5 screening as an .h5
file, from memory. A zip that is a PyTorch checkpoint (archive/data.pkl) is said to be one, and not opened.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from grader.formats.base import FAIL, PASS, Check, Inspection, Screening
from grader.formats.keras_config import KerasFormat
from grader.formats.keras_h5 import MAX_CONFIG_DEPTH, json_depth, read_config_text, walk_storage

MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 1024**3
MAX_RATIO = 200
"A member may expand to at most this many times its compressed size (weights compress about 1.1x)."
MAX_JSON_BYTES = 16 * 1024 * 1024
KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
"What `model.save('name.keras')` writes; an `assets/` folder may hold files some layers need."


def inspect_keras_zip(path: Path) -> Inspection:
    """Facts about a .keras file, read without building anything."""
    size = path.stat().st_size
    base: dict[str, Any] = {"path": str(path), "size": size, "format": "keras-zip"}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return Inspection(**{**base, "format": "zip", "open_error": f"not a readable zip ({error})"})
    with archive:
        members, problems = _members(archive)
        base["members"] = tuple(members)
        names = {member["name"] for member in members}
        if "archive/data.pkl" in names or any(name.endswith("/data.pkl") for name in names):
            problems.append("it is a PyTorch checkpoint (a zip holding data.pkl, a pickle that runs code when loaded)")
        elif not {"config.json", "model.weights.h5"} <= names:
            problems.append(
                f"it is a zip, but not a Keras model: it holds {', '.join(sorted(names)[:5]) or 'nothing'}"
                + ("" if len(names) <= 5 else ", ...")
            )
        if problems:
            return Inspection(**{**base, "archive_problems": tuple(problems)})
        facts: dict[str, Any] = {**base, "readable": True}
        metadata = _json(archive, "metadata.json") if "metadata.json" in names else {}
        if isinstance(metadata, dict):
            version = metadata.get("keras_version")
            facts["keras_version"] = version if isinstance(version, str) else None
        declared = next(member["size"] for member in members if member["name"] == "config.json")
        config = archive.read("config.json") if declared <= MAX_JSON_BYTES else b""
        if declared > MAX_JSON_BYTES or len(config) > MAX_JSON_BYTES:
            facts["config_error"] = f"config.json is {declared:,} bytes (limit {MAX_JSON_BYTES:,})"
        else:
            facts["has_model_config"] = True
            text = config.decode("utf-8", errors="replace")
            document = _json_text(text)
            if isinstance(document, dict) and "compile_config" in document:
                # The training setup (optimizer, loss, metrics) is only read by load_model(compile=True);
                # grader loads with compile=False, so what it names is never built and is left out here.
                facts["has_training_config"] = True
                text = json.dumps({key: value for key, value in document.items() if key != "compile_config"})
            facts.update(read_config_text(text))
        weights = archive.read("model.weights.h5")
    import h5py

    try:
        handle = h5py.File(io.BytesIO(weights), "r")
    except OSError as error:
        return Inspection(**{**facts, "open_error": f"model.weights.h5 is not readable HDF5 ({error})"})
    with handle:
        facts.update(walk_storage(handle))
    return Inspection(**facts)


def _members(archive: zipfile.ZipFile) -> tuple[list[dict[str, Any]], list[str]]:
    """Each entry of the central directory, and what is wrong with the archive as a whole."""
    infos = archive.infolist()
    problems: list[str] = []
    if len(infos) > MAX_MEMBERS:
        problems.append(f"it holds {len(infos):,} entries (Keras writes 3; limit {MAX_MEMBERS})")
        infos = infos[:MAX_MEMBERS]
    members = []
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        link = (info.external_attr >> 16) & 0o170000 == 0o120000
        members.append({"name": name, "size": info.file_size, "compressed": info.compress_size, "link": link})
        total += info.file_size
        if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0] or name.startswith(("/", "\\")):
            problems.append(f"member {name!r} names a path outside the archive")
        elif link:
            problems.append(f"member {name!r} is a symbolic link")
        elif name not in KERAS_MEMBERS and not name.startswith("assets/") and not info.is_dir():
            problems.append(f"member {name!r} is not one Keras writes (config.json, metadata.json, model.weights.h5)")
        if info.file_size > MAX_MEMBER_BYTES:
            problems.append(f"member {name!r} expands to {info.file_size:,} bytes (limit {MAX_MEMBER_BYTES:,})")
        elif info.compress_size and info.file_size > MAX_RATIO * info.compress_size and info.file_size > 1024**2:
            problems.append(
                f"member {name!r} expands {info.file_size // max(info.compress_size, 1):,} times "
                f"({info.compress_size:,} to {info.file_size:,} bytes): a zip bomb"
            )
    if total > MAX_MEMBER_BYTES:
        problems.append(f"its members expand to {total:,} bytes in all (limit {MAX_MEMBER_BYTES:,})")
    return members, problems


def _json(archive: zipfile.ZipFile, name: str) -> Any:
    if archive.getinfo(name).file_size > MAX_JSON_BYTES:
        return {}
    data = archive.read(name)
    if len(data) > MAX_JSON_BYTES:
        return {}
    return _json_text(data.decode("utf-8", errors="replace"))


def _json_text(text: str) -> Any:
    """Parsed JSON, or None for text that is not JSON or nests deeper than a config may (read_config_text
    then says why)."""
    if json_depth(text) > MAX_CONFIG_DEPTH:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


class KerasZip(KerasFormat):
    """`keras-zip`: Keras 3's `.keras` zip (config.json, metadata.json, model.weights.h5)."""

    name = "keras-zip"
    suffixes = (".keras",)
    described = "a Keras .keras zip"
    short = "Keras .keras"
    how = "a Keras model saved with model.save('model.keras')"
    inspected_as = "keras-zip"
    save_again = "save the model again with model.save('model.keras')"

    def recognise(self, path: Path, head: bytes, hdf5: bool) -> bool:
        # Any zip: a zipped folder or .h5 is reported by what the archive holds.
        return head.startswith(b"PK\x03\x04")

    def inspect(self, path: Path) -> Inspection:
        return inspect_keras_zip(path)

    def container_check(self, inspection: Inspection, screening: Screening) -> Check:
        """A .keras zip's central directory: what it holds, before any member was opened."""
        fix = "save the model again with model.save('model.keras') and upload that file unchanged"
        if inspection.open_error:
            return Check("archive", FAIL, inspection.open_error, fix)
        if inspection.archive_problems:
            return Check("archive", FAIL, "; ".join(inspection.archive_problems[:3]), fix)
        members = ", ".join(f"{m['name']} ({m['size']:,} bytes)" for m in inspection.members)
        return Check("archive", PASS, f"a Keras zip: {members}")


FORMAT = KerasZip()
