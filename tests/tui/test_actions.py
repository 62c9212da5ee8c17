"""Each dashboard action driven by Pilot against a running server; outcomes checked through the
API and in the emulator's calendars."""

from __future__ import annotations

from typing import Any

import httpx
from textual.widgets import DataTable

from calsync_server.emulator.scenario import FAMILY, PERSONAL, PROJECTS, WORK
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.calendars import CalendarsScreen
from tests.support.waiting import wait_until
from tests.tui.conftest import SIZE, dashboard, emulator_blocks, enable_in_order, live, until


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


async def test_role_privacy_and_all_day_keys_change_the_calendar(fresh_demo: DemoWorld) -> None:
    enable_in_order(fresh_demo, [WORK, "Projects"])
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
    # As a source only, Projects holds no blocks any more.
    wait_until(
        lambda: emulator_blocks(fresh_demo, WORK, PROJECTS) == [], what="no blocks in Projects"
    )


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
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
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
