"""`grade plot`: a student's misclassified images."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli.base import cli, reported, reports_option


@cli.command("plot")
@click.argument("student_id")
@reports_option
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("misclassified.pdf"),
    show_default=True,
    help="The figure to write (.pdf or .png).",
)
@click.option(
    "--heldout",
    "-d",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The held-out set the run used, when it has moved since.",
)
@click.option("--part", "-p", default=None, help="The part to draw, for an assignment with parts.")
def plot_command(student_id: str, reports: Path, out: Path, heldout: Path | None, part: str | None) -> None:
    """Draw a student's misclassified images exactly as the coursework's plotting script does (matplotlib).

    \b
    Example:
        grade plot 123456 --out misclassified.pdf
        grade plot 123456 --part cifar10 --out cifar.png
    """
    from grader.outputs.reports import plot_student

    with reported():
        click.echo(plot_student(reports, student_id, out, heldout, part))
