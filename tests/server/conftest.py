"""The server tier: calsync's server on a real port, the emulator pushing to it, a real database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlmodel import Session, col, select

from calsync_server.app import create_app
from calsync_server.db.models import PushSubscription, SyncJob
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.runtime import Runtime
from calsync_server.serving import ServedApp, bound_socket, serve_in_thread
from calsync_server.sync.engine import SyncEngine
from shared.domain import ChannelState, JobState
from shared.http import ReusedConnectionRetry
from tests.support.drivers.caldav import CalDAVServer, caldav_server
from tests.support.drivers.microsoft import GraphEndpoints
from tests.support.processes import Servers
from tests.support.waiting import wait_until
from tests.support.world import FAST_RETRY, Cal, World


class ServerWorld(World):
    """The engine world plus a running server that shares its database and home."""

    def __init__(
        self, emulator: RunningEmulator, database_url: str, home: Path, **settings: Any
    ) -> None:
        super().__init__(emulator, database_url, home)
        self.server_settings = msgspec.structs.replace(self.settings, **settings)
        self._served: Iterator[ServedApp] | None = None
        self.runtime: Runtime | None = None
        self.url = ""

    def start(self, *, push: bool = True) -> None:
        """Start the server; with `push`, its own URL is the public URL (channels are made)."""
        sock = bound_socket("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        settings = self.server_settings
        if push:
            settings = msgspec.structs.replace(settings, public_url=url)
        self.runtime = Runtime(settings, retry=FAST_RETRY)
        app = create_app(settings, runtime=self.runtime)
        self._served = serve_in_thread(
            app, sock=sock, ready_path="healthz", before_shutdown=self.runtime.bus.close
        )
        served = self._served.__enter__()
        self.url = served.url

    def stop(self) -> None:
        if self._served is not None:
            self._served.__exit__(None, None, None)
            self._served = None

    def close(self) -> None:
        self.stop()
        super().close()

    def api(self, user: str = "ada") -> httpx.Client:
        self.user(user)
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer token-{user}"},
            timeout=30,
            transport=ReusedConnectionRetry(),
        )

    def enable(self, client: httpx.Client, *cals: Cal, **changes: Any) -> None:
        for cal in cals:
            answer = client.patch(
                f"/api/v1/calendars/{cal.id}", json={"sync_enabled": True, **changes}
            )
            assert answer.status_code == 200, answer.text

    def channel(self, cal: Cal) -> PushSubscription | None:
        """The calendar's working channel: active, and its first ("sync") message received."""
        with Session(self.db) as session:
            return session.exec(
                select(PushSubscription).where(
                    PushSubscription.calendar_id == cal.id,
                    PushSubscription.state == ChannelState.ACTIVE,
                    col(PushSubscription.last_sequence).is_not(None),
                )
            ).first()

    def wait_for_channels(self, *cals: Cal, timeout: float = 15) -> None:
        wait_until(
            lambda: all(self.channel(c) is not None for c in cals),
            timeout=timeout,
            what="working push channels for every calendar",
        )

    def logs(self, client: httpx.Client, cal: Cal) -> list[dict[str, Any]]:
        answer = client.get("/api/v1/sync-logs", params={"calendar_id": cal.id, "limit": 1000})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def settled(self, client: httpx.Client) -> bool:
        """Nothing queued or running for this user."""
        return bool(client.get("/api/v1/status").json()["queue_depth"] == 0) and not any(
            self.running()
        )

    def running(self) -> list[int]:
        with Session(self.db) as session:
            return [
                j.calendar_id
                for j in session.exec(select(SyncJob).where(SyncJob.state == JobState.RUNNING))
            ]


@pytest.fixture
def server_world(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> Iterator[ServerWorld]:
    built = ServerWorld(emulator, database_url, tmp_path / "home", poll_interval_seconds=3600.0)
    yield built
    built.close()


@pytest.fixture
def polling_world(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> Iterator[ServerWorld]:
    """A server that polls every second: CalDAV has no push, and Google is polled alike (no
    public URL) so both directions wait on the same scheduler."""
    built = ServerWorld(emulator, database_url, tmp_path / "home", poll_interval_seconds=1.0)
    yield built
    built.close()


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalDAVServer]:
    """A Radicale server (behind the fault proxy) for the module's CalDAV accounts."""
    with caldav_server("radicale", tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphEndpoints]:
    """A Graph emulator for the module's Microsoft mailboxes (each test makes its own)."""
    config = GraphEmulatorConfig(push_delay_s=0.01, push_retry_base_s=0.05)
    with run_graph_emulator(config) as running:
        yield GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


def microsoft_world(
    emulator: RunningEmulator, graph: GraphEndpoints, database_url: str, home: Path, **settings: Any
) -> ServerWorld:
    """A server world whose server, and the world's own engine (which imports calendars),
    reach the Graph emulator where a deployment's settings would point them."""
    where = {
        "microsoft_graph_url": f"{graph.url}v1.0",
        "microsoft_login_url": graph.tls_url,
        "microsoft_ca_file": graph.ca_path,
    }
    built = ServerWorld(emulator, database_url, home, **where, **settings)
    built.settings = msgspec.structs.replace(built.settings, **where)
    built.engine = SyncEngine(built.db, built.settings, vault=built.vault, retry=FAST_RETRY)
    return built


@pytest.fixture
def world(emulator: RunningEmulator, database_url: str, tmp_path: Path) -> Iterator[World]:
    """The engine world without a server (modules that serve one override it)."""
    built = World(emulator, database_url, tmp_path / "home")
    yield built
    built.close()


@pytest.fixture
def servers(tmp_path: Path, database_url: str) -> Iterator[Servers]:
    """`calsync serve` processes, killed before their database goes (database_url's teardown)."""
    made = Servers(tmp_path)
    try:
        yield made
    finally:
        made.kill_all()
