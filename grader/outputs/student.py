"""Who a report is about: the student and the file they handed in, with which every part's report begins."""

from __future__ import annotations

from typing import Any


def whose(row: dict[str, Any]) -> dict[str, Any]:
    """A report's 'student' and 'file': who handed in what (every part's report begins with them)."""
    detail = row["detail"]
    return {
        "student": {"id": row["student_id"], "name": row["student_name"], "folder": row["folder"]},
        "file": {
            "name": row["file"],
            "sha256": row["sha256"],
            "size": detail.get("size"),
            "all_files": detail.get("files", []),
        },
    }
