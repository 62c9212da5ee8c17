"""First syncs of calendars turned on together are one pass: the first of them reads the others
awaiting theirs and writes every block once; a calendar synced already is not read again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from calsync_server.db.models import Calendar, SyncJob
from calsync_server.sync.engine import SyncEngine
from shared.clock import FixedClock
from shared.domain import JobState, SyncStatus
from tests.support.world import FAST_RETRY, Cal, World

NOW = datetime(2031, 5, 14, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def event(summary: str, start: datetime) -> dict[str, Any]:
    def iso(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    return {
        "summary": summary,
        "start": {"dateTime": iso(start)},
        "end": {"dateTime": iso(start + timedelta(hours=1))},
    }


def engine_at(world: World) -> SyncEngine:
    return SyncEngine(
        world.db, world.settings, clock=FixedClock(NOW), vault=world.vault, retry=FAST_RETRY
    )


def filled(world: World, unique: str, names: str) -> list[Cal]:
    cals = [world.account(f"{name}-{unique}@example.com")["primary"] for name in names]
    for n, cal in enumerate(cals):
        for k in range(2):
            world.insert(cal, **event(f"{cal.email} {k}", NOW + (1 + k) * DAY + n * DAY / 8))
    return cals


def test_the_first_of_the_first_syncs_writes_every_block_in_one_pass(
    world: World, unique: str
) -> None:
    cals = filled(world, unique, "abc")
    world.configure(*cals)
    engine = engine_at(world)
    world.reset_stats()

    first = engine.sync_calendar(cals[0].id)

    assert first.log.status == SyncStatus.SUCCESS
    # Each calendar's two events in the two others: all 12 blocks, by the first sync.
    assert first.log.blocks_created == 12
    calls = world.stats()["calls"]
    # Three reads and one listing of each target; a pass per calendar lists every target
    # again and re-reads what the earlier ones wrote.
    assert calls["events.list"] == 3 + 3
    for cal in cals:
        assert len(world.blocks(cal)) == 4, cal
    with Session(world.db) as session:
        rows = session.exec(select(Calendar).where(Calendar.id.in_([c.id for c in cals])))  # type: ignore[union-attr]
        assert all(row.sync_token is not None for row in rows)
        running = session.exec(select(SyncJob).where(SyncJob.state == JobState.RUNNING)).all()
        assert running == []  # the calendars it read are free for their own syncs
    later = [engine.sync_calendar(cal.id) for cal in cals[1:]]
    assert [r.log.blocks_created for r in later] == [0, 0]
    assert len(world.rows()) == 12


def test_a_first_sync_reads_no_calendar_synced_already(world: World, unique: str) -> None:
    old, new = filled(world, unique, "on")
    world.configure(old)
    engine = engine_at(world)
    engine.sync_calendar(old.id)
    world.configure(new)
    world.reset_stats()

    result = engine.sync_calendar(new.id)

    assert result.log.blocks_created == 4
    # Its own read and one listing of each target: the old calendar is not read again.
    assert world.stats()["calls"]["events.list"] == 1 + 2
