"""`grade run` (and `grade PATH`): grade a cohort, printing progress and a summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from grader import defaults
from grader.cli.base import (
    EXIT_INTERRUPTED,
    FULL_TABLE_ROWS,
    assignment_option,
    cli,
    isolation_option,
    library_option,
    memory_limit_option,
    part_paths,
    part_paths_option,
    reported,
    time_limit_option,
)
from grader.errors import GraderError


@cli.command("run")
@click.argument("submissions", type=click.Path(exists=True, path_type=Path))
@part_paths_option(
    "heldout",
    f"Held-out set: an .npz (x/y or x_test/y_test), MNIST IDX files, CIFAR-10's test_batch, or a folder "
    f"with one of them. For an assignment with parts, PART=PATH, once per part. Default: {defaults.HELDOUT}/ "
    f"({defaults.HELDOUT}/PART/ for each part).",
)
@assignment_option
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.OUT,
    show_default=True,
    help="Folder for marks.csv, reports and the gradebook.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 64),
    default=None,
    help=f"Warm TensorFlow workers in parallel. Default: {defaults.WORKERS}.",
)
@isolation_option
@time_limit_option
@memory_limit_option
@click.option("--fresh-workers", is_flag=True, help="Start a new worker for every submission (slower).")
@click.option(
    "--allow-lambda",
    is_flag=True,
    help="Grade models with Lambda or TFOpLambda layers (their code then runs, inside the sandbox only).",
)
@click.option(
    "--rehash",
    is_flag=True,
    help="Read and hash every file again, even those whose size, times and inode are unchanged.",
)
@library_option
@click.option(
    "--no-integrity", is_flag=True, help="Skip comparing the networks with each other (integrity.html, integrity.csv)."
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Evaluate on a Dask cluster: a scheduler's address (tls://host:8786), or local:N to start N workers "
    "here. Labels, the gradebook and the reports stay in this process.",
)
@click.option(
    "--tls-ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="tls:// cluster: the course CA's certificate (default: Dask's distributed.comm.tls.ca-file).",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="tls:// cluster: this machine's certificate."
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="tls:// cluster: its private key.")
@click.option(
    "--cluster-insecure",
    is_flag=True,
    help="Allow a plain tcp:// scheduler off this machine (no encryption, no authentication; the run records it).",
)
def run_command(
    submissions: Path,
    heldout: tuple[str, ...],
    assignment: str | None,
    out: Path,
    workers: int | None,
    isolation: str,
    time_limit: float | None,
    memory_limit: float,
    fresh_workers: bool,
    allow_lambda: bool,
    rehash: bool,
    library: tuple[Path, ...],
    no_integrity: bool,
    cluster: str | None,
    tls_ca_file: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    cluster_insecure: bool,
) -> None:
    """Grade every student in SUBMISSIONS and write marks.csv and reports.

    \b
    Examples:
        grade submissions/ --heldout heldout/ --out reports/
        grade submissions/ --assignment uva-lab1 --heldout mnist=mnist_test.npz --heldout cifar10=test_batch
        grade submissions/ --cluster tls://scheduler.example.ac.uk:8786 --tls-ca-file ca.pem \\
            --tls-cert coordinator.pem --tls-key coordinator.key
    """
    from rich.console import Console

    from grader.cohort import grade_cohort

    console = Console(stderr=True)
    progress = _RichProgress(console)
    try:
        with reported():
            security = None
            if tls_ca_file or tls_cert or tls_key:
                if not (cluster or "").startswith("tls://"):
                    raise GraderError("--tls-ca-file, --tls-cert and --tls-key are for a --cluster tls://... address")
                from grader.evaluation.cluster import tls_security

                security = tls_security(tls_ca_file, tls_cert, tls_key)
            with progress:
                summary = grade_cohort(
                    submissions,
                    assignment=assignment,
                    heldout=part_paths(heldout, "--heldout") or defaults.HELDOUT,
                    out=out,
                    isolation=isolation,
                    workers=workers,
                    fresh_workers=fresh_workers,
                    allow_lambda=allow_lambda,
                    time_limit=time_limit,
                    memory_limit_gb=memory_limit,
                    progress=progress,
                    rehash=rehash,
                    integrity=not no_integrity,
                    libraries=library,
                    cluster=cluster,
                    cluster_security=security,
                    cluster_insecure=cluster_insecure,
                )
    except KeyboardInterrupt:
        click.echo(
            "Interrupted. Every result finished so far is kept in the gradebook: run the same command again to resume.",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    _print_summary(summary)


def _print_summary(summary: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from grader.outputs.reports import label_of, number
    from grader.outputs.reports import unsandboxed as unsandboxed_row

    console = Console()
    # A long cohort lists only the students who need a look; marks.csv and index.html hold everyone.
    shown = (
        summary.rows
        if len(summary.rows) <= FULL_TABLE_ROWS
        else [row for row in summary.rows if row["status"] != "graded"]
    )
    title = (
        f"Marks ({len(summary.rows)} students)"
        if shown is summary.rows
        else f"Students who need a look ({len(shown)} of {len(summary.rows)}; the rest are graded)"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("student", no_wrap=True)
    table.add_column("name")
    table.add_column("status", no_wrap=True)
    # Several parts: each part's accuracy, then the total; one part: its accuracy and score.
    parts = list(summary.rows[0]["parts"]) if summary.rows and "parts" in summary.rows[0] else []
    for name in parts or ["accuracy"]:
        heading = f"{name} points" if name in summary.code_parts else f"{name} %"
        table.add_column(heading if parts else "accuracy %", justify="right", no_wrap=True)
    table.add_column("total" if parts else "score", justify="right", no_wrap=True)
    signed = not parts and any(label_of(row) for row in summary.rows)
    if signed:
        table.add_column("label", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for row in shown:
        style = {"graded": "green", "flagged": "yellow"}.get(row["status"], "red")
        accuracies = [row["parts"][name] for name in parts] if parts else [row]
        cells = [
            f"{one['accuracy']:.2f}"
            if one and one["accuracy"] is not None
            else number(one["score"])
            if one and one["part"] in summary.code_parts
            else ""
            for one in accuracies
        ]
        table.add_row(
            escape(row["student_id"]),
            escape(row["student_name"]),
            f"[{style}]{row['status']}[/]",
            *cells,
            number(row["score"]),
            *([escape(label_of(row))] if signed else []),
            escape(row["reason"]),
        )
    if shown:
        console.print(table)
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items())
    console.print(
        f"{counts}. Evaluated {summary.evaluated} (workers started: {summary.workers_started}), "
        f"reused {summary.reused} stored evaluations, in {summary.seconds:.1f} s. "
        f"Isolation: {summary.isolation.kind}."
    )
    unsandboxed = sum(1 for row in summary.rows if unsandboxed_row(row))
    if unsandboxed:
        console.print(
            f"[red]Not isolated: {unsandboxed} of {len(summary.rows)} students' files were handled without the "
            f"sandbox ({escape(summary.isolation.detail)}); marks.csv's isolation column names them.[/]",
            highlight=False,
        )
    console.print(
        f"Marks: {summary.marks_csv}  Summary: {summary.out / 'index.html'}  "
        f"Reports: {summary.out}/<student_id>/report.html"
    )
    for problem in summary.problems:
        console.print(f"[yellow]Not written: {escape(problem)}[/]", highlight=False)


class _RichProgress:
    """A progress bar with count and ETA on stderr."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.bar = Progress(
            TextColumn("[bold]grading"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, total: int) -> None:
        self.task = self.bar.add_task("grading", total=total, last="")

    def advance(self, student_id: str, status: str) -> None:
        self.bar.update(self.task, advance=1, last=f"{student_id}: {status}")

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]{message}[/]")
