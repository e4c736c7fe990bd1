"""What every `grade` command shares: the command group, the options several commands take, and the one
error handler that turns grader's errors into a one-line message and exit code 1."""

from __future__ import annotations

import contextlib
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


class CannotRun(click.ClickException):
    "The command could not do its work (printed as one line, exit code 1)"

    exit_code = EXIT_CANNOT_RUN


def fail(error: Exception | str) -> click.ClickException:
    return CannotRun(str(error))


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """grader's own errors as the command's one-line message (exit 1), and a sandboxed child that cannot run said
    so: every command reports them the same way."""
    try:
        yield
    except GraderError as error:
        raise fail(error) from None
    except WorkerError as error:
        raise fail(f"cannot run a sandboxed child process: {error}") from None


# Options several commands share, each defined once.


def part_paths_option(name: str, help: str) -> Any:
    """A repeatable -d option naming a data set per part: PATH, or PART=PATH for an assignment with parts
    (read with part_paths)."""
    return click.option(f"--{name}", "-d", name, multiple=True, metavar="[PART=]PATH", help=help)


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
