"""First syncs of calendars turned on together are one pass: the first of them reads the others
awaiting theirs and writes every block once; a calendar synced already is not read again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from calsync_server.db.models import Calendar, SyncJob, SyncLog
from calsync_server.jobs.queue import JobQueue
from calsync_server.jobs.worker import run_job
from calsync_server.sync.engine import SyncEngine
from shared.clock import FixedClock
from shared.domain import JobState, SyncKind, SyncStatus
from tests.support.racing import FeedThen, Hook
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


def drain(queue: JobQueue, engine: SyncEngine) -> list[int]:
    """Run every due job as a worker would; the calendars whose sync ran, in order."""
    ran: list[int] = []
    while (job := queue.claim("w1")) is not None:
        run_job(queue, engine, job)
        ran.append(job.calendar_id)
    return ran


def test_the_pass_takes_over_the_first_syncs_queued_for_the_calendars_it_reads(
    world: World, unique: str
) -> None:
    cals = filled(world, unique, "abc")
    world.configure(*cals)
    queue = JobQueue(world.db, FixedClock(NOW))
    for cal in cals:  # as turning sync on through the API queues them
        queue.enqueue(cal.id, SyncKind.MANUAL, full=True)
    engine = engine_at(world)
    world.reset_stats()

    ran = drain(queue, engine)

    # The first job's pass read the two others and wrote every block: their queued first
    # syncs were its claims, not run again afterwards (each a full read of the calendar,
    # its echoes too, and a listing of every target).
    assert ran == [cals[0].id]
    assert world.stats()["calls"]["events.list"] == 3 + 3
    assert len(world.rows()) == 12
    with Session(world.db) as session:
        jobs = session.exec(select(SyncJob)).all()
        assert {job.state for job in jobs} == {JobState.DONE}
        assert len(jobs) == 3
        logs = session.exec(select(SyncLog)).all()
        assert sorted(log.job_id for log in logs) == sorted(job.id for job in jobs)


# The scheduler may ask a calendar just turned on for its daily full pass before the API
# queues its first sync: that one steps aside as well.
@pytest.mark.parametrize("kind", [SyncKind.MANUAL, SyncKind.FULL])
def test_a_first_sync_steps_aside_for_the_one_its_user_runs_already(
    world: World, unique: str, kind: SyncKind
) -> None:
    cals = filled(world, unique, "abc")
    world.configure(*cals)
    clock = FixedClock(NOW)
    queue = JobQueue(world.db, clock)
    for n, cal in enumerate(cals):
        queue.enqueue(cal.id, kind if n else SyncKind.MANUAL, full=True)
    engine = engine_at(world)
    world.reset_stats()
    first = queue.claim("w1")
    second = queue.claim("w2")
    assert first is not None
    assert second is not None

    # The second worker's first sync, while the first one's runs: it reads and writes nothing,
    # and waits in the queue (not counted as an attempt) for the first one's pass to take it.
    run_job(queue, engine, second)

    assert world.stats()["total_calls"] == 0
    with Session(world.db) as session:
        waiting = session.get(SyncJob, second.id)
        assert waiting is not None
        assert (waiting.state, waiting.attempts) == (JobState.QUEUED, 0)
        assert waiting.run_after > NOW
    run_job(queue, engine, first)
    clock.advance(timedelta(minutes=1))
    assert drain(queue, engine) == []
    # One pass: three reads and one listing of each target, every block once.
    assert world.stats()["calls"]["events.list"] == 3 + 3
    assert len(world.rows()) == 12
    with Session(world.db) as session:
        assert session.exec(select(SyncLog).where(SyncLog.calendar_id == cals[1].id)).all()
        assert {job.state for job in session.exec(select(SyncJob))} == {JobState.DONE}


def test_a_calendar_turned_on_while_the_pass_reads_is_read_by_the_pass(
    world: World, unique: str
) -> None:
    # The dashboard's toggles and the API's PATCH turn calendars on one request at a time:
    # the third comes on after the pass looked for the calendars awaiting their first sync,
    # while it reads the second.
    first, second, third = filled(world, unique, "abc")
    world.configure(first, second)
    queue = JobQueue(world.db, FixedClock(NOW))
    for cal in (first, second):
        queue.enqueue(cal.id, SyncKind.MANUAL, full=True)

    def turn_on_third() -> None:  # as the API does: sync on, its first sync queued
        world.configure(third)
        queue.enqueue(third.id, SyncKind.MANUAL, full=True)

    hook = Hook()
    hook.calendar, hook.meanwhile = second.provider_id, turn_on_third
    engine = SyncEngine(
        world.db,
        world.settings,
        clock=FixedClock(NOW),
        vault=world.vault,
        provider_factory=lambda _name, _account, credentials: FeedThen(
            credentials, world.emulator.url, hook
        ),
    )
    world.reset_stats()

    ran = drain(queue, engine)

    assert hook.meanwhile is None  # the third was turned on during the pass
    # One pass read all three and wrote every block: the third got no blocks unread, nor a
    # first sync of its own afterwards reading them back and listing every target again.
    assert ran == [first.id]
    assert world.stats()["calls"]["events.list"] == 3 + 3
    assert len(world.rows()) == 12
    for cal in (first, second, third):
        assert len(world.blocks(cal)) == 4, cal
    with Session(world.db) as session:
        assert {job.state for job in session.exec(select(SyncJob))} == {JobState.DONE}
        row = session.get(Calendar, third.id)
        assert row is not None
        assert row.sync_token is not None
