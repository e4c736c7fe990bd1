"""Feed submissions to sandboxed workers and bring back what each one answered.

A worker (`grader.evaluation.worker`) is started once and evaluates submissions in turn, each in a clean Keras
session. Before each request the model file is placed alone in the worker's inbox (the one folder it
can read besides the images), and removed after. A worker that fails, times out, crosses a limit, or
served a file that screening flagged is killed with its whole process group and replaced.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from grader import defaults
from grader.errors import WorkerCrashed, WorkerError, WorkerOverBudget, WorkerTimeout
from grader.evaluation import sandbox
from grader.evaluation.worker import MAX_OUTPUT_COLUMNS, OUTPUT_DTYPES
from grader.evaluation.worker import PROTOCOL_VERSION as WORKER_PROTOCOL

IMAGES_INSIDE = "/data"
INBOX_INSIDE = "/submission"
STARTUP_SECONDS = 180.0
# A worker that fails to start is tried again this many times in all before its jobs are given up on.
STARTUP_ATTEMPTS = 2
# How the reason of a job no worker could take begins (grade check turns it into "the check could not run").
NO_WORKER = "no worker could evaluate it"
WATCH_INTERVAL = 0.2
MAX_LINE_BYTES = 512 * 1024 * 1024
# What TensorFlow, its libraries and fontconfig print on every start, which says nothing about a failure.
LOG_NOISE = re.compile(r"cuda|absl::|fontconfig|^WARNING:tensorflow|^[IWE]\d{4} |oneDNN|computation placer", re.I)
# A worker is about 0.6-0.8 GB once TensorFlow is in; one over this after a job is replaced.
RECYCLE_BYTES = 1024**3


@dataclass(frozen=True)
class Budget:
    """What one submission may use."""

    wall_seconds: float
    "Wall-clock time to load and predict (the assignment's time_limit_seconds)."
    memory_bytes: int = int(defaults.MEMORY_LIMIT_GB * 1024**3)
    "Resident memory of the worker and everything it started."
    processes: int = defaults.PROCESS_LIMIT
    "Processes in the worker's tree (a TensorFlow worker needs 1-3)."


@dataclass(frozen=True)
class Job:
    """One submission to evaluate."""

    key: str
    "Identifies the submission in the run (the student id)."
    model_path: Path
    "The staged copy of the file on the host."
    name: str
    "The file's name as submitted, used in messages instead of the inbox path."
    request: dict[str, Any]
    "Evaluation settings passed to the worker (scale, batch size, input shapes)."
    fresh: bool = False
    "Evaluate in a worker that is discarded afterwards."
    wall_seconds: float | None = None
    "This job's own time limit (its part's), when it differs from the scheduler's budget."
    model_name: str = ""
    "The model's name in the worker's inbox, ending as its format's files do ('model.onnx'); default: the copy's."
    companions: tuple[tuple[Path, str], ...] = ()
    "Staged files placed beside the model under their own names (an ONNX graph's external data)."


OUTCOME_STATUSES = ("answered", "timeout", "crashed", "memory", "processes")


def answer_problem(answer: Any, images: int) -> str:
    """Why an evaluation's answer cannot be marked ('' when it can): it is checked as data before anything is
    read from it, whoever sent it (a local worker whose model wrote into the protocol, a Dask worker). Outputs
    must be one row of at most MAX_OUTPUT_COLUMNS float values per image of the set, in exactly as many bytes."""
    if not isinstance(answer, dict):
        return f"the answer is a {type(answer).__name__}, not a mapping"
    if not answer.get("ok"):
        return "" if isinstance(answer.get("error", ""), str) else "its error is not text"
    encoded = answer.get("outputs")
    if not isinstance(encoded, dict):
        return "it carries no outputs"
    shape, dtype = encoded.get("shape"), encoded.get("dtype")
    try:
        kind = np.dtype(dtype).name if isinstance(dtype, str) else ""
    except TypeError:
        kind = ""
    if kind not in OUTPUT_DTYPES:
        return f"outputs of type {dtype!r}, not one of {', '.join(OUTPUT_DTYPES)}"
    if (
        not isinstance(shape, list | tuple)  # a Dask worker's answer comes as msgpack, its lists as tuples
        or len(shape) != 2
        or not all(isinstance(size, int) and not isinstance(size, bool) for size in shape)
        or shape[0] != images
        or not 1 <= shape[1] <= MAX_OUTPUT_COLUMNS
    ):
        return f"outputs of shape {list(shape) if isinstance(shape, tuple) else shape!r} for {images} images"
    data = encoded.get("base64")
    try:
        size = len(base64.b64decode(data, validate=True)) if isinstance(data, str) else -1
    except ValueError:
        size = -1
    if size != shape[0] * shape[1] * np.dtype(dtype).itemsize:
        return "its outputs' bytes do not match their shape and type"
    return ""


@dataclass(frozen=True)
class Outcome:
    """What happened to one job."""

    key: str
    status: str
    "'answered' (the worker replied; its answer says whether loading and predicting worked), 'timeout',"
    " 'crashed', 'memory' or 'processes'."
    answer: dict[str, Any] | None
    reason: str
    "One line for a TA when the worker did not answer."
    seconds: float
    isolation: sandbox.Isolation
    worker: dict[str, Any] = field(default_factory=dict)
    "The worker's versions and startup time."


class ChildProcess:
    """A sandboxed child that speaks grader's line protocol: one JSON message per line each way,
    a 'ready' message first."""

    def __init__(
        self,
        *,
        isolation: sandbox.Isolation,
        module: str,
        args: list[str],
        readable: dict[str, str],
        workdir: Path,
        limits: sandbox.Limits,
        env: dict[str, str] | None = None,
    ) -> None:
        self.isolation = isolation
        workdir = Path(os.path.abspath(workdir))
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / f"{module.rsplit('.', 1)[-1]}.log"
        self.argv, self.env, self.cwd = sandbox.command(
            isolation, ["-m", module, *args], readable=readable, workdir=workdir, env=env or {}
        )
        self.limits = limits
        self.process: Any = None
        self.ready: dict[str, Any] = {}
        self.protocol: int | None = None
        "The protocol version the child must announce in its ready message (None: any)."

    @classmethod
    def worker(
        cls,
        *,
        isolation: sandbox.Isolation,
        images: dict[str, Path],
        workdir: Path,
        threads: int,
        limits: sandbox.Limits,
    ) -> ChildProcess:
        """A TensorFlow worker that reads each part's images and, one at a time, the model in its inbox."""
        inbox = Path(os.path.abspath(workdir)) / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        inside = {str(path): f"{IMAGES_INSIDE}/{name}.npy" for name, path in images.items()}
        visible = sandbox.visible_paths(isolation, {**inside, str(inbox): INBOX_INSIDE})
        env = {
            "OMP_NUM_THREADS": str(threads),
            "TF_NUM_INTRAOP_THREADS": str(threads),
            "TF_NUM_INTEROP_THREADS": str(max(1, min(2, threads))),
        }
        child = cls(
            isolation=isolation,
            module="grader.evaluation.worker",
            readable=visible,
            workdir=workdir,
            limits=limits,
            env=env,
            args=[
                *(f"--images={name}={visible[str(path)]}" for name, path in images.items()),
                "--threads",
                str(threads),
            ],
        )
        child.inbox = inbox
        child.inbox_inside = visible[str(inbox)]
        child.protocol = WORKER_PROTOCOL
        return child

    def start(
        self, timeout: float = STARTUP_SECONDS, spawn: Callable[[Callable[[], Any]], Any] | None = None
    ) -> dict[str, Any]:
        """Start the child and wait for its ready message. The child dies with the thread that started it (the
        sandbox's parent-death signal): `spawn` runs the start in a thread that lives longer (WorkerPool)."""
        popen = functools.partial(sandbox.popen, self.argv, self.env, self.cwd, self.limits, self.stderr_path)
        self.process = spawn(popen) if spawn is not None else popen()
        # A thread reads the child's answers: select() on pipes does not exist on Windows, and a thread
        # lets the waiting side watch the child's memory while it waits.
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(self.process.stdout, self._lines), daemon=True).start()
        try:
            message = self._read_message(timeout, Budget(wall_seconds=timeout))
        except WorkerError as error:
            self.kill()
            raise WorkerError(f"the child process did not start: {error}; {self.stderr_tail()}") from None
        if message.get("event") != "ready":
            self.kill()
            raise WorkerError(f"the child process sent {message!r} instead of its ready message")
        if self.protocol is not None and message.get("protocol") != self.protocol:
            # A worker from another grader release (another machine's install, a stale environment) may
            # encode its answers differently: never read them.
            self.kill()
            raise WorkerError(
                f"the worker speaks protocol {message.get('protocol')}, this grader reads protocol "
                f"{self.protocol}: install the same grader release for the worker"
            )
        self.ready = message
        return message

    inbox: Path
    inbox_inside: str

    def ask(self, request: dict[str, Any], budget: Budget) -> dict[str, Any]:
        """Send one request and wait, within the budget, for its answer."""
        assert self.process is not None
        line = (json.dumps(request) + "\n").encode()
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerCrashed(self._exit_description()) from None
        answer = self._read_message(budget.wall_seconds, budget)
        # The watch samples the tree while waiting; an answer quicker than one sample must not slip past
        # it: whatever the model started (processes, memory) is still there to count now.
        self._watch(budget)
        return answer

    def _read_message(self, timeout: float, budget: Budget) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout(f"no answer within {timeout:g} s")
            try:
                line = self._lines.get(timeout=min(WATCH_INTERVAL, remaining))
            except queue.Empty:
                self._watch(budget)
                continue
            if line is None:
                raise WorkerCrashed(self._exit_description())
            if not line.endswith(b"\n"):
                raise WorkerCrashed("the worker sent an oversized answer")
            try:
                return json.loads(line)
            except ValueError:
                raise WorkerCrashed("the worker's answer was not valid JSON") from None

    def _watch(self, budget: Budget) -> None:
        """Enforce the memory and process budget on the worker's whole process tree."""
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
            resident = sum(proc.memory_info().rss for proc in tree)
        except (psutil.Error, AttributeError):
            return  # the process is ending; the read loop sees its exit
        if resident > budget.memory_bytes:
            raise WorkerOverBudget(
                "memory",
                f"the model needed more than the {budget.memory_bytes / 1024**3:.1f} GB "
                f"of memory a worker may use (it reached {resident / 1024**3:.1f} GB)",
            )
        # Under bubblewrap the tree is bwrap, its init and python: three processes before any payload.
        allowed = budget.processes + (2 if self.isolation.kind == "bubblewrap" else 0)
        if len(tree) > allowed:
            raise WorkerOverBudget("processes", f"started {len(tree) - 1} processes (limit {allowed - 1})")

    def _exit_description(self) -> str:
        code = None
        with contextlib.suppress(Exception):
            code = self.process.wait(timeout=5)
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (killed: out of memory or over a limit?)" if name in ("SIGKILL", "SIGSEGV") else ""
            return f"the worker was killed by {name}{hint}; {self.stderr_tail()}"
        return f"the worker exited with code {code}; {self.stderr_tail()}"

    def stderr_tail(self, lines: int = 3) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "no worker log"
        useful = [line.strip() for line in text.splitlines() if line.strip() and not LOG_NOISE.search(line)]
        return " | ".join(useful[-lines:]) or "the worker log is empty"

    def close(self) -> None:
        """Let the child finish (stdin closed ends its loop), then make sure its session is gone."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        with contextlib.suppress(Exception):
            process.wait(timeout=10)
        self.kill()

    def kill(self) -> None:
        """Kill the child and everything it started (its whole session). Safe to call from any thread."""
        process, self.process = self.process, None
        if process is None:
            return
        sandbox.kill_tree(process)
        with contextlib.suppress(Exception):
            process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(Exception):
                stream.close()


def _resident(worker: ChildProcess) -> int:
    """Resident memory of a worker's whole process tree, in bytes (0 when it is gone)."""
    try:
        root = psutil.Process(worker.process.pid)
        return sum(proc.memory_info().rss for proc in [root, *root.children(recursive=True)])
    except (psutil.Error, AttributeError):
        return 0


