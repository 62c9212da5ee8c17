"""Migration event_time_keys: a database whose rows hold event times in Google's keys (as every
calsync before it wrote them) upgrades and keeps syncing without writing a single block."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlmodel import Session, col, select

from calsync_server.api.queries import busy_blocks
from calsync_server.db.engine import alembic_config, upgrade_database
from calsync_server.db.models import BusyBlock, Event
from tests.support.world import Cal, World, at, timed

REVISION = "0010"
WRITES = ("events.insert", "events.update", "events.patch", "events.delete")
GOOGLE_KEYS = {"date", "dateTime", "timeZone"}


def _fingerprint(summary: str, start: Any, end: Any) -> str:
    """How calsync hashed what a block shows, over its start/end objects as the row held them."""
    shown = json.dumps([summary, start, end], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(shown.encode()).hexdigest()


def _in_googles_keys(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """An event time as the rows held it before: Google's key names."""
    if value is None:
        return None
    names = {"day": "date", "instant": "dateTime", "zone": "timeZone"}
    return {names[key]: text for key, text in value.items()}


def _as_google_sent(value: dict[str, Any] | None) -> dict[str, Any]:
    assert value is not None
    assert value["dateTime"].endswith("Z")
    return {**value, "dateTime": value["dateTime"].removesuffix("Z") + "+00:00"}


def _previous_revision(engine: sa.Engine) -> str:
    script = ScriptDirectory.from_config(alembic_config(engine))
    previous = script.get_revision(REVISION).down_revision
    assert isinstance(previous, str)
    return previous


def _world_with_blocks(world: World, unique: str) -> tuple[Cal, Cal]:
    """Ada's work and home calendars synced both ways: timed, zoned, all-day and recurring
    events, and one block she deleted by hand."""
    work, home = world.work_and_home(unique)
    world.configure(work, home, include_all_day=True)
    world.insert(work, **timed("Standup", 9, 10))
    world.insert(
        work,
        summary="Berlin lunch",
        start={"dateTime": at(11).replace("Z", "+00:00"), "timeZone": "Europe/Berlin"},
        end={"dateTime": at(12).replace("Z", "+00:00"), "timeZone": "Europe/Berlin"},
    )
    world.insert(
        work,
        summary="Daily",
        start={"dateTime": at(15).removesuffix("Z"), "timeZone": "UTC"},
        end={"dateTime": at(16).removesuffix("Z"), "timeZone": "UTC"},
        recurrence=["RRULE:FREQ=DAILY;COUNT=3"],
    )
    day = at(0, days=2)[:10]
    after = at(0, days=3)[:10]
    world.insert(home, summary="Away", start={"date": day}, end={"date": after})
    world.insert(home, **timed("Dentist", 17, 18))
    world.sync_all(work, home)
    gone = next(b for b in world.blocks(home) if b["start"].get("dateTime") == at(9))
    world.service(home.email).events().delete(
        calendarId=home.provider_id, eventId=gone["id"]
    ).execute()
    world.sync(home)
    return work, home


# The columns read here, never whole rows: at the previous revision the tables lack what
# later migrations added (the models are today's).
EVENT_TIMES = (Event.id, Event.start, Event.end)
BLOCK_TIMES = (BusyBlock.id, BusyBlock.start, BusyBlock.end)


def _times(world: World) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every row's start and end (and a block's title and fingerprint), by table and id."""
    with Session(world.db) as session:
        events = {("event", i): (a, b) for i, a, b in session.execute(select(*EVENT_TIMES))}
        blocks = {
            ("block", i): (a, b, summary, fingerprint)
            for i, a, b, summary, fingerprint in session.execute(
                select(*BLOCK_TIMES, BusyBlock.summary, BusyBlock.source_fingerprint)
            )
        }
    return {**events, **blocks}


def _as_calsync_wrote_them(
    today: dict[tuple[str, int], tuple[Any, ...]],
) -> dict[tuple[str, int], tuple[Any, ...]]:
    """The same rows as calsync wrote them before the migration: Google's key names, and a
    block's fingerprint hashed over those."""
    before: dict[tuple[str, int], tuple[Any, ...]] = {}
    for key, (start, end, *block) in today.items():
        start, end = _in_googles_keys(start), _in_googles_keys(end)
        if block:
            summary, _ = block
            before[key] = (start, end, summary, _fingerprint(summary, start, end))
        else:
            before[key] = (start, end)
    return before


def _hand_deleted_as_google_sent(world: World) -> None:
    """The hand-deleted block's times as Google's text came (UTC as "+00:00"), as rows made
    from Google's objects held them, with its fingerprint over that text."""
    with Session(world.db) as session:
        block_id, start, end, summary = session.execute(
            select(*BLOCK_TIMES, BusyBlock.summary).where(col(BusyBlock.user_deleted))
        ).one()
        start, end = _as_google_sent(start), _as_google_sent(end)
        session.execute(
            sa.update(BusyBlock)
            .where(col(BusyBlock.id) == block_id)
            .values(start=start, end=end, source_fingerprint=_fingerprint(summary, start, end))
        )
        session.commit()


def _block_rows(world: World) -> list[tuple[Any, ...]]:
    with Session(world.db) as session:
        return sorted(
            (
                b.target_calendar_id,
                b.provider_event_id,
                b.etag,
                b.start_at,
                b.end_at,
                b.user_deleted,
            )
            for b in session.exec(select(BusyBlock))
        )


def _time_keys(world: World) -> set[str]:
    with Session(world.db) as session:
        rows = [*session.execute(select(*EVENT_TIMES)), *session.execute(select(*BLOCK_TIMES))]
    return {key for _id, *times in rows for value in times for key in (value or {})}


def test_rows_in_googles_keys_upgrade_and_sync_without_writing_a_block(
    world: World, unique: str
) -> None:
    work, home = _world_with_blocks(world, unique)
    blocks_before = {c.id: world.blocks(c) for c in (work, home)}
    rows_before = _block_rows(world)
    assert len(rows_before) == 7  # standup, lunch, 3 daily in home; away, dentist in work
    assert [r[-1] for r in rows_before].count(True) == 1

    today = _times(world)

    # The previous revision: every row as calsync wrote it then.
    command.downgrade(alembic_config(world.db), _previous_revision(world.db))
    assert _times(world) == _as_calsync_wrote_them(today)
    _hand_deleted_as_google_sent(world)
    assert _time_keys(world) == GOOGLE_KEYS

    upgrade_database(world.db)
    assert _time_keys(world) == {"day", "instant", "zone"}

    world.reset_stats()
    for cal in (work, home):
        world.sync(cal)
        world.sync(cal, full=True)
    calls = world.stats()["calls"]
    assert {name: calls[name] for name in WRITES if name in calls} == {}
    assert calls.get("events.list", 0) >= 4  # the syncs did read both calendars
    assert _block_rows(world) == rows_before
    assert {c.id: world.blocks(c) for c in (work, home)} == blocks_before
    # The dashboard still tells the all-day block from the others.
    with Session(world.db) as session:
        page = busy_blocks(
            session,
            world.user(),
            target_calendar_id=None,
            source_calendar_id=None,
            limit=100,
            after=None,
        )
    shown = sorted((b.all_day, b.source_calendar_id == home.id) for b in page.items)
    # Work's lunch and three dailies, home's dentist; home's day away, all day.
    assert shown == [(False, False)] * 4 + [(False, True), (True, True)]
