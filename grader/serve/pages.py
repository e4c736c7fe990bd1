"""The server's HTML: Jinja2 templates in grader/serve/templates, escaped by default (every value shown may
come from a student's file or form)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from grader.checking import outcome_words
from grader.outputs.reports import number
from grader.release import VERSION
from grader.shapes import shape_text

OUTCOME_WORDS = {"pass": "pass", "info": "note", "warn": "warning", "fail": "fail"}

_ENVIRONMENT = Environment(
    loader=PackageLoader("grader.serve", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters["number"] = number
_ENVIRONMENT.filters["thousands"] = lambda value: f"{value:,}"
_ENVIRONMENT.filters["shape"] = shape_text
_ENVIRONMENT.filters["megabytes"] = lambda value: f"{value / 1024**2:,.0f} MB"


def status_words(status: str) -> str:
    """'Would be graded', as `grade check` says it, for a heading."""
    words = outcome_words(status)
    return words[0].upper() + words[1:]


def render(template: str, **context: Any) -> str:
    """A page: `template` with `context`, plus what every page shows."""
    return _ENVIRONMENT.get_template(template).render(
        version=VERSION, outcome_words=OUTCOME_WORDS, status_words=status_words, **context
    )
