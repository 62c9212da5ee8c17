"""More sync logs than a page: the Sync log screen loads older pages as the user goes down, until
the oldest entry; `o` goes straight there; live syncs join the top without losing the rest."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import Session

from calsync_server.db.models import SyncLog
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.launch.demo import DemoWorld, enable_calendar
from calsync_tui.screens.sync_log import FIRST_PAGE, SyncLogScreen
from calsync_tui.widgets.row_table import RowTable
from shared.clock import FixedClock
from shared.domain import SyncKind, SyncStatus
from tests.tui.conftest import SIZE, dashboard, live, until

ENTRIES = 2_000


def seed_logs(world: DemoWorld, count: int) -> None:
    """Rows straight into the server's database, oldest first: 2,000 real syncs would take
    minutes of the engine's time and test nothing more of the dashboard."""
    with world.api() as client:
        ids = [c["id"] for c in client.get("api/v1/calendars").json()]
    start = world.server.runtime.clock.now() - timedelta(minutes=count)
    rows = [
        {
            "calendar_id": ids[n % len(ids)],
            "kind": SyncKind.POLLING,
            "trigger": "poll",
            "status": SyncStatus.SUCCESS,
            "started_at": start + timedelta(minutes=n),
            "finished_at": start + timedelta(minutes=n, seconds=1),
            "events_fetched": n % 7,
            "provider_calls": 1,
            "notes": [f"seeded {n}"],
        }
        for n in range(count)
    ]
    with Session(world.server.runtime.db) as session:
        session.bulk_insert_mappings(SyncLog, rows)
        session.commit()


def every_log_id(client: httpx.Client) -> list[int]:
    """Every sync log of the user, newest first, walked through the API's pages."""
    found: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get("api/v1/sync-logs", params=params).json()
        found += [log["id"] for log in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def open_sync_log(pilot: Any, app: CalsyncApp) -> SyncLogScreen:
    await live(pilot)
    await pilot.press("5")
    await until(pilot, lambda: isinstance(app.screen, SyncLogScreen), what="the sync log")
    screen = app.screen
    assert isinstance(screen, SyncLogScreen)
    await until(pilot, lambda: screen.history.started, what="the newest page")
    return screen


def shown_ids(screen: SyncLogScreen) -> list[int]:
    """The log ids of the rows on the screen's table, top to bottom."""
    return [int(row[-1][0]) for row in screen.query_one(RowTable).rows]


async def test_going_down_loads_older_pages_until_the_oldest_entry(fresh_demo: DemoWorld) -> None:
    seed_logs(fresh_demo, ENTRIES)
    with fresh_demo.api() as client:
        expected = every_log_id(client)
    assert len(expected) == ENTRIES
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sync_log(pilot, app)
        table = screen.query_one(RowTable)
        # One page first, and the screen says there is more.
        assert table.row_count == FIRST_PAGE
        assert "older ones load as you scroll" in str(table.border_subtitle)
        # The user keeps pressing End: each time the next older page comes in behind it.
        presses = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 60
        while expected[-1] not in shown_ids(screen):
            assert time.monotonic() < deadline, f"{table.row_count} of {ENTRIES} after {presses}"
            await pilot.press("end")
            presses += 1
            await pilot.pause(0.05)
        took = time.perf_counter() - started
        await until(pilot, lambda: screen.history.complete, what="the last page")
        # Every entry once, newest first; End once more puts the cursor on the oldest.
        assert shown_ids(screen) == expected
        await pilot.press("end")
        assert table.cursor_row == ENTRIES - 1
        assert screen.rows[table.cursor_row].notes == ["seeded 0"]
        assert str(table.border_subtitle) == f"all {ENTRIES:,}"
        print(f"\n{ENTRIES} entries reached with {presses} presses of End in {took:.2f} s")

        # A sync that ends now joins the top; the entries loaded stay.
        with fresh_demo.api() as client:
            family = next(c for c in client.get("api/v1/calendars").json() if c["name"] == "Family")
            enable_calendar(client, family)
            await until(pilot, lambda: every_log_id(client)[0] > expected[0], what="a new sync")
            newest = every_log_id(client)[0]
        await until(pilot, lambda: shown_ids(screen)[:1] == [newest], what="the new sync on top")
        assert shown_ids(screen) == [newest, *expected]


async def test_o_goes_to_the_oldest_entry_while_the_app_keeps_answering(
    fresh_demo: DemoWorld,
) -> None:
    seed_logs(fresh_demo, ENTRIES)
    with fresh_demo.api() as client:
        expected = every_log_id(client)
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sync_log(pilot, app)
        table = screen.query_one(RowTable)
        await pilot.press("o")
        # While the pages load, the app switches screens and back.
        await pilot.press("1")
        await until(pilot, lambda: app.current_mode == "overview", what="the overview")
        await pilot.press("5")
        await until(pilot, lambda: app.current_mode == "sync_log", what="the sync log again")
        await until(
            pilot,
            lambda: screen.history.complete and table.cursor_row == table.row_count - 1,
            deadline_s=60,
            what="the cursor on the oldest entry",
        )
        assert shown_ids(screen) == expected
        assert screen.rows[table.cursor_row].notes == ["seeded 0"]
        # enter opens the oldest entry in full.
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SyncLogDetail), what="the detail")
        detail = app.screen
        assert isinstance(detail, SyncLogDetail)
        assert detail.entry.notes == ["seeded 0"]


async def test_the_ages_of_older_entries_move_with_the_clock(fresh_demo: DemoWorld) -> None:
    seed_logs(fresh_demo, ENTRIES)
    clock = FixedClock(fresh_demo.server.runtime.clock.now())
    app = dashboard(fresh_demo, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sync_log(pilot, app)
        table = screen.query_one(RowTable)
        await pilot.press("o")
        await until(pilot, lambda: screen.history.complete, what="every page")
        deep = 1_500  # far below the newest page, whose rows are drawn afresh every time
        before = table.rows[deep][0][0]
        clock.advance(timedelta(hours=3))
        await pilot.press("ctrl+r")
        await until(pilot, lambda: table.rows[deep][0][0] != before, what="a new age")
        assert (before, table.rows[deep][0][0]) == ("25 h ago", "28 h ago")
