"""Text the dashboard did not write (calendar names, event titles, the provider's and the
server's words) is shown exactly as written on every screen and dialog: never read as markup,
never a crash."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import httpx
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Select, Static

from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.dialogs.sync_log_detail import SyncLogDetail
from calsync_tui.formatting import plain_row
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.accounts import AccountsScreen
from calsync_tui.screens.busy_blocks import BusyBlocksScreen
from calsync_tui.screens.calendars import CalendarsScreen
from calsync_tui.screens.channels import ChannelsScreen
from calsync_tui.screens.overview import OverviewScreen
from calsync_tui.screens.sync_log import SyncLogScreen
from calsync_tui.widgets.row_table import RowTable
from tests.support.google_service import calendar_service
from tests.support.waiting import wait_until
from tests.tui.conftest import (
    dashboard,
    google_account,
    live,
    screen_text,
    settled,
    settled_all,
    sign_in,
    until,
)

ROBIN = "robin@markup.example.com"
# Each would be mangled or raise if read as markup: a tag that swallows its text, styles, a
# link, a closing tag with nothing open (MarkupError), a lone "[".
TEAM = "Team [old]"
BOLD = "[b]bold[/b] [link=x]"
CLIENT = "[Ext] Client [/] a [ lone"
# An event title that would be a clickable "quit" if read as markup.
TITLE = "[red]Offsite[/red] [@click=app.quit]go[/]"
# What the provider says, through the emulator's injected faults.
INSERT_REASON = "[i]refused[/i]"
LIST_REASON = "[/]gone[b]"
DISCONNECT_REASON = "[/]kept[i]"


def fault(world: DemoWorld, method: str, reason: str) -> None:
    answer = httpx.post(
        f"{world.emulator.url}emulator/faults",
        json={"method": method, "status": 400, "reason": reason, "times": 1},
        timeout=10,
    )
    assert answer.status_code in (200, 201), answer.text


def robins_world(world: DemoWorld) -> dict[str, dict[str, Any]]:
    """Robin's Google account with the three calendars, signed in through the server; Team
    shows its titles in the blocks it makes, and an event of Team is titled TITLE. The first
    block written into Client is refused by the provider (a note in its sync log)."""
    made = google_account(world, ROBIN, TEAM, BOLD, CLIENT)
    ids = {c["summary"]: c["id"] for c in made["calendars"]}
    sign_in(world, ROBIN)
    access, _ = world.emulator.emulator.store.new_grant(ROBIN)
    now = world.server.runtime.clock.now()  # the demo world's clock, not the wall's
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    with calendar_service(world.emulator.url, access) as service:
        service.events().insert(
            calendarId=ids[TEAM],
            body={
                "summary": TITLE,
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            },
        ).execute()
    with world.api() as client:
        calendars = {c["name"]: c for c in client.get("api/v1/calendars").json()}
        for name, change in (
            (TEAM, {"sync_enabled": True, "busy_title": "title"}),
            (BOLD, {"sync_enabled": True}),
            (CLIENT, {"sync_enabled": True}),
        ):
            if name == CLIENT:
                fault(world, "events.insert", INSERT_REASON)
            answer = client.patch(f"api/v1/calendars/{calendars[name]['id']}", json=change)
            assert answer.status_code == 200, answer.text
            wait_until(
                partial(settled, client, calendars[name]["id"]),
                timeout=30,
                what=f"the first sync of {name}",
            )
        # Client's refused block is written again by the retry that follows.
        wait_until(
            lambda: client.get("api/v1/status").json()["busy_blocks"] == 2 and settled_all(client),
            timeout=30,
            what="Team's block in Bold and in Client",
        )
        return {c["name"]: c for c in client.get("api/v1/calendars").json()}


WIDE = (200, 50)  # every column of every table on screen, so each name can be looked for
NAMES = (TEAM, BOLD, CLIENT)


def rendered(widget: Static) -> str:
    """A Static's text as drawn (markup, had it been read, would be gone from it)."""
    return str(widget.render())


