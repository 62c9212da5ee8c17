"""Syncs that race each other. Echoes that race the next change: a target's feed read just
before calsync rewrote a block in it must not make that block look edited by hand (which
would keep it forever). Settings that change during a sync: a calendar turned on, whose first
sync has written its blocks, must not look off to a sync that read the settings before.

The race is made deterministic by running the other sync at the one moment it matters: right
after the feed came back from the provider (real HTTP, the real client library).
"""

from __future__ import annotations

from calsync_server.sync.engine import SyncEngine
from tests.support.racing import FeedThen, Hook
from tests.support.world import Cal, World, at, timed


def _racing_engine(world: World) -> tuple[SyncEngine, Hook]:
    hook = Hook()
    return world.engine_through(lambda credentials, url: FeedThen(credentials, url, hook)), hook


def _setup(world: World, unique: str) -> tuple[SyncEngine, Hook, Cal, Cal]:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.sync_all(work, home)
    engine, hook = _racing_engine(world)
    hook.calendar = home.provider_id
    return engine, hook, work, home


def _move(world: World, cal: Cal, event_id: str, start: float, end: float) -> None:
    world.service(cal.email).events().patch(
        calendarId=cal.provider_id,
        eventId=event_id,
        body={"start": {"dateTime": at(start)}, "end": {"dateTime": at(end)}},
    ).execute()


def _set_transparency(world: World, cal: Cal, event_id: str, transparency: str) -> None:
    world.service(cal.email).events().patch(
        calendarId=cal.provider_id, eventId=event_id, body={"transparency": transparency}
    ).execute()


def _delete(world: World, cal: Cal, event_id: str) -> None:
    world.service(cal.email).events().delete(calendarId=cal.provider_id, eventId=event_id).execute()


def test_an_echo_read_before_the_block_moved_is_not_a_hand_edit(world: World, unique: str) -> None:
    engine, hook, work, home = _setup(world, unique)
    event = world.insert(work, **timed("Standup", 9, 10))
    engine.sync_calendar(work.id)  # the block is written; home's feed now holds its echo

    def the_source_moves() -> None:
        _move(world, work, event["id"], 11, 12)
        engine.sync_calendar(work.id)

    hook.meanwhile = the_source_moves
    engine.sync_calendar(home.id)  # settles the stale echo after the block moved
    assert hook.meanwhile is None, "the race did not happen"
    assert [(r.user_modified, r.user_deleted) for r in world.rows()] == [(False, False)]

    _delete(world, work, event["id"])
    engine.sync_calendar(work.id)

    assert world.blocks(home) == []
    assert world.rows() == []


def test_an_echo_of_a_removal_read_before_the_block_came_back_is_not_a_hand_delete(
    world: World, unique: str
) -> None:
    engine, hook, work, home = _setup(world, unique)
    event = world.insert(work, **timed("Review", 9, 10))
    engine.sync_calendar(work.id)
    engine.sync_calendar(home.id)
    _set_transparency(world, work, event["id"], "transparent")  # free: the block goes
    engine.sync_calendar(work.id)  # home's feed now holds the cancelled block

    def the_source_is_busy_again() -> None:
        _set_transparency(world, work, event["id"], "opaque")  # the block comes back
        engine.sync_calendar(work.id)

    hook.meanwhile = the_source_is_busy_again
    engine.sync_calendar(home.id)
    assert hook.meanwhile is None, "the race did not happen"
    assert [(r.user_modified, r.user_deleted) for r in world.rows()] == [(False, False)]

    _delete(world, work, event["id"])
    engine.sync_calendar(work.id)
    assert world.blocks(home) == []


def test_a_hand_edit_seen_in_a_stale_feed_is_still_a_hand_edit(world: World, unique: str) -> None:
    engine, hook, work, home = _setup(world, unique)
    event = world.insert(work, **timed("Planning", 9, 10))
    engine.sync_calendar(work.id)
    engine.sync_calendar(home.id)
    (block,) = world.blocks(home)
    _move(world, home, block["id"], 17, 18)  # the user drags the block away

    def the_source_is_retitled() -> None:
        world.service(work.email).events().patch(
            calendarId=work.provider_id, eventId=event["id"], body={"summary": "Planning II"}
        ).execute()
        engine.sync_calendar(work.id)

    hook.meanwhile = the_source_is_retitled
    engine.sync_calendar(home.id)
    assert hook.meanwhile is None, "the race did not happen"

    (kept,) = world.blocks(home)
    assert kept["start"]["dateTime"] == at(17)
    assert [r.user_modified for r in world.rows()] == [True]


def test_a_calendar_turned_on_while_a_full_sync_fetched_keeps_its_blocks(
    world: World, unique: str
) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    side = world.account(f"side-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.insert(work, **timed("Standup", 9, 10))
    world.sync_all(work, home)
    engine, hook = _racing_engine(world)
    hook.calendar = work.provider_id

    def side_is_turned_on() -> None:
        world.configure(side)
        engine.sync_calendar(side.id)  # its first sync blocks work's standup in side

    hook.meanwhile = side_is_turned_on
    world.reset_stats()
    engine.sync_calendar(work.id, full=True)  # read the calendars' settings before side was on
    assert hook.meanwhile is None, "the race did not happen"

    assert len(world.blocks(side)) == 1
    assert world.stats()["calls"].get("events.delete", 0) == 0  # never taken away meanwhile
