"""Grade on a Dask cluster: `grade SUBMISSIONS --cluster tcp://host:8786` (or `--cluster local:N`).

The grading process (the coordinator) keeps what it keeps without a cluster: discovery, screening, the labels,
the gradebook (its only writer), scoring and reports. Dask workers only evaluate: each gets the model's bytes,
the evaluation rules and the held-out images (scattered once to every worker, never per task), never the
labels. On each Dask worker a WorkerPlugin keeps one warm sandboxed TensorFlow worker (the same child, the same
sandbox and limits as local grading: grader.evaluation.scheduler.Scheduler.evaluate_one) across tasks.

A Dask worker lost mid-task is Dask's to recover: its tasks are run again on another worker (up to the
scheduler's `allowed-failures`); a task that still fails gives that student `crashed` with the reason. The
coordinator commits each outcome as it arrives, so a killed run resumes as a local one does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from distributed import WorkerPlugin

import grader
from grader.errors import GraderError
from grader.evaluation import sandbox
from grader.evaluation.scheduler import Budget, Job, Outcome, Scheduler
from grader.evaluation.worker import PROTOCOL_VERSION as WORKER_PROTOCOL
from grader.evaluation.worker import REVISION as WORKER_REVISION

LOCAL = re.compile(r"^local:(\d+)$")
# A Dask worker's answer is read only from the same grader release and worker protocol as this coordinator's.
RELEASE = f"{grader.__version__} (worker protocol {WORKER_PROTOCOL}, revision {WORKER_REVISION})"
PLUGIN = "grader"
QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
# How long a task waits for the images to reach a worker that joined after they were scattered.
IMAGES_WAIT_SECONDS = 60.0
# A worker's TensorFlow child left idle this long is stopped (a coordinator killed mid-run leaves its plugin).
IDLE_SECONDS = 300.0
# Jobs submitted ahead per Dask worker: one running and one waiting, so that no worker idles between jobs.
IN_FLIGHT_PER_WORKER = 2
# Connecting to a scheduler, and starting a LocalCluster, may take this long.
CONNECT_SECONDS = 60


def describe(address: str) -> str:
    """How reports name a cluster: 'Dask LocalCluster of 2 workers' or 'Dask cluster at tcp://...'."""
    local = LOCAL.match(address)
    return f"Dask LocalCluster of {local.group(1)} workers" if local else f"Dask cluster at {address}"


def check_address(address: str) -> None:
    """A clear error for an address that is neither local:N nor a scheduler's address."""
    local = LOCAL.match(address)
    if local and int(local.group(1)) >= 1:
        return
    if re.match(r"^(tcp|tls|inproc|ucx)://\S+$", address):
        return
    raise GraderError(
        f"--cluster {address}: give a Dask scheduler's address (tcp://host:8786) or local:N to start N workers here"
    )


