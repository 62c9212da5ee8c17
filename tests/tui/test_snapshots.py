"""Every screen, the sync-log detail and each confirmation as a snapshot of the demo's data;
the same run writes screenshots/<name>.svg, which README.md shows."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Static

from calsync_server.emulators.google.scenario import WORK
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.calendars import CalendarsScreen
from calsync_tui.screens.overview import OverviewScreen
from calsync_tui.screens.sync_log import SyncLogScreen
from calsync_tui.widgets.row_table import RowTable
from tests.tui.conftest import (
    SCREENSHOTS,
    SIZE,
    busy_blocks_shown,
    live,
    screen_text,
    snapshot_app,
    until,
)

Snap = Callable[..., bool]


def rows(app: CalsyncApp, selector: str) -> int:
    table = app.screen.query_one(selector)
    assert isinstance(table, DataTable | RowTable)
    return table.row_count


def laid_out(app: CalsyncApp, selector: str) -> bool:
    """Some column of the table is wider than its header: its rows have been measured."""
    table = app.screen.query_one(selector)
    assert isinstance(table, DataTable)
    return any(c.content_width > len(c.label.plain) for c in table.columns.values())


async def _shown(pilot: Pilot[Any], name: str) -> None:
    """The data is on screen and the stream is live: ready for the picture."""
    await live(pilot)
    await pilot.pause()


def keep(request: pytest.FixtureRequest, name: str) -> None:
    """The snapshot just compared (so identical to what the app drew) is README's picture.
    With --snapshot-update the new snapshot is written only when the session ends: run the
    tests once more to refresh screenshots/."""
    if request.config.getoption("--snapshot-update", default=False):
        return
    test = Path(request.node.path)
    stored = test.parent / "__snapshots__" / test.stem / f"{request.node.name}.svg"
    SCREENSHOTS.mkdir(exist_ok=True)
    shutil.copyfile(stored, SCREENSHOTS / f"{name}.svg")


def screen(
    key: str, selector: str, count: int, name: str
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await pilot.press(key)
        await until(pilot, lambda: rows(app, selector) >= count, what=f"{count} rows in {selector}")
        if isinstance(app.screen.query_one(selector), DataTable):
            # Columns are sized to new rows when the table is next idle: a picture taken
            # before shows them cut to their headers ("alex.", about 1 run in 10).
            await until(pilot, lambda: laid_out(app, selector), what=f"{selector} sized")
        await _shown(pilot, name)

    return run_before


def test_overview(
    snap_compare: Snap, three_demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    """The three providers' demo at a glance: its counters and latest syncs."""
    with three_demo.api() as client:
        logs = len(client.get("api/v1/sync-logs").json()["items"])
    recent = min(logs, 8)  # the overview shows the latest eight

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)

        def loaded() -> bool:
            screen = app.screen
            return isinstance(screen, OverviewScreen) and screen.data is not None

        await until(pilot, loaded, what="the overview's data")
        await until(pilot, lambda: rows(app, "#recent") == recent, what="the recent syncs")
        await _shown(pilot, "overview")

    assert snap_compare(snapshot_app(three_demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "overview")


def test_accounts(
    snap_compare: Snap, three_demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    """Microsoft 365 work, Google personal, CalDAV family: the provider on every row."""
    run_before = screen("2", "#accounts", 3, "accounts")
    assert snap_compare(snapshot_app(three_demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "accounts")


def test_calendars(
    snap_compare: Snap, three_demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    run_before = screen("3", "#calendars", 5, "calendars")
    assert snap_compare(snapshot_app(three_demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "calendars")


def test_calendar_settings(
    snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await pilot.press("3")
        await until(pilot, lambda: rows(app, "#calendars") == 5, what="the calendars")
        # The read-only calendar: the form says why it can only be a source.
        screen = app.screen
        assert isinstance(screen, CalendarsScreen)
        index = next(i for i, c in enumerate(screen.rows) if c.read_only)
        screen.query_one(DataTable).move_cursor(row=index)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, CalendarSettingsDialog), what="the form")
        await _shown(pilot, "calendar_settings")

    assert snap_compare(snapshot_app(demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "calendar_settings")


def test_calendar_rules(
    snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    """The work calendar's rules filled in, one pattern a bad regex: the server's refusal in
    the form, nothing saved (so the demo stays as it was for the other pictures)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await pilot.press("3")
        await until(pilot, lambda: rows(app, "#calendars") == 5, what="the calendars")
        screen = app.screen
        assert isinstance(screen, CalendarsScreen)
        index = next(i for i, c in enumerate(screen.rows) if c.name == WORK)
        screen.query_one(DataTable).move_cursor(row=index)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, CalendarSettingsDialog), what="the form")
        form = app.screen
        typed = form.query_one("#title-exclude", Input)
        typed.cursor_blink = False  # the picture must not catch the cursor half-way
        typed.focus()
        typed.value = "lunch, /^(focus|1:1/"
        form.query_one("#tentative", Checkbox).value = False
        form.query_one("#hours-on", Checkbox).value = True
        form.query_one("#merge", Checkbox).value = True
        await pilot.press("ctrl+s")
        error = form.query_one("#settings-error", Static)
        body = form.query_one("#settings-body")
        await until(
            pilot,
            lambda: error.display and 0 < error.region.bottom <= body.region.bottom,
            what="the refusal, all of it in sight",
        )
        await _shown(pilot, "calendar_rules")

    assert snap_compare(snapshot_app(demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "calendar_rules")


def test_busy_blocks(snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest) -> None:
    total = demo.api().get("api/v1/status").json()["busy_blocks"]
    assert total > 100

    async def run_before(pilot: Pilot[Any]) -> None:
        await busy_blocks_shown(pilot, total)
        await _shown(pilot, "busy_blocks")

    assert snap_compare(snapshot_app(demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "busy_blocks")


def test_sync_log(snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest) -> None:
    run_before = screen("5", "#logs", 5, "sync_log")
    assert snap_compare(snapshot_app(demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "sync_log")


def test_sync_log_detail(
    snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await pilot.press("5")
        await until(pilot, lambda: rows(app, "#logs") == 5, what="five syncs")
        # The sync of Projects: it created blocks, so every count has something to show.
        screen = app.screen
        assert isinstance(screen, SyncLogScreen)
        index = next(i for i, log in enumerate(screen.rows) if log.blocks_created)
        screen.query_one(RowTable).cursor_row = index
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SyncLogDetail), what="the detail")
        await _shown(pilot, "sync_log_detail")

    assert snap_compare(snapshot_app(demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "sync_log_detail")


def test_channels(snap_compare: Snap, push_demo: DemoWorld, request: pytest.FixtureRequest) -> None:
    """Push on, three providers: Google's channel, Graph's subscriptions with the lifecycle
    notice each last had (one removed, and its replacement refused: failing, polled), the
    CalDAV calendar polled by design; what needs the user under the table."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await screen("6", "#channels", 5, "channels")(pilot)
        text = screen_text(app)
        for words in (
            "Google channel",
            "Graph subscription",
            "failing",
            "reauthorize 12 s ago",
            "removed 12 s ago",
            "missed 12 s ago",
            "CalDAV: none",
            "polled",
            "needs you",
            "alex.morgan@icloud.example: the server refused the app password",
            "Projects (1 failure): removed by Microsoft; a new one failed: 503",
        ):
            assert words in text, f"{words!r} not in:\n{text}"

    assert snap_compare(snapshot_app(push_demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "channels")


@pytest.mark.parametrize(
    ("name", "keys", "selector", "count"),
    [
        ("confirm_disconnect", ("2", "d"), "#accounts", 2),
    ],
)
def test_confirmation(
    snap_compare: Snap,
    demo: DemoWorld,
    request: pytest.FixtureRequest,
    name: str,
    keys: tuple[str, str],
    selector: str,
    count: int,
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await pilot.press(keys[0])
        await until(pilot, lambda: rows(app, selector) >= count, what=f"rows in {selector}")
        # A table sizes its columns to new rows when next idle; a dialog opened before that
        # leaves the table behind it sized for its headers ("alex." in CI).
        await until(pilot, lambda: laid_out(app, selector), what=f"{selector} sized to its rows")
        await pilot.press(keys[1])
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await _shown(pilot, name)

    assert snap_compare(snapshot_app(demo), terminal_size=SIZE, run_before=run_before)
    keep(request, name)
