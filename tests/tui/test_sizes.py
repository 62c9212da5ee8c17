"""Every screen and dialog renders at 80x24 and at 200x60 with the demo's data, without error."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from calsync_tui.dialogs.add_account import AddAccountDialog
from calsync_tui.dialogs.caldav_login import CalDAVLoginDialog
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.widgets.header import SCREENS
from calsync_tui.widgets.row_table import RowTable
from tests.tui.conftest import live, screen_text, snapshot_app, until


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_every_screen_renders(demo: DemoWorld, size: tuple[int, int]) -> None:
    app = snapshot_app(demo)
    async with app.run_test(size=size) as pilot:
        await live(pilot)
        for key, mode, _ in SCREENS:
            await pilot.press(key)
            await until(pilot, lambda mode=mode: app.current_mode == mode, what=mode)
            tables = [*app.screen.query(DataTable), *app.screen.query(RowTable)]
            if tables and mode != "overview":
                table = tables[0]
                await until(pilot, lambda t=table: t.row_count > 0, what=f"rows on {mode}")
            await pilot.pause()
            text = app.export_screenshot()
            assert "calsync" in text
        await pilot.press("5")
        await until(pilot, lambda: app.screen.query_one(RowTable).row_count > 0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SyncLogDetail), what="the detail")
        app.export_screenshot()
        await pilot.press("escape")
        for key, dialog_key in (("2", "d"), ("3", "F")):
            await pilot.press(key)
            await until(pilot, lambda: app.screen.query_one(DataTable).row_count > 0)
            await pilot.press(dialog_key)
            await pilot.pause()
            app.export_screenshot()
            await pilot.press("n")
        await pilot.press("3")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, CalendarSettingsDialog), what="the form")
        app.export_screenshot()
        await pilot.press("escape")
        # The add-account choice, then each login form, with a refusal shown (nothing typed).
        for provider in ("c", "i"):
            await pilot.press("2", "a")
            await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="choice")
            app.export_screenshot()
            await pilot.press(provider)
            await until(pilot, lambda: isinstance(app.screen, CalDAVLoginDialog), what="form")
            await pilot.press("ctrl+s")
            await pilot.pause()
            app.export_screenshot()
            shown = screen_text(app)
            assert "fill in" in shown
            assert "Connect (ctrl+s)" in shown  # the refusal leaves the buttons in sight
            await pilot.press("escape")
        # The command palette reaches the screens too.
        await pilot.press("ctrl+p")
        await pilot.press(*"Channels")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "channels", what="channels by palette")
        assert app.is_running
