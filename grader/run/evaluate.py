"""Evaluate: where the run's jobs go. This machine's sandboxed TensorFlow workers (a Scheduler), the warm worker a
caller lends (`grade serve`: a LentWorker), or a Dask cluster (a ClusterScheduler). Each is started before the files
are inspected, so that TensorFlow imports meanwhile; each takes the same jobs and gives the same outcomes."""

from __future__ import annotations

from typing import Any

from grader import defaults
from grader.courseworks.heldout import write_images
from grader.evaluation.scheduler import LentWorker, Scheduler
from grader.run.context import RunContext
from grader.run.plan import image_set


def start_evaluator(context: RunContext, jobs: int, *, workers: int | None, fresh_workers: bool) -> Any:
    """The evaluator for this run, started for about `jobs` jobs (None when there are none)."""
    if not jobs:
        return None
    where = context.where
    scheduler: Any
    if where.cluster is not None:
        from grader.evaluation.cluster import ClusterScheduler  # Dask is imported only for a cluster run

        # Dask workers get the images (never the labels); each worker requires its own sandbox unless
        # --isolation process was asked for (see grader.evaluation.cluster).
        scheduler = ClusterScheduler(
            where.cluster,
            isolation=where.isolation_preference,
            images={image_set(each): each.images for each in context.heldouts.values()},
            budget=context.budget,
            fresh_each=fresh_workers,
            security=where.security,
            insecure=where.insecure,
        )
    elif where.lender is not None:
        scheduler = LentWorker(where.lender)
    else:
        scheduler = Scheduler(
            isolation=context.isolation,
            images={
                image_set(each): write_images(each, context.workdir, image_set(each))
                for each in context.heldouts.values()
            },
            workdir=context.workdir / "workers",
            workers=workers or defaults.worker_count(),
            fresh_each=fresh_workers,
            budget=context.budget,
        )
    scheduler.start(jobs)
    return scheduler
