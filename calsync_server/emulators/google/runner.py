"""Run an emulator on a free local port in a background thread: for tests, demo, benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from calsync_server.emulators.google.app import GoogleEmulatorApp, create_emulator_app
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.state import Emulator
from calsync_server.serving import serve_in_thread


@dataclass
class RunningEmulator:
    url: str  # the root, ending in "/": point CALSYNC_GOOGLE_API_URL or rootUrl here
    host: str
    port: int
    app: GoogleEmulatorApp

    @property
    def emulator(self) -> Emulator:
        """The in-process state, for a caller that also owns this process (demo, benchmarks).
        Tests should use the HTTP admin API instead."""
        return self.app.emulator


@contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Serve a fresh emulator until the block ends; `port=0` picks a free port."""
    app = create_emulator_app(config)
    with serve_in_thread(app, host=host, port=port, ready_path="emulator/stats") as served:
        yield RunningEmulator(served.url, host, served.port, app)
