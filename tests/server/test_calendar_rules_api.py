"""The user's rules through the API (issue 18): PATCH /api/v1/calendars/{id} sets them, checked
when set (a bad regex, bad hours, an unknown weekday: 400, nothing saved); a change re-syncs, and
the blocks in the emulator follow; the sync log says what a rule removed."""

from __future__ import annotations

from typing import Any

import httpx

from tests.server.conftest import ServerWorld
from tests.server.test_api import calendar, error_of, ok, shown
from tests.support.waiting import wait_until
from tests.support.world import Cal, at, timed


def notes(api: httpx.Client, cal: Cal) -> list[str]:
    logs = ok(api.get("/api/v1/sync-logs", params={"calendar_id": cal.id}))
    return [note for log in logs["items"] for note in log["notes"]]


def test_rules_are_set_shown_and_checked_when_set(server_world: ServerWorld, unique: str) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.start(push=False)
    with world.api() as api:
        row = calendar(api, work)
        assert (row["title_include"], row["title_exclude"], row["working_hours"]) == ([], [], None)
        assert (row["block_tentative"], row["skip_invited"], row["merge_blocks"]) == (
            True,
            False,
            False,
        )
        rules: dict[str, Any] = {
            "title_exclude": ["lunch", "/^focus/"],
            "title_include": [],
            "block_tentative": False,
            "working_hours": {"days": ["mon", "Tuesday", "fri"], "start": "09:00", "end": "17:30"},
            "skip_invited": True,
            "merge_blocks": True,
        }
        changed = ok(api.patch(f"/api/v1/calendars/{work.id}", json=rules))
        assert changed["working_hours"] == {
            "days": ["mon", "tue", "fri"],
            "start": "09:00",
            "end": "17:30",
        }
        assert calendar(api, work) == changed
        assert changed["title_exclude"] == ["lunch", "/^focus/"]
        assert changed["block_tentative"] is False

        wrong: list[tuple[dict[str, Any], str]] = [
            ({"title_exclude": ["/(unclosed/"]}, "not a valid regular expression"),
            ({"title_include": ["  "]}, "cannot be empty"),
            ({"working_hours": {"days": ["funday"], "start": "09:00", "end": "17:00"}}, "funday"),
            ({"working_hours": {"days": [], "start": "09:00", "end": "17:00"}}, "weekday"),
            ({"working_hours": {"days": ["mon"], "start": "17:00", "end": "09:00"}}, "end after"),
            ({"working_hours": {"days": ["mon"], "start": "9am", "end": "17:00"}}, "9am"),
            ({"working_hours": "sometimes"}, ""),
            ({"title_exclude": "lunch"}, ""),
            ({"merge_blocks": "yes"}, ""),
            ({"title_exclude": ["x"] * 51}, ""),
        ]
        for body, says in wrong:
            message = error_of(api.patch(f"/api/v1/calendars/{work.id}", json=body), 400)
            assert says in message, (body, message)
        assert calendar(api, work) == changed  # nothing of a refused change was saved

        off = ok(api.patch(f"/api/v1/calendars/{work.id}", json={"working_hours": "off"}))
        assert off["working_hours"] is None
        assert off["title_exclude"] == ["lunch", "/^focus/"]  # absent: unchanged


def test_a_title_filter_set_through_the_api_takes_the_block_away(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.insert(work, **timed("Team lunch", 12, 13))
    world.insert(work, **timed("Board", 9, 10))
    world.start(push=False)
    with world.api() as api:
        world.enable(api, work, home)
        wait_until(
            lambda: shown(world, home) == [("Busy", at(9)), ("Busy", at(12))],
            what="both blocks in home",
        )

        ok(api.patch(f"/api/v1/calendars/{work.id}", json={"title_exclude": ["lunch"]}))

        wait_until(lambda: shown(world, home) == [("Busy", at(9))], what="the lunch block gone")
        wait_until(
            lambda: "1 event left out by title filters" in notes(api, work),
            what="the sync log to say what the filter removed",
        )
