"""Serve an ASGI app with uvicorn on a real port in a background thread (tests, demo, TUI)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

START_TIMEOUT_S = 30.0
GRACEFUL_SHUTDOWN_S = 2


class Server(uvicorn.Server):
    """uvicorn's server that calls `before_shutdown` as it starts to stop: live streams never
    end by themselves, and uvicorn cancels what is still running at its graceful-shutdown
    deadline, logging an error for each. Told first, they end cleanly and at once."""

    def __init__(
        self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None:
            self._before_shutdown()
        await super().shutdown(sockets)


def server_config(app: Any, **options: Any) -> uvicorn.Config:
    """calsync's uvicorn settings: quiet, and streams given a moment at shutdown."""
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **options,
    )


@dataclass
class ServedApp:
    url: str  # the root, ending in "/"
    host: str
    port: int
    server: uvicorn.Server


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket; proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on
    sockets that say they are TCP, and without it every small response waits ~40 ms for a
    delayed ACK."""
    sock = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready_path: str = "",
    sock: socket.socket | None = None,
    before_shutdown: Callable[[], None] | None = None,
) -> Iterator[ServedApp]:
    """Serve `app` until the block ends; `port=0` picks a free port, or pass a `sock` bound
    earlier (when the app must know its own URL). Waits until `ready_path` answers 200 (or
    uvicorn reports started when it is empty)."""
    sock = sock or bound_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    server = Server(server_config(app), before_shutdown)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="calsync-serve", daemon=True
    )
    thread.start()
    url_host = f"[{host}]" if ":" in host else host
    served = ServedApp(f"http://{url_host}:{bound_port}/", host, bound_port, server)
    try:
        _wait_until_answering(served, thread, ready_path)
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _wait_until_answering(served: ServedApp, thread: threading.Thread, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pause = threading.Event()  # never set: a bounded poll interval, not a bare sleep
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the server at {served.url} stopped while starting")
        if served.server.started:
            if not path:
                return
            try:
                if httpx.get(served.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        pause.wait(0.02)
    raise TimeoutError(f"the server at {served.url} did not answer within {START_TIMEOUT_S} s")
