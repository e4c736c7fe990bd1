"""The `grade` command: a thin client of grader's Python API, one module per command.

Each command parses options, calls one function, and renders its result; `base.py` holds the group, the shared
options and the one error handler. Nothing here imports TensorFlow (only the worker does), so `grade --help` is
instant.
"""

from __future__ import annotations

from grader.cli import assignments, check, export, inspect, integrity, plot, run, serve, upgrade
from grader.cli.base import cli

__all__ = ["assignments", "check", "cli", "export", "inspect", "integrity", "main", "plot", "run", "serve", "upgrade"]


def main() -> None:
    """Entry point of the `grade` console script."""
    cli(prog_name="grade")


if __name__ == "__main__":
    main()
