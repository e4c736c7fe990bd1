"""An upload, read as it streams: the file part is written to its own spool folder and hashed chunk by chunk,
and cut off as soon as it passes the assignment's size limit or the spool's cap, so that nothing larger is
ever kept. Starlette's own form parsing would spool a file of any size first; python-multipart's parser is
fed here chunk by chunk instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from grader.serve.limits import Spool

MAX_FIELD_BYTES = 1024
"A form field other than the file (the part, the course token) is short."
MAX_PARTS = 8
FORM_OVERHEAD = 64 * 1024
"What a form adds to its file's bytes (boundaries, headers, the other fields), at most."
MAX_NAME_CHARACTERS = 200
UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class UploadRefused(Exception):
    """The upload is not taken: the page to show, with its HTTP status."""

    def __init__(
        self, status: int, title: str, message: str, *, retry_after: float | None = None, drain: bool = True
    ) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.retry_after = status, title, message, retry_after
        self.drain = drain
        "Whether the rest of the body is read (and dropped) so a browser sees the page; never for a slow one."


@dataclass
class Received:
    """A file taken in whole: where it is, what it is called, and its hash."""

    folder: Path
    "The upload's own spool folder (removed with discard())."
    path: Path
    name: str
    size: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)
    "The form's other fields (part, course_token)."
    key: str = ""
    "What the upload is counted under against its hourly allowance (see Gate)."

    def discard(self, spool: Spool) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        spool.release(self.size)


def too_large(limit: int) -> UploadRefused:
    return UploadRefused(
        413,
        "File too large",
        f"the file is larger than the {limit:,}-byte limit of this coursework ({limit / 1024**2:,.0f} MB); it was "
        "not kept. Files over the limit cannot be submitted: make the model smaller (fewer or narrower layers).",
    )


def safe_name(given: str) -> str:
    """The file's own name from what a browser sent ('C:\\fakepath\\model.h5' -> 'model.h5'), without
    control characters or path parts."""
    name = re.split(r"[/\\]", given)[-1]
    name = UNSAFE_NAME.sub("", name).strip().lstrip(".")
    return name[-MAX_NAME_CHARACTERS:]


class Gate(Protocol):
    """Who may upload: asked with the form's fields when the file's first byte is about to arrive."""

    def admit(self, fields: dict[str, str]) -> str:
        """The key the upload is counted under (raises UploadRefused: no course token, too many uploads)."""

    def give_back(self, key: str) -> None:
        """Uncount an admitted upload that was not taken after all."""


class _Form:
    """python-multipart's callbacks: the fields in order, and the one file written as it arrives."""

    def __init__(self, folder: Path, limit: int, spool: Spool, gate: Gate) -> None:
        self.folder, self.limit, self.spool, self.gate = folder, limit, spool, gate
        self.key: str | None = None
        "What the upload was counted under, once admitted."
        self.fields: dict[str, str] = {}
        self.file_name: str | None = None
        self.size = 0
        self.hash = hashlib.sha256()
        self.parts = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._value = bytearray()
        self._handle: BinaryIO | None = None
        self.refusal: UploadRefused | None = None
        "Set when the upload was cut off (the rest of the body is read and dropped)."

    def callbacks(self) -> Any:  # python-multipart's MultipartCallbacks (a TypedDict)
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        self._headers, self._value, self._name = {}, bytearray(), ""
        if self.parts > MAX_PARTS:
            self.refuse(UploadRefused(400, "Not an upload form", "the form has more fields than this page sends"))

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        if self.refusal:
            return
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self.file_name is not None:
            self.refuse(UploadRefused(400, "One file at a time", "upload one model file at a time"))
            return
        # The page's form puts the course token before the file, so it is known (and the upload counted against
        # its hourly allowance) before a byte of the file is written; a client that sends it after is refused.
        try:
            self.key = self.gate.admit(self.fields)
        except UploadRefused as refusal:
            self.refuse(refusal)
            return
        self.file_name = safe_name(options[b"filename"].decode("utf-8", "replace"))
        self._handle = open(self.folder / "upload", "wb")  # noqa: SIM115 (closed in _part_end or close())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.refusal:
            return
        chunk = data[start:end]
        if self._handle is None:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                self.refuse(UploadRefused(400, "Not an upload form", f"the form field {self._name!r} is too long"))
            return
        if self.size + len(chunk) > self.limit:
            self.refuse(too_large(self.limit))
            return
        if not self.spool.reserve(len(chunk)):
            self.refuse(
                UploadRefused(
                    503,
                    "Busy",
                    "the checker is busy with other students' files: try again in a few minutes",
                    retry_after=120,
                )
            )
            return
        self.size += len(chunk)
        self.hash.update(chunk)
        self._handle.write(chunk)

    def _part_end(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif self._name and not self.refusal:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def refuse(self, refusal: UploadRefused) -> None:
        """Cut the upload off: nothing more is written, the rest of the body is dropped."""
        if self.refusal is None:
            self.refusal = refusal
        self.close()

    def close(self) -> None:
        """Stop writing: the partial file is deleted by the caller with its folder."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass(frozen=True)
class Pace:
    """How slowly an upload may arrive before the app cuts it off (a slow client holds a connection and a
    spool reservation; nginx's client_body_timeout is not relied on)."""

    bytes_per_second: float
    "The least average rate, counted from the start, once `grace_seconds` have passed."
    grace_seconds: float
    "Also the longest pause between two chunks."

    def problem(self, read: int, elapsed: float) -> str:
        if elapsed > self.grace_seconds and read < self.bytes_per_second * elapsed:
            return (
                f"the upload arrived at {read / max(elapsed, 1e-9) / 1024:,.1f} KB/s, slower than the "
                f"{self.bytes_per_second / 1024:,.0f} KB/s this page waits for"
            )
        return ""


async def receive(
    request: Request,
    *,
    spool_folder: Path,
    limit: int,
    spool: Spool,
    gate: Gate,
    drain: int,
    pace: Pace,
    unnamed: str = "model",
) -> Received:
    """Read an upload form from `request`, its file into a new folder under `spool_folder`.

    Raises UploadRefused for a form that is not an upload, a file over `limit` bytes, a full spool, an upload the
    `gate` does not admit (no course token, too many uploads) or one slower than `pace`; the partial file is
    deleted first and the gate's count given back. A refused body is still read (and dropped) up to `drain`
    bytes, so that a browser that is still sending sees the page instead of a reset connection. The parsing and
    the file's writes run off the event loop. A file sent without a name is called `unnamed` (the page's first
    format's name, 'model.h5').
    """
    kind, options = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused(400, "Not an upload form", "send the file with the page's form (multipart/form-data)")
    declared = request.headers.get("content-length")
    folder = spool_folder / secrets.token_hex(16)
    await run_in_threadpool(folder.mkdir, parents=True)
    form = _Form(folder, limit, spool, gate)
    parser = MultipartParser(options[b"boundary"], form.callbacks())
    read = 0
    started = time.monotonic()
    chunks = request.stream().__aiter__()
    try:
        if declared and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
            # Known to be too large before a byte is read: nothing is written.
            form.refuse(too_large(limit))
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), pace.grace_seconds)
            except StopAsyncIteration:
                break
            except TimeoutError:
                form.refuse(too_slow(f"nothing arrived for {pace.grace_seconds:g} s"))
                break
            read += len(chunk)
            slow = pace.problem(read, time.monotonic() - started)
            if slow and form.refusal is None:
                form.refuse(too_slow(slow))
                break
            if form.refusal is None:
                await run_in_threadpool(parser.write, chunk)
            elif read > drain:
                break  # stop reading: the connection closes and the browser may show its own error
        if form.refusal is None:
            await run_in_threadpool(parser.finalize)
    except BaseException as error:  # the client went away, or the form broke the parser: keep nothing
        form.close()
        await _remove(folder, spool, form, gate)
        if isinstance(error, MultipartParseError):
            raise UploadRefused(400, "Not an upload form", f"the form could not be read ({error})") from None
        raise
    if form.refusal is not None or form.file_name is None:
        form.close()
        await _remove(folder, spool, form, gate)
        raise form.refusal or UploadRefused(400, "No file", "choose a model file to check")
    if not form.file_name:
        form.file_name = unnamed
    path = folder / form.file_name
    await run_in_threadpool((folder / "upload").rename, path)
    assert form.key is not None
    return Received(folder, path, form.file_name, form.size, form.hash.hexdigest(), form.fields, form.key)


def too_slow(why: str) -> UploadRefused:
    return UploadRefused(
        408, "Upload too slow", f"{why}; it was not kept. Upload it again from a steadier connection.", drain=False
    )


async def _remove(folder: Path, spool: Spool, form: _Form, gate: Gate) -> None:
    def remove() -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)

    await run_in_threadpool(remove)
    spool.release(form.size)
    if form.key is not None:
        gate.give_back(form.key)