def _read_lines(stream: Any, lines: queue.Queue[bytes | None]) -> None:
    """Hand each line the child writes to the waiting side; None when the child's stdout closes."""
    try:
        while line := stream.readline(MAX_LINE_BYTES):
            lines.put(line)
    except (OSError, ValueError):
        pass
    lines.put(None)


class Scheduler:
    """Runs jobs on a pool of warm workers, one thread per worker."""

    def __init__(
        self,
        *,
        isolation: sandbox.Isolation,
        images: dict[str, Path],
        workdir: Path,
        budget: Budget,
        workers: int = 1,
        threads: int | None = None,
        limits: sandbox.Limits | None = None,
        fresh_each: bool = False,
        pool: WorkerPool | None = None,
    ) -> None:
        self.isolation = isolation
        self.images = images
        self.workdir = workdir
        self.workers = max(1, workers)
        cores = os.cpu_count() or 1
        # Workers together use the cores once over, never more: oversubscription only slows TF down.
        self.threads = threads or max(1, cores // self.workers)
        self.budget = budget
        self.limits = limits or sandbox.Limits()
        self.fresh_each = fresh_each
        self.pool = pool if pool is not None else WorkerPool.current
        "Warm workers kept between runs (keep_workers_warm); None: every worker is this run's own."
        self._stop = threading.Event()
        self._live: set[ChildProcess] = set()
        self._lock = threading.Lock()
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._results: queue.Queue[Outcome | BaseException] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._retired = 0
        self._one: ChildProcess | None = None
        self.started = 0
        "Worker processes started so far (one per worker, plus one for each replacement)."

    def start(self, expected: int) -> None:
        """Start up to `expected` workers now: TensorFlow imports while the run still prepares the jobs."""
        for index in range(len(self._threads), min(self.workers, max(expected, 0))):
            thread = threading.Thread(target=self._serve, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def run(self, jobs: Iterable[Job], on_outcome: Callable[[Outcome], None]) -> None:
        """Evaluate every job; call `on_outcome` in this thread as each finishes, in finishing order."""
        count = 0
        for job in jobs:
            self._pending.put(job)
            count += 1
        self.start(count)
        for _ in self._threads:
            self._pending.put(None)
        try:
            for _ in range(count):
                item = self._results.get()
                if isinstance(item, BaseException):
                    raise item
                on_outcome(item)
        except BaseException:
            # Interrupted or broken: stop every worker now (what finished is already recorded).
            self._stop.set()
            with self._lock:
                for worker in list(self._live):
                    worker.kill()
            raise
        finally:
            for thread in self._threads:
                thread.join(timeout=30)

    def _serve(self, index: int) -> None:
        """One worker's thread: start a worker, then evaluate jobs until the queue says stop.

        A worker that will not start (after STARTUP_ATTEMPTS tries) leaves its jobs to the other threads;
        the last thread standing gives each job it takes the status crashed, with the reason, so that the
        run always completes. A failure of grader's own while evaluating one job is that job's crash.
        """
        pending, results = self._pending, self._results
        folder = self.workdir / f"worker-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        worker: ChildProcess | None = None
        broken = ""  # why workers would not start here
        try:
            # Start at once, before any job: the import of TensorFlow overlaps the run's preparation.
            try:
                worker = self._start_worker(folder)
            except WorkerError as error:
                broken = str(error)
                if self._retire():
                    return
            while not self._stop.is_set():
                job = pending.get()
                if job is None:
                    break
                if worker is None and not broken:
                    try:
                        worker = self._start_worker(folder)
                    except WorkerError as error:
                        broken = str(error)
                if worker is None:
                    results.put(self._failed(job, "crashed", f"{NO_WORKER}: {broken}", 0.0, {}))
                    if self._retire():
                        return
                    continue
                outcome, worker = self._evaluate_on(worker, job)
                results.put(outcome)
        except BaseException as error:  # report, never hang the main thread
            results.put(error)
        finally:
            if worker is not None:
                self._release(worker)

    def _evaluate_on(self, worker: ChildProcess, job: Job) -> tuple[Outcome, ChildProcess | None]:
        """Evaluate one job on a worker; the outcome, and the worker if it may serve the next job (None when
        it was killed or retired)."""
        try:
            outcome = self._evaluate(worker, job)
        except Exception as error:  # grader's own failure (placing the file, a broken pipe): this job's
            worker.kill()
            outcome = self._failed(job, "crashed", f"grader could not evaluate the file: {error!r}", 0.0, {})
        # A worker that grew (a large model stays in TensorFlow's allocator) starts afresh, so that workers
        # side by side stay small.
        grown = outcome.status == "answered" and _resident(worker) > RECYCLE_BYTES
        if outcome.status != "answered" or job.fresh or self.fresh_each or grown:
            worker.kill() if outcome.status != "answered" else worker.close()
            self._forget(worker)
            return outcome, None
        return outcome, worker

    def evaluate_one(self, job: Job) -> Outcome:
        """Evaluate one job now, in this thread, on this scheduler's one warm worker (started on first need
        and kept while it may serve the next): how a Dask worker evaluates (grader.evaluation.cluster)."""
        if self._one is None:
            try:
                self._one = self._start_one()
            except WorkerError as error:
                return self._failed(job, "crashed", f"{NO_WORKER}: {error}", 0.0, {})
        outcome, self._one = self._evaluate_on(self._one, job)
        return outcome

    def warm(self) -> None:
        """Start the one worker of evaluate_one now (TensorFlow imports before the first job arrives)."""
        if self._one is None:
            with contextlib.suppress(WorkerError):  # the first job tries again, and reports why
                self._one = self._start_one()

    def _start_one(self) -> ChildProcess:
        folder = self.workdir / "worker-0"
        folder.mkdir(parents=True, exist_ok=True)
        return self._start_worker(folder)

    def close(self) -> None:
        """Stop evaluate_one's worker (or give it back to the pool)."""
        if self._one is not None:
            self._release(self._one)
            self._one = None

    def _release(self, worker: ChildProcess) -> None:
        """A worker this scheduler is done with: back to the pool when there is one and it may serve again
        (alive, not grown, not stopping), else stopped."""
        self._forget(worker)
        if self.pool is None or self._stop.is_set() or not self.pool.give(self._pool_key, worker):
            worker.close()

    @functools.cached_property
    def _pool_key(self) -> tuple[Any, ...]:
        """What a kept worker must share with this scheduler to serve it: the sandbox, the images (each set's
        name and the sha256 of its bytes), the threads and the limits it was started with."""
        images = tuple(sorted((name, _sha256(path)) for name, path in self.images.items()))
        return (self.isolation, images, self.threads, self.limits)

    def _retire(self) -> bool:
        """Whether this thread, whose worker will not start, may stop and leave the jobs to the others
        (False for the last thread standing, which must see every remaining job to its end)."""
        with self._lock:
            if len(self._threads) - self._retired > 1:
                self._retired += 1
                return True
            return False

    def _start_worker(self, folder: Path) -> ChildProcess:
        """A warm worker from the pool, else a new one, ready for requests; a new one is tried
        STARTUP_ATTEMPTS times (raises WorkerError after)."""
        if self.pool is not None:
            kept = self.pool.take(self._pool_key)
            if kept is not None:
                with self._lock:
                    self._live.add(kept)
                return kept
            # A worker that may outlive this run lives in the pool's folder, with its own copy of the images:
            # the run's working folder is removed when the run ends.
            folder = self.pool.folder()
        images = self.pool.images(self.images, dict(self._pool_key[1])) if self.pool is not None else self.images
        failures = []
        for _ in range(STARTUP_ATTEMPTS):
            worker = ChildProcess.worker(
                isolation=self.isolation, images=images, workdir=folder, threads=self.threads, limits=self.limits
            )
            with self._lock:
                self._live.add(worker)
                self.started += 1
            try:
                worker.start(spawn=self.pool.spawn if self.pool is not None else None)
            except WorkerError as error:
                self._forget(worker)
                failures.append(str(error))
                continue
            return worker
        raise WorkerError(f"the worker would not start ({len(failures)} attempts): {failures[-1]}")

    def _forget(self, worker: ChildProcess) -> None:
        with self._lock:
            self._live.discard(worker)

    def _evaluate(self, worker: ChildProcess, job: Job) -> Outcome:
        staged = worker.inbox / (job.model_name or job.model_path.name)
        _place(job.model_path, staged)
        beside = [worker.inbox / name for _, name in job.companions]
        for (source, _), target in zip(job.companions, beside, strict=True):
            _place(source, target)
        info = {"versions": worker.ready.get("versions", {}), "startup_seconds": worker.ready.get("startup_seconds")}
        started = time.monotonic()
        budget = replace(self.budget, wall_seconds=job.wall_seconds) if job.wall_seconds else self.budget
        try:
            request = {
                **job.request,
                "id": job.key,
                "model": f"{worker.inbox_inside}/{staged.name}",
                "name": job.name,
            }
            answer = worker.ask(request, budget)
        except WorkerTimeout:
            worker.kill()
            return self._failed(
                job,
                "timeout",
                f"no answer within the {budget.wall_seconds:g} s limit (the model is too slow to load or predict)",
                time.monotonic() - started,
                info,
            )
        except WorkerOverBudget as error:
            worker.kill()
            return self._failed(job, error.kind, str(error), time.monotonic() - started, info)
        except WorkerError as error:
            worker.kill()
            return self._failed(job, "crashed", str(error), time.monotonic() - started, info)
        finally:
            for placed in (staged, *beside):
                with contextlib.suppress(FileNotFoundError):
                    placed.unlink()
        return Outcome(job.key, "answered", answer, "", time.monotonic() - started, self.isolation, info)

    def _failed(self, job: Job, status: str, reason: str, seconds: float, info: dict[str, Any]) -> Outcome:
        return Outcome(job.key, status, None, reason, seconds, self.isolation, info)


class WorkerPool:
    """Warm workers kept between runs in this process, while `keep_workers_warm()` is in force.

    A run takes a kept worker whose sandbox, image sets, threads and limits are its own, and gives it back when
    it is done with it; a worker that failed, timed out, crossed a limit, grew, or served a file screening
    flagged is never given back (the scheduler kills it, as within one run). So reuse across runs is what one
    run already does from one student to the next: one model at a time, each in a clean Keras session, on
    images that are the same bytes (named by their hash). At most `keep` workers wait; more are stopped.
    """

    current: WorkerPool | None = None
    "The pool runs in this process use (set by keep_workers_warm)."

    def __init__(self, folder: Path, keep: int = 2) -> None:
        self.root = Path(os.path.abspath(folder))
        self.keep = keep
        self._idle: list[tuple[tuple[Any, ...], ChildProcess]] = []
        self._lock = threading.Lock()
        self._made = 0
        # Kept workers outlive the run's threads, and a child dies with the thread that started it: the pool's
        # own thread starts them.
        self._starter = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-pool")

    def spawn(self, start: Callable[[], Any]) -> Any:
        """Run `start` (a child's Popen) in the pool's own thread, which lives as long as the pool."""
        return self._starter.submit(start).result()

    def take(self, key: tuple[Any, ...]) -> ChildProcess | None:
        """A kept worker for this key, alive, or None."""
        with self._lock:
            for index, (kept, worker) in enumerate(self._idle):
                if kept == key:
                    del self._idle[index]
                    if worker.process is not None and worker.process.poll() is None:
                        return worker
                    worker.kill()
        return None

    def give(self, key: tuple[Any, ...], worker: ChildProcess) -> bool:
        """Keep a worker for the next run; False when it may not be kept (gone, or grown)."""
        if worker.process is None or worker.process.poll() is not None or _resident(worker) > RECYCLE_BYTES:
            return False
        with self._lock:
            self._idle.append((key, worker))
            surplus = self._idle[: max(0, len(self._idle) - self.keep)]
            del self._idle[: len(surplus)]
        for _, oldest in surplus:
            oldest.close()
        return True

    @property
    def waiting(self) -> list[ChildProcess]:
        """The workers kept now, oldest first."""
        with self._lock:
            return [worker for _, worker in self._idle]

    def folder(self) -> Path:
        """A new worker's own folder (its inbox and log)."""
        with self._lock:
            self._made += 1
            return self.root / f"worker-{self._made}"

    def images(self, images: dict[str, Path], digests: dict[str, str]) -> dict[str, Path]:
        """The pool's own copies of a run's image sets (hard links where possible), by their names; each copy
        is named by the sha256 of its bytes."""
        kept = {}
        with self._lock:  # workers of one run start side by side, each wanting the same copies
            for name, path in images.items():
                target = self.root / "images" / f"{digests[name]}.npy"
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _place(path, target)
                kept[name] = target
        return kept

    def close(self) -> None:
        """Stop every kept worker."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _, worker in idle:
            worker.close()
        self._starter.shutdown()


@contextlib.contextmanager
def keep_workers_warm(keep: int = 2) -> Iterator[WorkerPool]:
    """Within this block, runs in this process (grader.grade, grader.check, the commands run in-process) reuse
    each other's warm TensorFlow workers instead of starting new ones (see WorkerPool); they are stopped when
    the block ends. A notebook grading several times, or a test suite, pays TensorFlow's start once."""
    with tempfile.TemporaryDirectory(prefix="grader-workers-") as folder:
        pool, outer = WorkerPool(Path(folder), keep), WorkerPool.current
        WorkerPool.current = pool
        try:
            yield pool
        finally:
            WorkerPool.current = outer
            pool.close()


class LentWorker:
    """A Scheduler's one warm worker lent to a run (`grade serve`): the run's jobs are evaluated on it one at a
    time, in the run's thread, and it stays warm for the next run (close() leaves it running)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._before = scheduler.started

    @property
    def started(self) -> int:
        """Worker processes started during this run (a replacement after a crash or a timeout)."""
        return self.scheduler.started - self._before

    def start(self, expected: int) -> None:
        self.scheduler.warm()

    def run(self, jobs: Iterable[Job], on_outcome: Callable[[Outcome], None]) -> None:
        for job in jobs:
            on_outcome(self.scheduler.evaluate_one(job))

    def close(self) -> None:
        """The worker is the lender's: it stops when the lender closes its scheduler."""


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _place(source: Path, target: Path) -> None:
    """Put the staged file in the inbox: a hard link when possible (no copy), else a copy."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    # Readable by the sandbox's unprivileged user, writable by nobody.
    os.chmod(target, 0o444)


INSPECTION_BUDGET = Budget(wall_seconds=60.0, memory_bytes=2 * 1024**3, processes=4)


def inspect_files(
    paths: list[Path],
    *,
    isolation: sandbox.Isolation,
    workdir: Path,
    on_result: Callable[[Path, dict[str, Any]], None],
    fingerprint: bool = False,
) -> None:
    """Inspect files in a sandboxed h5py-only child that sees one file at a time (in its inbox).

    `on_result` gets, for each path, {"ok": True, "inspection": {...}} or {"ok": False, "error": "..."};
    with `fingerprint`, an answer also holds the file's weights summary (grader.formats.fingerprint).
    A file that crashes, stalls or over-uses the child gets an error and a fresh child takes the rest.
    """
    inbox = workdir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    visible = sandbox.visible_paths(isolation, {str(inbox): INBOX_INSIDE})
    limits = sandbox.Limits(address_space_bytes=4 * 1024**3)
    child: ChildProcess | None = None
    try:
        for path in paths:
            if child is None:
                child = ChildProcess(
                    isolation=isolation,
                    module="grader.inspection",
                    args=[],
                    readable=visible,
                    workdir=workdir,
                    limits=limits,
                )
                child.start(timeout=60)
            # Recognised by content; the name keeps the staged copy's suffix, which some readers go by.
            staged = inbox / f"model{path.suffix.lower()}"
            _place(path, staged)
            failure = ""
            try:
                answer = child.ask(
                    {"path": f"{visible[str(inbox)]}/{staged.name}", "fingerprint": fingerprint}, INSPECTION_BUDGET
                )
            except WorkerTimeout:
                failure = f"did not finish within {INSPECTION_BUDGET.wall_seconds:g} s"
            except WorkerOverBudget as error:
                failure = str(error)
            except WorkerError as error:
                failure = f"crashed the reader ({error})"
            finally:
                staged.unlink(missing_ok=True)
            if failure:
                # The file broke the reader: it goes, and a fresh one reads the next file.
                child.kill()
                child = None
                answer = {"ok": False, "error": f"reading the file {failure}: a corrupt or crafted file"}
            if answer.get("ok"):
                answer["inspection"]["path"] = str(path)
            on_result(path, answer)
    finally:
        if child is not None:
            child.close()
