"""The user's full pass: a full sync reads every synced calendar of the user afresh, then lists
the targets and plans the whole user once, instead of once per calendar (the daily safety net
was one full reconcile per calendar: each listed every target and planned the whole user).

The engine reads the calendar its job names; this module reads the user's others. Each other
calendar is claimed first as the job queue claims one (a running job row: the queue's unique
index lets one sync per calendar run), so no other sync of it runs meanwhile; one that is
syncing already is left to its own full pass. Their cursors are stored only once the plan that
used their events is applied, as the engine does with its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.models import Account, Calendar, SyncJob, SyncLog
from calsync_server.jobs.queue import claimed_for, put_back
from calsync_server.providers.model import ErrorKind, ProviderError
from calsync_server.sync import holds
from calsync_server.sync.ingest import store_changes, unmask_blocks
from calsync_server.sync.planner import CalendarView, second_copies
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import user_calendars, user_views
from calsync_server.sync.safety import read_dropped
from shared.domain import AccountState, JobState, SyncKind


@dataclass(slots=True)
class OthersRead:
    """What the pass read of the user's other calendars: cursors to store, reads that dropped."""

    job_id: int | None = None  # the job whose sync the pass is (None: the CLI's)
    cursors: dict[int, str | None] = field(default_factory=dict)
    fetched: dict[int, int] = field(default_factory=dict)  # events read, for each one's log
    dropped: set[int] = field(default_factory=set)
    claims: list[int] = field(default_factory=list)  # the running job rows the pass holds
    claimed: dict[int, int] = field(default_factory=dict)  # calendar id -> its claim's job id
    # Claims that were the calendar's own queued job (its first sync, taken over by the pass):
    # one whose calendar the pass did not settle goes back to the queue, not to done.
    taken: set[int] = field(default_factory=set)
    settled: set[int] = field(default_factory=set)  # claims whose calendar's cursor is committed

    def committed(self, report: SyncReport) -> None:
        """The transaction store_cursors wrote in is committed: its claims are settled."""
        if not (report.failed_writes or report.unplanned):
            self.settled |= {self.claimed[c] for c in self.cursors if c in self.claimed}


def covered(session: Session, calendar: Calendar, job_id: int | None) -> bool:
    """Whether a full pass of the user that began after this job was asked for has read the
    calendar already (`calsync sync --full` asks for every calendar: one pass serves them)."""
    if job_id is None or calendar.last_full_sync_at is None:
        return False
    job = session.get(SyncJob, job_id)
    return job is not None and calendar.last_full_sync_at >= job.created_at


def _claim(
    db: sa.Engine,
    calendar_id: int,
    now: datetime,
    lease: timedelta,
    worker: str,
    *,
    take_queued: bool,
) -> tuple[int, bool] | None:
    """A running job row for the calendar (its id, and whether it is the calendar's queued job
    taken over), or None when a sync of it runs already. `take_queued`: a first sync waiting in
    the queue becomes the claim, so it does not run again after the pass, reading whole what
    the pass read and wrote (its echoes)."""
    try:
        with Session(db) as claims:
            if take_queued:
                taken = claims.execute(
                    sa.update(SyncJob)
                    .where(
                        col(SyncJob.calendar_id) == calendar_id,
                        col(SyncJob.state) == JobState.QUEUED,
                    )
                    .values(
                        state=JobState.RUNNING,
                        attempts=col(SyncJob.attempts) + 1,
                        started_at=now,
                        lease_expires_at=now + lease,
                        worker=worker,
                    )
                    .returning(col(SyncJob.id))
                ).scalar()
                if taken is not None:
                    claims.commit()
                    return int(taken), True
            job = SyncJob(
                calendar_id=calendar_id,
                kind=SyncKind.FULL,
                full=True,
                state=JobState.RUNNING,
                attempts=1,
                run_after=now,
                created_at=now,
                started_at=now,
                lease_expires_at=now + lease,
                worker=worker,
            )
            claims.add(job)
            claims.commit()
            assert job.id is not None
            return job.id, False
    except sa.exc.IntegrityError:
        return None


def first_sync_running(session: Session, calendar: Calendar, user_id: int, job_id: int) -> bool:
    """Whether an earlier job of another calendar of the user runs its first sync (or is a first
    sync pass's claim). That pass claims every calendar awaiting its first sync as it reads: a
    second worker syncing one of them beside it would list every target and plan the user
    again once the pass is done, so this calendar's first sync steps aside and is taken over
    by the pass. The earlier job id decides, so two first syncs never both step aside."""
    return (
        session.exec(
            select(SyncJob.id)
            .join(Calendar, col(SyncJob.calendar_id) == Calendar.id)
            .join(Account, col(Calendar.account_id) == Account.id)
            .where(
                Account.user_id == user_id,
                Account.state == AccountState.ACTIVE,
                col(Calendar.sync_enabled).is_(True),
                col(Calendar.sync_token).is_(None),
                Calendar.id != calendar.id,
                SyncJob.state == JobState.RUNNING,
                col(SyncJob.id) < job_id,
            )
            .limit(1)
        ).first()
        is not None
    )


