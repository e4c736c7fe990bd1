"""The `grade` command: a thin client of grader's Python API.

Each command parses options, calls one function, and renders its result. Nothing here imports
TensorFlow (only the worker does), so `grade --help` is instant.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from grader import defaults
from grader.errors import GraderError, WorkerError
from grader.evaluation.sandbox import ISOLATIONS
from grader.release import VERSION

EXIT_OK = 0
EXIT_CANNOT_RUN = 1
EXIT_INTERRUPTED = 130
FULL_TABLE_ROWS = 60


class _DefaultToRun(click.Group):
    """`grade PATH` means `grade run PATH`: a path is not a command name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def part_paths(values: tuple[str, ...], option: str) -> Path | dict[str, Path] | None:
    """Repeated `--heldout`/`--data` values: one PATH, or PART=PATH for each part (None when none given)."""
    if not values:
        return None
    named: dict[str, Path] = {}
    plain: list[Path] = []
    for value in values:
        name, separator, path = value.partition("=")
        if separator and name.isidentifier() and name.islower():
            named[name] = Path(path)
        else:
            plain.append(Path(value))
    if plain and (named or len(plain) > 1):
        raise click.BadParameter(
            f"give one PATH, or PART=PATH for each part, not {', '.join(values)}", param_hint=option
        )
    return plain[0] if plain else named


class _CannotRun(click.ClickException):
    "The command could not do its work (printed as one line, exit code 1)"

    exit_code = EXIT_CANNOT_RUN


def _fail(error: Exception | str) -> click.ClickException:
    return _CannotRun(str(error))


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """grader's own errors as the command's one-line message (exit 1), and a sandboxed child that cannot run said
    so: every command reports them the same way."""
    try:
        yield
    except GraderError as error:
        raise _fail(error) from None
    except WorkerError as error:
        raise _fail(f"cannot run a sandboxed child process: {error}") from None


# Options several commands share, each defined once.
assignment_option = click.option(
    "--assignment",
    "-a",
    metavar="FILE|NAME",
    default=None,
    help="Assignment rules (TOML). Default: the built-in Coursework 1 (kcl-dnn-cw1).",
)
isolation_option = click.option(
    "--isolation",
    type=click.Choice(ISOLATIONS),
    default=defaults.ISOLATION,
    show_default=True,
    help="Sandbox for workers: bubblewrap when it works, else a plain subprocess (the run says so).",
)
reports_option = click.option(
    "--reports",
    "-r",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.OUT,
    show_default=True,
    help="The output folder of a grade run.",
)
library_option = click.option(
    "--library",
    "-l",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of known models (downloaded networks, last year's submissions) or an earlier run's reports, "
    "each network is compared with (repeatable). A folder of models is graded once and kept under library/.",
)
time_limit_option = click.option(
    "--time-limit",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Per-submission limit to load and predict. Default: the assignment's time_limit_seconds.",
)
memory_limit_option = click.option(
    "--memory-limit",
    type=click.FloatRange(min=0.5),
    default=defaults.MEMORY_LIMIT_GB,
    show_default=True,
    metavar="GB",
    help="Memory one worker may use; a model over it is stopped (over_limit).",
)

# How `grade inspect` and `grade check` colour a check's outcome.
OUTCOME_STYLES = {"pass": "green", "info": "blue", "warn": "yellow", "fail": "red"}


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="grader")
def cli() -> None:
    """Grade deep-learning coursework (trained models, and code) safely, exactly and fast.

    \b
    Grade a cohort (a folder of student folders, or Moodle's zip):
        grade submissions/
        grade submissions.zip --heldout my_testset.npz --out marks/
        grade submissions/ --assignment uva-lab1 --cluster local:2
    Check one file before uploading it (a model, or code for a code part):
        grade check model.h5
        grade check functions.py --assignment uva-lab1
    Look inside one file without running it:
        grade inspect model.h5
    """


