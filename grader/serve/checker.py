"""The queue of uploads and the workers that check them: one queue in arrival order, a fixed number of threads,
each with its own warm sandboxed worker (the Scheduler `grade` uses), each upload checked by
`grader.checking.check` exactly as `grade check` checks a file."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from grader.checking import CheckResult, check
from grader.cohort import run_budget
from grader.courseworks.heldout import write_images
from grader.errors import GraderError, PartUnknown, WorkerError
from grader.evaluation.sandbox import choose_isolation
from grader.evaluation.scheduler import Scheduler
from grader.run.plan import image_set
from grader.serve.limits import Spool
from grader.serve.receiving import Received
from grader.serve.settings import ServeSettings
from grader.serve.store import DONE, FAILED, RESTARTED, RUNNING, Store
from grader.status import RETRIED

LOG = logging.getLogger("grader.serve")
SERVE_UNTRUSTED = "grade serve (it checks files from anyone who has the page's address)"
TOKEN_BYTES = 32
"A result's address: 256 random bits (secrets.token_urlsafe), never derived from the file."
CANNOT_RUN = (
    "the checker could not run its sandboxed worker, which is not a fault of your file: try again later, and tell "
    "the course staff if it persists"
)
GRADER_FAULT = (
    "the checker failed while checking this file, which is a fault of the checker's, not a verdict on your file: "
    "tell the course staff and give them this page's address"
)


def result_key(file_sha256: str, name: str, part: str, setup: str) -> str:
    """What a stored result is found by: the file, its name (the checks read it), the part asked for, the setup."""
    return sha256("\0".join((file_sha256, name, part, setup)).encode()).hexdigest()


def page_data(result: CheckResult) -> dict[str, Any]:
    """What a result page shows and stores: `grade check --json`'s result with its verdict in words."""
    return {**result.to_json(), "verdict": result.verdict, "passed": result.passed}


@dataclass
class _Job:
    key: str
    received: Received
    part: str
    tokens: list[str] = field(default_factory=list)
    "Every upload of this file waiting for this check (a second upload of it joins the first's)."
    running: bool = False


class Checker:
    """Checks uploads in the order they arrive, `settings.workers` at a time."""

    def __init__(self, settings: ServeSettings, store: Store, spool: Spool) -> None:
        self.settings, self.store, self.spool = settings, store, spool
        self.work = settings.state / "work"
        # Uploads come from anyone with the address: the sandbox is required, unless --isolation process was
        # asked for (then every result page says "not isolated").
        self.isolation = choose_isolation(settings.isolation, untrusted=SERVE_UNTRUSTED)
        self._queue: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}
        "Jobs queued or running, by result key."
        self._lock = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._schedulers: list[Scheduler] = []

    def start(self) -> None:
        """Start the workers (TensorFlow imports now, before the first upload arrives)."""
        shutil.rmtree(self.work, ignore_errors=True)
        images_folder = self.work / "images"
        images_folder.mkdir(parents=True)
        images = {
            image_set(public.heldout): write_images(public.heldout, images_folder, image_set(public.heldout))
            for public in self.settings.data.values()
        }
        rules = self.settings.assignment.with_overrides(time_limit_seconds=self.settings.time_limit)
        budget = run_budget(rules, self.settings.memory_limit_gb)
        threads = max(1, (os.cpu_count() or 1) // self.settings.workers)
        for index in range(self.settings.workers):
            scheduler = Scheduler(
                isolation=self.isolation,
                images=images,
                workdir=self.work / f"checker-{index}",
                budget=budget,
                threads=threads,
            )
            self._schedulers.append(scheduler)
            thread = threading.Thread(target=self._serve, args=(scheduler,), name=f"checker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 10) -> None:
        """Stop: a check under way is given half of `timeout` to finish, then its worker is stopped (closed, then
        killed) and its uploads are told to upload again, as are those still queued."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout / 2)
        for scheduler in self._schedulers:
            scheduler.close()
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            for job in self._jobs.values():
                self.store.mark(job.tokens, FAILED, RESTARTED)
                self._finish_file(job)
            self._jobs.clear()
            self._queue.clear()
        shutil.rmtree(self.work, ignore_errors=True)

    def submit(self, received: Received, part: str) -> str:
        """Take a received upload: its token, under which its page is found. A file checked before is answered
        from the store, and one being checked now joins that check; either way its own copy is dropped."""
        key = result_key(received.sha256, received.name, part, self.settings.setup)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            state = self.store.add(
                token, file_name=received.name, sha256=received.sha256, size=received.size, part=part, result_key=key
            )
            waiting = self._jobs.get(key)
            if state == DONE or waiting is not None:
                received.discard(self.spool)
                if waiting is not None:
                    waiting.tokens.append(token)
                    if waiting.running:
                        self.store.mark([token], RUNNING)
                return token
            job = _Job(key, received, part, [token])
            self._jobs[key] = job
            self._queue.append(job)
            self._lock.notify()
        return token

    def position(self, token: str) -> tuple[int, int] | None:
        """(place, queue length) of a queued upload (place 1 is next), or None when it is not queued."""
        with self._lock:
            for place, job in enumerate(self._queue, start=1):
                if token in job.tokens:
                    return place, len(self._queue)
        return None

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def _serve(self, scheduler: Scheduler) -> None:
        scheduler.warm()
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                job.running = True
                self.store.mark(list(job.tokens), RUNNING)
            self._check(job, scheduler)

    def _check(self, job: _Job, scheduler: Scheduler) -> None:
        started = time.monotonic()
        payload: dict[str, Any] | None = None
        message = ""
        try:
            result = check(
                job.received.path,
                data={name: public.path for name, public in self.settings.data.items()},
                assignment=self.settings.assignment,
                part=job.part or None,
                isolation=self.isolation.kind,  # as chosen at start: never another one mid-course
                time_limit=self.settings.time_limit,
                memory_limit_gb=self.settings.memory_limit_gb,
                scheduler=scheduler,
                scratch=self.work,
            )
            payload = page_data(result)
        except PartUnknown as error:
            message = f"{error.why}: choose which model it is in the upload form's list, and upload it again"
        except GraderError as error:  # about the upload, in words for the student
            message = str(error)
        except WorkerError as error:
            LOG.error("check could not run: %s", error)
            message = CANNOT_RUN
        except Exception:
            LOG.error("check failed:\n%s", traceback.format_exc())
            message = GRADER_FAULT
        seconds = time.monotonic() - started
        with self._lock:
            if self._stopping:
                return  # close() tells these uploads to upload again: a stopped worker is not a verdict
            del self._jobs[job.key]
            if payload is not None:
                # A timeout or a crash may be the machine's moment: shown, but kept under a key of its own so
                # that the same file uploaded again is checked again (as `grade` retries them).
                key = job.key if payload["status"] not in RETRIED else f"{job.key}:{secrets.token_hex(8)}"
                self.store.save_result(key, job.received.sha256, seconds, payload, job.tokens)
            else:
                self.store.mark(job.tokens, FAILED, message)
        self._finish_file(job)  # outside the lock: moving a kept file may take a while
        LOG.info(
            "checked upload %s… in %.1f s: %s", job.tokens[0][:6], seconds, payload["status"] if payload else "failed"
        )

    def _finish_file(self, job: _Job) -> None:
        """Delete the checked file, or move it to the instructor's keep folder."""
        keep = self.settings.keep_uploads
        if keep is not None and job.received.path.exists():
            keep.mkdir(parents=True, exist_ok=True)
            target: Path = keep / f"{job.received.sha256[:16]}-{job.received.name}"
            shutil.move(job.received.path, target)
        job.received.discard(self.spool)
