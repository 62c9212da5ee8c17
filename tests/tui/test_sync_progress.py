"""A long first sync shows its progress under the dashboard's screens (issue 20 item 4): events
read, then blocks written of how many, from the server's live stream; gone when it ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from calsync_server.emulators.google import scenario
from calsync_tui.app import CalsyncApp
from calsync_tui.launch.demo import DemoWorld, enable_calendar
from calsync_tui.screens.accounts import AccountsScreen
from calsync_tui.widgets.sync_progress import SyncProgressLine
from shared.clock import FixedClock
from tests.tui.conftest import (
    DAY,
    SERVER_NOW,
    SIZE,
    build_world,
    dashboard,
    enable_in_order,
    live,
    screen_text,
    snapshot_app,
    until,
)
from tests.tui.test_snapshots import keep, laid_out, rows

Snap = Callable[..., bool]

EVENTS = 400


def big_personal_calendar(world: DemoWorld) -> None:
    """Hundreds of the person's own events in the personal calendar, not yet synced."""
    store = world.emulator.emulator.store
    zone = ZoneInfo(scenario.PERSONAL_TZ)
    for n in range(EVENTS):
        day = DAY + timedelta(days=1 + n // 8)
        start = datetime.combine(day, time(8 + n % 8, 0), zone)
        store.insert_event(
            scenario.PERSONAL,
            scenario.PERSONAL,
            {
                "summary": f"Session {n}",
                "start": {"dateTime": start.isoformat(), "timeZone": scenario.PERSONAL_TZ},
                "end": {
                    "dateTime": (start + timedelta(minutes=45)).isoformat(),
                    "timeZone": scenario.PERSONAL_TZ,
                },
            },
            trusted=True,
        )


def slow_google_writes(world: DemoWorld) -> None:
    """Google answers each batch of block writes after 0.7 s, as a busy day's API may: the
    sync lasts seconds whatever the machine, so its progress is on screen for a while."""
    slow = httpx.post(
        f"{world.emulator.url}emulator/faults",
        json={"method": "events.insert", "status": 200, "times": 10_000, "delay_ms": 700},
        timeout=10,
    )
    assert slow.status_code in (200, 201, 204), slow.text


async def test_a_big_first_sync_shows_events_read_and_blocks_written(
    fresh_demo: DemoWorld,
) -> None:
    world = fresh_demo
    enable_in_order(world, ["alex.morgan@work.example.com"])
    big_personal_calendar(world)
    slow_google_writes(world)
    app = dashboard(world)
    async with app.run_test(size=(120, 36)) as pilot:
        await live(pilot)
        line = app.screen.query_one(SyncProgressLine)
        assert not line.has_class("running")
        with world.api() as client:
            (personal,) = [
                c for c in client.get("api/v1/calendars").json() if c["name"] == scenario.PERSONAL
            ]
            enable_calendar(client, personal)
        await until(
            pilot,
            lambda: "blocks" in screen_text(app) and " written" in screen_text(app),
            what="blocks written of how many",
        )
        text = screen_text(app)
        assert f"Syncing {scenario.PERSONAL}: " in text
        assert " events read" in text
        step = app.progress[personal["id"]]
        assert step.phase == "writing"
        assert step.events_read >= EVENTS
        assert step.blocks_total >= EVENTS
        assert f"of {step.blocks_total} written" in text
        # The sync ends: its line goes.
        await until(
            pilot, lambda: not line.has_class("running"), deadline_s=60, what="the sync to end"
        )
        assert "Syncing" not in screen_text(app)


@pytest.fixture
def stalled_demo(tmp_path: Path) -> Iterator[DemoWorld]:
    """The Google demo at a standing clock, the work calendar synced, the personal one holding
    hundreds of events not yet synced. Its first sync will stop for a while where it starts
    writing: reading the personal calendar takes over a second (so its progress goes out) and
    Google answers the first batch of block writes only after STALL_MS."""
    for world in build_world(tmp_path / "home", DAY, clock=FixedClock(SERVER_NOW)):
        enable_in_order(world, ["alex.morgan@work.example.com"])
        big_personal_calendar(world)
        for fault in (
            {"method": "events.list", "calendar_id": scenario.PERSONAL, "delay_ms": 1500},
            {"method": "events.insert", "delay_ms": STALL_MS, "times": 50},
        ):
            answer = httpx.post(
                f"{world.emulator.url}emulator/faults",
                json={"status": 200, "times": 1, **fault},
                timeout=10,
            )
            assert answer.status_code in (200, 201, 204), answer.text
        yield world


STALL_MS = 15_000


def test_progress_line_picture(
    snap_compare: Snap, stalled_demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    """The progress line under the Accounts screen while the personal calendar's first sync
    writes its blocks: the events it read, and none of its blocks written yet (the first
    batch of writes is held by Google): the same numbers on every run."""
    world = stalled_demo

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await pilot.press("2")
        await until(pilot, lambda: rows(app, "#accounts") == 2, what="the accounts")
        await live(pilot)
        with world.api() as client:
            (personal,) = [
                c for c in client.get("api/v1/calendars").json() if c["name"] == scenario.PERSONAL
            ]
            enable_calendar(client, personal)

        def writing() -> bool:
            step = app.progress.get(personal["id"])
            return step is not None and step.phase == "writing" and step.blocks_done == 0

        await until(pilot, writing, what="the blocks of the personal calendar being written")
        # The table as it stands with the personal calendar syncing (a sync ending meanwhile,
        # the work calendar's, may or may not have refreshed it).
        screen = app.screen
        assert isinstance(screen, AccountsScreen)
        screen.reload()
        await until(
            pilot,
            lambda: [str(c) for c in screen.query_one(DataTable).get_column_at(4)] == ["1", "1"],
            what="both accounts syncing one calendar",
        )
        await until(pilot, lambda: laid_out(app, "#accounts"), what="the table sized")
        await pilot.pause()
        step = app.progress[personal["id"]]
        assert step.events_read >= EVENTS
        assert f"of {step.blocks_total} written" in screen_text(app)

    assert snap_compare(snapshot_app(world), terminal_size=SIZE, run_before=run_before)
    keep(request, "sync_progress")
