"""The scheduler's tick: reclaim lost jobs, keep channels, poll where push is missing, and the
daily full reconcile. Blocking (database and provider calls): run in a worker thread.

Every decision is read from the database each tick, so several server processes can all run
it: the job queue coalesces what they enqueue twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, delete, func, select

from calsync_server.db.models import Account, Calendar, Notification, PushSubscription, SyncJob
from calsync_server.jobs.queue import JobQueue
from calsync_server.push.channels import ChannelChanges, ChannelKeeper, healthy
from calsync_server.sync.retention import purge_history
from shared.clock import Clock
from shared.domain import AccountState, ChannelState, JobState, SyncKind
from shared.settings import Settings

# Google: "delivery is not guaranteed: keep polling". Calendars with a healthy channel are
# still polled, this many times less often (hourly at the default minute), and a poll that
# finds unannounced changes is how a silently broken channel is caught. Every tenth interval
# cost a pushed calendar more calls in a quiet day than polling every 15 minutes does (the
# seed's baseline); hourly keeps push's saving over polling past the seed's 90% (bench 9).
SAFETY_POLL_FACTOR = 60
NOTIFICATIONS_KEPT = timedelta(days=7)


@dataclass(slots=True)
class TickResult:
    reclaimed: int = 0
    polled: list[int] = field(default_factory=list)
    full: list[int] = field(default_factory=list)
    # Incremental syncs queued because changes may have gone unannounced: a new or renewed
    # channel (it announces only later changes), a failed watch, this process's first tick.
    caught_up: list[int] = field(default_factory=list)
    channels: ChannelChanges = field(default_factory=ChannelChanges)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


class Scheduler:
    def __init__(
        self,
        db: sa.Engine,
        settings: Settings,
        clock: Clock,
        queue: JobQueue,
        channels: ChannelKeeper,
        *,
        host: str | None = None,
        alive: Callable[[int], bool] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.channels = channels
        # With a host: running jobs of this host's dead processes are taken back each tick.
        self.host = host
        self.alive = alive or pid_alive
        self._pruned_at: datetime | None = None
        self._first_tick = True

    @property
    def interval_seconds(self) -> float:
        """How often to tick: often enough for the poll interval, at most every 5 s."""
        return max(0.05, min(5.0, self.settings.poll_interval_seconds / 4))

    def tick(self) -> TickResult:
        result = TickResult(reclaimed=self.queue.reclaim_expired())
        if self.host is not None:
            result.reclaimed += self.queue.reclaim_orphans(self.host, self.alive)
        # Also without a public URL: channels left from when there was one are stopped.
        result.channels = self.channels.maintain()
        catch_up = set(result.channels.created)
        now = self.clock.now()
        poll_every = timedelta(seconds=self.settings.poll_interval_seconds)
        full_every = timedelta(hours=self.settings.full_reconcile_interval_hours)
        # Not expired on commit: pruning commits, and the calendars are read after the session.
        with Session(self.db, expire_on_commit=False) as session:
            user_of = dict(
                session.exec(
                    select(Calendar.id, Account.user_id)
                    .join(Account, col(Calendar.account_id) == Account.id)
                    .where(
                        col(Calendar.sync_enabled).is_(True), Account.state == AccountState.ACTIVE
                    )
                ).all()
            )
            calendars = session.exec(
                select(Calendar).where(col(Calendar.id).in_(list(user_of)))
            ).all()
            covered = {
                c.calendar_id
                for c in session.exec(
                    select(PushSubscription).where(PushSubscription.state == ChannelState.ACTIVE)
                )
                if healthy(c, now)
            }
            busy = set(
                session.exec(
                    select(SyncJob.calendar_id).where(
                        col(SyncJob.state).in_([JobState.QUEUED, JobState.RUNNING])
                    )
                )
            )
            # A sync that failed for good leaves last_sync_at as it was: without this, the
            # calendar would be tried again every tick instead of every poll interval.
            failed = dict(
                session.exec(
                    select(SyncJob.calendar_id, func.max(SyncJob.started_at))
                    .where(SyncJob.state == JobState.FAILED)
                    .group_by(col(SyncJob.calendar_id))
                ).all()
            )
            self._prune(session, now)
        if self._first_tick:
            # While no process ran, notifications were answered by nobody and the provider's
            # retries may have run out: a covered calendar would wait for its safety poll.
            catch_up |= covered
        self._first_tick = False
        enabled = {c.id for c in calendars if c.id is not None}
        for calendar_id in sorted(catch_up & enabled):
            # Also when a sync is running: it may have listed before the channel existed.
            self.queue.enqueue(calendar_id, SyncKind.WEBHOOK)
            result.caught_up.append(calendar_id)
            busy.add(calendar_id)
        for calendar_id in sorted(set(result.channels.failed) & enabled - busy - covered):
            # No channel: the calendar falls back to polling, and its first poll is now (not a
            # poll interval after its last sync, with nobody announcing changes meanwhile).
            self.queue.enqueue(calendar_id, SyncKind.POLLING)
            result.caught_up.append(calendar_id)
            busy.add(calendar_id)
        # The safety net is one full pass per user (the engine's full sync reads every calendar
        # of the user and plans them once): the user's most overdue calendar asks for it, and
        # the others wait for it this tick rather than ask for passes of their own.
        passing: set[int] = set()
        for calendar in sorted(calendars, key=lambda c: (c.last_full_sync_at or now, c.id or 0)):
            assert calendar.id is not None
            if calendar.id in busy:
                continue
            last_failure = failed.get(calendar.id)
            if last_failure is not None and now - last_failure < poll_every:
                continue
            if calendar.last_full_sync_at is None or now - calendar.last_full_sync_at >= full_every:
                if user_of[calendar.id] not in passing:
                    passing.add(user_of[calendar.id])
                    self.queue.enqueue(calendar.id, SyncKind.FULL, full=True)
                    result.full.append(calendar.id)
                continue
            every = poll_every * (SAFETY_POLL_FACTOR if calendar.id in covered else 1)
            if calendar.last_sync_at is None or now - calendar.last_sync_at >= every:
                self.queue.enqueue(calendar.id, SyncKind.POLLING)
                result.polled.append(calendar.id)
        return result

    def _prune(self, session: Session, now: datetime) -> None:
        """Notifications are evidence for a week (the dashboard's health view), then go; so do
        the events, blocks and sync logs that ended before the retained history
        (sync/retention.py)."""
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return
        self._pruned_at = now
        old = col(Notification.received_at) < now - NOTIFICATIONS_KEPT
        session.exec(delete(Notification).where(old))
        purge_history(session, now, self.settings.horizon_days)
        session.commit()
