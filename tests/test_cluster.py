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
from typing import Any

import numpy as np
import pytest

from grader.cohort import grade_cohort, load_heldouts
from grader.courseworks.assignment import load_assignment
from grader.errors import GraderError

from . import build_code
from .conftest import DEMO_HELDOUT, FEW, ROOT, few_students, make_cohort
from .test_parts import UVA, uva_heldout

pytestmark = pytest.mark.tensorflow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DaskCluster:
    """A `dask scheduler` and `dask worker` processes on this machine, as an instructor starts them.

    `tls` is a folder of certificates made by make_certificates (the scheduler and each worker then speak TLS
    with the course CA's certificates); `worker_env` gives a worker's environment over this process's (by its
    number); `preload` a module each worker runs at start (a rogue worker, for the tests of what the coordinator
    accepts)."""

    def __init__(
        self,
        workers: int,
        *,
        tls: Path | None = None,
        worker_env: dict[int, dict[str, str]] | None = None,
        preload: Path | None = None,
    ) -> None:
        port = free_port()
        self.tls = tls
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        python = [sys.executable, "-m"]
        self.scheduler = subprocess.Popen(
            [*python, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
            + (["--protocol", "tls", *tls_options(tls, "scheduler")] if tls else []),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # No nanny: a worker killed here stays dead (a nanny would start it again).
        self.workers = [
            self.worker(number, env={**env, **(worker_env or {}).get(number, {})}, preload=preload)
            for number in range(workers)
        ]
        self.wait_for(workers)

    def worker(self, number: int, *, env: dict[str, str], certificate: str = "worker", preload: Path | None = None):
        """Start one `dask worker` (with the named certificate, under TLS)."""
        return subprocess.Popen(
            [*[sys.executable, "-m"], "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny"]
            + ["--no-dashboard", "--name", f"worker-{number}"]
            + (tls_options(self.tls, certificate) if self.tls else [])
            + (["--preload", str(preload)] if preload else []),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ["GRADER_TEST_WORKER_LOG"] + f".{number}", "ab")  # noqa: SIM115
            if os.environ.get("GRADER_TEST_WORKER_LOG")
            else subprocess.DEVNULL,
        )

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=60, security=self.security("coordinator"))

    def security(self, name: str):
        """The Security of a peer holding the named certificate (None without TLS)."""
        if self.tls is None:
            return None
        from distributed.security import Security

        return Security(
            tls_ca_file=str(self.tls / "ca.pem"),
            tls_client_cert=str(self.tls / f"{name}.pem"),
            tls_client_key=str(self.tls / f"{name}.key"),
            require_encryption=True,
        )

    def wait_for(self, workers: int) -> None:
        with self.client() as client:
            client.wait_for_workers(workers, timeout=120)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=30)


def tls_options(folder: Path, name: str) -> list[str]:
    return [
        "--tls-ca-file",
        str(folder / "ca.pem"),
        "--tls-cert",
        f"{folder / name}.pem",
        "--tls-key",
        f"{folder / name}.key",
    ]


def make_certificates(folder: Path, names: list[str], ca: str = "ca") -> Path:
    """A course CA and a certificate signed by it for each name, made with openssl as the README's recipe makes
    them (short-lived, for 127.0.0.1)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
        "-days", "1", "-subj", f"/CN=grader test {ca}",
    )  # fmt: skip
    for name in names:
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext",
        )  # fmt: skip
    return folder


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
    labels' bytes in each task it runs, each value it holds and each file grader's plugin keeps: never there,
    while the images are."""

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
    with dask_cluster.client() as client:
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
    # The probe does see what reaches a worker: each worker holds the images (in its plugin's folder).
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
    models: Path, graded, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    """One of two workers is killed (SIGKILL, no nanny to restart it) once the first evaluation is stored;
    Dask runs its task again on the other, and the run ends with marks.csv identical to local grading."""
    cohort, expected = few_students(tmp_path / "submissions", models, graded)
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
    assert done_before < len(FEW)
    assert (out / "marks.csv").read_bytes() == expected


