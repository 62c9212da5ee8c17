"""Run an emulator on a free local port in a background thread: for tests, demo, benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from litestar import Litestar

from calsync_server.emulator.app import EmulatorApp, create_emulator_app
from calsync_server.emulator.config import EmulatorConfig
from calsync_server.emulator.state import Emulator

START_TIMEOUT_S = 15.0


@dataclass
class RunningEmulator:
    url: str  # the root, ending in "/": point CALSYNC_GOOGLE_API_URL or rootUrl here
    host: str
    port: int
    app: Litestar

    @property
    def emulator(self) -> Emulator:
        """The in-process state, for a caller that also owns this process (demo, benchmarks).
        Tests should use the HTTP admin API instead."""
        assert isinstance(self.app, EmulatorApp)
        return self.app.emulator


@contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Serve a fresh emulator until the block ends; `port=0` picks a free port."""
    app = create_emulator_app(config)
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="calsync-emulator", daemon=True
    )
    thread.start()
    url_host = f"[{host}]" if ":" in host else host
    running = RunningEmulator(f"http://{url_host}:{bound_port}/", host, bound_port, app)
    try:
        _wait_until_answering(running.url, server, thread)
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_until_answering(url: str, server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    ready = threading.Event()
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the emulator server stopped while starting")
        if server.started:
            try:
                if httpx.get(f"{url}emulator/stats", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        # Wait a little before asking again, without a bare sleep: the event never fires,
        # so this is a bounded poll interval.
        ready.wait(0.02)
    raise TimeoutError(f"the emulator at {url} did not answer within {START_TIMEOUT_S} s")
