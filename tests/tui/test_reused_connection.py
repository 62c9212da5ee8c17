"""The dashboard's API client outlives a kept-alive connection the server closes as it is
reused (uvicorn's idle timeout meeting the next request): a read is sent again on a new
connection, a write never twice."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from calsync_tui.client import ApiError, CalsyncApi

STATUS = {
    "accounts": 1,
    "calendars": 2,
    "calendars_syncing": 2,
    "busy_blocks": 7,
    "queue_depth": 0,
    "last_sync_at": datetime(2026, 3, 2, 9, tzinfo=UTC).isoformat(),
    "channels": {"active": 2, "expiring": 0, "failing": 0},
}


class ClosingServer(socketserver.ThreadingTCPServer):
    """Answers the first request of each connection and keeps it alive; the second request on
    a connection is read and the connection closed unanswered. What it saw is in `seen`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, bool]] = []  # method, path, answered
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(socketserver.StreamRequestHandler):
    server: ClosingServer

    def handle(self) -> None:
        for nth in range(2):
            request_line = self.rfile.readline().decode()
            if not request_line:
                return
            length = 0
            while (line := self.rfile.readline().decode()) not in ("\r\n", ""):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            method, path, _ = request_line.split(" ", 2)
            answered = nth == 0
            with self.server.lock:
                self.server.seen.append((method, path, answered))
            if not answered:
                return  # closed without a word, as the server's idle timeout does
            body = json.dumps(STATUS if method == "GET" else {"queued": 1}).encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            self.wfile.write(head.encode() + body)
            self.wfile.flush()


@pytest.fixture
def server() -> Iterator[ClosingServer]:
    built = ClosingServer()
    thread = threading.Thread(target=built.serve_forever, daemon=True)
    thread.start()
    yield built
    built.shutdown()
    built.server_close()


async def test_a_read_on_a_closed_kept_alive_connection_is_sent_again(
    server: ClosingServer,
) -> None:
    api = CalsyncApi(server.url, "token")
    try:
        first = await api.status()
        second = await api.status()  # goes out on the kept-alive connection the server closes
    finally:
        await api.aclose()
    assert first.busy_blocks == second.busy_blocks == 7
    assert [answered for _, _, answered in server.seen] == [True, False, True]


async def test_a_write_on_a_closed_kept_alive_connection_is_not_sent_twice(
    server: ClosingServer,
) -> None:
    api = CalsyncApi(server.url, "token")
    try:
        await api.status()
        with pytest.raises(ApiError, match="cannot reach the server"):
            await api.sync()
    finally:
        await api.aclose()
    assert [(m, answered) for m, _, answered in server.seen] == [("GET", True), ("POST", False)]
