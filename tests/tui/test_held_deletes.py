"""The safety catch on the dashboard (issue 19 item 3): a calendar whose blocks' deletes are held
shows "needs you" on the overview and in the calendars screen, whose help line offers `D`; `D`
with a yes lets them go through the API (the calendar is "ok" again). The hold itself is made by
the engine's tests; here it is set on the row, as a sync that held deletes leaves it."""

from __future__ import annotations

from sqlmodel import Session

from calsync_server.db.models import Calendar
from calsync_server.emulators.google.scenario import WORK
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.calendars import CalendarsScreen
from tests.tui.conftest import SIZE, dashboard, enable_in_order, live, until
from tests.tui.test_actions import calendars, select_calendar


async def test_a_calendar_that_needs_you_and_confirming_its_held_deletes(
    fresh_demo: DemoWorld,
) -> None:
    enable_in_order(fresh_demo, [WORK, "Family"])
    with fresh_demo.api() as client:
        family, work = calendars(client)["Family"]["id"], calendars(client)[WORK]["id"]
    with Session(fresh_demo.server.runtime.db) as session:
        row = session.get(Calendar, family)
        assert row is not None
        row.held_deletes = {
            "since": "2026-03-10T08:00:00+00:00",
            "targets": [{"target_calendar_id": work, "count": 12, "sample": []}],
        }
        session.add(row)
        session.commit()
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await until(
            pilot,
            lambda: "Family needs you" in str(app.screen.query_one("#attention").render()),
            what="the overview's attention line",
        )
        assert "(12 in " in str(app.screen.query_one("#attention").render())
        await select_calendar(pilot, app, "Family")
        screen = app.screen
        assert isinstance(screen, CalendarsScreen)
        assert "needs you" in str(
            screen.query_one("#calendars").get_row_at(
                screen.rows.index(next(c for c in screen.rows if c.name == "Family"))
            )[3]
        )
        assert "confirm held deletes" in str(screen.query_one("#calendars-help").render())
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        await pilot.press("y")
        with fresh_demo.api() as client:
            await until(
                pilot, lambda: calendars(client)["Family"]["status"] == "ok", what="the hold gone"
            )
            assert client.get("api/v1/status").json()["calendars_needing_you"] == 0
