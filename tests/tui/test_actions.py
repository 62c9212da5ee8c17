"""Each dashboard action driven by Pilot against a running server; outcomes checked through the
API and in the emulator's calendars."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from textual.widgets import Checkbox, DataTable, RadioSet, Static

from calsync_server.emulators.google.scenario import FAMILY, PERSONAL, PROJECTS, WORK
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.add_account import AddAccountDialog, SignInLinkDialog
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.dialogs.full_reconcile import FullReconcileDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.accounts import AccountsScreen
from calsync_tui.screens.calendars import CalendarsScreen
from tests.support.waiting import wait_until, wait_until_empty
from tests.tui.conftest import (
    SIZE,
    browser_signs_in,
    dashboard,
    emulator_blocks,
    enable_in_order,
    google_account,
    live,
    until,
)


def calendars(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in client.get("api/v1/calendars").json()}


async def select_calendar(pilot: Any, app: CalsyncApp, name: str) -> None:
    await pilot.press("3")
    await until(
        pilot,
        lambda: isinstance(app.screen, CalendarsScreen) and len(app.screen.rows) == 5,
        what="the calendars",
    )
    screen = app.screen
    assert isinstance(screen, CalendarsScreen)
    index = next(i for i, c in enumerate(screen.rows) if c.name == name)
    screen.query_one(DataTable).move_cursor(row=index)
    await pilot.pause()


async def test_space_turns_sync_on_and_blocks_appear_in_the_emulator(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK])
    assert emulator_blocks(fresh_demo, WORK, WORK) == []
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await select_calendar(pilot, app, "Family")
        await pilot.press("space")
        with fresh_demo.api() as client:
            await until(pilot, lambda: calendars(client)["Family"]["sync_enabled"], what="sync on")
    # Family's events now block time in the work calendar, as calsync's marked events.
    blocks = wait_until(
        lambda: emulator_blocks(fresh_demo, WORK, WORK), timeout=30, what="blocks in Work"
    )
    assert all(b["summary"] == "Busy" and b["visibility"] == "private" for b in blocks)
    with fresh_demo.api() as client:
        family = calendars(client)["Family"]["id"]
        page = client.get("api/v1/busy-blocks", params={"source_calendar_id": family}).json()
        assert len(page["items"]) == len(blocks)


def shown_blocks(world: DemoWorld, email: str, calendar_id: str) -> list[tuple[str, str, str]]:
    """The blocks in an emulator calendar as (title, start, end): what a failure shows."""
    return [
        (
            b["summary"],
            *(str(b[edge].get("dateTime", b[edge].get("date"))) for edge in ("start", "end")),
        )
        for b in emulator_blocks(world, email, calendar_id)
    ]


async def test_role_privacy_and_all_day_keys_change_the_calendar(fresh_demo: DemoWorld) -> None:
    enable_in_order(fresh_demo, [WORK, "Projects"])
    # The server's day has a past: Projects holds a block that ended before its now (the
    # 09:30 stand-up in Berlin), and it must go too when Projects stops being a target.
    now = fresh_demo.server.runtime.clock.now()
    assert any(
        datetime.fromisoformat(end) <= now
        for _, _, end in shown_blocks(fresh_demo, WORK, PROJECTS)
        if "T" in end
    )
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await select_calendar(pilot, app, "Projects")
        with fresh_demo.api() as client:
            await pilot.press("r")
            await until(pilot, lambda: calendars(client)["Projects"]["role"] == "source")
            await pilot.press("p")
            await until(pilot, lambda: calendars(client)["Projects"]["busy_title"] == "title")
            await pilot.press("A")
            await until(pilot, lambda: calendars(client)["Projects"]["include_all_day"])

    # Projects shows its titles now, and its all-day "Release 2.0" blocks the work calendar.
    def titles() -> set[str]:
        return {b["summary"] for b in emulator_blocks(fresh_demo, WORK, WORK)}

    wait_until(
        lambda: "Busy - Release 2.0" in titles(), timeout=30, what="Projects' titled all-day block"
    )
    # As a source only, Projects holds no blocks any more, past ones included.
    wait_until_empty(lambda: shown_blocks(fresh_demo, WORK, PROJECTS), what="no blocks in Projects")


def shown_row(app: CalsyncApp, name: str) -> list[str]:
    """The Calendars table's row for `name`, as text."""
    screen = app.screen
    assert isinstance(screen, CalendarsScreen)
    table = screen.query_one(DataTable)
    index = next(i for i, c in enumerate(screen.rows) if c.name == name)
    return [str(cell) for cell in table.get_row_at(index)]


