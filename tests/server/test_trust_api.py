"""Issue 19 items 1-3 through a real server: GET /api/v1/explain says why an event blocks or
not in each target and which sync wrote its block; GET /api/v1/plan shows what a sync would do
now, reading the provider and writing nothing (the emulator saw only reads, the database is
unchanged); a source that suddenly answers empty makes its calendar "needs you" with what would
go, until POST .../confirm-deletes lets the deletes go."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.server.conftest import ServerWorld
from tests.support.rows import table_rows
from tests.support.waiting import wait_until
from tests.support.world import timed

READS = {"events.list", "events.get", "calendarList.list", "calendarList.get"}


def ok(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_explain_plan_and_the_safety_catch(server_world: ServerWorld) -> None:
    world = server_world
    unique = uuid.uuid4().hex[:8]
    work, home = world.work_and_home(unique)
    planning = world.insert(work, **timed("Planning", 9, 10))
    world.insert(work, **timed("Lunch", 12, 13, transparency="transparent"))
    world.insert(work, **timed("Standup daily", 8, 8.25))
    day = [
        world.insert(home, **timed(f"Home {n}", 14 + n * 0.5, 14.25 + n * 0.5)) for n in range(12)
    ]
    other = world.account(f"bob-{unique}@example.com", user="bob")["primary"]
    world.start(push=False)
    with world.api() as ada, world.api("bob") as bob:
        world.enable(ada, work, home)
        ok(ada.patch(f"/api/v1/calendars/{work.id}", json={"title_exclude": ["standup"]}))
        world.enable(bob, other)
        wait_until(lambda: world.settled(ada), what="the first syncs")
        wait_until(lambda: len(world.blocks(work)) == 12, what="home's blocks in work")

        # -- explain ----------------------------------------------------------------------
        found = ok(
            ada.get(
                "/api/v1/explain",
                params={"calendar_id": work.id, "provider_event_id": planning["id"]},
            )
        )["events"]
        (event,) = found
        assert event["verdict"] == "blocks"
        (target,) = event["targets"]
        assert (target["calendar_id"], target["verdict"]) == (home.id, "blocks")
        (block,) = target["blocks"]
        assert block["outcome"] == "matches"
        assert block["written_by"] == "calsync"
        # Written by the first sync that saw both calendars on: work's, or home's first
        # (a whole pass), whichever ran once both were enabled; named exactly, with its counts.
        logs = {log["id"]: log for cal in (work, home) for log in world.logs(ada, cal)}
        writer = logs[block["sync_log_id"]]
        assert writer["calendar_id"] == block["sync_calendar_id"]
        assert writer["blocks_created"] >= 1
        lunch = ok(ada.get("/api/v1/explain", params={"title": "lunch"}))["events"]
        assert [(e["title"], e["verdict"]) for e in lunch] == [("Lunch", "free")]
        assert lunch[0]["targets"][0]["blocks"] == []
        standup = ok(ada.get("/api/v1/explain", params={"title": "standup"}))["events"]
        assert standup[0]["verdict"] == "title"
        # Bob cannot ask about Ada's events.
        assert ok(bob.get("/api/v1/explain", params={"event_id": event["event_id"]})) == {
            "events": [],
            "truncated": False,
        }

        # -- the dry run: reads the provider, writes nothing ------------------------------
        world.insert(work, **timed("New", 11, 12))
        world.service(work.email).events().delete(
            calendarId=work.provider_id, eventId=planning["id"]
        ).execute()
        before = table_rows(world.db)
        world.reset_stats()
        plan = ok(ada.get("/api/v1/plan", params={"calendar_id": work.id}))
        calls = world.stats()["calls"]
        assert set(calls) <= READS, calls
        assert calls.get("events.list", 0) >= 1
        assert table_rows(world.db) == before
        assert (plan["creates"], plan["updates"], plan["deletes"], plan["held"]) == (1, 0, 1, 0)
        (planned,) = plan["targets"]
        assert planned["calendar_id"] == home.id
        reasons = {c["action"]: c["reason"] for c in planned["changes"]}
        assert "gone" in reasons["delete"]
        assert bob.get("/api/v1/plan", params={"calendar_id": work.id}).status_code == 404
        # The full reconcile's plan of every calendar lists the targets' blocks too (reads).
        world.reset_stats()
        full = ok(ada.get("/api/v1/plan", params={"full": "true"}))
        assert set(world.stats()["calls"]) <= READS
        assert table_rows(world.db) == before
        assert (full["creates"], full["updates"], full["deletes"]) == (1, 0, 1)

        # -- the safety catch -------------------------------------------------------------
        for event_ in day:
            world.service(home.email).events().delete(
                calendarId=home.provider_id, eventId=event_["id"]
            ).execute()
        plan = ok(ada.get("/api/v1/plan", params={"calendar_id": home.id}))
        assert plan["held"] == 12
        assert ada.post("/api/v1/sync", json={"calendar_id": home.id}).status_code == 202
        wait_until(lambda: world.settled(ada), what="home's sync")
        rows = {c["id"]: c for c in ok(ada.get("/api/v1/calendars"))}
        assert rows[home.id]["status"] == "needs_you"
        assert [(h["target_calendar_id"], h["count"]) for h in rows[home.id]["held"]] == [
            (work.id, 12)
        ]
        assert ok(ada.get("/api/v1/status"))["calendars_needing_you"] == 1
        assert len(world.blocks(work)) == 12  # nothing went

        assert ada.post(f"/api/v1/calendars/{work.id}/confirm-deletes").status_code == 400
        assert bob.post(f"/api/v1/calendars/{home.id}/confirm-deletes").status_code == 404
        confirmed = ok(ada.post(f"/api/v1/calendars/{home.id}/confirm-deletes"))
        assert confirmed["status"] == "ok"
        wait_until(lambda: world.blocks(work) == [], what="the confirmed deletes")
        assert ok(ada.get("/api/v1/status"))["calendars_needing_you"] == 0


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "give event_id"),
        ({"provider_event_id": "x"}, "needs calendar_id"),
        ({"title": "x" * 201}, "title"),
        ({"title": ""}, "title"),
        ({"event_id": 0}, "event_id"),
        ({"title": "a", "at": "2025-03-10T09:00:00"}, "offset"),
        ({"title": "a", "limit": 21}, "limit"),
    ],
)
def test_explain_refuses_bad_questions_in_words(
    server_world: ServerWorld, params: dict[str, Any], says: str
) -> None:
    world = server_world
    world.start(push=False)
    with world.api() as ada:
        answer = ada.get("/api/v1/explain", params=params)
        assert answer.status_code == 400, answer.text
        assert says in answer.text
        assert httpx.get(f"{world.url}/api/v1/explain", params={"event_id": 1}).status_code == 401
