"""A real HTTP server on a free port that records push notifications, answering what a test
asks (e.g. 503 twice, then 200, or slowly). It also answers Microsoft Graph's subscription
validation (`?validationToken=`) by echoing the token, unless told otherwise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Notification:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    answered: int


@dataclass
class PushReceiver:
    url: str
    received: list[Notification] = field(default_factory=list)
    # Statuses to answer, in order; once used up, every notification gets `default_status`.
    script: list[int] = field(default_factory=list)
    default_status: int = 200
    # Seconds to wait before answering, in order (a slow endpoint); then answers at once.
    delays: list[float] = field(default_factory=list)
    # Graph's validation: "echo" the token (200 text/plain), answer a "wrong" token, or
    # "refuse" (403).
    validation: str = "echo"
    validations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def graph_values(self) -> list[dict[str, Any]]:
        """Every entry of every Graph notification body (`{"value": [...]}`) received."""
        with self.lock:
            bodies = [n.body for n in self.received if n.body]
        values: list[dict[str, Any]] = []
        for body in bodies:
            values.extend(json.loads(body).get("value", []))
        return values

    def notifications(self, state: str | None = None) -> list[Notification]:
        with self.lock:
            found = list(self.received)
        return [n for n in found if state is None or n.headers["x-goog-resource-state"] == state]


@contextmanager
def push_receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            token = parse_qs(urlsplit(self.path).query).get("validationToken")
            if token is not None:
                self._validate(token[0])
                return
            with receiver.lock:
                delay = receiver.delays.pop(0) if receiver.delays else 0.0
            if delay:
                threading.Event().wait(delay)  # a slow endpoint, on purpose
            with receiver.lock:
                status = receiver.script.pop(0) if receiver.script else receiver.default_status
                receiver.received.append(
                    Notification(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        status,
                    )
                )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def _validate(self, token: str) -> None:
            with receiver.lock:
                receiver.validations.append(token)
            mode = receiver.validation
            answer = (token if mode == "echo" else "not the token").encode()
            self.send_response(403 if mode == "refuse" else 200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            del format, args  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
