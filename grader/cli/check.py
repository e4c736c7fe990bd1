"""`grade check`: every check the instructor's run makes, on one file before it is uploaded."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from grader.cli.base import (
    OUTCOME_STYLES,
    assignment_option,
    cli,
    isolation_option,
    part_paths,
    part_paths_option,
    reported,
)
from grader.cli.inspect import print_architecture

EXIT_NOT_GRADED = 3
# How many misclassified images of a folder `grade check` lists (--json lists them all).
MAX_LISTED_IMAGES = 50


@cli.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@part_paths_option(
    "data",
    "Data to measure the model on instead of keras's download of the part's public test set: an .npz "
    "(keras's, or x/y), MNIST IDX files, CIFAR-10's test_batch, or a folder of PNG/JPEG images in one folder "
    "per class (3/mine.png), such as your own handwriting; PART=PATH for an assignment with parts.",
)
@assignment_option
@click.option(
    "--part",
    "-p",
    default=None,
    help="The part of the assignment the file is for (default: by its name, then by its input shape).",
)
@click.option("--reference", is_flag=True, help="Also run Coursework 1's official test script itself and compare.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
@isolation_option
def check_command(
    file: Path,
    data: tuple[str, ...],
    assignment: str | None,
    part: str | None,
    reference: bool,
    as_json: bool,
    isolation: str,
) -> None:
    """Check your model before you upload it: every check the marking run makes, and its accuracy on the
    part's public test set (MNIST, CIFAR-10; the hidden test set usually scores lower).

    \b
    Example:
        grade check my_model_tf213.h5
        grade check model.h5 --data mnist.npz --reference --json
        grade check cifar_model.h5 --assignment uva-lab1 --data cifar10=test_batch
        grade check model.h5 --assignment kit-ex9 --data my_digits/

    Exit codes: 0 the file would be graded; 3 it would not (see the failed checks); 1 the check could not run.
    """
    from grader.checking import check

    with reported():
        result = check(
            file,
            data=part_paths(data, "--data"),
            assignment=assignment,
            part=part,
            reference=reference,
            isolation=isolation,
        )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    elif hasattr(result, "questions"):  # a code file (grader.checking_code.CodeCheck)
        click.echo(str(result))
    else:
        _print_check(result)
    if not result.passed:
        sys.exit(EXIT_NOT_GRADED)


def _print_check(result: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    console = Console()
    part = f" (part {result.part})" if result.part else ""
    table = Table(title=f"{result.file}: checks", title_justify="left")
    for column in ("check", "outcome", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for item in result.checks:
        style = OUTCOME_STYLES[item.outcome]
        table.add_row(item.name, f"[{style}]{item.outcome}[/]", item.message, item.advice)
    console.print(table)
    if result.architecture and result.architecture["status"] != "exact":
        print_architecture(console, result.architecture)
    from grader.checking import outcome_words

    colour = {"graded": "green", "flagged": "yellow"}.get(result.status, "red")
    verdict = f"[{colour}]{escape(outcome_words(result.status))}[/]"
    console.print(f"Status: {verdict}" + (f": {result.reason}" if result.reason else ""))
    if result.accuracy is not None:
        the = "the " if result.public else ""
        console.print(
            f"Accuracy on {the}[bold]{escape(result.dataset)}[/]{escape(part)}: [bold]{result.accuracy!r}%[/] "
            f"({result.correct:,} of {result.total:,}). {escape(result.verdict)} [bold]on "
            f"{'this public set' if result.public else 'these images'}[/], not on the hidden test set"
            + (", whose images come from elsewhere and usually score lower." if result.public else ".")
        )
    for note in result.data_notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")
    if not result.isolation.startswith("bubblewrap"):
        console.print(f"[red]Not isolated:[/] checked without the sandbox ({escape(result.isolation)})")
    if result.images:
        wrong = result.misclassified
        console.print(f"Misclassified: {len(wrong)} of {len(result.images)} images")
        for image in wrong[:MAX_LISTED_IMAGES]:
            console.print(
                f"  {escape(image['name'])}: {escape(image['label'])} predicted as {escape(image['predicted'])}"
            )
        if len(wrong) > MAX_LISTED_IMAGES:
            console.print(f"  ... and {len(wrong) - MAX_LISTED_IMAGES} more (--json lists every image)")
    if result.reference is not None:
        from grader.checking import reference_text

        style = "green" if result.agrees else "red"
        console.print(f"Official script: [{style}]{reference_text(result.reference, result.agrees)}[/]")
    console.print(Panel(result.receipt(), title="receipt: keep it with your upload", expand=False))
