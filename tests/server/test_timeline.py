"""GET /api/v1/timeline (the week view's data) on a real server: the person's own events and
calsync's blocks in a range, only the token's user's, and bad ranges refused in words."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.schemas import MAX_TIMELINE_DAYS
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until
from tests.support.world import at, timed


def ok(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_timeline_shows_own_events_and_blocks_in_the_range(server_world: ServerWorld) -> None:
    world = server_world
    unique = uuid.uuid4().hex[:8]
    work, home = world.work_and_home(unique)
    other = world.account(f"bob-{unique}@example.com", user="bob")["primary"]
    world.insert(work, **timed("Planning", 9, 10))
    world.insert(work, **timed("Next week's review", 9, 10, days=9))
    world.insert(work, **timed("Lunch (free)", 12, 13, transparency="transparent"))
    day = _instant(at(0)).date()
    world.insert(
        home,
        summary="Holiday",
        start={"date": day.isoformat()},
        end={"date": (day + timedelta(days=1)).isoformat()},
    )
    world.insert(other, **timed("Bob's secret", 9, 10))
    world.start(push=False)
    with world.api() as ada, world.api("bob") as bob:
        world.enable(ada, work, home)
        world.enable(bob, other)
        # Each user's status counts only their own queue.
        wait_until(lambda: world.settled(ada) and world.settled(bob), what="the first syncs")
        start, end = _instant(at(0)), _instant(at(0, days=2))
        shown = ok(ada.get("/api/v1/timeline", params={"start": at(0), "end": at(0, days=2)}))

        events = {e["summary"]: e for e in shown["events"]}
        assert set(events) == {"Planning", "Lunch (free)", "Holiday"}
        assert events["Planning"]["calendar_id"] == work.id
        assert _instant(events["Planning"]["start_at"]) == _instant(at(9))
        assert events["Lunch (free)"]["free"] is True
        assert events["Holiday"]["all_day"] is True
        assert events["Holiday"]["start_day"] == day.isoformat()
        # Planning is mirrored into home as a block; the free lunch is not.
        blocks = [(b["target_calendar_id"], b["source_calendar_id"]) for b in shown["blocks"]]
        assert (home.id, work.id) in blocks
        planning = events["Planning"]["id"]
        assert any(b["source_event_id"] == planning for b in shown["blocks"])
        for item in shown["events"] + shown["blocks"]:
            if not item["all_day"]:
                assert _instant(item["start_at"]) < end
                assert _instant(item["end_at"]) > start
        assert shown["truncated"] is False

        # Bob sees his own event and nothing of Ada's.
        his = ok(bob.get("/api/v1/timeline", params={"start": at(0), "end": at(0, days=2)}))
        assert [e["summary"] for e in his["events"]] == ["Bob's secret"]
        assert his["blocks"] == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "Missing required query parameter"),
        ({"start": "2025-03-10T00:00:00Z"}, "end"),
        ({"start": "banana", "end": "2025-03-11T00:00:00Z"}, "start"),
        ({"start": "2025-03-10T00:00:00", "end": "2025-03-11T00:00:00"}, "needs an offset"),
        ({"start": "2025-03-11T00:00:00Z", "end": "2025-03-10T00:00:00Z"}, "after start"),
        ({"start": "2025-03-10T00:00:00Z", "end": "2025-03-10T00:00:00Z"}, "after start"),
        (
            {"start": "2025-03-01T00:00:00Z", "end": "2025-04-15T00:00:00Z"},
            f"at most {MAX_TIMELINE_DAYS} days",
        ),
        ({"start": "2025-03-10T00:00:00Z", "end": "9" * 300}, "end"),
    ],
)
def test_timeline_refuses_bad_ranges_in_words(
    server_world: ServerWorld, params: dict[str, str], says: str
) -> None:
    world = server_world
    world.user("ada")
    world.start(push=False)
    with world.api() as ada:
        answer = ada.get("/api/v1/timeline", params=params)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert says in answer.text, body
        assert "Traceback" not in answer.text
    with httpx.Client(base_url=world.url, timeout=30) as anonymous:
        refused = anonymous.get("/api/v1/timeline", params={"start": at(0), "end": at(0, days=1)})
        assert refused.status_code == 401
