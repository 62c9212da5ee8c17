"""A refusal of the API reads as the server's sentence, as the server wrote it: not followed by
the Python repr of its details."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from textual.pilot import Pilot
from textual.widgets import Static

from calsync_tui.app import CalsyncApp
from calsync_tui.client import _message
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.launch.demo import DemoWorld, enable_calendar
from calsync_tui.screens.calendars import CalendarsScreen
from shared.schemas import CalendarOut, CalendarPatch
from tests.tui.conftest import SIZE, dashboard, live, sign_in, until


async def sync_on_refused(
    pilot: Pilot[Any], app: CalsyncApp, calendar: CalendarOut
) -> tuple[str, list[str]]:
    """Sync on for `calendar`, refused twice: in its settings form, which shows the refusal in
    place (its first line), then by a key on the Calendars screen, which shows it as a
    notification (every such notification's message)."""
    dialog = CalendarSettingsDialog(app.api, calendar)
    await app.push_screen(dialog)
    await pilot.press("space", "ctrl+s")  # sync on, save
    error = dialog.query_one("#settings-error", Static)
    await until(pilot, lambda: error.display, what="the refusal in the form")
    in_form = str(error.render()).splitlines()[0]
    await pilot.press("escape")
    await pilot.press("3")
    await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="calendars")
    screen = app.screen
    assert isinstance(screen, CalendarsScreen)
    screen.change(calendar, CalendarPatch(sync_enabled=True), "sync on")
    await until(
        pilot,
        lambda: any(n.title == "Request failed" for n in app._notifications),
        what="the refusal as a notification",
    )
    return in_form, [n.message for n in app._notifications if n.title == "Request failed"]


async def test_a_refusal_reads_as_the_servers_sentence(fresh_demo: DemoWorld) -> None:
    """A refusal with details (which parameter, what is wrong) reads as the server's sentence,
    once: never the details' Python repr after it."""
    with fresh_demo.api() as client:
        family = next(c for c in client.get("api/v1/calendars").json() if c["name"] == "Family")
        # A calendar this server cannot have (its ids stop at 2**31 - 1): as one left over
        # from another server would be. The server's own answer to saving it:
        beyond = 2**31
        answer = client.patch(f"api/v1/calendars/{beyond}", json={"sync_enabled": True})
    assert answer.status_code == 400
    refusal = answer.json()
    assert refusal["detail"], refusal  # details there are, all of them in the sentence
    sentence = refusal["error"]
    stale = msgspec.convert({**family, "id": beyond}, CalendarOut)
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        in_form, said = await sync_on_refused(pilot, app, stale)
        assert in_form == f"The server did not save this: {sentence}"
        assert said == [sentence]


def test_details_are_added_only_when_the_sentence_lacks_them() -> None:
    def message(status: int, body: object) -> str:
        content = body if isinstance(body, bytes) else msgspec.json.encode(body)
        return _message(httpx.Response(status, content=content))

    problem = {"message": "Expected `int` >= 1", "key": "limit", "source": "query"}
    said = "invalid request: query parameter `limit`: Expected `int` >= 1"
    assert message(400, {"error": said, "detail": [problem]}) == said
    assert message(400, {"error": "invalid request", "detail": [problem]}) == (
        "invalid request (limit: Expected `int` >= 1)"
    )
    assert message(404, {"error": "no calendar 7"}) == "no calendar 7"
    # A sentence with fields this dashboard does not know yet is still the sentence.
    assert message(409, {"error": "busy", "retry_in": 3}) == "busy"
    assert message(502, b"Bad gateway\n<html>") == "the server answered 502: Bad gateway"


def projects_through_a_second_login(world: DemoWorld) -> tuple[dict[str, Any], CalendarOut]:
    """Projects synced, then shared into a second Google login of the same person, who signs
    it in: the first copy (as the API lists it), and the second."""
    with world.api() as client:
        projects = next(c for c in client.get("api/v1/calendars").json() if c["name"] == "Projects")
        enable_calendar(client, projects)
    # Projects shared into a second Google login of the same person, who signs it in.
    side = "alex.morgan@side.example.com"
    made = httpx.post(
        f"{world.emulator.url}emulator/accounts",
        json={
            "email": side,
            "calendars": [{"id": projects["provider_calendar_id"], "summary": "Projects"}],
        },
        timeout=10,
    )
    assert made.status_code == 201, made.text
    sign_in(world, side)
    with world.api() as client:
        copy = next(
            c
            for c in client.get("api/v1/calendars").json()
            if c["account_email"] == side and c["name"] == "Projects"
        )
    return projects, msgspec.convert(copy, CalendarOut)


async def test_sync_on_for_a_calendar_already_synced_through_another_account_says_where(
    fresh_demo: DemoWorld,
) -> None:
    """One calendar through two logins is one calendar: the dashboard shows the server's 409,
    which names the copy that syncs it."""
    projects, second = projects_through_a_second_login(fresh_demo)
    expected = (
        f'"Projects" is already synced through {projects["account_email"]} as "Projects" '
        f"(calendar {projects['id']})"
    )
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        in_form, said = await sync_on_refused(pilot, app, second)
        assert in_form.startswith(f"The server did not save this: {expected}"), in_form
        assert len(said) == 1
        assert said[0].startswith(expected), said
    with fresh_demo.api() as client:
        calendars = client.get("api/v1/calendars").json()
    assert next(c for c in calendars if c["id"] == second.id)["sync_enabled"] is False
