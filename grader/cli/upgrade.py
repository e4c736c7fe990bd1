"""`grade upgrade`: bring an older run's gradebook up to date."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli.base import cli, fail, reported


@cli.command("upgrade")
@click.argument("reports", type=click.Path(exists=True, file_okay=False, path_type=Path))
def upgrade_command(reports: Path) -> None:
    """Bring the gradebook in REPORTS, written by an older grader, up to this grader's schema (nothing is lost).
    Readers (export, integrity, plot, read_results) never change a gradebook; a run with --out REPORTS upgrades
    it too.

    \b
    Example:
        grade upgrade reports/
    """
    from grader.gradebook import FILE_NAME, SCHEMA_VERSION, Gradebook

    if not (reports / FILE_NAME).is_file():
        raise fail(f"{reports}: no gradebook here; pass the output folder of a grade run")
    with reported(), Gradebook(reports):
        pass
    click.echo(f"{reports / FILE_NAME}: schema {SCHEMA_VERSION}")
