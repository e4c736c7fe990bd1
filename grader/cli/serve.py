"""`grade serve`: the page where students check a model before uploading it."""

from __future__ import annotations

from pathlib import Path

import click

from grader import defaults
from grader.cli.base import (
    assignment_option,
    cli,
    isolation_option,
    memory_limit_option,
    part_paths,
    part_paths_option,
    reported,
    time_limit_option,
)


@cli.command("serve")
@assignment_option
@click.option("--host", default=defaults.SERVE_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=defaults.SERVE_PORT, show_default=True)
@part_paths_option(
    "data",
    "The public test set uploads are measured on, instead of keras's download of it (an .npz, MNIST IDX "
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

    with reported():
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
    with reported():
        serve(settings, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips, root_path=root_path)
