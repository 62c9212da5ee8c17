"""The dashboard tier: the Textual app against a real server and emulator, the demo's data."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot

from calsync_server.emulator.client import calendar_service
from calsync_tui.app import CalsyncApp
from calsync_tui.client import CalsyncApi
from calsync_tui.launch.demo import DemoWorld, demo_world, enable_calendar
from calsync_tui.stream import ConnectionState
from shared.clock import FixedClock
from tests.support.waiting import wait_until

# The demo scenario seeded around a fixed Wednesday, the server's clock standing still on it,
# and the dashboard's clock 12 s later: every "12 s ago" and every date on screen is stable.
DAY = date(2025, 3, 12)
SERVER_NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
DASHBOARD_NOW = SERVER_NOW + timedelta(seconds=12)
SIZE = (120, 36)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def settled(client: httpx.Client, calendar_id: int) -> bool:
    """The calendar has synced at least once and nothing waits in the queue."""
    logs = client.get("api/v1/sync-logs", params={"calendar_id": calendar_id}).json()["items"]
    status = client.get("api/v1/status").json()
    return bool(logs) and status["queue_depth"] == 0


def enable_in_order(world: DemoWorld, names: list[str] | None = None) -> None:
    """Sync on for the demo's calendars one at a time, each settled before the next, so the
    sync log and the rows come out the same on every run."""
    with world.api() as client:
        for calendar in client.get("api/v1/calendars").json():
            if names is not None and calendar["name"] not in names:
                continue
            enable_calendar(client, calendar)
            wait_until(
                lambda c=calendar: settled(client, c["id"]),
                timeout=30,
                what=f"the first sync of {calendar['name']}",
            )


def build_world(home: Path, today: date, **options: Any) -> Iterator[DemoWorld]:
    with demo_world(
        home,
        live=False,
        today=today,
        push=False,
        enable=False,
        settings={"workers": 1, "poll_interval_seconds": 3600.0},
        **options,
    ) as world:
        yield world


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The demo, every calendar synced, time standing still: for snapshots (read only)."""
    home = tmp_path_factory.mktemp("demo-home")
    for world in build_world(home, DAY, clock=FixedClock(SERVER_NOW)):
        enable_in_order(world)
        yield world


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Iterator[DemoWorld]:
    """A demo of this test's own, on the real clock, nothing enabled yet: for actions."""
    yield from build_world(tmp_path / "home", datetime.now(UTC).date())


def dashboard(world: DemoWorld, *, clock: FixedClock | None = None) -> CalsyncApp:
    api = CalsyncApi(world.server.url, world.server.token)
    return CalsyncApp(api, clock=clock)


def snapshot_app(world: DemoWorld) -> CalsyncApp:
    return dashboard(world, clock=FixedClock(DASHBOARD_NOW))


async def until(
    pilot: Pilot[Any], probe: Callable[[], object], deadline_s: float = 15.0, what: str = ""
) -> None:
    """wait_until for code inside the app's event loop: the probe is re-checked between
    pauses that let the app work (a blocking wait would freeze the app it waits for)."""
    deadline = time.monotonic() + deadline_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what or probe}")
        await pilot.pause(0.02)


async def live(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, CalsyncApp)
    await until(pilot, lambda: app.connection is ConnectionState.LIVE, what="the live stream")


def emulator_blocks(world: DemoWorld, email: str, calendar_id: str) -> list[dict[str, Any]]:
    """calsync's blocks in one emulator calendar, read through the Calendar API."""
    access, _ = world.emulator.emulator.store.new_grant(email)
    service = calendar_service(world.emulator.url, access)
    answer = (
        service.events()
        .list(
            calendarId=calendar_id,
            privateExtendedProperty="calsync=busy-block",
            singleEvents=True,
            maxResults=2500,
        )
        .execute()
    )
    items: list[dict[str, Any]] = answer.get("items", [])
    return items