def test_a_coordinator_killed_mid_run_resumes_on_the_cluster(
    models: Path, graded, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    """The grading process is killed (SIGKILL) once the first evaluation is stored; running the same command
    again on the same cluster evaluates only what was missing and ends with marks.csv identical to local
    grading."""
    cohort, expected = few_students(tmp_path / "submissions", models, graded)
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
    assert 1 <= kept < len(FEW)
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"reused {kept} stored evaluations" in " ".join(again.stdout.split())
    assert (out / "marks.csv").read_bytes() == expected


def _held_bytes(plugin: str, name: str) -> bytes:
    from grader.evaluation.cluster import _plugin

    return bytes(np.load(_plugin(plugin).images[name]).tobytes())


def test_a_worker_that_joins_mid_run_gets_the_images() -> None:
    """A cluster scaling up (Slurm jobs starting late): a worker that joined after the run started has the images
    on its own disk (they come with the run's plugin), and keeps them past the Active Memory Manager's cycles,
    which drop the extra copies of scattered data that no task waits for."""
    from grader.evaluation.cluster import ClusterScheduler
    from grader.evaluation.scheduler import Budget

    images = {"images-test": np.arange(28 * 28 * 3, dtype=np.uint8).reshape(3, 28, 28)}
    scheduler = ClusterScheduler("local:1", isolation="process", images=images, budget=Budget(wall_seconds=60))
    try:
        scheduler.start(1)
        before = set(scheduler.client.scheduler_info()["workers"])
        scheduler.cluster.scale(2)
        scheduler.client.wait_for_workers(2, timeout=120)
        # The scheduler's list of workers can lag its count on a loaded machine: wait until the newcomer is in it.
        deadline = time.monotonic() + 120
        while not (joined := set(scheduler.client.scheduler_info()["workers"]) - before):
            assert time.monotonic() < deadline, "the second worker never appeared in the scheduler's list"
            time.sleep(0.2)
        newcomer = joined.pop()
        scheduler._admit_newcomers()
        assert newcomer in scheduler._capable
        time.sleep(5)  # two of the Active Memory Manager's cycles (every 2 s by default)
        # The coordinator reads plain data back only (msgpack): the array's bytes, not the array.
        for address in [*before, newcomer]:
            held = scheduler.client.submit(
                _held_bytes, scheduler.plugin, "images-test", workers=[address], pure=False, allow_other_workers=False
            ).result(timeout=60)
            assert held == images["images-test"].tobytes(), address
    finally:
        scheduler.close()


def _plugins(dask_scheduler: Any) -> list[str]:
    return [str(name) for name in dask_scheduler.worker_plugins]


def _clients(dask_scheduler: Any) -> list[str]:
    return [str(name) for name in dask_scheduler.clients]


def test_a_killed_coordinators_plugin_is_forgotten_by_the_next_run() -> None:
    """A coordinator that dies mid-run never unregisters its plugin, which holds its images and would reach every
    worker that joins later: the next run to start unregisters it, and leaves a live run's plugin alone."""
    from distributed import LocalCluster

    from grader.evaluation.cluster import ClusterScheduler
    from grader.evaluation.scheduler import Budget

    images = {"images-test": np.arange(28 * 28 * 2, dtype=np.uint8).reshape(2, 28, 28)}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runs = [
            ClusterScheduler(cluster.scheduler_address, isolation="process", images=images, budget=Budget(60))
            for _ in range(3)
        ]
        killed, live, starting = runs
        try:
            killed.start(1)
            live.start(1)
            gone = killed.plugin
            killed.client.close()  # as a killed coordinator leaves it: the plugin still registered
            deadline = time.monotonic() + 60
            while gone.removeprefix("grader-") in live.client.run_on_scheduler(_clients):
                assert time.monotonic() < deadline, "the scheduler never saw the killed coordinator's client go"
                time.sleep(0.2)
            assert gone in live.client.run_on_scheduler(_plugins)
            starting.start(1)
            plugins = set(starting.client.run_on_scheduler(_plugins))
            assert gone not in plugins and {live.plugin, starting.plugin} <= plugins
        finally:
            killed.client = None
            for run in (live, starting):
                run.close()


# Trust: who may join, what the coordinator accepts ----------------------------------------------------------


@pytest.mark.tensorflow
def test_an_insecure_address_stops_the_run_before_anything_is_read(cohort: Path, tmp_path: Path) -> None:
    """`grade --cluster tcp://scheduler.invalid:8786`: exit 1 with the reason, before a connection is tried or a
    file read (no gradebook)."""
    done = subprocess.run(
        [sys.executable, "-m", "grader", str(cohort), "--heldout", str(DEMO_HELDOUT), "--out", str(tmp_path / "out")]
        + ["--cluster", "tcp://scheduler.invalid:8786"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "--cluster-insecure" in " ".join(done.stderr.split()) and "cannot connect" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.tensorflow
def test_a_tls_cluster_admits_only_the_course_certificates_and_sandboxed_workers(
    cohort: Path, graded, tmp_path: Path
) -> None:
    """A scheduler and workers speaking mutual TLS with certificates from the course's CA (made with openssl in the
    test): a worker without a certificate, and one with a certificate from another CA, cannot join; a worker that
    has a certificate but cannot start bubblewrap answers "cannot sandbox" and is given no job. The KCL cohort is
    graded by the one sandboxed worker, marks.csv byte-identical to local grading, and the run records TLS."""
    from grader.evaluation.cluster import tls_security

    folder = make_certificates(tmp_path / "tls", ["scheduler", "worker", "coordinator"])
    make_certificates(tmp_path / "other", ["worker"], ca="stranger")
    (tmp_path / "empty-path").mkdir()
    no_bubblewrap = {"PATH": str(tmp_path / "empty-path")}
    cluster = DaskCluster(2, tls=folder, worker_env={1: no_bubblewrap})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        strangers = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", cluster.address, "--no-nanny", "--no-dashboard"]
                + ["--name", "no-certificate", "--death-timeout", "20"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            cluster.worker(3, env=env, certificate="../other/worker"),
        ]
        cluster.workers += strangers
        security = tls_security(*(str(folder / name) for name in ("ca.pem", "coordinator.pem", "coordinator.key")))
        summary = grade_cohort(
            cohort, heldout=DEMO_HELDOUT, out=tmp_path / "out", cluster=cluster.address, cluster_security=security
        )
        with cluster.client() as client:
            names = sorted(info["name"] for info in client.scheduler_info()["workers"].values())
    finally:
        cluster.close()
    assert names == ["worker-0", "worker-1"]
    assert summary.marks_csv.read_bytes() == graded.marks_csv.read_bytes()
    served = {
        row["detail"]["evaluation"]["worker"].get("dask_worker")
        for row in summary.rows
        if (row["detail"].get("evaluation") or {}).get("worker")
    }
    assert len(served) == 1
    evaluation = next(row["detail"]["evaluation"] for row in summary.rows if row["detail"].get("evaluation"))
    assert evaluation["isolation"].startswith("bubblewrap") and "(TLS)" in evaluation["isolation"]
    with pytest.raises(GraderError, match="give the course CA"):
        tls_security(None, None, None)


def test_with_no_worker_able_to_sandbox_the_run_stops_with_the_reason(
    tmp_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Dask worker requires its own sandbox: on a cluster where none can start bubblewrap, the run stops
    before any file is evaluated, naming each worker's reason."""
    from grader.errors import SandboxUnavailable
    from grader.evaluation import sandbox

    subs = make_cohort(tmp_path / "subs", models, {"Ann Example_1_assignsubmission_file_": {"mlp.h5": "a.h5"}})
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # the LocalCluster's workers inherit it
    sandbox.bubblewrap_problem.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="no Dask worker can evaluate in a sandbox.*bubblewrap is not"):
            grade_cohort(subs, heldout=DEMO_HELDOUT, out=tmp_path / "out", cluster="local:1", integrity=False)
    finally:
        monkeypatch.undo()
        sandbox.bubblewrap_problem.cache_clear()
    with sqlite3.connect(tmp_path / "out" / "gradebook.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 0


ROGUE = """
from grader.evaluation import cluster

seen = []


class Payload:
    "What a rogue worker might send: unpickling it would create the canary file on the coordinator."

    def __reduce__(self):
        return (open, ({canary!r}, "w"))


def rogue(self, job, model, companions):
    result = self.honest_evaluate(job, model, companions)
    seen.append(result)
    if len(seen) == 1:
        return result  # the first answer is honest
    if len(seen) == 2:
        return {{"key": job["key"], "payload": Payload()}}
    return {{**seen[0], "key": job["key"]}}  # the first file's answer again, for every later job


# Dask may run a preload twice: keep the honest method once.
if not hasattr(cluster.GraderPlugin, "honest_evaluate"):
    cluster.GraderPlugin.honest_evaluate = cluster.GraderPlugin.evaluate
    cluster.GraderPlugin.evaluate = rogue
"""


@pytest.mark.tensorflow
def test_a_rogue_workers_answers_are_never_marked_nor_unpickled(cohort: Path, tmp_path: Path) -> None:
    """A worker that answers every job after its first with the first file's result, and once with an object that
    would run code if unpickled: those students are `crashed` with the reason (the next run tries them again),
    never marked; the object is never unpickled on the coordinator."""
    canary = tmp_path / "unpickled"
    preload = tmp_path / "rogue.py"
    preload.write_text(ROGUE.format(canary=str(canary)))
    cluster = DaskCluster(1, preload=preload)
    try:
        summary = grade_cohort(cohort, heldout=DEMO_HELDOUT, out=tmp_path / "out", cluster=cluster.address)
    finally:
        cluster.close()
    assert not canary.exists()
    marked = {row["sha256"] for row in summary.rows if row["status"] in ("graded", "flagged")}
    assert len(marked) == 1  # the honest first answer's file (handed in twice in this cohort)
    crashed = [row["reason"] for row in summary.rows if row["status"] == "crashed"]
    assert len(crashed) >= 3
    assert sum("could not evaluate it: TypeError: Data serialized with" in reason for reason in crashed) == 1
    assert sum("answered for another file" in reason for reason in crashed) == len(crashed) - 1
