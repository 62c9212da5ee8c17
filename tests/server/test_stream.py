"""The live stream: a subscriber sees syncs start and finish, counters move and channels change."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until
from tests.support.world import timed


@contextmanager
def following(world: ServerWorld, user: str = "ada") -> Iterator[list[dict[str, Any]]]:
    """Collect the stream's events in the background while the block runs."""
    events: list[dict[str, Any]] = []
    stop = threading.Event()

    def follow() -> None:
        with (
            world.api(user) as client,
            connect_sse(client, "GET", "/api/v1/stream", timeout=None) as source,
        ):
            for sse in source.iter_sse():
                if not sse.data:
                    continue  # a keepalive comment
                payload = json.loads(sse.data)
                assert payload["type"] == sse.event
                events.append(payload)
                if stop.is_set():
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        yield events
    finally:
        stop.set()


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_the_stream_shows_syncs_counters_and_channels(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work, home = world.work_and_home(unique)
    world.start()
    with following(world) as events, world.api() as api:
        hello = wait_until(lambda: [e for e in events if e["type"] == "hello"], what="hello")
        assert hello[0]["data"]["calendars"] == 2
        assert hello[0]["data"]["calendars_syncing"] == 0

        world.enable(api, work, home)
        world.wait_for_channels(work, home)
        world.insert(work, **timed("Standup", 9, 10))
        wait_until(lambda: world.blocks(home), what="the block in home")

        finished = wait_until(
            lambda: [e["data"] for e in events if e["type"] == "sync.finished"],
            what="sync.finished events",
        )
        assert {log["calendar_id"] for log in finished} <= {work.id, home.id}
        assert "sync.started" in _types(events)
        counters = wait_until(
            lambda: (
                [e["data"] for e in events if e["type"] == "counters"]
                and [e for e in events if e["type"] == "counters"][-1]["data"]["busy_blocks"] == 1
                and [e["data"] for e in events if e["type"] == "counters"]
            ),
            what="counters showing the block",
        )
        assert counters[-1]["calendars_syncing"] == 2
        channels = wait_until(
            lambda: [e["data"] for e in events if e["type"] == "channels"], what="channels"
        )
        assert {c["calendar_id"] for c in channels[-1]} == {work.id, home.id}


def test_the_stream_shows_nothing_of_another_user(server_world: ServerWorld, unique: str) -> None:
    world = server_world
    work, home = world.work_and_home(unique)
    world.account(f"bob-{unique}@example.com", user="bob")
    world.start()
    with following(world, "bob") as bobs, world.api() as api:
        wait_until(lambda: _types(bobs), what="bob's hello")
        world.enable(api, work, home)
        world.wait_for_channels(work, home)
        world.insert(work, **timed("Private to ada", 9, 10))
        wait_until(lambda: world.blocks(home), what="ada's block")
        wait_until(lambda: world.settled(api), what="ada's syncs to finish")
        # Bob's stream had every chance to see ada's syncs (it reads after each one).
        with world.api("bob") as bob:
            assert bob.get("/api/v1/status").json()["busy_blocks"] == 0
        assert _types(bobs) == ["hello"]
        assert bobs[0]["data"]["calendars"] == 1


def test_the_stream_needs_the_token(server_world: ServerWorld) -> None:
    world = server_world
    world.start()
    answer = httpx.get(world.url + "api/v1/stream", timeout=10)
    assert answer.status_code == 401
    assert "bearer token" in answer.json()["error"]
