"""The sandboxed inspector child: `python -m grader.inspection` answers one request per file with what the file's
format reader (grader.formats) found in it, never running it.

A hostile file can crash or stall a C library, so the grading run inspects in this child process, never in the
process that holds the labels.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from grader.formats.base import Inspection
from grader.formats.keras_h5 import _first_line

# Bump when what the inspector reports changes: stored inspections of another revision are read again.
REVISION = 6


def _fingerprint(path: Path, inspection: Inspection) -> dict[str, Any]:
    """The file's weights summarised (grader.formats.fingerprint), or why they could not be."""
    from grader.formats.fingerprint import REVISION as FINGERPRINT_REVISION
    from grader.formats.fingerprint import fingerprint_file

    try:
        return fingerprint_file(path, inspection)
    except Exception as error:  # a file whose weights cannot be read still has its inspection
        return {"revision": FINGERPRINT_REVISION, "skipped": f"the weights could not be read ({_first_line(error)})"}


def main() -> None:
    """Answer inspection requests ({"path": ..., "fingerprint": bool}, one JSON line each on stdin) with one
    JSON line each.

    Run as a child process by the grading run, so that a file that crashes or stalls HDF5 takes only
    this process down: the parent knows which file it was on and carries on with a new child.
    """
    from grader.evaluation.protocol import open_channel

    send = open_channel()  # anything a library prints goes to stderr, never into the protocol
    send({"event": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            from grader.formats import inspect_file

            inspection = inspect_file(request["path"])
            answer: dict[str, Any] = {"ok": True, "inspection": inspection.to_json()}
            if request.get("fingerprint"):
                answer["fingerprint"] = _fingerprint(Path(request["path"]), inspection)
            send(answer)
        except Exception as error:  # a fact about the file, reported, not a crash of the run
            send({"ok": False, "error": _first_line(error)})


if __name__ == "__main__":
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    main()
