"""MkDocs hooks: the assignment-file reference is generated, when the site is built, from the schema the
validator itself reads (grader/courseworks/assignment.schema.json), so the page and the validator cannot disagree."""

from __future__ import annotations

from typing import Any

from grader.courseworks.schema import reference

MARKER = "<!-- every key: generated from grader/courseworks/assignment.schema.json -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown
