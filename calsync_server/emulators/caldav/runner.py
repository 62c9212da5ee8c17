"""Run a real Radicale server in a background thread on a free local port (the demo's CalDAV)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunningRadicale:
    url: str  # the server's root, ending in "/": a CalDAV login's server URL
    username: str
    password: str

    @property
    def home(self) -> str:
        """The user's calendar home (Radicale's: the user name as the first path segment)."""
        return f"{self.url}{self.username}/"

    def client(self) -> httpx.Client:
        """Plain HTTP as the user: the person's own calendar app, never calsync's provider."""
        return httpx.Client(base_url=self.url, auth=(self.username, self.password), timeout=10)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def run_radicale(
    folder: Path, username: str, password: str, host: str = "127.0.0.1"
) -> Iterator[RunningRadicale]:
    """Serve Radicale (one user, its password in an htpasswd file, the store in `folder`) until
    the block ends; its thread is joined before the block is left."""
    import radicale.config
    import radicale.server

    folder.mkdir(parents=True, exist_ok=True)
    users = folder / "users"
    users.write_text(f"{username}:{password}\n")
    users.chmod(0o600)
    port = _free_port(host)
    config = radicale.config.load()
    config.update(
        {
            "server": {"hosts": f"{host}:{port}"},
            "storage": {"filesystem_folder": str(folder / "store")},
            "auth": {
                "type": "htpasswd",
                "htpasswd_filename": str(users),
                "htpasswd_encryption": "plain",
            },
        },
        "calsync demo",
    )
    # Radicale serves until its shutdown socket's peer closes.
    stop, stop_peer = socket.socketpair()
    thread = threading.Thread(
        target=radicale.server.serve,
        args=(config, stop_peer),
        name="calsync-radicale",
        daemon=True,  # joined below; a stuck one must not hold the process open at exit
    )
    thread.start()
    running = RunningRadicale(f"http://{host}:{port}/", username, password)
    try:
        _wait_until_answering(running, thread)
        yield running
    finally:
        stop.close()
        thread.join(timeout=10)
        stop_peer.close()


def _wait_until_answering(running: RunningRadicale, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pause = threading.Event()  # never set: a bounded poll interval
    with httpx.Client(timeout=2) as probe:
        while True:
            try:
                probe.request("OPTIONS", running.url)
                return
            except httpx.TransportError:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("Radicale did not start") from None
                pause.wait(0.02)
