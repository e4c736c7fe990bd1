"""A `grade serve` process for the tests, and a client that uploads to it as a browser's plain form does
(multipart/form-data, stdlib only)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Answer:
    """What the server sent back: status, the address it ended at (after a redirect), the body."""

    status: int
    url: str
    body: str

    @property
    def token(self) -> str:
        return self.url.rsplit("/r/", 1)[1]


class Server:
    """`python -m grader serve ...` on a free port; stopped with SIGINT (as Ctrl-C or systemd stops it)."""

    def __init__(self, state: Path, *options: str, cwd: Path | None = None) -> None:
        """`state` is passed as --state; with `cwd`, the server runs in that folder and `state` (relative to it)
        is only where the test looks: the server is given no --state and uses its default."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = cwd / state if cwd is not None else state
        self.log = self.state.parent / f"{self.state.name}.log"
        # The server's own temporary folder (as the system's /tmp would be), which the tests can check is left
        # empty: the system's own is shared with the other tests running beside this one.
        self.tmp = self.state.parent / f"{self.state.name}.tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        where = [] if cwd is not None else ["--state", str(state)]
        command = [sys.executable, "-m", "grader", "serve", *where, "--port", str(self.port), *options]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, "TMPDIR": str(self.tmp)}
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"grade serve exited: {self.log.read_text()}")
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"grade serve did not start: {self.log.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        return _send(request)

    def upload(
        self,
        content: bytes | Path,
        name: str,
        *,
        fields: dict[str, str] | None = None,
        client: str | None = None,
    ) -> Answer:
        """POST the form: fields first (as the page orders them), then the file."""
        body, boundary = form(content, name, fields or {})
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if client:
            headers["X-Forwarded-For"] = client
        request = urllib.request.Request(f"{self.url}/check", data=body, headers=headers, method="POST")
        return _send(request)

    def state_of(self, token: str) -> dict[str, Any]:
        return json.loads(self.get(f"/r/{token}.json").body)

    def wait(self, tokens: list[str], timeout: float = 300) -> dict[str, dict[str, Any]]:
        """Each upload's JSON once every one is done or failed."""
        deadline = time.monotonic() + timeout
        while True:
            states = {token: self.state_of(token) for token in tokens}
            if all(state["state"] in ("done", "failed") for state in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"not finished in {timeout} s: {[s['state'] for s in states.values()]}")
            time.sleep(0.5)

    def kept_files(self) -> list[Path]:
        """Files under the server's state other than its store, the public images given to workers and the
        workers' own logs (TensorFlow's messages)."""
        return [
            path
            for path in self.state.rglob("*")
            if path.is_file()
            and not path.name.startswith(("serve.sqlite", "serve.lock"))
            and path.parent.name != "images"
            and path.name != "worker.log"
        ]


def form(content: bytes | Path, name: str, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "----grader" + secrets.token_hex(8)
    data = content.read_bytes() if isinstance(content, Path) else content
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return b"".join([*parts, head, data, f"\r\n--{boundary}--\r\n".encode()]), boundary


def streamed_form(path: Path, name: str, chunk: int = 1 << 20) -> tuple[Iterator[bytes], int, str]:
    """A form whose file is read from disk as it is sent (for a file too large to hold), with its length."""
    boundary = "----grader" + secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                yield block
        yield tail

    return body(), len(head) + os.path.getsize(path) + len(tail), boundary


def _send(request: urllib.request.Request) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Answer(response.status, response.geturl(), response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.geturl(), error.read().decode())
