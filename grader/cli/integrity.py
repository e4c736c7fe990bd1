"""`grade integrity`: compare a finished run's networks again."""

from __future__ import annotations

from pathlib import Path

import click

from grader import defaults
from grader.cli.base import cli, library_option, part_paths, part_paths_option, reported


@cli.command("integrity")
@click.argument(
    "reports", required=False, default=defaults.OUT, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@library_option
@part_paths_option(
    "heldout",
    "The held-out set the run used, when it has moved since (PART=PATH for each part).",
)
def integrity_command(reports: Path, library: tuple[Path, ...], heldout: tuple[str, ...]) -> None:
    """Compare a finished run's networks again (with other libraries of known models) and write integrity.html
    and integrity.csv. Uses what the run stored: no model runs again (a library folder of new models is graded
    once). Evidence for a person to weigh: marks never change.

    \b
    Example:
        grade integrity reports/ --library known_models/ --library ../2025/reports/
    """
    from grader.cohort import rerun_integrity

    with reported():
        evidence, problems = rerun_integrity(reports, library, part_paths(heldout, "--heldout"))
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{evidence.count} pair(s) with evidence; wrote {reports / 'integrity.html'} and integrity.csv")
    for part, found in evidence.findings.items():
        names = evidence.networks[part]
        for finding in found[:20]:
            click.echo(f"  {part}: {finding.kind}: {names[finding.first].label} ~ {names[finding.second].label}")
