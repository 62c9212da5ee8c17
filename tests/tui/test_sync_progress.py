"""A long first sync shows its progress under the dashboard's screens (issue 20 item 4): events
read, then blocks written of how many, from the server's live stream; gone when it ends."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx

from calsync_server.emulators.google import scenario
from calsync_tui.launch.demo import DemoWorld, enable_calendar
from calsync_tui.widgets.sync_progress import SyncProgressLine
from tests.tui.conftest import DAY, dashboard, enable_in_order, live, screen_text, until

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