async def open_settings(pilot: Any, app: CalsyncApp, name: str) -> CalendarSettingsDialog:
    await select_calendar(pilot, app, name)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, CalendarSettingsDialog), what="the form")
    dialog = app.screen
    assert isinstance(dialog, CalendarSettingsDialog)
    return dialog


async def test_the_settings_form_changes_role_privacy_and_all_day_in_one_save(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK, "Projects"])
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        dialog = await open_settings(pilot, app, "Projects")
        # As a user would: tab to each setting, arrows to the choice, enter or space to take it.
        await pilot.press("tab", "right", "enter")  # role: both -> source
        await pilot.press("tab", "right", "enter")  # blocks show: "Busy" -> "Busy - <title>"
        await pilot.press("tab", "space")  # all-day events block
        await pilot.pause()
        assert "receives no blocks" in str(dialog.query_one("#role-means", Static).render())
        with fresh_demo.api() as client:
            # Nothing is sent before Save.
            before = calendars(client)["Projects"]
            assert (before["role"], before["busy_title"], before["include_all_day"]) == (
                "both",
                "private",
                False,
            )
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="saved")
            after = calendars(client)["Projects"]
        assert after["sync_enabled"] is True
        assert (after["role"], after["busy_title"], after["include_all_day"]) == (
            "source",
            "title",
            True,
        )
        # The screen shows what the server saved.
        await until(
            pilot,
            lambda: shown_row(app, "Projects")[3:7] == ["● on", "source", "Busy - title", "yes"],
            what="the saved settings in the table",
        )

    # The server acted on it: Projects' all-day "Release 2.0" now blocks work time, titled.
    def titles() -> set[str]:
        return {b["summary"] for b in emulator_blocks(fresh_demo, WORK, WORK)}

    wait_until(
        lambda: "Busy - Release 2.0" in titles(), timeout=30, what="Projects' titled all-day block"
    )


async def test_the_settings_form_cancels_without_a_change_and_shows_a_refusal(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK])
    with fresh_demo.api() as client:
        family = calendars(client)["Family"]
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        dialog = await open_settings(pilot, app, "Family")
        await pilot.press("space")  # sync on
        await pilot.press("tab", "tab", "right", "enter")  # blocks show titles
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="the form gone")
        with fresh_demo.api() as client:
            assert calendars(client)["Family"] == family
        assert shown_row(app, "Family")[3:7] == ["○ off", "both", "Busy", "no"]

        # Opened again, the form shows the calendar as it is, not the abandoned choices.
        dialog = await open_settings(pilot, app, "Family")
        assert dialog.query_one("#sync", Checkbox).value is False
        await pilot.press("space")
        # Meanwhile the personal account goes (another client): the save is refused.
        with fresh_demo.api() as client:
            personal = next(
                a["id"] for a in client.get("api/v1/accounts").json() if a["email"] == PERSONAL
            )
            assert client.delete(f"api/v1/accounts/{personal}").status_code == 200
        await pilot.press("ctrl+s")
        error = dialog.query_one("#settings-error", Static)
        await until(pilot, lambda: error.display, what="the refusal in the form")
        assert f"no calendar {family['id']}" in str(error.render())
        # The form stays, with the user's choice, ready to be changed or cancelled.
        assert app.screen is dialog
        assert dialog.query_one("#sync", Checkbox).value is True
        assert dialog.query_one("#role", RadioSet).pressed_button is not None
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="the form gone")
        assert app.is_running


async def test_sync_now_and_full_reconcile_after_confirmation(fresh_demo: DemoWorld) -> None:
    enable_in_order(fresh_demo, [WORK, "Projects"])
    with fresh_demo.api() as client:
        work = calendars(client)[WORK]["id"]

        def logs(kind: str) -> list[dict[str, Any]]:
            items = client.get("api/v1/sync-logs", params={"calendar_id": work}).json()["items"]
            return [log for log in items if log["kind"] == kind]

        before = len(logs("manual"))
        app = dashboard(fresh_demo)
        async with app.run_test(size=SIZE) as pilot:
            await live(pilot)
            await select_calendar(pilot, app, WORK)
            await pilot.press("s")
            await until(pilot, lambda: len(logs("manual")) > before, what="a manual sync")
            await pilot.press("F")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
            await pilot.press("n")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmDialog)
            assert logs("full") == []
            await pilot.press("F")
            # The yes waits for the plan of what the reconcile would change to be shown.
            await until(
                pilot,
                lambda: isinstance(app.screen, FullReconcileDialog) and app.screen.answered,
                what="the question and its plan",
            )
            await pilot.press("y")
            await until(pilot, lambda: logs("full"), what="a full reconcile of Work")


