"""The Starlette app of `grade serve`: an upload page, a page per upload under its random token (waiting, then
the result), its receipt and JSON, and `serve`, which runs it under uvicorn.

No page lists uploads: a result is reached by its token alone. Every page is sent with headers that keep
it out of caches and other sites' frames, and without a Referer (the token is in the address).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from grader.formats import advice, format_of
from grader.serve.checker import Checker
from grader.serve.limits import RateLimit, Spool
from grader.serve.pages import render
from grader.serve.receiving import FORM_OVERHEAD, Pace, UploadRefused, receive
from grader.serve.settings import ServeSettings
from grader.serve.store import DONE, FAILED, Store, Upload

LOG = logging.getLogger("grader.serve")
REFRESH_SECONDS = 2
DAY = 24 * 3600.0
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def create_app(settings: ServeSettings) -> Starlette:
    """The app for these settings; its lifespan starts the checker's workers and stops them."""
    return _Site(settings).app()


class _Site:
    """The pages of one `grade serve`: the upload form, each upload's page, receipt and JSON, and the daily pruning."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.store = Store(self.settings.state)
        self.spool = Spool(self.settings.spool_bytes)
        self.checker = Checker(self.settings, self.store, self.spool)
        self.rate = RateLimit(self.settings.uploads_per_hour)
        self.spool_folder = self.settings.state / "spool"
        self.datasets = " and ".join(public.description for public in self.settings.data.values())
        self.tensorflow = self.settings.assignment.versions.tensorflow

    def page(
        self, request: Request, template: str, status: int = 200, *, admitted: bool = False, **context: Any
    ) -> HTMLResponse:
        """A page; its link home carries the course token only for a visitor who showed it (`admitted`):
        an error page anyone can reach must not give it away."""
        root = request.scope.get("root_path", "")
        token = f"?token={quote(self.settings.course_token)}" if self.settings.course_token and admitted else ""
        html = render(template, course=self.settings.assignment.title, root=root, home=f"{root}/{token}", **context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def problem(self, request: Request, status: int, title: str, message: str, **headers: str) -> HTMLResponse:
        response = self.page(request, "problem.html.j2", status, title=title, message=message)
        response.headers.update(headers)
        return response

    async def home(self, request: Request) -> Response:
        given = request.query_params.get("token", "")
        if not self.settings.admits(given):
            return self.problem(
                request,
                403,
                "Course link needed",
                "This page checks files for the course's students: open it from the link on the course page.",
            )
        return self.page(
            request,
            "upload.html.j2",
            title="Check your model",
            parts=self.settings.parts,
            suffixes=self.settings.suffixes,
            max_bytes=self.settings.max_upload_bytes,
            datasets=self.datasets,
            tensorflow=self.tensorflow,
            admitted=True,
            course_token=given,
            keeps=self.settings.keep_uploads is not None,
            per_hour=self.settings.uploads_per_hour,
        )

    async def upload(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        gate = _Gate(self.settings, self.rate, client)
        try:
            received = await receive(
                request,
                spool_folder=self.spool_folder,
                limit=self.settings.max_upload_bytes,
                spool=self.spool,
                gate=gate,
                drain=2 * self.settings.max_upload_bytes + FORM_OVERHEAD,
                pace=Pace(self.settings.min_upload_rate, self.settings.upload_grace_seconds),
                unnamed=f"model{self.settings.suffixes[0] if self.settings.suffixes else ''}",
            )
        except UploadRefused as refusal:
            if refusal.drain:
                await _drain(request, 2 * self.settings.max_upload_bytes + FORM_OVERHEAD)
            headers = {"Retry-After": str(int(refusal.retry_after))} if refusal.retry_after else {}
            return self.problem(request, refusal.status, refusal.title, _sentence(refusal.message), **headers)
        except ClientDisconnect:
            return Response(status_code=400)
        part = received.fields.get("part", "")
        why = None
        if format_of(received.name) not in self.settings.formats:
            why = (
                f"The file {received.name} is not a model file this page checks ({', '.join(self.settings.suffixes)}). "
                f"Hand in {advice(self.settings.formats)}."
            )
        elif part and part not in {each.name for each in self.settings.parts}:
            why = f"This coursework has no model called {part!r}."
        if why:
            await run_in_threadpool(received.discard, self.spool)
            gate.give_back(received.key)
            return self.problem(request, 400, "Not a file this page checks", why)
        try:
            token = await run_in_threadpool(self.checker.submit, received, part)
        except BaseException:
            await run_in_threadpool(received.discard, self.spool)
            gate.give_back(received.key)
            raise
        return RedirectResponse(f"{request.scope.get('root_path', '')}/r/{token}", status_code=303, headers=HEADERS)

    async def found(self, request: Request) -> Upload | None:
        # SQLite runs off the event loop: a slow disk delays this page, not every other visitor's.
        return await run_in_threadpool(self.store.upload, request.path_params["token"])

    def missing(self, request: Request) -> Response:
        return self.problem(
            request,
            404,
            "No check here",
            "Nothing is at this address: check that it was copied whole. Results are only found by their own address.",
        )

    async def result(self, request: Request) -> Response:
        upload = await self.found(request)
        if upload is None:
            return self.missing(request)
        if upload.state == DONE and upload.result is not None:
            here = f"{request.scope.get('root_path', '')}/r/{upload.token}"
            return self.page(
                request, "result.html.j2", admitted=True, title=upload.file_name, result=upload.result, here=here
            )
        if upload.state == FAILED:
            message = _sentence(upload.message)
            return self.page(request, "problem.html.j2", admitted=True, title="Not checked", message=message)
        position = self.checker.position(upload.token)
        seconds = round(time.time() - upload.started) if upload.started else 0
        return self.page(
            request,
            "waiting.html.j2",
            admitted=True,
            title="Queued" if position else "Checking",
            refresh=REFRESH_SECONDS,
            upload=upload,
            position=position,
            seconds=seconds,
        )

    async def result_json(self, request: Request) -> Response:
        upload = await self.found(request)
        if upload is None:
            return JSONResponse({"error": "not found"}, status_code=404, headers=HEADERS)
        return JSONResponse(
            {
                "state": upload.state,
                "message": upload.message,
                "position": self.checker.position(upload.token),
                "file": upload.file_name,
                "sha256": upload.sha256,
                "size": upload.size,
                "part": upload.part,
                "created": upload.created,
                "started": upload.started,
                "finished": upload.finished,
                "result": upload.result,
            },
            headers=HEADERS,
        )

    async def receipt(self, request: Request) -> Response:
        upload = await self.found(request)
        if upload is None or upload.result is None:
            return self.missing(request)
        name = f"receipt-{upload.sha256[:12]}.txt"
        return PlainTextResponse(
            upload.result["receipt"] + "\n",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "queued": self.checker.queued}, headers=HEADERS)

    async def not_found(self, request: Request, error: Exception) -> Response:
        return self.missing(request)

    def prune(self) -> None:
        """Delete what is older than --keep-days: upload records, results, kept uploads."""
        before = time.time() - self.settings.keep_days * DAY
        gone = self.store.prune(before)
        kept = 0
        if self.settings.keep_uploads is not None and self.settings.keep_uploads.is_dir():
            for path in self.settings.keep_uploads.iterdir():
                with contextlib.suppress(OSError):
                    if path.is_file() and path.stat().st_mtime < before:
                        path.unlink()
                        kept += 1
        if gone or kept:
            LOG.info(
                "deleted %d upload records and %d kept files older than %g days", gone, kept, self.settings.keep_days
            )

    async def prune_daily(self) -> None:
        while True:
            await asyncio.sleep(DAY)
            await run_in_threadpool(self.prune)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        interrupted = self.store.interrupt_unfinished()
        if interrupted:
            LOG.warning("%d uploads left unchecked by the last server were marked to upload again", interrupted)
        self.prune()
        shutil.rmtree(self.spool_folder, ignore_errors=True)  # their files: nothing is kept past a restart
        self.spool_folder.mkdir(parents=True)
        self.checker.start()
        daily = asyncio.create_task(self.prune_daily())
        try:
            yield
        finally:
            daily.cancel()
            self.checker.close()
            self.store.close()

    def app(self) -> Starlette:
        routes = [
            Route("/", self.home),
            Route("/check", self.upload, methods=["POST"]),
            Route("/r/{token}.json", self.result_json),
            Route("/r/{token}/receipt.txt", self.receipt),
            Route("/r/{token}", self.result),
            Route("/healthz", self.health),
            Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan, exception_handlers={404: self.not_found})


class _Gate:
    """Who may upload, asked once the form's fields before the file are read: the course token (or a personal one),
    then the hourly allowance of that personal token, else of the client's address. Only taken uploads count:
    one refused later is given back."""

    def __init__(self, settings: ServeSettings, rate: RateLimit, client: str) -> None:
        self.settings, self.rate, self.client = settings, rate, client

    def admit(self, fields: dict[str, str]) -> str:
        given = fields.get("course_token", "")
        if not self.settings.admits(given):
            raise UploadRefused(
                403,
                "Course link needed",
                "this page checks files for the course's students only: open it from the link on the course "
                "page (it carries the course's token)",
            )
        key = self.settings.counted_as(given, self.client)
        wait = self.rate.allow(key)
        if wait:
            minutes = max(1, round(wait / 60))
            who = "your link" if key.startswith("token") else "this address"
            raise UploadRefused(
                429,
                "Too many checks",
                f"{who} has checked {self.settings.uploads_per_hour} files in the last hour, the most this page "
                f"allows: try again in {minutes} minute{'s' if minutes != 1 else ''}",
                retry_after=wait,
            )
        return key

    def give_back(self, key: str) -> None:
        self.rate.give_back(key)


class RedactTokens(logging.Filter):
    """Keeps the secrets in addresses out of uvicorn's access log: a result's token (its first characters
    stay, to match a student's report) and a course token in a query."""

    RESULT = re.compile(r"(/r/[A-Za-z0-9_-]{6})[A-Za-z0-9_-]+")
    QUERY = re.compile(r"([?&]token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True

    @classmethod
    def redact(cls, text: str) -> str:
        return cls.QUERY.sub(r"\1…", cls.RESULT.sub(r"\1…", text))


async def _drain(request: Request, limit: int) -> None:
    """Read and drop a body the server will not use (up to `limit` bytes), so the browser sees the page.
    A body already read (receive drains what it refuses) is left as it is."""
    read = 0
    with contextlib.suppress(ClientDisconnect, RuntimeError):  # RuntimeError: the stream was consumed
        async for chunk in request.stream():
            read += len(chunk)
            if read > limit:
                break


def _sentence(message: str) -> str:
    text = message[0].upper() + message[1:] if message else message
    return text if text.endswith((".", "!", "?")) else text + "."


def serve(
    settings: ServeSettings,
    *,
    host: str,
    port: int,
    forwarded_allow_ips: str = "127.0.0.1",
    root_path: str = "",
) -> None:
    """Run the app under uvicorn until interrupted."""
    import uvicorn

    # Each check's line beside uvicorn's own (uvicorn configures its loggers only).
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        root_path=root_path,
        server_header=False,
        log_level="info",
        timeout_graceful_shutdown=15,
    )
