"""Grading on a Dask cluster (`grade --cluster`): marks byte-identical to local grading on the KCL cohort and
a multi-part cohort, through a LocalCluster and through a `dask scheduler` with two `dask worker` processes;
no label array reaches a Dask worker; a worker killed mid-run leaves every student graded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grader.cohort import grade_cohort, load_heldouts
from grader.courseworks.assignment import load_assignment

from . import build_code
from .conftest import DEMO_HELDOUT, ROOT, make_cohort
from .test_parts import UVA, uva_heldout

pytestmark = pytest.mark.tensorflow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DaskCluster:
    """A `dask scheduler` and `dask worker` processes on this machine, as an instructor starts them."""

    def __init__(self, workers: int) -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        python = [sys.executable, "-m"]
        self.scheduler = subprocess.Popen(
            [*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # No nanny: a worker killed here stays dead (a nanny would start it again).
        self.workers = [
            subprocess.Popen(
                [*python, "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny"]
                + ["--no-dashboard", "--name", f"worker-{number}"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for number in range(workers)
        ]
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=30)


@pytest.fixture
def dask_cluster():
    cluster = DaskCluster(2)
    try:
        yield cluster
    finally:
        cluster.close()


def test_a_local_cluster_gives_the_kcl_cohort_byte_identical_marks(cohort: Path, graded, tmp_path: Path) -> None:
    """`--cluster local:2` on the KCL cohort: marks.csv byte for byte the local run's."""
    summary = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=tmp_path / "reports", cluster="local:2")
    assert summary.marks_csv.read_bytes() == graded.marks_csv.read_bytes()
    assert summary.evaluated == graded.evaluated and summary.workers_started >= 1


def test_a_dask_scheduler_and_workers_grade_a_multi_part_cohort_without_seeing_labels(
    tmp_path: Path, models: Path, dask_cluster: DaskCluster
) -> None:
    """A `dask scheduler` and two `dask worker` processes grade UvA's cohort (three model parts, and code run
    on the coordinator) to marks.csv byte-identical to local grading. A probe in every worker looks for the
    labels' bytes in each task it runs and each value it holds: never there, while the images are."""
    from distributed import Client

    from .dask_probe import LabelProbe, report

    root = make_cohort(tmp_path / "submissions", models, UVA)
    (root / "Ann Anders_1_assignsubmission_file_" / "functions.py").write_text(build_code.VECTORISED)
    heldout = uva_heldout(models)
    local = grade_cohort(root, assignment="uva-lab1", heldout=heldout, out=tmp_path / "local", integrity=False)
    sets = load_heldouts(load_assignment("uva-lab1"), heldout).values()
    needles = {
        "labels": [np.asarray(s.labels, dtype=kind).tobytes() for s in sets for kind in (np.uint8, np.int32, np.int64)],
        # A control: the first 4 KB of each image set, which the workers must hold.
        "images": [np.ascontiguousarray(s.images, dtype=np.uint8).tobytes()[:4096] for s in sets],
    }
    with Client(dask_cluster.address, timeout=60) as client:
        client.register_plugin(LabelProbe(needles))
        remote = grade_cohort(
            root,
            assignment="uva-lab1",
            heldout=heldout,
            out=tmp_path / "cluster",
            integrity=False,
            cluster=dask_cluster.address,
        )
        probes = client.run(report)
    assert remote.marks_csv.read_bytes() == local.marks_csv.read_bytes()
    here = grade_cohort(
        root, assignment="uva-lab1", heldout=heldout, out=tmp_path / "local-cluster", integrity=False, cluster="local:2"
    )
    assert here.marks_csv.read_bytes() == local.marks_csv.read_bytes()
    assert sum(probe["tasks"] for probe in probes.values()) >= remote.evaluated > 0
    assert all(probe["found"]["labels"] == [] for probe in probes.values()), probes
    # The probe does see what reaches a worker: each worker holds the scattered images.
    assert all(probe["found"]["images"] for probe in probes.values()), probes
    rows = {row["student_id"]: row for row in remote.rows}
    detail = rows["1"]["parts"]["mlp"]["detail"]["evaluation"]
    assert "Dask cluster at tcp://127.0.0.1" in detail["isolation"]


def evaluated(out: Path) -> int:
    path = f"file:{out / 'gradebook.sqlite'}?mode=ro"
    with contextlib.suppress(sqlite3.Error), sqlite3.connect(path, uri=True, timeout=5) as db:
        return int(db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
    return 0


def test_killing_a_dask_worker_mid_run_leaves_every_student_graded(
    cohort: Path, graded, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    """One of two workers is killed (SIGKILL, no nanny to restart it) once the first evaluation is stored;
    Dask runs its task again on the other, and the run ends with marks.csv identical to local grading."""
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "grader", str(cohort), "--heldout", str(DEMO_HELDOUT), "--out", str(out)]
    # A fresh TensorFlow child for every model: each job takes seconds, so the kill lands mid-run.
    run = subprocess.Popen(
        [*command, "--cluster", dask_cluster.address, "--fresh-workers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while evaluated(out) < 1 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before a worker could be killed"
    done_before = evaluated(out)
    dask_cluster.workers[0].send_signal(signal.SIGKILL)
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    assert done_before < graded.evaluated
    assert (out / "marks.csv").read_bytes() == graded.marks_csv.read_bytes()


def test_a_coordinator_killed_mid_run_resumes_on_the_cluster(
    cohort: Path, graded, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    """The grading process is killed (SIGKILL) once the first evaluation is stored; running the same command
    again on the same cluster evaluates only what was missing and ends with marks.csv identical to local
    grading."""
    out = tmp_path / "reports"
    command = [sys.executable, "-m", "grader", str(cohort), "--heldout", str(DEMO_HELDOUT), "--out", str(out)]
    command += ["--cluster", dask_cluster.address]
    first = subprocess.Popen([*command, "--fresh-workers"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while evaluated(out) < 1 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the run ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    kept = evaluated(out)
    assert 1 <= kept < graded.evaluated
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"reused {kept} stored evaluations" in " ".join(again.stdout.split())
    assert (out / "marks.csv").read_bytes() == graded.marks_csv.read_bytes()


def test_a_worker_that_joins_mid_run_gets_the_images() -> None:
    """A cluster scaling up (Slurm jobs starting late): a worker that joined after the scatter is given the
    images before the next job is submitted, and a task there reads them from its own memory."""
    from grader.evaluation.cluster import ClusterScheduler, _scattered
    from grader.evaluation.scheduler import Budget

    images = {"images-test": np.arange(28 * 28 * 3, dtype=np.uint8).reshape(3, 28, 28)}
    scheduler = ClusterScheduler("local:1", isolation="process", images=images, budget=Budget(wall_seconds=60))
    try:
        scheduler.start(1)
        before = set(scheduler.client.scheduler_info()["workers"])
        scheduler.cluster.scale(2)
        scheduler.client.wait_for_workers(2, timeout=120)
        newcomer = (set(scheduler.client.scheduler_info()["workers"]) - before).pop()
        scheduler._replicate_to_newcomers()
        key = scheduler._keys["images-test"]
        held = scheduler.client.submit(_scattered, key, workers=[newcomer], pure=False).result(timeout=60)
        assert np.array_equal(held, images["images-test"])
    finally:
        scheduler.close()
