"""Cost that follows the window, not the account's age: the daily safety net is one full pass
per user (every calendar read, the targets listed and the user planned once), and the events
and blocks (and sync logs) that ended before the retained history leave the database while the
providers' calendars keep them (a past block is history, never deleted for its age)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlmodel import Session, select

from calsync_server.db.models import BusyBlock, Calendar, Event, SyncJob, SyncLog
from calsync_server.jobs.queue import JobQueue
from calsync_server.push.channels import ChannelKeeper
from calsync_server.scheduler import Scheduler
from calsync_server.sync.engine import SyncEngine, default_factory
from shared.clock import FixedClock
from shared.domain import JobState, SyncKind, SyncStatus
from tests.support.world import FAST_RETRY, Cal, World

NOW = datetime(2031, 5, 14, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(summary: str, start: datetime, length: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": iso(start)},
        "end": {"dateTime": iso(start + length)},
    }


def engine_at(world: World, clock: FixedClock) -> SyncEngine:
    return SyncEngine(world.db, world.settings, clock=clock, vault=world.vault, retry=FAST_RETRY)


def scheduler_at(world: World, clock: FixedClock) -> Scheduler:
    settings = msgspec.structs.replace(world.settings, poll_interval_seconds=3600.0)
    keeper = ChannelKeeper(
        world.db, settings, clock, world.vault, default_factory(settings, FAST_RETRY)
    )
    return Scheduler(world.db, settings, clock, JobQueue(world.db, clock), keeper)


def calendar_row(world: World, cal: Cal) -> Calendar:
    with Session(world.db) as session:
        row = session.get(Calendar, cal.id)
        assert row is not None
        return row


def queued(world: World) -> list[SyncJob]:
    with Session(world.db) as session:
        return list(session.exec(select(SyncJob).where(SyncJob.state == JobState.QUEUED)))


def test_the_safety_net_asks_for_one_full_pass_per_user(world: World, unique: str) -> None:
    clock = FixedClock(NOW)
    ada = world.account(f"ada-{unique}@example.com", "Team", "Side")
    ada_home = world.account(f"ada-home-{unique}@example.com")["primary"]
    bob = world.account(f"bob-{unique}@example.com", "Mirror", user="bob")
    mine = [ada["primary"], ada["Team"], ada["Side"], ada_home]
    world.configure(*mine, bob["primary"], bob["Mirror"])
    engine = engine_at(world, clock)
    for cal in [*mine, bob["primary"], bob["Mirror"]]:
        engine.sync_calendar(cal.id)
    scheduler = scheduler_at(world, clock)
    scheduler.tick()  # the first tick of a process: nothing is due yet
    assert queued(world) == []

    clock.advance(timedelta(hours=world.settings.full_reconcile_interval_hours) + DAY)
    result = scheduler.tick()

    jobs = queued(world)
    assert len(result.full) == 2
    assert sorted(j.calendar_id for j in jobs) == sorted(result.full)
    assert {j.kind for j in jobs} == {SyncKind.FULL}
    assert all(j.full for j in jobs)
    ada_ids, bob_ids = {c.id for c in mine}, {bob["primary"].id, bob["Mirror"].id}
    assert len({j.calendar_id for j in jobs} & ada_ids) == 1
    assert len({j.calendar_id for j in jobs} & bob_ids) == 1


def test_one_full_pass_reads_every_calendar_and_lists_each_target_once(
    world: World, unique: str
) -> None:
    clock = FixedClock(NOW)
    cals = world.account(f"work-{unique}@example.com", "Team", "Side")
    home = world.account(f"home-{unique}@example.com")["primary"]
    mine = [cals["primary"], cals["Team"], cals["Side"], home]
    world.configure(*mine)
    engine = engine_at(world, clock)
    for cal in mine * 2:
        engine.sync_calendar(cal.id)
    # Changes nobody announced (no push, no poll yet): only reading every calendar finds them.
    for n, cal in enumerate(mine):
        world.insert(cal, **event(f"Unannounced {n}", NOW + 5 * DAY + n * timedelta(hours=2)))
    clock.advance(2 * DAY)
    world.reset_stats()

    result = engine.sync_calendar(cals["Team"].id, kind=SyncKind.FULL)

    assert result.log.status == SyncStatus.SUCCESS
    calls = world.stats()["calls"]
    # One full read of each calendar and one listing of calsync's blocks in each target: a
    # pass per calendar lists every target once per calendar (16 listings, not 4).
    assert calls["events.list"] == len(mine) + len(mine)
    assert calls["events.insert"] == len(mine) * (len(mine) - 1)
    for cal in mine:
        titles = sorted(b["summary"] for b in world.blocks(cal))
        assert len(titles) == len(mine) - 1, cal
        row = calendar_row(world, cal)
        assert row.last_full_sync_at == clock.now()
        assert row.sync_token is not None
    with Session(world.db) as session:  # the calendars it read are free for their own syncs
        running = session.exec(select(SyncJob).where(SyncJob.state == JobState.RUNNING)).all()
        assert running == []
        # And each calendar it read has its log row, as every sync writes (domain.md).
        logs = session.exec(select(SyncLog).where(SyncLog.started_at == clock.now())).all()
    assert sorted(log.calendar_id for log in logs) == sorted(cal.id for cal in mine)
    assert {log.status for log in logs} == {SyncStatus.SUCCESS}
    assert all(log.events_fetched == 1 for log in logs if log.calendar_id != cals["Team"].id)


def synced_with_history(world: World, unique: str) -> tuple[Cal, Cal, FixedClock, SyncEngine]:
    """Work and home blocking each other: "Soon" (work) and "Dentist" (home) end within days,
    "Later" (work) in a month; every block written."""
    clock = FixedClock(NOW)
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.insert(work, **event("Soon", NOW + DAY))
    world.insert(work, **event("Later", NOW + 30 * DAY))
    world.insert(home, **event("Dentist", NOW + 2 * DAY))
    engine = engine_at(world, clock)
    for cal in (work, home, work, home):
        engine.sync_calendar(cal.id)
    return work, home, clock, engine


def test_rows_that_ended_before_the_retained_history_leave_the_database_not_the_calendars(
    world: World, unique: str
) -> None:
    work, home, clock, engine = synced_with_history(world, unique)
    before = {cal: world.blocks(cal) for cal in (work, home)}
    assert [len(b) for b in before.values()] == [1, 2]
    scheduler = scheduler_at(world, clock)
    scheduler.tick()
    with Session(world.db) as session:
        assert len(session.exec(select(Event)).all()) == 3
        assert len(session.exec(select(BusyBlock)).all()) == 3
        logs_before = session.exec(select(SyncLog)).all()

    # Past the retained history of "Soon" and "Dentist" (as far back as the window reaches
    # ahead), not of "Later": their rows go at the scheduler's next tick.
    horizon = timedelta(days=world.settings.horizon_days)
    clock.advance(horizon + 4 * DAY)
    scheduler.tick()

    with Session(world.db) as session:
        events = session.exec(select(Event)).all()
        rows = session.exec(select(BusyBlock)).all()
        logs = session.exec(select(SyncLog)).all()
    assert sorted(e.summary or "" for e in events) == ["Later"]
    assert [r.summary for r in rows] == ["Busy"]
    assert rows[0].target_calendar_id == home.id
    # Sync logs as old go too, but the one that wrote the retained block: explain names it.
    assert len(logs_before) > 1
    assert [log.sync_key for log in logs] == [rows[0].sync_key]
    # The providers' calendars keep every block, the past ones as history; and a full pass at
    # the later time (what the daily safety net runs) leaves them there too.
    for cal in (work, home):
        engine.sync_calendar(cal.id, kind=SyncKind.FULL)
    for cal, blocks in before.items():
        assert sorted(b["id"] for b in world.blocks(cal)) == sorted(b["id"] for b in blocks)


def test_a_target_that_leaves_after_its_rows_aged_out_still_loses_every_block(
    world: World, unique: str
) -> None:
    """domain.md: a calendar that stops being a target loses every calsync block in it, past
    ones included; those whose rows retention removed are found by calsync's mark."""
    work, home, clock, engine = synced_with_history(world, unique)
    assert [len(world.blocks(cal)) for cal in (work, home)] == [1, 2]
    scheduler = scheduler_at(world, clock)
    clock.advance(timedelta(days=world.settings.horizon_days) + 4 * DAY)
    scheduler.tick()  # the rows of "Soon" and "Dentist" go; the blocks stay as history
    with Session(world.db) as session:
        assert [r.target_calendar_id for r in session.exec(select(BusyBlock))] == [home.id]

    world.configure(home, sync_enabled=False)  # home leaves: its blocks go, the past one too
    engine.sync_calendar(home.id)
    assert world.blocks(home) == []
    # Work stays a target: its past block (of home's dentist) is history and stays.
    assert len(world.blocks(work)) == 1
    # Again: nothing left to find, and nothing fails.
    assert engine.sync_calendar(home.id).report.error is None
    assert world.blocks(home) == []