def release(db: sa.Engine, found: OthersRead, now: datetime) -> None:
    """The pass's claims are done: their calendars are free for their own syncs again. A
    calendar's own queued job the pass took over and did not settle (its read or the plan
    failed) is queued again, or done when another request queued one meanwhile."""
    if not found.claims:
        return
    back = [job_id for job_id in found.claims if job_id in found.taken - found.settled]
    with Session(db) as session:
        session.execute(
            sa.update(SyncJob)
            .where(
                col(SyncJob.id).in_([j for j in found.claims if j not in back]),
                col(SyncJob.state) == JobState.RUNNING,
            )
            .values(state=JobState.DONE, finished_at=now, lease_expires_at=None)
        )
        for job_id in back:
            job = session.get(SyncJob, job_id)
            if job is not None:
                put_back(session, job, now, "its first sync pass ended before settling it")
        session.commit()


def read_others(
    db: sa.Engine,
    session: Session,
    calendar: Calendar,
    user_id: int,
    views: dict[int, CalendarView],
    when: tuple[tuple[datetime, datetime], str, datetime, timedelta],
    pool: ProviderPool,
    report: SyncReport,
    found: OthersRead,
    *,
    first_only: bool = False,
) -> OthersRead:
    """Read each other synced calendar of the user whole and store its events (committed, as a
    sync commits its read before writing blocks). A calendar whose read fails is left out (its
    own sync reads it again); a failed login fails the pass, as in the engine."""
    # `found` is the caller's: it releases the claims, whatever happens.
    looked: set[int] = {calendar.id} if calendar.id is not None else set()
    while True:
        others = session.exec(
            select(Calendar, Account)
            .join(Account, col(Calendar.account_id) == Account.id)
            .where(
                Account.user_id == user_id,
                col(Calendar.sync_enabled).is_(True),
                Account.state == AccountState.ACTIVE,
                col(Calendar.id).not_in(looked),
                # A first sync reads only the others awaiting theirs (turned on together): one
                # pass writes all their blocks, none re-reads what an earlier one wrote.
                col(Calendar.sync_token).is_(None) if first_only else sa.true(),
            )
            .order_by(col(Calendar.id))
        ).all()
        if not others:
            return found
        looked |= {other.id for other, _ in others if other.id is not None}
        copies = second_copies(views.values())
        _read_each(db, session, others, copies, when, pool, report, found, take_queued=first_only)
        if not first_only:
            return found
        # Calendars turned on one request at a time (the dashboard's toggles, the API's PATCH
        # each) may come on while the pass reads: each such one is read too, rather than
        # given blocks unread under the lock and then read whole again by its own first sync,
        # which would list and plan the user a second time. Until none is new: the window
        # left is the few milliseconds between the last look and the lock.
        session.expire_all()  # the calendars' rows as the requests left them
        accounts, calendars = user_calendars(session, user_id)
        views = user_views(calendars, accounts, SyncReport())


def _read_each(
    db: sa.Engine,
    session: Session,
    others: Sequence[tuple[Calendar, Account]],
    copies: dict[int, CalendarView],
    when: tuple[tuple[datetime, datetime], str, datetime, timedelta],
    pool: ProviderPool,
    report: SyncReport,
    found: OthersRead,
    *,
    take_queued: bool,
) -> None:
    """read_others' reads of the calendars it found: each claimed, read whole and stored."""
    window, zone, now, lease = when  # the sync's window, the user's zone, its now, the lease
    for other, account in others:
        assert other.id is not None
        if other.id in copies:
            continue  # the first copy of the same calendar is read instead
        claimed = _claim(
            db, other.id, now, lease, claimed_for(found.job_id), take_queued=take_queued
        )
        if claimed is None:
            continue  # syncing now: its own full pass reads it
        claim, taken = claimed
        found.claims.append(claim)
        found.claimed[other.id] = claim
        if taken:
            found.taken.add(claim)
        before = holds.live_events(session, other.id)
        try:
            provider = pool.get(account)
            changes = provider.read_changes(other.provider_calendar_id, cursor=None, window=window)
            changes = unmask_blocks(session, other, changes, provider)
        except ProviderError as exc:
            if exc.kind is ErrorKind.AUTH:
                raise
            session.rollback()
            report.note(f"{other.name} could not be read for the full pass: {exc}")
            continue
        # calsync's own blocks seen here are squared by the pass's listing of every target.
        store_changes(session, other, changes, other.time_zone or zone, report)
        session.commit()
        found.cursors[other.id] = changes.cursor
        found.fetched[other.id] = len(changes.events) + len(changes.removed)
        if read_dropped(before, holds.live_events(session, other.id)):
            found.dropped.add(other.id)


def store_cursors(session: Session, found: OthersRead, now: datetime, report: SyncReport) -> None:
    """The plan that used the other calendars' reads is applied: their full pass is counted, and
    their cursors stored unless a write failed or a calendar could not be planned (then their
    next sync reads again, as the engine does with its own), in the caller's transaction."""
    applied = not (report.failed_writes or report.unplanned)
    for calendar_id, cursor in found.cursors.items():
        other = session.get(Calendar, calendar_id)
        if other is None:
            continue
        if applied:
            other.sync_token = cursor
        other.last_sync_at = other.last_full_sync_at = now
        session.add(other)
        # One log row per calendar a sync read (domain.md): the blocks the pass wrote are
        # counted in the row of the calendar whose sync it was.
        session.add(
            SyncLog(
                calendar_id=calendar_id,
                # The claim is the job of this calendar's part in the pass: one log per job.
                job_id=found.claimed.get(calendar_id),
                kind=SyncKind.FULL,
                trigger="full pass",
                status=report.status,
                started_at=now,
                finished_at=now,
                notes=["read in a full pass with the user's other calendars"],
                error=report.error,
                events_fetched=found.fetched.get(calendar_id, 0),
            )
        )
