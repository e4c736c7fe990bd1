"""Grade on a Dask cluster: `grade SUBMISSIONS --cluster tcp://host:8786` (or `--cluster local:N`).

The grading process (the coordinator) keeps what it keeps without a cluster: discovery, screening, the labels,
the gradebook (its only writer), scoring and reports. Dask workers only evaluate: each gets the model's bytes,
the evaluation rules and the held-out images (in the run's worker plugin, which Dask gives every worker, one that
joins later too; never per task), never the labels. On each Dask worker a WorkerPlugin keeps one warm sandboxed
TensorFlow worker (the same child, the same sandbox and limits as local grading:
grader.evaluation.scheduler.Scheduler.evaluate_one) across tasks.

A Dask worker lost mid-task is Dask's to recover: its tasks are run again on another worker (up to the
scheduler's `allowed-failures`); a task that still fails gives that student `crashed` with the reason. The
coordinator commits each outcome as it arrives, so a killed run resumes as a local one does.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
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

from grader.errors import GraderError, SandboxUnavailable
from grader.evaluation import sandbox
from grader.evaluation.scheduler import OUTCOME_STATUSES, Budget, Job, Outcome, Scheduler
from grader.evaluation.worker import PROTOCOL_VERSION as WORKER_PROTOCOL
from grader.evaluation.worker import REVISION as WORKER_REVISION
from grader.release import VERSION

LOCAL = re.compile(r"^local:(\d+)$")
# A Dask worker's answer is read only from the same grader release and worker protocol as this coordinator's.
RELEASE = f"{VERSION} (worker protocol {WORKER_PROTOCOL}, revision {WORKER_REVISION})"
PLUGIN = "grader"
QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
# A worker's TensorFlow child left idle this long is stopped (a coordinator killed mid-run leaves its plugin).
IDLE_SECONDS = 300.0
# Jobs submitted ahead per Dask worker: one running and one waiting, so that no worker idles between jobs.
IN_FLIGHT_PER_WORKER = 2
# Connecting to a scheduler, and starting a LocalCluster, may take this long.
CONNECT_SECONDS = 60
# What the coordinator reads back from workers: task results only as msgpack (plain data, never a pickle that could
# run code here), and only through the scheduler (never a direct connection from a worker). See docs/cluster.md's
# trust model: Dask's own messages between its peers still pickle, which mutual TLS keeps to the course's machines.
PLAIN_RESULTS = {"deserializers": ["msgpack"], "direct_to_workers": False}


def describe(address: str, transport: str = "") -> str:
    """How reports name a cluster: 'Dask LocalCluster of 2 workers' or 'Dask cluster at tcp://... (TLS)'."""
    local = LOCAL.match(address)
    if local:
        return f"Dask LocalCluster of {local.group(1)} workers"
    return f"Dask cluster at {address}" + (f" ({transport})" if transport else "")


def check_address(address: str, *, insecure: bool = False) -> str:
    """How the coordinator would talk to this cluster, in words ('a LocalCluster here', 'TLS', ...); a clear error,
    before any connection is tried, for an address that is not one, and for a plain tcp:// address off this
    machine without `insecure`: anyone who can reach such a scheduler could join as a worker."""
    local = LOCAL.match(address)
    if local and int(local.group(1)) >= 1:
        return "a LocalCluster on this machine"
    found = re.match(r"^(tcp|tls|inproc|ucx)://(\S+)$", address)
    if found is None:
        raise GraderError(
            f"--cluster {address}: give a Dask scheduler's address (tls://host:8786) or local:N to start N workers here"
        )
    scheme, rest = found.groups()
    if scheme == "tls":
        return "TLS"
    if scheme == "inproc" or _loopback(rest):
        return f"{scheme} on this machine"
    if not insecure:
        raise GraderError(
            f"--cluster {address}: a plain {scheme}:// address off this machine has no encryption and no "
            "authentication: anyone who can reach the scheduler could join as a worker and forge marks. Use "
            "tls:// with the course's certificates (--tls-ca-file, --tls-cert, --tls-key), or pass "
            "--cluster-insecure on a network only the course controls (the run records it)"
        )
    return f"insecure {scheme}: no TLS, no authentication (--cluster-insecure)"


def _loopback(rest: str) -> bool:
    """Whether host:port names this machine, by its text alone (never resolved: no lookup leaves the machine)."""
    host = rest.rsplit(":", 1)[0] if not rest.startswith("[") else rest[1 : rest.find("]")]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_security(ca_file: str | None, cert: str | None, key: str | None) -> Any:
    """Dask's Security for the coordinator (mutual TLS): the files given, else Dask's own configuration
    (distributed.comm.tls.ca-file, .client.cert, .client.key); a clear error when either lacks a CA or a
    certificate."""
    from distributed.security import Security

    given = {"tls_ca_file": ca_file, "tls_client_cert": cert, "tls_client_key": key}
    security = Security(require_encryption=True, **{name: value for name, value in given.items() if value})
    if not getattr(security, "tls_ca_file", None) or not getattr(security, "tls_client_cert", None):
        raise GraderError(
            "--cluster tls://...: give the course CA and this machine's certificate (--tls-ca-file, --tls-cert and "
            "--tls-key), or set them in Dask's configuration (distributed.comm.tls)"
        )
    for name in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        path = getattr(security, name)
        if path and not os.path.isfile(path):
            raise GraderError(f"--cluster tls://...: {path}: no such file")
    return security


class GraderPlugin(WorkerPlugin):
    """Lives in each Dask worker: the worker's warm sandboxed evaluator and its copy of the images."""

    name = PLUGIN
    "Replaced by each run's own name when it registers the plugin."

    def __init__(
        self,
        isolation: str,
        budget: Budget,
        fresh_each: bool,
        per_host: dict[str, int],
        images: dict[str, np.ndarray],
    ) -> None:
        self.preference, self.budget, self.fresh_each, self.per_host = isolation, budget, fresh_each, per_host
        # The images travel with the plugin, not as Dask data: the scheduler gives a registered plugin to every
        # worker, one that joins later included, and never drops it, where the Active Memory Manager (on by
        # default) drops the extra replicas of scattered data that no task depends on.
        self.payload: dict[str, np.ndarray] | None = images

    def setup(self, worker: Any) -> None:
        # TensorFlow threads: this host's cores shared by the Dask workers on it (as local grading shares them).
        host = str(getattr(worker, "address", "")).split("://")[-1].rsplit(":", 1)[0]
        self.threads = max(1, (os.cpu_count() or 1) // max(1, self.per_host.get(host, 1)))
        self.folder = Path(tempfile.mkdtemp(prefix="grader-dask-"))
        self.problem = ""
        "Why this worker cannot evaluate (the sandbox asked for is missing here): each task says so."
        try:
            # Every Dask worker requires its own sandbox (auto never falls back here): a worker that cannot start
            # one answers so, and the coordinator gives its work to the others.
            self.isolation = sandbox.choose_isolation(self.preference, untrusted="a Dask worker")
        except GraderError as error:
            self.isolation, self.problem = sandbox.Isolation("none", str(error)), str(error)
        self.images: dict[str, Path] = {}
        "Each image set on this worker's disk, for the sandboxed child."
        self.digests: dict[str, str] = {}
        "Each image set's sha256, as written here: every answer names the one it was predicted from."
        for name, array in (self.payload or {}).items():
            self.images[name] = self.folder / "images" / f"{name}.npy"
            self.images[name].parent.mkdir(parents=True, exist_ok=True)
            np.save(self.images[name], np.ascontiguousarray(array, dtype=np.uint8))
            self.digests[name] = images_digest(array)
        self.payload = None  # on disk now: not held twice in this worker's memory
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

    def _evaluator(self) -> Scheduler:
        """The warm evaluator: one sandboxed TensorFlow child reading the images from this worker's disk."""
        if self.scheduler is None:
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

    def warm(self) -> None:
        if self.problem:
            return
        with self.lock:
            self._evaluator().warm()

    def evaluate(self, job: dict[str, Any], model: bytes, companions: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Evaluate one job as local grading does; the outcome as plain data (msgpack: never a pickle), with this
        worker's release and what it read (the model's and the images' sha256) for the coordinator to check.
        Never raises: a failure here is an answer too."""
        if self.problem:
            # Never evaluated here without the sandbox: the coordinator gives the job to another worker.
            return {"cannot_sandbox": self.problem, "dask_worker": self.address, "release": RELEASE}
        read = {
            "model_sha256": hashlib.sha256(model).hexdigest(),
            "images_sha256": self.digests.get(job["request"].get("images", ""), ""),
            "dask_worker": self.address,
            "release": RELEASE,
        }
        try:
            return {**self._evaluate(job, model, companions), **read}
        except Exception as error:
            return {"task_error": f"{type(error).__name__}: {error}"[:500], **read}

    def _evaluate(self, job: dict[str, Any], model: bytes, companions: list[tuple[str, bytes]]) -> dict[str, Any]:
        with self.lock:
            self.used = time.monotonic()
            evaluator = self._evaluator()
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
        return result


def images_digest(images: np.ndarray) -> str:
    """The sha256 of an image set as the worker writes it (C-ordered uint8)."""
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def _gone_runs_plugins(dask_scheduler: Any) -> list[str]:
    """On the scheduler: the names of grader plugins whose run's client is no longer connected."""
    prefix = f"{PLUGIN}-Client-"
    live = set(dask_scheduler.clients)
    return [
        str(name)
        for name in dask_scheduler.worker_plugins
        if str(name).startswith(prefix) and str(name).removeprefix(f"{PLUGIN}-") not in live
    ]


def _plugin(name: str) -> GraderPlugin:
    from distributed import get_worker

    plugin = get_worker().plugins[name]
    assert isinstance(plugin, GraderPlugin)
    return plugin


def evaluate_task(
    plugin: str, job: dict[str, Any], model: bytes, companions: list[tuple[str, bytes]]
) -> dict[str, Any]:
    """The task a Dask worker runs for one submission. The images are the plugin's, not passed as futures: a
    task without dependencies is queued on the scheduler and handed to the next free worker (as local grading's
    queue does), instead of being placed on a worker when it is submitted."""
    return _plugin(plugin).evaluate(job, model, companions)


def warm_task(plugin: str) -> bool:
    """Start a worker's sandboxed TensorFlow child before its first job."""
    _plugin(plugin).warm()
    return True


def sandbox_task(plugin: str) -> str:
    """Why this worker cannot evaluate in the sandbox the run asks for ('' when it can)."""
    return _plugin(plugin).problem


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
        security: Any = None,
        insecure: bool = False,
    ) -> None:
        self.transport = check_address(address, insecure=insecure)
        self.security = security
        "Dask's Security (mutual TLS) for a tls:// address (see tls_security)."
        self.address, self.isolation_preference, self.budget = address, isolation, budget
        self.images, self.fresh_each, self.retries = images, fresh_each, retries
        self.client: Any = None
        self.cluster: Any = None
        self.started = 0
        "Dask workers that evaluated at least one submission (each keeps one warm TensorFlow child)."
        self.plugin = ""
        "This run's worker plugin's name."
        self._served: set[str] = set()
        self._digests: dict[str, str] = {}
        "Each image set's sha256: a worker's answer must name the one its job named."
        self._warming: list[Any] = []
        self._capable: set[str] = set()
        "Workers that can evaluate in the sandbox the run asks for: the only ones given jobs."
        self._refusing: dict[str, str] = {}
        "Workers that cannot, and why."

    def start(self, expected: int) -> None:
        """Connect (or start the LocalCluster), register the plugin (which carries the images to every worker),
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
                self.client = Client(self.cluster, timeout=CONNECT_SECONDS, **PLAIN_RESULTS)
            else:
                if self.address.startswith("tls://") and self.security is None:
                    self.security = tls_security(None, None, None)
                self.client = Client(self.address, timeout=CONNECT_SECONDS, security=self.security, **PLAIN_RESULTS)
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
        # A plugin of this run's own, named for its client: two runs sharing a cluster (two courseworks graded at
        # once) each keep their own warm child per worker, and neither replaces the other's mid-run.
        self.plugin = f"{PLUGIN}-{self.client.id}"
        self._forget_gone_runs()
        self._digests = {name: images_digest(images) for name, images in self.images.items()}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sending large graph")  # the images, once per worker
            self.client.register_plugin(
                GraderPlugin(self.isolation_preference, self.budget, self.fresh_each, per_host, self.images),
                name=self.plugin,
            )
        self._workers: set[str] = set()
        self._admit(set(workers), warm=True)

    def _forget_gone_runs(self) -> None:
        """Unregister the plugins of runs whose coordinator has gone without closing (killed mid-run): a plugin
        stays on the scheduler until it is unregistered, and would carry that run's images to every worker that
        joins. A run's plugin is named for its client, so a plugin whose client the scheduler no longer knows is
        one no run will use again."""
        try:
            gone = self.client.run_on_scheduler(_gone_runs_plugins)
        except Exception:  # a scheduler that refuses to run it: the plugins stay, as they did before
            return
        for name in gone:
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(name)

    def _admit(self, workers: set[str], *, warm: bool = False) -> None:
        """Ask new workers whether they can sandbox (and, at the start, start the TensorFlow child of each that
        can; a worker joining later starts it with its first job). A worker that cannot is never given a job;
        with none left that can, the run stops before any file is evaluated."""
        self._workers |= workers
        asked = {
            address: self.client.submit(
                sandbox_task, self.plugin, workers=[address], pure=False, allow_other_workers=False
            )
            for address in sorted(workers)
        }
        for address, future in asked.items():
            try:
                problem = future.result(timeout=CONNECT_SECONDS)
            except Exception as error:  # a worker that cannot answer is not given work
                problem = f"it did not answer ({type(error).__name__}: {error})"
            if problem:
                self._refusing[address] = str(problem)
                continue
            self._capable.add(address)
            if warm:
                self._warming.append(
                    self.client.submit(warm_task, self.plugin, workers=[address], pure=False, allow_other_workers=False)
                )
        self._check_capable()

    def _check_capable(self) -> None:
        if not self._capable:
            reasons = "; ".join(f"{address}: {problem}" for address, problem in sorted(self._refusing.items()))
            raise SandboxUnavailable(f"--cluster {self.address}: no Dask worker can evaluate in a sandbox ({reasons})")

    def run(self, jobs: Iterable[Job], on_outcome: Callable[[Outcome], None]) -> None:
        """Evaluate every job on the cluster; call `on_outcome` in this thread as each finishes.

        Jobs are submitted in their order (the costliest first) as the cluster frees up, a few per worker in
        flight: each task carries one model's bytes, so the graph stays small, and a free worker takes the
        next job, as local grading's queue does."""
        from distributed import as_completed

        pending = list(jobs)
        pending.reverse()  # popped from the end: the first job first
        self.start(len(pending))
        in_flight: dict[Any, tuple[Job, str]] = {}
        "Each job in flight, and the sha256 of the model bytes it was sent."

        def submit() -> Any:
            self._admit_newcomers()
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
            model = job.model_path.read_bytes()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sending large graph")  # one model's bytes, by design
                future = self.client.submit(
                    evaluate_task,
                    self.plugin,
                    plain,
                    model,
                    companions,
                    key=f"grader-evaluate-{uuid.uuid4().hex}",
                    pure=False,
                    retries=self.retries,
                    workers=sorted(self._capable),
                    allow_other_workers=False,
                )
            in_flight[future] = (job, hashlib.sha256(model).hexdigest())
            return future

        width = max(1, IN_FLIGHT_PER_WORKER * len(self._capable))
        finished = as_completed([submit() for _ in range(min(width, len(pending)))])
        self._collect(finished, in_flight, pending, submit, on_outcome)

    def _collect(
        self,
        finished: Any,
        in_flight: dict[Any, tuple[Job, str]],
        pending: list[Job],
        submit: Callable[[], Any],
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        for future in finished:
            job, sent = in_flight.pop(future)
            refused = self._refused_by(future)
            if refused:
                # That worker cannot sandbox (its bubblewrap broke, or it joined without one): never again; the
                # job goes to another, and with none left the run stops.
                self._capable.discard(refused[0])
                self._refusing[refused[0]] = refused[1]
                self._check_capable()
                pending.append(job)
            if pending:
                finished.add(submit())
            if not refused:
                on_outcome(self._outcome(job, future, sent))

    def _refused_by(self, future: Any) -> tuple[str, str] | None:
        """(worker, why) when a job came back unevaluated because its worker cannot sandbox, else None."""
        try:
            result = future.result()
        except Exception:
            return None
        if isinstance(result, dict) and result.get("cannot_sandbox"):
            return str(result.get("dask_worker", "a worker")), str(result["cannot_sandbox"])
        return None

    def _admit_newcomers(self) -> None:
        """Ask workers that joined since the start (a cluster scaling up) whether they can sandbox; each already
        has the images, with the plugin."""
        workers = set(self.client.scheduler_info()["workers"])
        if workers - self._workers:
            self._admit(workers - self._workers)

    def _outcome(self, job: Job, future: Any, sent: str) -> Outcome:
        """A finished job's outcome, its result checked as data first: from this release, for this job, from the
        model it was sent (`sent`, the sha256 of those bytes) and the images it names. Anything else is `crashed`
        with the reason, never marked."""
        here = sandbox.Isolation("dask", describe(self.address, self.transport))
        try:
            result = future.result()
        except Exception as error:  # the cluster's failure (a worker died on every try): this student's row
            reason = f"the Dask cluster could not evaluate it: {type(error).__name__}: {error}"
            return Outcome(job.key, "crashed", None, reason[:500], 0.0, here)
        problem = self._result_problem(result, job, sent)
        if problem:
            return Outcome(job.key, "crashed", None, problem[:500], 0.0, here)
        isolation = result["isolation"]
        served = result["dask_worker"]
        if served not in self._served:
            self._served.add(served)
            self.started = len(self._served)
        where = describe(self.address, self.transport)
        return Outcome(
            key=job.key,
            status=result["status"],
            answer=result["answer"],
            reason=str(result["reason"]),
            seconds=float(result["seconds"]),
            isolation=sandbox.Isolation(str(isolation["kind"]), f"{isolation['detail']} (on {where})"),
            worker=result["worker"],
        )

    def _result_problem(self, result: Any, job: Job, sent: str) -> str:
        """Why a worker's result cannot be taken as this job's ('' when it can). The outputs themselves are
        checked where every answer is (grader.evaluation.scheduler.answer_problem)."""
        who = f"the Dask worker {result.get('dask_worker', '?')}" if isinstance(result, dict) else "a Dask worker"
        if not isinstance(result, dict):
            return f"{who} sent a {type(result).__name__}, not a result"
        if result.get("release") != RELEASE:
            # Another grader release may predict or encode differently: its answer is never read.
            return (
                f"{who} runs grader {result.get('release')}, this grader is {RELEASE}: install the same release (and "
                "lock file) on every worker"
            )
        if result.get("task_error"):
            return f"{who} could not evaluate it: {result['task_error']}"
        if result.get("model_sha256") != sent:
            return (
                f"{who} answered for another file (sha256 {str(result.get('model_sha256'))[:16]}…, sent {sent[:16]}…)"
            )
        expected_images = self._digests.get(job.request.get("images", ""))
        if result.get("images_sha256") != expected_images:
            return (
                f"{who} read other images (sha256 {str(result.get('images_sha256'))[:16]}…) than the job named "
                f"({job.request.get('images', '')!r}, sha256 {str(expected_images)[:16]}…)"
            )
        if result.get("key") != job.key:
            return f"{who} answered for another job ({result.get('key')!r})"
        isolation, worker = result.get("isolation"), result.get("worker")
        if (
            result.get("status") not in OUTCOME_STATUSES
            or not isinstance(isolation, dict)
            or not all(isinstance(isolation.get(name), str) for name in ("kind", "detail"))
            or not isinstance(worker, dict)
            or not isinstance(result.get("seconds"), int | float)
        ):
            return f"{who} sent a result that is not laid out as grader's"
        return ""

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
