"""Tens of thousands of busy blocks: the screen shows the first page at once, loads the rest in
the background while the app keeps answering keys, and ends with every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from calsync_server.db.models import BusyBlock
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.busy_blocks import BusyBlocksScreen
from calsync_tui.widgets.row_table import RowTable
from tests.tui.conftest import SIZE, dashboard, live, until

ROWS = 20_000


def seed_blocks(world: DemoWorld, count: int) -> None:
    """Rows straight into the server's database: 20k blocks through the emulator would make
    this test about the engine's speed, not the dashboard's."""
    with world.api() as client:
        ids = [c["id"] for c in client.get("api/v1/calendars").json()]
    start = datetime(2030, 1, 1, tzinfo=UTC)
    now = world.server.runtime.clock.now()
    rows = [
        {
            "target_calendar_id": ids[n % 2],
            "source_calendar_id": ids[2 + n % 3],
            "source_key": f"key{n:08d}",
            "provider_event_id": f"event{n:08d}",
            "summary": "Busy",
            "start_at": start + timedelta(minutes=30 * n),
            "end_at": start + timedelta(minutes=30 * n + 25),
            "user_modified": False,
            "user_deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with Session(world.server.runtime.db) as session:
        session.bulk_insert_mappings(BusyBlock, rows)  # type: ignore[arg-type]
        session.commit()


async def test_twenty_thousand_blocks_load_in_the_background(fresh_demo: DemoWorld) -> None:
    seed_blocks(fresh_demo, ROWS)
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, BusyBlocksScreen)
        await until(pilot, lambda: screen.loaded > 0, what="the first page")
        # While the rest loads, the app still switches screens and back.
        await pilot.press("1")
        await until(pilot, lambda: app.current_mode == "overview", what="the overview")
        await pilot.press("4")
        await until(pilot, lambda: app.current_mode == "busy_blocks", what="the blocks again")
        await until(
            pilot,
            lambda: not screen.fetching and screen.loaded == ROWS,
            deadline_s=120,
            what=f"all {ROWS} rows",
        )
        assert screen.query_one(RowTable).row_count == ROWS
        print(
            f"\nfirst rows after {(screen.first_page_seconds or 0) * 1000:.0f} ms; "
            f"{ROWS} rows in {screen.last_load_seconds or 0:.2f} s"
        )
