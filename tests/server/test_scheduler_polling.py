"""The scheduler polls a calendar with a healthy push channel at the safety interval (sixty poll
intervals) and one without at the poll interval: decided on a fixed clock, tick by tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from sqlmodel import Session, delete

from calsync_server.db.lease import Leases
from calsync_server.db.models import Calendar, PushSubscription, SyncJob
from calsync_server.jobs.queue import JobQueue
from calsync_server.push.channels import LEASE, ChannelKeeper
from calsync_server.scheduler import Scheduler
from calsync_server.sync.engine import default_factory
from shared.clock import FixedClock
from shared.domain import ChannelState, JobState
from tests.support.world import FAST_RETRY, World

POLL = timedelta(seconds=60)
# The domain's safety interval for calendars with push (domain.md, "Push channels"; the
# scheduler's SAFETY_POLL_FACTOR): a change of the factor must fail this test.
SAFETY = 60 * POLL
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # a DST change day in Europe, past midnight


def test_push_covered_calendars_are_polled_sixty_times_less_often(
    world: World, unique: str
) -> None:
    pushed = world.account(f"pushed-{unique}@example.com")["primary"]
    polled = world.account(f"polled-{unique}@example.com")["primary"]
    world.configure(pushed, polled)
    clock = FixedClock(T0)
    settings = msgspec.structs.replace(
        world.settings,
        poll_interval_seconds=POLL.total_seconds(),
        public_url="https://calsync.example/",
    )
    with Session(world.db) as session:
        for cal in (pushed, polled):
            calendar = session.get(Calendar, cal.id)
            assert calendar is not None
            calendar.last_sync_at = calendar.last_full_sync_at = T0
            session.add(calendar)
        session.add(
            PushSubscription(
                calendar_id=pushed.id,
                key="calsync-healthy",
                remote_id="calsync-healthy",
                secret="secret",
                address="https://calsync.example/webhooks/google/calsync-healthy",
                resource="resource",
                created_at=T0,
                expires_at=T0 + timedelta(days=7),
                state=ChannelState.ACTIVE,
            )
        )
        session.commit()
    # Another process keeps the channels (it holds their lease): this scheduler only polls,
    # and the healthy channel above stays as it is.
    assert Leases(world.db, clock, holder="the other process").take(LEASE, timedelta(days=30))
    queue = JobQueue(world.db, clock)
    keeper = ChannelKeeper(
        world.db,
        settings,
        clock,
        world.vault,
        default_factory(settings, FAST_RETRY),
    )
    scheduler = Scheduler(world.db, settings, clock, queue, keeper)

    def polled_at(moment: datetime) -> list[int]:
        clock.advance(moment - clock.now())
        return scheduler.tick().polled

    first = scheduler.tick()  # a process's first tick catches up on the covered calendar
    assert first.caught_up == [pushed.id]
    assert first.polled == []
    world.execute(delete(SyncJob))

    assert polled_at(T0 + POLL - timedelta(seconds=1)) == []
    assert polled_at(T0 + POLL) == [polled.id]
    world.execute(delete(SyncJob))  # as if that poll ran; its calendar's last sync is older
    assert polled_at(T0 + SAFETY - timedelta(seconds=1)) == [polled.id]
    world.execute(delete(SyncJob))
    assert polled_at(T0 + SAFETY) == [pushed.id, polled.id]


def test_a_calendar_whose_sync_failed_for_good_is_polled_a_poll_interval_later_not_every_tick(
    world: World, unique: str
) -> None:
    """Its last sync stays as old as it was (a failure is no sync), so the poll it is overdue
    for would be asked again at every tick: the failure's start spaces the next try."""
    cal = world.account(f"failing-{unique}@example.com")["primary"]
    world.configure(cal)
    clock = FixedClock(T0)
    settings = msgspec.structs.replace(world.settings, poll_interval_seconds=POLL.total_seconds())
    with Session(world.db) as session:
        calendar = session.get(Calendar, cal.id)
        assert calendar is not None
        calendar.last_full_sync_at = T0
        calendar.last_sync_at = T0 - 3 * POLL  # overdue for a poll
        session.add(calendar)
        session.commit()
    queue = JobQueue(world.db, clock)
    keeper = ChannelKeeper(world.db, settings, clock, world.vault, default_factory(settings))
    scheduler = Scheduler(world.db, settings, clock, queue, keeper)
    assert scheduler.tick().polled == [cal.id]
    world.execute(delete(SyncJob))

    # That poll's sync failed for good at T0 (its retries spent).
    with Session(world.db) as session:
        session.add(
            SyncJob(
                calendar_id=cal.id,
                state=JobState.FAILED,
                attempts=3,
                run_after=T0,
                created_at=T0,
                started_at=T0,
                finished_at=T0,
                last_error="404 Not Found",
            )
        )
        session.commit()

    def polled_at(moment: datetime) -> list[int]:
        clock.advance(moment - clock.now())
        return scheduler.tick().polled

    tick = timedelta(seconds=scheduler.interval_seconds)
    assert polled_at(T0 + tick) == []
    assert polled_at(T0 + POLL - timedelta(seconds=1)) == []
    assert polled_at(T0 + POLL) == [cal.id]
