"""The full reconcile's question shows its plan first (issue 19 item 2): `F` on the Calendars
screen asks the server what a full pass would change now (GET /api/v1/plan?full=true) and shows
the counts and first changes per target before the yes; nothing is written until the yes, and
the yes then makes exactly those changes. Outcomes in the emulator's calendars and the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from textual.pilot import Pilot

from calsync_server.emulators.google import scenario
from calsync_server.emulators.google.scenario import PERSONAL, WORK
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.full_reconcile import FullReconcileDialog
from calsync_tui.launch.demo import DemoWorld
from shared.clock import FixedClock
from tests.support.rows import table_rows
from tests.tui.conftest import (
    DAY,
    SERVER_NOW,
    SIZE,
    build_world,
    dashboard,
    emulator_blocks,
    enable_in_order,
    live,
    screen_text,
    snapshot_app,
    until,
)
from tests.tui.test_snapshots import keep, laid_out, rows

Snap = Callable[..., bool]
ZONE = ZoneInfo(scenario.PERSONAL_TZ)
# The tables a sync writes: unchanged while only the plan is read.
SYNC_TABLES = ("event", "busy_block", "sync_log", "sync_job", "calendar")


def _body(summary: str, day_offset: int, hour: int) -> dict[str, Any]:
    start = datetime.combine(DAY + timedelta(days=day_offset), time(hour, 0), ZONE)
    return {
        "summary": summary,
        "start": {"dateTime": start.isoformat(), "timeZone": scenario.PERSONAL_TZ},
        "end": {
            "dateTime": (start + timedelta(hours=1)).isoformat(),
            "timeZone": scenario.PERSONAL_TZ,
        },
    }


def changed_behind_calsync(world: DemoWorld) -> None:
    """Work and Personal synced with a lunch in Personal; then, with no sync told (no push,
    no poll due), the lunch is cancelled and a dentist's appointment made: a full reconcile
    would delete the lunch's block in Work and create the dentist's."""
    store = world.emulator.emulator.store
    lunch = store.insert_event(PERSONAL, PERSONAL, _body("Lunch with Kim", 1, 12), trusted=True)
    enable_in_order(world, [WORK, PERSONAL])
    store.delete_event(PERSONAL, PERSONAL, lunch["id"], trusted=True)
    store.insert_event(PERSONAL, PERSONAL, _body("Dentist", 2, 15), trusted=True)


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The demo, time standing still, changed behind calsync's back (read only)."""
    home = tmp_path_factory.mktemp("behind-home")
    for world in build_world(home, DAY, clock=FixedClock(SERVER_NOW)):
        changed_behind_calsync(world)
        yield world


async def open_question(pilot: Pilot[Any]) -> FullReconcileDialog:
    app = pilot.app
    assert isinstance(app, CalsyncApp)
    await pilot.press("3")
    await until(pilot, lambda: rows(app, "#calendars") >= 5, what="the calendars")
    await until(pilot, lambda: laid_out(app, "#calendars"), what="#calendars sized to its rows")
    await pilot.press("F")
    await until(
        pilot,
        lambda: isinstance(app.screen, FullReconcileDialog) and app.screen.answered,
        what="the question with its plan",
    )
    assert isinstance(app.screen, FullReconcileDialog)
    return app.screen


def test_the_question_shows_the_plan(
    snap_compare: Snap, behind: DemoWorld, request: pytest.FixtureRequest
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_question(pilot)
        await live(pilot)
        await pilot.pause()

    assert snap_compare(snapshot_app(behind), terminal_size=SIZE, run_before=run_before)
    keep(request, "confirm_full_reconcile")


def _blocks(world: DemoWorld) -> list[tuple[str, str]]:
    return sorted((b["id"], b["start"]["dateTime"]) for b in emulator_blocks(world, WORK, WORK))


def _full_logs(client: httpx.Client) -> list[dict[str, Any]]:
    items = client.get("api/v1/sync-logs").json()["items"]
    return [log for log in items if log["kind"] == "full"]


async def test_nothing_is_written_before_the_yes(fresh_demo: DemoWorld) -> None:
    world = fresh_demo
    changed_behind_calsync(world)
    tables, blocks = table_rows(world.server.runtime.db, SYNC_TABLES), _blocks(world)
    lunch_at = datetime.combine(DAY + timedelta(days=1), time(12, 0), ZONE)
    dentist_at = datetime.combine(DAY + timedelta(days=2), time(15, 0), ZONE)
    starts = {datetime.fromisoformat(start) for _, start in blocks}
    assert lunch_at in starts
    assert dentist_at not in starts
    app = dashboard(world)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        question = await open_question(pilot)
        shown = screen_text(app)
        assert "1 new, 0 fixed, 1 deleted" in shown
        assert '+ "Busy"' in shown
        assert '- "Busy"' in shown
        with world.api() as client:
            assert _full_logs(client) == []
        assert table_rows(world.server.runtime.db, SYNC_TABLES) == tables
        assert _blocks(world) == blocks

        await pilot.press("n")
        await until(pilot, lambda: app.screen is not question, what="the question gone")
        assert table_rows(world.server.runtime.db, SYNC_TABLES) == tables
        assert _blocks(world) == blocks

        await open_question(pilot)
        await pilot.press("y")
        with world.api() as client:
            await until(pilot, lambda: len(_full_logs(client)) >= 2, what="the full reconcile")

        def reconciled() -> bool:
            after = {datetime.fromisoformat(start) for _, start in _blocks(world)}
            return dentist_at in after and lunch_at not in after

        await until(pilot, reconciled, what="the dentist's block made, the lunch's gone")
