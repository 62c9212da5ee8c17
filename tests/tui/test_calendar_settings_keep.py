"""The settings form's "keep the blocks when sync is turned off" choice, saved to the server and
obeyed when the calendar is turned off."""

from __future__ import annotations

from typing import Any

import httpx
from textual.widgets import Checkbox

from calsync_server.emulators.google.scenario import PERSONAL, WORK
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.calendars import CalendarsScreen
from tests.support.waiting import wait_until
from tests.tui.conftest import (
    SIZE,
    dashboard,
    emulator_blocks,
    enable_in_order,
    live,
    until,
)


def calendars(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in client.get("api/v1/calendars").json()}


def logs(client: httpx.Client, calendar_id: int) -> int:
    answer = client.get("api/v1/sync-logs", params={"calendar_id": calendar_id, "limit": 1000})
    return len(answer.json()["items"])


async def test_the_form_saves_keep_blocks_when_off_and_turning_off_keeps_them(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK, PERSONAL])
    with fresh_demo.api() as client:
        held = len(emulator_blocks(fresh_demo, PERSONAL, PERSONAL))
        assert held > 0
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="calendars")
        screen = app.screen
        assert isinstance(screen, CalendarsScreen)
        row = next(c for c in screen.rows if c.name == PERSONAL)
        dialog = CalendarSettingsDialog(app.api, row)
        await app.push_screen(dialog)
        keep = dialog.query_one("#keep-blocks", Checkbox)
        assert keep.value is False  # the default
        keep.focus()
        await pilot.press("space")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="saved")
    with fresh_demo.api() as client:
        assert calendars(client)[PERSONAL]["keep_blocks_when_off"] is True
        before = logs(client, row.id)
        answer = client.patch(f"api/v1/calendars/{row.id}", json={"sync_enabled": False})
        assert answer.status_code == 200, answer.text
        wait_until(lambda: logs(client, row.id) > before, what="the sync of turning it off")
    # Turned off, and its blocks are still there, as chosen.
    assert len(emulator_blocks(fresh_demo, PERSONAL, PERSONAL)) == held
