"""`grade export`: marks in a form a learning platform imports."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli.base import cli, reported, reports_option


@cli.command("export")
@click.argument(
    "fmt",
    metavar="FORMAT",
    type=click.Choice(
        ["csv", "moodle", "moodle-worksheet", "canvas", "feedback-zip", "brightspace", "ilias-status", "ilias-feedback"]
    ),
)
@reports_option
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write.")
@click.option(
    "--roster",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="moodle: the grading worksheet or participants export; moodle-worksheet: the downloaded "
    "worksheet to fill in (optional); canvas: the gradebook export; brightspace: the classlist export; "
    "ilias-status, ilias-feedback: the assignment's status file downloaded from ILIAS, as CSV (optional).",
)
@click.option(
    "--identifier",
    type=click.Choice(["email", "idnumber"]),
    default="email",
    show_default=True,
    help="moodle: the column Moodle identifies users by.",
)
@click.option("--item", help="moodle, brightspace: the grade item's name (default: the assignment's title).")
@click.option("--column", help="canvas: the assignment's column as Canvas writes it, 'Title (id)'.")
@click.option(
    "--ungraded",
    type=click.Choice(["skip", "zero"]),
    default="skip",
    show_default=True,
    help="Students without a mark: leave them out, or give them 0 (the last label, under --grade-as label).",
)
@click.option(
    "--grade-as",
    type=click.Choice(["score", "label"]),
    default="score",
    show_default=True,
    help="What the grade column holds: the score, or a sign-off assignment's label (S+, S) for a Moodle "
    "scale or a Canvas letter-grade or complete/incomplete assignment.",
)
def export_command(
    fmt: str,
    reports: Path,
    out: Path,
    roster: Path | None,
    identifier: str,
    item: str | None,
    column: str | None,
    ungraded: str,
    grade_as: str,
) -> None:
    """Write marks in a format Moodle, Canvas, Brightspace or ILIAS imports, checked against the importer's
    rules first.

    \b
    Examples:
        grade export moodle-worksheet --roster worksheet.csv --out upload.csv
        grade export moodle --roster worksheet.csv --identifier email --out grades.csv
        grade export canvas --roster gradebook.csv --column "Coursework 1 (4321)" --out canvas.csv
        grade export feedback-zip --out feedback.zip
        grade export brightspace --roster classlist.csv --item "Assignment 4" --out grades.csv
        grade export ilias-status --roster status.csv --out status.csv
        grade export ilias-feedback --out multi_feedback.zip
        grade export moodle-worksheet --grade-as label --out signoff.csv
    """
    from grader.outputs.exports import export

    with reported():
        click.echo(
            export(
                fmt,
                reports=reports,
                out=out,
                roster=roster,
                identifier=identifier,
                item=item,
                column=column,
                ungraded=ungraded,
                grade_as=grade_as,
            )
        )
