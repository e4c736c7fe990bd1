"""The reference runs' results (the official script, each seed's own evaluation), kept by content.

A reference is a pure function of what it reads: the runner's code, the script, the model file or folder,
the held-out set and the versions of the libraries that run it. Each job's result is kept under
.pytest_cache/grader-references, named by the sha256 of all of those (files by their bytes, never by their
paths); a later run, or another xdist process, that asks for the same job reads it instead of starting
TensorFlow again. The jobs not kept yet run in one child, as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

KEPT = Path(__file__).resolve().parents[1] / ".pytest_cache" / "grader-references"
PACKAGES = ("numpy", "tensorflow", "keras", "tf_keras", "h5py", "onnxruntime", "pillow")


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def contents(folder: Path, *, leave_out: str = "") -> dict[str, str]:
    """Each file's sha256 under `folder`, by its path inside it (files named `leave_out` left out)."""
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != leave_out
    }


def content(path: Path) -> str:
    """A file's sha256, or a folder's: the sha256 of each file's path inside it and its sha256."""
    return file_sha256(path) if path.is_file() else hashlib.sha256(json.dumps(contents(path)).encode()).hexdigest()


def versions(packages: tuple[str, ...] = PACKAGES) -> str:
    """The versions of these packages (or 'absent'), then Python's, as one string."""
    found = []
    for package in packages:
        try:
            found.append(f"{package} {version(package)};")
        except PackageNotFoundError:
            found.append(f"{package} absent;")
    return "".join(found) + sys.version


def remembered(
    kind: str, jobs: list[Any], describe: Callable[[Any], Any], run: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    """Each job's result, in order: kept ones read, the others run together by `run` (one child) and kept.

    `describe(job)` gives everything the job's result depends on besides the versions (its files by content,
    the runner's code); two jobs described alike must give the same result."""
    found = versions()
    keys = []
    for job in jobs:
        text = json.dumps({"kind": kind, "job": describe(job), "versions": found}, sort_keys=True)
        keys.append(hashlib.sha256(text.encode()).hexdigest())
    results: dict[str, Any] = {}
    for key in keys:
        kept = KEPT / f"{key}.json"
        if kept.is_file():
            results[key] = json.loads(kept.read_text())["result"]
    missing = [(key, job) for key, job in zip(keys, jobs, strict=True) if key not in results]
    if missing:
        for (key, _), result in zip(missing, run([job for _, job in missing]), strict=True):
            results[key] = result
            KEPT.mkdir(parents=True, exist_ok=True)
            partial = KEPT / f"{key}.{os.getpid()}.partial"
            partial.write_text(json.dumps({"kind": kind, "result": result}))
            partial.replace(KEPT / f"{key}.json")  # whole or absent, whichever process writes it
    return [results[key] for key in keys]
