"""The user's rules in the settings form (issue 18): set there, saved by the server, obeyed by
the next sync in the emulator's calendars and told in the sync log's detail; a rule the server
refuses is shown in the form, in its words, with nothing saved and the form still open."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from textual.widgets import Checkbox, Input, Static

from calsync_server.emulators.google.scenario import PERSONAL, WORK, WORK_TZ
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.calendars import CalendarsScreen
from calsync_tui.screens.sync_log import SyncLogScreen
from calsync_tui.widgets.row_table import RowTable
from tests.support.waiting import wait_until, wait_until_empty
from tests.tui.conftest import (
    SIZE,
    dashboard,
    emulator_blocks,
    enable_in_order,
    live,
    screen_text,
    until,
)
from tests.tui.test_actions import calendars, open_settings

HOURS_NOTE = re.compile(r"\d+ events? outside working hours")


def block_times(world: DemoWorld) -> list[tuple[datetime, datetime]]:
    """The blocks in the demo's work calendar that end after the server's now (ended ones are
    history, left alone), start and end on the work calendar's clock."""
    zone = ZoneInfo(WORK_TZ)
    now = world.server.runtime.clock.now()
    times = [
        (
            datetime.fromisoformat(b["start"]["dateTime"]),
            datetime.fromisoformat(b["end"]["dateTime"]),
        )
        for b in emulator_blocks(world, WORK, WORK)
        if "dateTime" in b["start"]
    ]
    return [(start.astimezone(zone), end.astimezone(zone)) for start, end in times if end > now]


def in_hours(start: datetime, end: datetime) -> bool:
    """Inside Monday to Friday, 09:00 to 17:00 of the same day."""
    return (
        start.weekday() < 5
        and start.date() == end.date()
        and time(9) <= start.time()
        and end.time() <= time(17)
    )


def notes(client: httpx.Client, calendar_id: int) -> list[str]:
    logs = client.get("api/v1/sync-logs", params={"calendar_id": calendar_id}).json()["items"]
    return [note for log in logs for note in log["notes"]]


async def type_into(pilot: Any, field: Input, text: str) -> None:
    """As a user: focus the field, clear it, type."""
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def test_working_hours_set_in_the_form_take_the_evening_blocks_away(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK, PERSONAL])
    # Yoga in New York at 18:30 is 23:30 in Berlin: the work calendar holds blocks at night.
    before = block_times(fresh_demo)
    assert any(not in_hours(*block) for block in before)
    assert any(in_hours(*block) for block in before)  # the dentist, 13:00 in Berlin
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        dialog = await open_settings(pilot, app, WORK)
        days = [dialog.query_one(f"#day-{d}", Checkbox) for d in ("mon", "sat")]
        assert all(day.disabled for day in days)  # greyed out while hours are off
        hours = dialog.query_one("#hours-on", Checkbox)
        hours.focus()
        await pilot.press("space")
        await pilot.pause()
        assert not any(day.disabled for day in days)
        # The week it offers, Monday to Friday, 09:00 to 17:00: taken as it is.
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="saved")
        with fresh_demo.api() as client:
            work = calendars(client)[WORK]
            assert work["working_hours"] == {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "09:00",
                "end": "17:00",
            }
            # The next sync (the change starts it) leaves no block outside those hours.
            wait_until_empty(
                lambda: [b for b in block_times(fresh_demo) if not in_hours(*b)],
                timeout=30,
                what="no block outside working hours in the work calendar",
            )
            assert block_times(fresh_demo)  # the dentist's block stayed
            said = wait_until(
                lambda: [n for n in notes(client, work["id"]) if HOURS_NOTE.fullmatch(n)],
                timeout=30,
                what="the sync log's note of what the hours removed",
            )

        # The dashboard's sync log shows that sync's note in its detail.
        await pilot.press("5")

        def logged() -> int | None:
            screen = app.screen
            if not isinstance(screen, SyncLogScreen):
                return None
            return next((i for i, log in enumerate(screen.rows) if said[0] in log.notes), None)

        await until(pilot, lambda: logged() is not None, what="the sync in the log")
        index = logged()
        assert index is not None
        app.screen.query_one(RowTable).cursor_row = index
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SyncLogDetail), what="the detail")
        await pilot.pause()
        assert said[0] in screen_text(app)


async def refused(pilot: Any, dialog: CalendarSettingsDialog, words: str) -> None:
    """The form shows the server's refusal saying `words`."""
    error = dialog.query_one("#settings-error", Static)
    await until(
        pilot,
        lambda: error.display and words in str(error.render()),
        what=f"the refusal {words!r} in the form",
    )


async def test_a_bad_regex_is_refused_in_the_form_at_80x24_and_nothing_is_saved(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK])
    with fresh_demo.api() as client:
        saved = calendars(client)[WORK]
    app = dashboard(fresh_demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await live(pilot)
        dialog = await open_settings(pilot, app, WORK)
        exclude = dialog.query_one("#title-exclude", Input)
        await type_into(pilot, exclude, "lunch, /(unclosed/")
        dialog.query_one("#merge", Checkbox).value = True
        await pilot.press("ctrl+s")
        await refused(pilot, dialog, '"/(unclosed/" is not a valid regular expression')
        # In sight on the small screen, with the buttons, and the form still open as typed.
        error, body = dialog.query_one("#settings-error"), dialog.query_one("#settings-body")
        await until(
            pilot,
            lambda: error.region.bottom <= body.region.bottom,
            what="the refusal, all of it in sight",
        )
        shown = screen_text(app)
        assert "not a valid regular" in shown
        assert "Your choices are still here" in shown
        assert "Save (ctrl+s)" in shown
        assert app.screen is dialog
        assert exclude.value == "lunch, /(unclosed/"
        assert dialog.query_one("#merge", Checkbox).value is True
        with fresh_demo.api() as client:
            assert calendars(client)[WORK] == saved  # nothing of it, merging neither

            # Mended (a regex may hold a comma), saved: the server has both rules.
            await type_into(pilot, exclude, "lunch, /^stand-?ups{0,1}/")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="saved")
            work = calendars(client)[WORK]
        assert work["title_exclude"] == ["lunch", "/^stand-?ups{0,1}/"]
        assert work["merge_blocks"] is True
        assert (work["title_include"], work["working_hours"]) == ([], None)  # untouched


async def test_hours_the_server_refuses_are_shown_in_its_words(fresh_demo: DemoWorld) -> None:
    enable_in_order(fresh_demo, [WORK])
    with fresh_demo.api() as client:
        saved = calendars(client)[WORK]
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        dialog = await open_settings(pilot, app, WORK)
        dialog.query_one("#hours-on", Checkbox).value = True
        await pilot.pause()
        await type_into(pilot, dialog.query_one("#hours-start", Input), "18:00")
        await pilot.press("ctrl+s")
        await refused(pilot, dialog, "working hours must end after they start")
        for day in ("mon", "tue", "wed", "thu", "fri"):
            dialog.query_one(f"#day-{day}", Checkbox).value = False
        await type_into(pilot, dialog.query_one("#hours-start", Input), "08:00")
        await pilot.press("ctrl+s")
        await refused(pilot, dialog, "at least one weekday")
        assert app.screen is dialog
        with fresh_demo.api() as client:
            assert calendars(client)[WORK] == saved
