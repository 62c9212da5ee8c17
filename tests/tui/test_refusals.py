"""A refusal of the API reads as the server's sentence, as the server wrote it: not followed by
the Python repr of its details."""

from __future__ import annotations

import httpx
import msgspec
from textual.widgets import Static

from calsync_tui.client import _message
from calsync_tui.dialogs.calendar_settings import CalendarSettingsDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.calendars import CalendarsScreen
from shared.schemas import CalendarOut, CalendarPatch
from tests.tui.conftest import SIZE, dashboard, live, until


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
        # The settings form shows the refusal in place.
        dialog = CalendarSettingsDialog(app.api, stale)
        await app.push_screen(dialog)
        await pilot.press("space", "ctrl+s")
        error = dialog.query_one("#settings-error", Static)
        await until(pilot, lambda: error.display, what="the refusal in the form")
        shown = str(error.render())
        assert shown.splitlines()[0] == f"The server did not save this: {sentence}"
        await pilot.press("escape")
        # A key on the Calendars screen shows it as a notification.
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, CalendarsScreen), what="calendars")
        screen = app.screen
        assert isinstance(screen, CalendarsScreen)
        screen.change(stale, CalendarPatch(sync_enabled=True), "sync on")
        await until(
            pilot,
            lambda: any(n.title == "Request failed" for n in app._notifications),
            what="the refusal as a notification",
        )
        said = [n.message for n in app._notifications if n.title == "Request failed"]
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