async def show(pilot: Any, key: str, screen: type[Any], ready: Any, what: str) -> str:
    """Press `key`, wait for `screen` with its data, and answer what the terminal shows."""
    app = pilot.app
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, screen) and ready(app.screen), what=what)
    await pilot.pause()
    return screen_text(app)


def table_rows(screen: Any) -> int:
    table = (
        screen.query(DataTable).first() if screen.query(DataTable) else screen.query_one(RowTable)
    )
    return int(table.row_count)


async def test_names_titles_and_the_providers_words_are_shown_as_written(
    fresh_demo: DemoWorld,
) -> None:
    calendars = robins_world(fresh_demo)
    with fresh_demo.api() as client:
        synced = len(client.get("api/v1/sync-logs").json()["items"])
    assert 3 <= synced < 8  # all of them among the overview's recent syncs
    note = f"create of a block failed: 400 {INSERT_REASON}: Bad Request"
    error = f"400 {LIST_REASON}: Bad Request"
    app = dashboard(fresh_demo)
    # Toasts drawn too (run_test leaves them out unless asked).
    async with app.run_test(size=WIDE, notifications=True) as pilot:
        await live(pilot)

        # Overview: the recent syncs name Robin's calendars, with the provider's note.
        text = await show(
            pilot,
            "1",
            OverviewScreen,
            lambda s: s.data is not None and s.query_one("#recent", DataTable).row_count == synced,
            "the overview with Robin's syncs",
        )
        for name in NAMES:
            assert name in text
        assert note in text

        # The provider refuses a listing of Bold while the dashboard watches: the toast says so
        # in the provider's words, and so does "Needs you".
        fault(fresh_demo, "events.list", LIST_REASON)
        with fresh_demo.api() as client:
            bold = calendars[BOLD]["id"]
            assert client.post("api/v1/sync", json={"calendar_id": bold}).status_code == 202
            await until(pilot, lambda: settled_all(client), what="the refused sync done")
        failed = f"Sync of {BOLD} failed"
        await until(pilot, lambda: failed in screen_text(app), what="the failure's toast")
        lines = screen_text(app).splitlines()
        title = next(i for i, line in enumerate(lines) if failed in line)
        assert error in lines[title + 1]  # the toast's message, under its title
        app.clear_notifications()
        await until(
            pilot,
            lambda: f"the last failed sync ({BOLD}): {error}" in screen_text(app),
            what="the failure in Needs you",
        )

        # Accounts, and the question before disconnecting Robin: every calendar named.
        text = await show(
            pilot, "2", AccountsScreen, lambda s: len(s.rows) == 3, "Robin's account listed"
        )
        assert ROBIN in text
        screen = app.screen
        assert isinstance(screen, AccountsScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=next(i for i, a in enumerate(screen.rows) if a.email == ROBIN))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.pause()
        assert f"Disconnect {ROBIN}?" in screen_text(app)
        question = rendered(app.screen.query(".dialog-body").first(Static))
        assert f"its 4 calendars ({ROBIN}, {TEAM}, {BOLD}, {CLIENT})" in question
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="no disconnect")

        # Calendars, and a calendar's settings form.
        text = await show(
            pilot, "3", CalendarsScreen, lambda s: len(s.rows) == 9, "the nine calendars"
        )
        for name in NAMES:
            assert name in text
        screen = app.screen
        assert isinstance(screen, CalendarsScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=next(i for i, c in enumerate(screen.rows) if c.name == CLIENT))
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, CalendarSettingsDialog), what="the form")
        await pilot.pause()
        assert f"Settings of {CLIENT}  {ROBIN}" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="the form gone")

        # Busy blocks: the block Team's titled event made, its names in the filters too.
        with fresh_demo.api() as client:
            blocks = client.get("api/v1/busy-blocks").json()["items"]
        assert blocks
        text = await show(
            pilot,
            "4",
            BusyBlocksScreen,
            lambda s: not s.fetching and s.loaded == len(blocks),
            "every block",
        )
        assert f"Busy - {TITLE}" in text
        names = {c["id"]: name for name, c in calendars.items()}
        for block in blocks:
            assert names[block["source_calendar_id"]] == TEAM
            assert names[block["target_calendar_id"]] in text
        blocks_screen = app.screen
        assert isinstance(blocks_screen, BusyBlocksScreen)
        source: Select[int] = blocks_screen.query_one("#filter-source", Select)
        source.value = calendars[TEAM]["id"]
        await until(
            pilot,
            lambda: blocks_screen.source == calendars[TEAM]["id"] and not blocks_screen.fetching,
            what="the blocks from Team",
        )
        await pilot.pause()
        filters = "\n".join(screen_text(app).splitlines()[1:4])
        assert TEAM in filters
        # The list of choices names them as written too.
        source.focus()
        await pilot.press("enter")
        await until(pilot, lambda: source.expanded, what="the choices")
        await pilot.pause()
        choices = screen_text(app)
        assert TEAM in choices
        assert BOLD in choices
        await pilot.press("escape")

        # Sync log, and the entry of Client's sync in full.
        text = await show(
            pilot, "5", SyncLogScreen, lambda s: len(s.rows) == synced + 1, "Robin's syncs"
        )
        for name in NAMES:
            assert name in text
        assert note in text
        assert error in text
        screen = app.screen
        assert isinstance(screen, SyncLogScreen)
        client_sync = next(i for i, log in enumerate(screen.rows) if log.notes)
        screen.query_one(RowTable).cursor_row = client_sync
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SyncLogDetail), what="the detail")
        await pilot.pause()
        assert CLIENT in screen_text(app)
        notes = [rendered(s) for s in app.screen.query(".dialog-body").results(Static)]
        assert f"Notes\n • {note}" in notes
        await pilot.press("escape")

        # Channels (polled: no public URL), one row per synced calendar.
        text = await show(
            pilot, "6", ChannelsScreen, lambda s: table_rows(s) == 3, "three channels"
        )
        for name in NAMES:
            assert name in text

        # Robin disconnects; the provider refuses a listing on the way, and the report's toast
        # says so in its words.
        fault(fresh_demo, "events.list", DISCONNECT_REASON)
        await show(pilot, "2", AccountsScreen, lambda s: len(s.rows) == 3, "the accounts")
        screen = app.screen
        assert isinstance(screen, AccountsScreen)
        table = screen.query_one(DataTable)
        table.move_cursor(row=next(i for i, a in enumerate(screen.rows) if a.email == ROBIN))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        await until(
            pilot, lambda: f"{ROBIN} disconnected" in screen_text(app), what="the report's toast"
        )
        kept = f"some blocks could not be removed: 400 {DISCONNECT_REASON}: Bad Request"
        assert any(kept in str(n.message) for n in app._notifications)
        assert DISCONNECT_REASON in screen_text(app)
        assert app.is_running


class _Tables(App[None]):
    CSS = "DataTable, RowTable { height: 4; }"

    def compose(self) -> ComposeResult:
        yield DataTable()
        yield RowTable(["note", "after"])


async def test_a_line_break_in_the_providers_words_keeps_a_row_on_one_line() -> None:
    app = _Tables()
    async with app.run_test(size=(60, 10)) as pilot:
        data = app.query_one(DataTable)
        data.add_columns("note", "after")
        data.add_row(*plain_row("quota\nexceeded", "next"))
        app.query_one(RowTable).add_rows([(("quota\r\nexceeded", ""), ("next", ""))])
        await pilot.pause()
        lines = "\n".join(s.text for s in app.screen._compositor.render_strips()).splitlines()
    shown = [line for line in lines if "exceeded" in line]
    assert len(shown) == 2, lines  # one row in each table
    assert all("quota" in line and "next" in line for line in shown), shown