@cli.command("run")
@click.argument("submissions", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--heldout",
    "-d",
    "heldout",
    multiple=True,
    metavar="[PART=]PATH",
    help=f"Held-out set: an .npz (x/y or x_test/y_test), MNIST IDX files, CIFAR-10's test_batch, or a folder "
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
        with _reported():
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


@cli.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@assignment_option
@click.option("--json", "as_json", is_flag=True, help="Print the inspection as JSON.")
def inspect_command(file: Path, assignment: str | None, as_json: bool) -> None:
    """Show what a model file (.h5, .keras or .onnx) holds, read without running anything in it.

    \b
    Example:
        grade inspect submissions/Alice*/model.h5
    """
    from grader.checking import inspect_one
    from grader.courseworks.assignment import load_assignment

    with _reported():
        rules = load_assignment(assignment)
        inspection, checks = inspect_one(file, rules)
    if as_json:
        click.echo(json.dumps({"inspection": inspection, "checks": [c.to_json() for c in checks]}, indent=2))
        return
    _print_inspection(file, inspection, checks)
    spec = rules.parts[0].architecture if rules.single else None
    if inspection and spec is not None:
        from rich.console import Console

        from grader.checks.architecture_spec import compare

        _print_architecture(Console(), compare(inspection.get("layer_table") or (), spec).to_json())


def _print_inspection(file: Path, inspection: dict[str, Any] | None, checks: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    facts = Table(title=str(file), show_header=False, title_justify="left")
    facts.add_column("fact", style="bold")
    facts.add_column("value", overflow="fold")
    if inspection:
        for key, label in (
            ("size", "size (bytes)"),
            ("format", "format"),
            ("keras_version", "keras_version"),
            ("backend", "backend"),
            ("model_class", "model class"),
            ("input_shape", "input shape"),
            ("output_units", "output units"),
            ("parameter_count", "parameters (stored weights)"),
            ("layer_classes", "layer classes"),
            ("producer", "exported by"),
            ("opsets", "operator sets"),
        ):
            value = inspection.get(key)
            if isinstance(value, list | tuple):
                value = ", ".join(map(str, value)) if key == "layer_classes" else str(list(value))
            facts.add_row(label, "" if value is None else f"{value:,}" if isinstance(value, int) else str(value))
        lambdas = [layer["path"] for layer in inspection.get("layers", []) if layer["class_name"] == "Lambda"]
        facts.add_row("Lambda layers", ", ".join(lambdas) or "none")
    console.print(facts)
    if inspection and inspection.get("layer_table"):
        _print_parameters(console, inspection)
    table = Table(title="checks", title_justify="left")
    for column in ("check", "outcome", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for check in checks:
        style = OUTCOME_STYLES[check.outcome]
        table.add_row(check.name, f"[{style}]{check.outcome}[/]", check.message, check.advice)
    console.print(table)


def _print_architecture(console: Any, comparison: dict[str, Any]) -> None:
    """The layers the coursework asks for against the model's, each difference with what to change."""
    from rich.table import Table

    from grader.shapes import shape_text

    table = Table(title=f"architecture: against {comparison['document']}'s, layer by layer", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("the model has", overflow="fold")
    table.add_column(f"{comparison['document']} asks for", overflow="fold")
    table.add_column("output shape (expected / found)", overflow="fold")
    table.add_column("what to change", overflow="fold", ratio=2)
    for row in comparison["rows"]:
        style = "" if row["outcome"] == "match" else "yellow"
        table.add_row(
            str(row["number"]) if row["number"] is not None else "-",
            row["found"] or "(none)",
            row["expected"] or "(nothing)",
            f"{shape_text(row['expected_shape'])} / {shape_text(row['found_shape'])}",
            "; ".join(row["problems"]) or "as asked",
            style=style,
        )
    console.print(table)


def _print_parameters(console: Any, inspection: dict[str, Any]) -> None:
    """Each layer's parameter count and the formula behind it, with the totals and the stored weights."""
    from rich.table import Table

    from grader.architecture import explain_inspection
    from grader.shapes import shape_text

    explained = explain_inspection(inspection)
    assert explained is not None
    table = Table(title="parameters, layer by layer (from the config)", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("layer (class)", overflow="fold")
    table.add_column("output shape")
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("how", overflow="fold", ratio=2)
    for row in explained["layers"]:
        shown = shape_text(row["output_shape"])
        count = f"{row['parameters']:,}" if row["parameters"] is not None else "?"
        how = row["formula"] if row["parameters"] else ""
        table.add_row(str(row["number"]), f"{row['name']} ({row['class_name']})", shown, count, how)
    console.print(table)
    console.print(explained["sentence"])


EXIT_NOT_GRADED = 3
# How many misclassified images of a folder `grade check` lists (--json lists them all).
MAX_LISTED_IMAGES = 50


@cli.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "-d",
    "data",
    multiple=True,
    metavar="[PART=]PATH",
    help="Data to measure the model on instead of keras's download of the part's public test set: an .npz "
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

    with _reported():
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
        _print_architecture(console, result.architecture)
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


@cli.command("integrity")
@click.argument(
    "reports", required=False, default=defaults.OUT, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@library_option
@click.option(
    "--heldout",
    "-d",
    "heldout",
    multiple=True,
    metavar="[PART=]PATH",
    help="The held-out set the run used, when it has moved since (PART=PATH for each part).",
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

    with _reported():
        evidence, problems = rerun_integrity(reports, library, part_paths(heldout, "--heldout"))
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{evidence.count} pair(s) with evidence; wrote {reports / 'integrity.html'} and integrity.csv")
    for part, found in evidence.findings.items():
        names = evidence.networks[part]
        for finding in found[:20]:
            click.echo(f"  {part}: {finding.kind}: {names[finding.first].label} ~ {names[finding.second].label}")


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

    with _reported():
        click.echo(plot_student(reports, student_id, out, heldout, part))


@cli.command("export")
@click.argument(
    "fmt", metavar="FORMAT", type=click.Choice(["csv", "moodle", "moodle-worksheet", "canvas", "feedback-zip"])
)
@reports_option
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The file to write.")
@click.option(
    "--roster",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="moodle: the grading worksheet or participants export; moodle-worksheet: the downloaded "
    "worksheet to fill in (optional); canvas: the gradebook export.",
)
@click.option(
    "--identifier",
    type=click.Choice(["email", "idnumber"]),
    default="email",
    show_default=True,
    help="moodle: the column Moodle identifies users by.",
)
@click.option("--item", help="moodle: the grade item's column title (default: the assignment's title).")
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
    """Write marks in a format Moodle or Canvas imports, checked against the importer's rules first.

    \b
    Examples:
        grade export moodle-worksheet --roster worksheet.csv --out upload.csv
        grade export moodle --roster worksheet.csv --identifier email --out grades.csv
        grade export canvas --roster gradebook.csv --column "Coursework 1 (4321)" --out canvas.csv
        grade export feedback-zip --out feedback.zip
        grade export moodle-worksheet --grade-as label --out signoff.csv
    """
    from grader.outputs.exports import export

    with _reported():
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
        raise _fail(f"{reports}: no gradebook here; pass the output folder of a grade run")
    with _reported(), Gradebook(reports):
        pass
    click.echo(f"{reports / FILE_NAME}: schema {SCHEMA_VERSION}")


@cli.command("assignments")
def assignments_command() -> None:
    """List the assignment files grader ships and installed packages register, with what each one grades and
    where it came from.

    \b
    Example:
        grade assignments
        grade submissions/ --assignment uva-lab1
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from grader.courseworks.assignment import load_assignment
    from grader.courseworks.catalogue import catalogue

    table = Table(title="assignments (pass one with --assignment NAME)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("parts")
    table.add_column("description", overflow="fold", ratio=1)
    table.add_column("from")
    with _reported():
        found = catalogue()
    for name, sources in sorted(found.items()):
        for source in sources:
            with _reported():
                rules = load_assignment(source.path)
            parts = ", ".join(part.name for part in rules.parts) if not rules.single else "one model"
            clash = f" (the name is taken {len(sources)} times: pass the path)" if len(sources) > 1 else ""
            table.add_row(escape(name), escape(parts), escape(rules.description), escape(source.origin + clash))
    Console().print(table)


@cli.command("serve")
@assignment_option
@click.option("--host", default=defaults.SERVE_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=defaults.SERVE_PORT, show_default=True)
@click.option(
    "--data",
    "-d",
    "data",
    multiple=True,
    metavar="[PART=]PATH",
    help="The public test set uploads are measured on, instead of keras's download of it (an .npz, MNIST IDX "
    "files, CIFAR-10's test_batch); PART=PATH for an assignment with parts. Never the private held-out set.",
)
@click.option(
    "--state",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.SERVE_STATE,
    show_default=True,
    help="Folder for the store (serve.sqlite), uploads being checked and the workers' files.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 16),
    default=defaults.SERVE_WORKERS,
    show_default=True,
    help="Uploads checked at once, each by a warm sandboxed TensorFlow worker (about 1.5 GB each).",
)
@isolation_option
@time_limit_option
@memory_limit_option
@click.option(
    "--spool-mb",
    type=click.IntRange(1),
    default=defaults.SPOOL_MB,
    show_default=True,
    help="Disk the uploads waiting to be checked may use together; past it, students are asked to try later.",
)
@click.option(
    "--uploads-per-hour",
    type=click.IntRange(1),
    default=defaults.UPLOADS_PER_HOUR,
    show_default=True,
    help="Uploads one client address may make in an hour.",
)
@click.option(
    "--course-token",
    envvar="GRADER_COURSE_TOKEN",
    default=None,
    help="Only uploads carrying this token are taken: link to /?token=TOKEN from the course page. Also read "
    "from $GRADER_COURSE_TOKEN (which keeps it out of the process list).",
)
@click.option(
    "--course-tokens",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file of personal tokens, one per line (one per student or group): an upload must carry one, and each "
    "has its own hourly allowance (students behind one campus address are counted apart).",
)
@click.option(
    "--keep-uploads",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep each checked file here (named by its sha256); by default it is deleted once checked.",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0, min_open=True),
    default=defaults.KEEP_DAYS,
    show_default=True,
    help="Delete results, upload records and kept uploads older than this, at start and daily.",
)
@click.option(
    "--min-upload-rate",
    type=click.FloatRange(min=0),
    default=defaults.MIN_UPLOAD_KB_PER_SECOND,
    show_default=True,
    metavar="KB/S",
    help="Cut off an upload that arrives slower than this on average once --upload-grace has passed.",
)
@click.option(
    "--upload-grace",
    type=click.FloatRange(min=1),
    default=defaults.UPLOAD_GRACE_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="When an upload's rate starts to count, and the longest pause between two of its chunks.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies trusted to say the client's address (X-Forwarded-For): the rate limit counts per client.",
)
@click.option("--root-path", default="", help="The path the proxy serves the page under (/grader), if not /.")
def serve_command(
    assignment: str | None,
    host: str,
    port: int,
    data: tuple[str, ...],
    state: Path,
    workers: int,
    isolation: str,
    time_limit: float | None,
    memory_limit: float,
    spool_mb: int,
    uploads_per_hour: int,
    course_token: str | None,
    course_tokens: Path | None,
    keep_uploads: Path | None,
    keep_days: float,
    min_upload_rate: float,
    upload_grace: float,
    forwarded_allow_ips: str,
    root_path: str,
) -> None:
    """Serve a page where students check a model file before they submit it: the checks of `grade check`,
    the accuracy on the public test set and a receipt, from warm sandboxed workers.

    \b
    Examples:
        grade serve --assignment kcl-dnn-cw1 --data mnist.npz
        GRADER_COURSE_TOKEN=s3cret grade serve --port 8080 --root-path /grader
        grade serve --assignment uva-lab1 --data mnist=mnist.npz --data cifar10=test_batch --workers 2
    """
    from grader.courseworks.assignment import load_assignment
    from grader.evaluation.sandbox import choose_isolation
    from grader.serve.app import serve
    from grader.serve.checker import SERVE_UNTRUSTED
    from grader.serve.settings import ServeSettings, public_sets, read_tokens

    with _reported():
        chosen = choose_isolation(isolation, untrusted=SERVE_UNTRUSTED)
        rules = load_assignment(assignment)
        settings = ServeSettings(
            assignment=rules,
            data=public_sets(rules, part_paths(data, "--data")),
            state=state,
            workers=workers,
            isolation=isolation,
            time_limit=time_limit,
            memory_limit_gb=memory_limit,
            spool_bytes=spool_mb * 1024 * 1024,
            uploads_per_hour=uploads_per_hour,
            course_token=course_token or None,
            course_tokens=read_tokens(course_tokens) if course_tokens else frozenset(),
            keep_uploads=keep_uploads,
            keep_days=keep_days,
            min_upload_rate=min_upload_rate * 1024,
            upload_grace_seconds=upload_grace,
        )
    if not chosen.isolated:
        click.echo(
            f"warning: {chosen.detail}. Uploads are files from anyone with the page's address, checked with this "
            "user's rights: every result page says so.",
            err=True,
        )
    sets = "; ".join(f"{name}: {public.description}" for name, public in settings.data.items())
    click.echo(
        f"grade serve: {rules.name} at http://{host}:{port}{root_path}/ ({sets}; {workers} worker"
        f"{'s' if workers != 1 else ''}; state in {state}/)",
        err=True,
    )
    with _reported():
        serve(settings, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips, root_path=root_path)


def main() -> None:
    """Entry point of the `grade` console script."""
    cli(prog_name="grade")


if __name__ == "__main__":
    main()
