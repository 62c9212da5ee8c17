"""A real HTTP server on a free port that records push notifications, answering what a test
asks (e.g. 503 twice, then 200)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
    lock: threading.Lock = field(default_factory=threading.Lock)

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
