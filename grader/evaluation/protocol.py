"""The child's side of grader's line protocol: one JSON message per line on the stdout it had at start.

Every sandboxed child (the inspector, the TensorFlow worker, the code worker) answers its parent this way.
Whatever a library, a model or a student's code prints afterwards goes to stderr (the child's log), never
into the protocol.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any


def open_channel() -> Callable[[dict[str, Any]], None]:
    """Keep the protocol on a private copy of stdout, point stdout at stderr, and return `send`."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    return send
