"""Starts the calsync server inside the dashboard's process, on a loopback port of its own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from calsync_server.app import create_app
from calsync_server.runtime import Runtime
from calsync_server.serving import bound_socket, serve_in_thread
from shared.settings import Settings

LOG_FILE = "calsync.log"


@dataclass
class EmbeddedServer:
    url: str
    token: str
    runtime: Runtime
    settings: Settings


def log_to_file(home: Path) -> Path:
    """Every log line goes to a file: lines on the terminal would tear through the dashboard.
    Called again once the servers are up, because building a Litestar app installs its own
    console handlers."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOG_FILE
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
    return path


@contextmanager
def embedded_server(
    settings: Settings, *, push_to_self: bool = False, **runtime_options: Any
) -> Iterator[EmbeddedServer]:
    """Serve calsync on 127.0.0.1 until the block ends. With `push_to_self` its own loopback URL
    is the public URL, so an emulator on this machine can push to it."""
    sock = bound_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    if push_to_self:
        settings = msgspec.structs.replace(settings, public_url=url)
    runtime = Runtime(settings, **runtime_options)
    app = create_app(settings, runtime=runtime)
    with serve_in_thread(app, sock=sock, ready_path="healthz") as served:
        yield EmbeddedServer(served.url, runtime.default_token, runtime, settings)