async def test_disconnect_removes_the_accounts_blocks(fresh_demo: DemoWorld) -> None:
    enable_in_order(fresh_demo)
    # Personal's events block the work calendar, and work's block the family calendar.
    assert emulator_blocks(fresh_demo, WORK, WORK)
    assert emulator_blocks(fresh_demo, PERSONAL, FAMILY)
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("2")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2, what="two accounts")
        emails = [str(table.get_row_at(i)[1]) for i in range(2)]
        table.move_cursor(row=emails.index(PERSONAL))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        with fresh_demo.api() as client:
            await until(
                pilot,
                lambda: [a["email"] for a in client.get("api/v1/accounts").json()] == [WORK],
                deadline_s=30,
                what="only the work account left",
            )
    # Nothing of the personal account blocks work time any more, and its own calendars hold
    # no calsync block.
    with fresh_demo.api() as client:
        left = client.get("api/v1/busy-blocks", params={"limit": 1000}).json()["items"]
        remaining = calendars(client)
    work_ids = {c["id"] for c in remaining.values()}
    assert all(b["source_calendar_id"] in work_ids for b in left)
    in_work = emulator_blocks(fresh_demo, WORK, WORK)
    assert len(in_work) == sum(1 for b in left if b["target_calendar_id"] == remaining[WORK]["id"])
    assert emulator_blocks(fresh_demo, PERSONAL, FAMILY) == []
    assert emulator_blocks(fresh_demo, PERSONAL, PERSONAL) == []


async def test_a_failed_request_is_a_notification_not_a_crash(fresh_demo: DemoWorld) -> None:
    enable_in_order(fresh_demo, [WORK])
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        # Sync now on a calendar with sync off: the server refuses, the app says why.
        await select_calendar(pilot, app, "Family")
        await pilot.press("s")
        await until(
            pilot,
            lambda: any("sync turned off" in str(n.message) for n in app._notifications),
            what="the server's message as a notification",
        )
        assert app.is_running


async def test_add_account_shows_the_sign_in_link_and_the_signed_in_account_appears(
    fresh_demo: DemoWorld,
) -> None:
    newcomer = "sam.lee@band.example.com"
    google_account(fresh_demo, newcomer, "Rehearsals")
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("2")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2, what="two accounts")

        # Escape leaves the dialog before anyone signs in: nothing changes.
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="the dialog")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="the accounts")

        # Google is the first provider offered: enter chooses it.
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="the dialog")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SignInLinkDialog), what="the link")
        dialog = app.screen
        assert isinstance(dialog, SignInLinkDialog)
        await until(pilot, lambda: dialog.auth_url is not None, what="the sign-in link")
        auth_url = dialog.auth_url
        assert auth_url is not None
        # The link is on screen, and it is a real sign-in the server started: the emulator's
        # consent page, coming back to this server, with a one-time state and PKCE.
        assert auth_url in str(dialog.query_one("#add-body", Static).render())
        link = urlsplit(auth_url)
        query = parse_qs(link.query)
        assert auth_url.startswith(f"{fresh_demo.emulator.url}o/oauth2/auth?")
        assert query["redirect_uri"] == [f"{fresh_demo.server.url}oauth/google/callback"]
        assert query["state"][0]
        assert query["code_challenge_method"] == ["S256"]

        answer = await asyncio.to_thread(browser_signs_in, auth_url, newcomer)
        assert f"{newcomer} is connected" in answer
        # The dialog notices by itself, closes, and the account is listed.
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="the dialog gone")
        await until(pilot, lambda: table.row_count == 3, what="three accounts on screen")
        shown = [str(table.get_row_at(i)[1]) for i in range(3)]
        assert newcomer in shown
        assert any("account connected" in str(n.message) for n in app._notifications)
    with fresh_demo.api() as client:
        accounts = {a["email"]: a for a in client.get("api/v1/accounts").json()}
        assert accounts[newcomer]["state"] == "active"
        mine = [c for c in client.get("api/v1/calendars").json() if c["account_email"] == newcomer]
    # Its calendars came in with sync off, waiting for the user to choose.
    assert sorted(c["name"] for c in mine) == sorted([newcomer, "Rehearsals"])
    assert not any(c["sync_enabled"] for c in mine)