class GraderPlugin(WorkerPlugin):
    """Lives in each Dask worker: the worker's warm sandboxed evaluator and its copy of the images."""

    name = PLUGIN
    "Replaced by each run's own name when it registers the plugin."

    def __init__(self, isolation: str, budget: Budget, fresh_each: bool, per_host: dict[str, int]) -> None:
        self.preference, self.budget, self.fresh_each, self.per_host = isolation, budget, fresh_each, per_host

    def setup(self, worker: Any) -> None:
        # TensorFlow threads: this host's cores shared by the Dask workers on it (as local grading shares them).
        host = str(getattr(worker, "address", "")).split("://")[-1].rsplit(":", 1)[0]
        self.threads = max(1, (os.cpu_count() or 1) // max(1, self.per_host.get(host, 1)))
        self.folder = Path(tempfile.mkdtemp(prefix="grader-dask-"))
        self.problem = ""
        "Why this worker cannot evaluate (the sandbox asked for is missing here): each task says so."
        try:
            self.isolation = sandbox.choose_isolation(self.preference)
        except GraderError as error:
            self.isolation, self.problem = sandbox.Isolation("none", str(error)), str(error)
        self.images: dict[str, Path] = {}
        self.scheduler: Scheduler | None = None
        self.lock = threading.Lock()
        self.address = getattr(worker, "address", "")
        self.used = time.monotonic()
        # A run whose coordinator was killed never unregisters its plugin: its TensorFlow child is stopped
        # once idle for IDLE_SECONDS (the next task of a live run starts one again).
        self.idle = threading.Event()
        threading.Thread(target=self._stop_when_idle, daemon=True).start()

    def _stop_when_idle(self) -> None:
        while not self.idle.wait(min(IDLE_SECONDS, 30.0)):
            with self.lock:
                if self.scheduler is not None and time.monotonic() - self.used > IDLE_SECONDS:
                    self.scheduler.close()

    def teardown(self, worker: Any) -> None:
        self.idle.set()
        with contextlib.suppress(Exception):
            if self.scheduler is not None:
                self.scheduler.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _evaluator(self, images: dict[str, str]) -> Scheduler:
        """The warm evaluator for these image sets, given by the keys they were scattered under: each is
        read from this worker's memory (on a worker that joined later, once the coordinator has replicated
        it there) and written to its disk once, for the sandboxed child."""
        new = [name for name in images if name not in self.images]
        for name in new:
            target = self.folder / "images" / f"{name}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, np.ascontiguousarray(_scattered(images[name]), dtype=np.uint8))
            self.images[name] = target
        if self.scheduler is None or new:
            if self.scheduler is not None:
                self.scheduler.close()
            self.scheduler = Scheduler(
                isolation=self.isolation,
                images=dict(self.images),
                workdir=self.folder / "workers",
                budget=self.budget,
                workers=1,
                threads=self.threads,
                fresh_each=self.fresh_each,
            )
        return self.scheduler

    def warm(self, images: dict[str, str]) -> None:
        with self.lock:
            self._evaluator(images).warm()

    def evaluate(
        self, job: dict[str, Any], model: bytes, companions: list[tuple[str, bytes]], images: dict[str, str]
    ) -> dict[str, Any]:
        """Evaluate one job as local grading does; the outcome as plain data, with this worker's release."""
        if self.problem:
            reason = f"the Dask worker {self.address} cannot evaluate: {self.problem}"
            failed = Outcome(job["key"], "crashed", None, reason, 0.0, self.isolation)
            return {**asdict(failed), "release": RELEASE}
        with self.lock:
            self.used = time.monotonic()
            evaluator = self._evaluator(images)
            staging = self.folder / "staging" / uuid.uuid4().hex
            staging.mkdir(parents=True)
            try:
                model_path = staging / job["model_name"]
                model_path.write_bytes(model)
                placed = []
                for name, data in companions:
                    (staging / name).write_bytes(data)
                    placed.append((staging / name, name))
                outcome = evaluator.evaluate_one(
                    Job(
                        key=job["key"],
                        model_path=model_path,
                        name=job["name"],
                        request=job["request"],
                        fresh=job["fresh"],
                        wall_seconds=job["wall_seconds"],
                        model_name=job["model_name"],
                        companions=tuple(placed),
                    )
                )
            finally:
                shutil.rmtree(staging, ignore_errors=True)
                self.used = time.monotonic()
        result = asdict(outcome)
        result["worker"] = {**outcome.worker, "dask_worker": self.address}
        result["release"] = RELEASE
        return result


def _scattered(key: str) -> Any:
    """Data scattered to this worker under `key`; fetched through the scheduler if this worker lacks it."""
    from distributed import get_worker

    data = get_worker().data
    # A worker that joined after the scatter gets the images when the coordinator next sees it (replicate):
    # wait for them a while rather than fetch them from inside a task.
    deadline = time.monotonic() + IMAGES_WAIT_SECONDS
    while key not in data and time.monotonic() < deadline:
        time.sleep(0.1)
    if key not in data:
        raise GraderError(f"this Dask worker does not hold the held-out images ({key}) {IMAGES_WAIT_SECONDS:g} s on")
    return data[key]


def _plugin(name: str) -> GraderPlugin:
    from distributed import get_worker

    plugin = get_worker().plugins[name]
    assert isinstance(plugin, GraderPlugin)
    return plugin


def evaluate_task(
    plugin: str, job: dict[str, Any], model: bytes, companions: list[tuple[str, bytes]], images: dict[str, str]
) -> dict[str, Any]:
    """The task a Dask worker runs for one submission. The images are named by key, not passed as futures:
    a task without dependencies is queued on the scheduler and handed to the next free worker (as local
    grading's queue does), instead of being placed on a worker when it is submitted."""
    return _plugin(plugin).evaluate(job, model, companions, images)


def warm_task(plugin: str, images: dict[str, str]) -> bool:
    """Start a worker's sandboxed TensorFlow child before its first job."""
    _plugin(plugin).warm(images)
    return True


class ClusterScheduler:
    """The local Scheduler's interface (start, run, close, started) on a Dask cluster."""

    def __init__(
        self,
        address: str,
        *,
        isolation: str,
        images: dict[str, np.ndarray],
        budget: Budget,
        fresh_each: bool = False,
        retries: int = 1,
    ) -> None:
        check_address(address)
        self.address, self.isolation_preference, self.budget = address, isolation, budget
        self.images, self.fresh_each, self.retries = images, fresh_each, retries
        self.client: Any = None
        self.cluster: Any = None
        self.started = 0
        "Dask workers that evaluated at least one submission (each keeps one warm TensorFlow child)."
        self.plugin = ""
        "This run's worker plugin's name."
        self._served: set[str] = set()
        self._warming: list[Any] = []

    def start(self, expected: int) -> None:
        """Connect (or start the LocalCluster), register the plugin, scatter the images to every worker once,
        and start each worker's TensorFlow child while the coordinator still prepares the jobs."""
        if self.client is not None or expected <= 0:
            return
        from distributed import Client, LocalCluster

        local = LOCAL.match(self.address)
        try:
            if local:
                import dask

                count = int(local.group(1))
                # Dask's own watching (a profiler sampling every 10 ms, ticks every 20 ms, system and memory
                # monitors) costs CPU the TensorFlow children beside it need on a small machine. (A cluster of
                # its own runs with its administrator's config.)
                with dask.config.set(QUIET):
                    self.cluster = LocalCluster(
                        n_workers=count,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
                self.client = Client(self.cluster, timeout=CONNECT_SECONDS)
            else:
                self.client = Client(self.address, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            self.close()
            raise GraderError(f"--cluster {self.address}: cannot connect to the Dask scheduler ({error})") from None
        workers = self.client.scheduler_info()["workers"]
        if not workers:
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
            workers = self.client.scheduler_info()["workers"]
        per_host: dict[str, int] = {}
        for info in workers.values():
            host = str(info.get("host", ""))
            per_host[host] = per_host.get(host, 0) + 1
        # A plugin of this run's own: two runs sharing a cluster (two courseworks graded at once) each keep
        # their own warm child per worker, and neither replaces the other's mid-run.
        self.plugin = f"{PLUGIN}-{uuid.uuid4().hex[:12]}"
        self.client.register_plugin(
            GraderPlugin(self.isolation_preference, self.budget, self.fresh_each, per_host), name=self.plugin
        )
        # Kept referenced here for the run: the workers hold the images while these futures live.
        # hash=False: keys of this run's own. An earlier run's (a killed coordinator's) same images under the
        # same key might be held by some workers only, and a broadcast would then not reach the others.
        self._scattered = self.client.scatter(self.images, broadcast=True, hash=False)
        self._keys = {name: str(future.key) for name, future in self._scattered.items()}
        self._workers = set(workers)
        self._warming = [
            self.client.submit(
                warm_task, self.plugin, self._keys, workers=[address], pure=False, allow_other_workers=False
            )
            for address in workers
        ]

    def run(self, jobs: Iterable[Job], on_outcome: Callable[[Outcome], None]) -> None:
        """Evaluate every job on the cluster; call `on_outcome` in this thread as each finishes.

        Jobs are submitted in their order (the costliest first) as the cluster frees up, a few per worker in
        flight: each task carries one model's bytes, so the graph stays small, and a free worker takes the
        next job, as local grading's queue does."""
        from distributed import as_completed

        pending = list(jobs)
        pending.reverse()  # popped from the end: the first job first
        self.start(len(pending))
        in_flight: dict[Any, Job] = {}

        def submit() -> Any:
            self._replicate_to_newcomers()
            job = pending.pop()
            plain = {
                "key": job.key,
                "name": job.name,
                "request": job.request,
                "fresh": job.fresh,
                "wall_seconds": job.wall_seconds,
                "model_name": job.model_name,
            }
            companions = [(name, path.read_bytes()) for path, name in job.companions]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sending large graph")  # one model's bytes, by design
                future = self.client.submit(
                    evaluate_task,
                    self.plugin,
                    plain,
                    job.model_path.read_bytes(),
                    companions,
                    self._keys,
                    key=f"grader-evaluate-{uuid.uuid4().hex}",
                    pure=False,
                    retries=self.retries,
                )
            in_flight[future] = job
            return future

        width = max(1, IN_FLIGHT_PER_WORKER * len(self.client.scheduler_info()["workers"]))
        finished = as_completed([submit() for _ in range(min(width, len(pending)))])
        for future in finished:
            job = in_flight.pop(future)
            if pending:
                finished.add(submit())
            on_outcome(self._outcome(job, future))

    def _replicate_to_newcomers(self) -> None:
        """Give the images to workers that joined since they were scattered (a cluster scaling up)."""
        workers = set(self.client.scheduler_info()["workers"])
        if workers - self._workers:
            self.client.replicate(list(self._scattered.values()))
        self._workers = workers

    def _outcome(self, job: Job, future: Any) -> Outcome:
        try:
            result = future.result()
        except Exception as error:  # the cluster's failure (a worker died on every try): this student's row
            reason = f"the Dask cluster could not evaluate it: {type(error).__name__}: {error}"
            return Outcome(
                job.key, "crashed", None, reason[:500], 0.0, sandbox.Isolation("dask", describe(self.address))
            )
        if result.get("release") != RELEASE:
            # Another grader release may predict or encode differently: its answer is never read.
            reason = (
                f"the Dask worker runs grader {result.get('release')}, this grader is {RELEASE}: install the same "
                "release (and lock file) on every worker"
            )
            return Outcome(job.key, "crashed", None, reason, 0.0, sandbox.Isolation("dask", describe(self.address)))
        isolation = result["isolation"]
        served = result["worker"].get("dask_worker", "")
        if served and served not in self._served:
            self._served.add(served)
            self.started = len(self._served)
        return Outcome(
            key=result["key"],
            status=result["status"],
            answer=result["answer"],
            reason=result["reason"],
            seconds=result["seconds"],
            isolation=sandbox.Isolation(isolation["kind"], f"{isolation['detail']} (on {describe(self.address)})"),
            worker=result["worker"],
        )

    def close(self) -> None:
        """Stop this run's TensorFlow children on the workers (its plugin goes), and disconnect."""
        if self.client is not None and self.plugin:
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(self.plugin)
        for closing in (self.client, self.cluster):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()
        self.client = self.cluster = None
