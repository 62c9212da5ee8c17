"""The job queue: coalescing, one running job per calendar, leases, retries with backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.db.engine import upgrade_database
from calsync_server.db.models import SyncJob
from calsync_server.jobs.queue import (
    _WAITING_ONE,
    DEBOUNCE_STEP,
    MAX_ATTEMPTS,
    JobQueue,
    claimed_for,
)
from shared.clock import FixedClock
from shared.domain import JobState, SyncKind
from tests.support.rows import add_calendars
from tests.support.waiting import wait_until

START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _calendar(db: sa.Engine) -> int:
    upgrade_database(db)
    with Session(db) as session:
        (calendar,) = add_calendars(session, "c")
    return calendar


def _states(db: sa.Engine) -> list[str]:
    with Session(db) as session:
        return sorted(str(job.state) for job in session.exec(select(SyncJob)))


def test_a_burst_coalesces_into_one_running_and_one_waiting(db_engine: sa.Engine) -> None:
    calendar = _calendar(db_engine)
    queue = JobQueue(db_engine, FixedClock(START))

    first = queue.enqueue(calendar, SyncKind.WEBHOOK)
    job = queue.claim("w1")
    burst = [queue.enqueue(calendar, SyncKind.WEBHOOK) for _ in range(50)]

    assert job is not None
    assert job.id == first.job_id
    assert burst[0].coalesced is False
    assert all(e.coalesced and e.job_id == burst[0].job_id for e in burst[1:])
    assert queue.claim("w2") is None  # the calendar is already syncing
    assert _states(db_engine) == ["queued", "running"]


def test_a_full_request_widens_the_waiting_job(db_engine: sa.Engine) -> None:
    calendar = _calendar(db_engine)
    queue = JobQueue(db_engine, FixedClock(START))
    queue.enqueue(calendar, SyncKind.WEBHOOK)
    queue.enqueue(calendar, SyncKind.FULL, full=True)
    job = queue.claim("w1")
    assert job is not None
    assert job.full is True


def test_a_crashed_workers_job_is_taken_again_after_its_lease(db_engine: sa.Engine) -> None:
    calendar = _calendar(db_engine)
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock, lease_seconds=60)
    queue.enqueue(calendar, SyncKind.WEBHOOK)
    assert queue.claim("crashed") is not None

    assert queue.reclaim_expired() == 0  # still leased
    clock.advance(timedelta(seconds=61))
    assert queue.reclaim_expired() == 1
    again = queue.claim("survivor")

    assert again is not None
    assert again.worker == "survivor"
    assert again.attempts == 2


def test_failures_retry_with_backoff_then_fail(db_engine: sa.Engine) -> None:
    calendar = _calendar(db_engine)
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock)
    queue.enqueue(calendar, SyncKind.POLLING)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        job = queue.claim("w")
        assert job is not None
        assert job.id is not None
        state = queue.finish(job.id, error="503 backendError", retry=True)
        if attempt < MAX_ATTEMPTS:
            assert state is JobState.QUEUED
            assert queue.claim("w") is None  # not due yet: backing off
            clock.advance(timedelta(minutes=15))
    assert state is JobState.FAILED


def _lease(db: sa.Engine, job_id: int) -> datetime | None:
    with Session(db) as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        return job.lease_expires_at


def test_a_running_jobs_lease_is_renewed_until_it_is_closed(db_engine: sa.Engine) -> None:
    calendar = _calendar(db_engine)
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock, lease_seconds=3)  # renewed every second
    queue.enqueue(calendar, SyncKind.WEBHOOK)
    job = queue.claim("w1")
    assert job is not None
    assert job.id is not None
    job_id = job.id
    with queue.leases.kept(job_id):
        clock.advance(timedelta(seconds=10))
        renewed = START + timedelta(seconds=13)
        wait_until(lambda: _lease(db_engine, job_id) == renewed, timeout=10, what="a renewal")
    queue.finish(job_id)
    wait_until(lambda: not queue.leases.renewing, timeout=10, what="the renewals to end")
    queue.heartbeat(job_id)  # one that was under way as the job closed
    assert _lease(db_engine, job_id) is None
    assert _states(db_engine) == ["done"]


def test_a_jobs_lease_renewal_renews_its_passs_claims(db_engine: sa.Engine) -> None:
    """A first-sync pass longer than a lease: its claims stay its own while its job runs."""
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        first, second, third = add_calendars(session, "first", "second", "third")
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock, lease_seconds=300)
    for calendar in (first, second, third):
        queue.enqueue(calendar, SyncKind.MANUAL, full=True)
    job = queue.claim("w1")
    assert job is not None
    assert job.id is not None
    with Session(db_engine) as session:
        rows = {j.calendar_id: j for j in session.exec(select(SyncJob))}
        # The pass claimed the second calendar; the third runs a sync of its own elsewhere.
        rows[second].state, rows[second].worker = JobState.RUNNING, claimed_for(job.id)
        rows[third].state, rows[third].worker = JobState.RUNNING, "w2"
        for row in (rows[second], rows[third]):
            row.lease_expires_at = START + timedelta(seconds=300)
            session.add(row)
        session.commit()
        claim, other = rows[second].id, rows[third].id
    assert claim is not None
    assert other is not None

    clock.advance(timedelta(seconds=200))
    queue.heartbeat(job.id)

    renewed = START + timedelta(seconds=500)
    assert (_lease(db_engine, job.id), _lease(db_engine, claim)) == (renewed, renewed)
    assert _lease(db_engine, other) == START + timedelta(seconds=300)
    clock.advance(timedelta(seconds=200))  # past the claims' first lease
    assert queue.reclaim_expired() == 1  # the stranger's job only


def test_a_put_back_job_takes_its_passs_claims_back_with_it(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        first, second = add_calendars(session, "first", "second")
    queue = JobQueue(db_engine, FixedClock(START))
    for calendar in (first, second):  # turned on together: a first sync each
        queue.enqueue(calendar, SyncKind.MANUAL, full=True)
    job = queue.claim("w1")
    assert job is not None
    assert job.id is not None
    # Its first sync's pass took the second calendar's queued first sync as its claim.
    with Session(db_engine) as session:
        taken = session.exec(select(SyncJob).where(SyncJob.calendar_id == second)).one()
        taken.state, taken.worker = JobState.RUNNING, claimed_for(job.id)
        session.add(taken)
        session.commit()

    # The database went away mid-sync: the worker puts its job back once it is there again.
    assert queue.release(job.id, "w1", "the connection is lost")

    # Both wait in the queue again, not the claim until its lease runs out.
    assert _states(db_engine) == ["queued", "queued"]


def test_a_deferred_first_sync_joining_a_catch_up_makes_it_full(db_engine: sa.Engine) -> None:
    calendar = _calendar(db_engine)
    queue = JobQueue(db_engine, FixedClock(START))
    first_sync = queue.enqueue(calendar, SyncKind.MANUAL, full=True)
    assert queue.claim("w1") is not None
    # While it runs, its new channel's catch-up queues an incremental sync of the calendar.
    catch_up = queue.enqueue(calendar, SyncKind.WEBHOOK)

    queue.defer(first_sync.job_id, 1.0)  # it stepped aside for another first sync

    with Session(db_engine) as session:
        deferred = session.get(SyncJob, first_sync.job_id)
        waiting = session.get(SyncJob, catch_up.job_id)
    assert deferred is not None
    assert waiting is not None
    assert (deferred.state, deferred.last_error) == (
        JobState.DONE,
        "deferred; coalesced into the waiting job",
    )
    assert (waiting.state, waiting.full) == (JobState.QUEUED, True)


def test_a_calendars_waiting_job_is_found_without_reading_its_finished_ones(
    db_engine: sa.Engine,
) -> None:
    """Every webhook batch looks up its calendar's waiting job: read through the partial index
    of queued jobs, it costs the same after thousands of finished syncs of a busy channel."""
    if db_engine.dialect.name != "sqlite":
        pytest.skip("the query plan checked is SQLite's")
    calendar = _calendar(db_engine)
    queue = JobQueue(db_engine, FixedClock(START))
    with Session(db_engine) as session:
        for n in range(200):
            done = START + timedelta(minutes=n)
            session.add(
                SyncJob(
                    calendar_id=calendar,
                    kind=SyncKind.WEBHOOK,
                    state=JobState.DONE,
                    run_after=done,
                    created_at=done,
                    finished_at=done,
                )
            )
        session.commit()
    waiting = queue.enqueue(calendar, SyncKind.WEBHOOK)
    with db_engine.connect() as connection:
        sql = _WAITING_ONE._compile(connection.dialect).sql  # the SQL the queue runs
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (calendar,)).all()
        (found,) = _WAITING_ONE.rows(connection, {"id": calendar})
    assert found.id == waiting.job_id
    assert [step[-1] for step in plan] == [
        "SEARCH sync_job USING INDEX uq_sync_job_one_queued_per_calendar (calendar_id=?)"
    ]


def test_a_join_moves_a_debounced_job_by_a_step_or_leaves_it(db_engine: sa.Engine) -> None:
    """A burst's batches come a millisecond apart: a join that would push the waiting job back
    by less than DEBOUNCE_STEP leaves its row alone; a later one pushes it."""
    calendar = _calendar(db_engine)
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock)
    debounce = timedelta(milliseconds=300)

    def run_after() -> datetime:
        with Session(db_engine) as session:
            (job,) = session.exec(select(SyncJob).where(SyncJob.state == JobState.QUEUED))
            return job.run_after

    queue.enqueue(calendar, SyncKind.WEBHOOK, debounce_seconds=0.3)
    assert run_after() == START
    queue.enqueue(calendar, SyncKind.WEBHOOK, debounce_seconds=0.3)
    assert run_after() == START + debounce
    clock.advance(DEBOUNCE_STEP - timedelta(milliseconds=1))
    joined = queue.enqueue(calendar, SyncKind.WEBHOOK, debounce_seconds=0.3)
    assert joined.coalesced
    assert run_after() == START + debounce
    clock.advance(timedelta(milliseconds=1))
    queue.enqueue(calendar, SyncKind.WEBHOOK, debounce_seconds=0.3)
    assert run_after() == START + DEBOUNCE_STEP + debounce
