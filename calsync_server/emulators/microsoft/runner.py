"""Run the Graph emulator on free local ports in background threads: plain HTTP for Graph and
the admin API, and HTTPS (a local CA made by trustme) for MSAL, which wants a TLS authority."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
import uvicorn

from calsync_server.emulators.microsoft.app import GraphEmulatorApp, create_graph_app
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.state import GraphEmulator
from calsync_server.serving import (
    GRACEFUL_SHUTDOWN_S,
    START_TIMEOUT_S,
    Server,
    bound_socket,
    serve_in_thread,
)


@dataclass
class RunningGraphEmulator:
    url: str  # plain HTTP root, ending in "/": Graph at url + "v1.0/", admin at "emulator/"
    tls_url: str  # the same app over HTTPS: the MSAL authority is tls_url + "common"
    ca_path: Path  # PEM of the CA that signed the TLS certificate: MSAL's `verify=`
    app: GraphEmulatorApp

    @property
    def emulator(self) -> GraphEmulator:
        """The in-process state, for a caller that also owns this process (demo, benchmarks).
        Tests should use the HTTP admin API instead."""
        return self.app.graph


@contextmanager
def _serve_tls(app: GraphEmulatorApp, host: str, port: int, folder: Path) -> Iterator[int]:
    """The app once more over TLS. Lifespan stays with the HTTP server: one set of
    background tasks (push delivery, live changes) for both."""
    ca = trustme.CA()
    certificate = ca.issue_cert(host, "localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    certificate.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    sock = bound_socket(host, port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=str(folder / "server.pem"),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )

    def abort_connections() -> None:
        # A TLS close waits for the peer's close_notify (30 s in asyncio) and an idle client
        # never sends it: cut the connections instead.
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()

    server = Server(config, before_shutdown=abort_connections)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="calsync-graph-tls", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        pause = threading.Event()  # never set: a bounded poll interval
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator's TLS listener did not start")
            pause.wait(0.02)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def run_graph_emulator(
    config: GraphEmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_port: int = 0,
) -> Iterator[RunningGraphEmulator]:
    """Serve a fresh Graph emulator until the block ends; port 0 picks a free port."""
    app = create_graph_app(config)
    with (
        tempfile.TemporaryDirectory(prefix="calsync-graph-") as folder,
        serve_in_thread(app, host=host, port=port, ready_path="emulator/stats") as served,
        _serve_tls(app, host, tls_port, Path(folder)) as bound_tls_port,
    ):
        yield RunningGraphEmulator(
            served.url, f"https://{host}:{bound_tls_port}/", Path(folder) / "ca.pem", app
        )
