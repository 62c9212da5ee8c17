"""The durable sync-job queue in the database: coalescing, leases, one running job per calendar.

Two partial unique indexes carry the promises: at most one queued and at most one running job
per calendar. So a burst of notifications coalesces into one more sync, and two processes (or
the CLI and a server) can never sync the same calendar at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.models import SyncJob
from shared.clock import Clock
from shared.domain import JobState, SyncKind

MAX_ATTEMPTS = 6
# However long a burst lasts, a debounced job waits at most this long after it was queued.
MAX_DEBOUNCE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Enqueued:
    job_id: int
    # True when the request joined a job that was already waiting.
    coalesced: bool


class JobQueue:
    def __init__(self, db: sa.Engine, clock: Clock, *, lease_seconds: float = 300.0) -> None:
        self.db = db
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)

    def enqueue(
        self,
        calendar_id: int,
        kind: SyncKind,
        *,
        full: bool = False,
        delay_seconds: float = 0,
        debounce_seconds: float = 0,
    ) -> Enqueued:
        """Queue a sync, or join the one already waiting.

        With `debounce_seconds`, joining pushes the waiting job back until the requests have
        been quiet that long (at most MAX_DEBOUNCE after it was queued): a burst of
        notifications then costs one sync after the burst, not one per sync cycle it spans.
        """
        now = self.clock.now()
        with Session(self.db) as session:
            waiting = self._waiting(session, calendar_id)
            if waiting is None:
                job = SyncJob(
                    calendar_id=calendar_id,
                    kind=kind,
                    full=full,
                    run_after=now + timedelta(seconds=delay_seconds),
                    created_at=now,
                )
                session.add(job)
                try:
                    session.commit()
                except sa.exc.IntegrityError:
                    # Another request queued one in between: join it.
                    session.rollback()
                    waiting = self._waiting(session, calendar_id)
                    if waiting is None:
                        raise
                else:
                    assert job.id is not None
                    return Enqueued(job.id, coalesced=False)
            if full and not waiting.full:
                waiting.full = True  # a full request widens the waiting job, never narrows it
            if debounce_seconds:
                quiet = now + timedelta(seconds=debounce_seconds)
                waiting.run_after = max(
                    waiting.run_after, min(quiet, waiting.created_at + MAX_DEBOUNCE)
                )
            if session.is_modified(waiting):
                session.add(waiting)
                session.commit()
            assert waiting.id is not None
            return Enqueued(waiting.id, coalesced=True)

    @staticmethod
    def _waiting(session: Session, calendar_id: int) -> SyncJob | None:
        return session.exec(
            select(SyncJob).where(
                SyncJob.calendar_id == calendar_id, SyncJob.state == JobState.QUEUED
            )
        ).first()

    def reclaim_expired(self) -> int:
        """Jobs left running by a crashed process go back to the queue (or join a waiting one)."""
        now = self.clock.now()
        reclaimed = 0
        with Session(self.db) as session:
            stale = session.exec(
                select(SyncJob).where(
                    SyncJob.state == JobState.RUNNING, col(SyncJob.lease_expires_at) < now
                )
            ).all()
            for job in stale:
                if self._waiting(session, job.calendar_id) is None:
                    job.state, job.run_after = JobState.QUEUED, now
                else:
                    job.state, job.finished_at = JobState.DONE, now
                    job.last_error = "lease expired; coalesced into the waiting job"
                job.lease_expires_at, job.worker = None, None
                session.add(job)
                reclaimed += 1
            session.commit()
        return reclaimed

    def claim(self, worker: str, *, calendar_ids: set[int] | None = None) -> SyncJob | None:
        """Take the oldest due job whose calendar has no running job; None when there is none."""
        now = self.clock.now()
        with Session(self.db, expire_on_commit=False) as session:
            query = (
                select(SyncJob)
                .where(SyncJob.state == JobState.QUEUED, col(SyncJob.run_after) <= now)
                .order_by(col(SyncJob.run_after), col(SyncJob.id))
                .limit(20)
            )
            if calendar_ids is not None:
                query = query.where(col(SyncJob.calendar_id).in_(calendar_ids))
            if self.db.dialect.name == "postgresql":
                # Several server processes share the queue without blocking on each other.
                query = query.with_for_update(skip_locked=True)
            candidates = [job.id for job in session.exec(query).all()]
            session.rollback()
            for job_id in candidates:
                claimed = self._try_claim(session, job_id, worker)
                if claimed is not None:
                    return claimed
        return None

    def _try_claim(self, session: Session, job_id: int | None, worker: str) -> SyncJob | None:
        now = self.clock.now()
        try:
            result = session.execute(
                sa.update(SyncJob)
                .where(col(SyncJob.id) == job_id, col(SyncJob.state) == JobState.QUEUED)
                .values(
                    state=JobState.RUNNING,
                    worker=worker,
                    started_at=now,
                    lease_expires_at=now + self.lease,
                    attempts=col(SyncJob.attempts) + 1,
                )
            )
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()  # that calendar is already syncing elsewhere
            return None
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None  # someone else took it first
        return session.get(SyncJob, job_id)

    def heartbeat(self, job_id: int) -> None:
        with Session(self.db) as session:
            session.execute(
                sa.update(SyncJob)
                .where(col(SyncJob.id) == job_id)
                .values(lease_expires_at=self.clock.now() + self.lease)
            )
            session.commit()

    def finish(self, job_id: int, *, error: str | None = None, retry: bool = False) -> JobState:
        """Close a claimed job: done, failed, or back in the queue after a backoff."""
        now = self.clock.now()
        with Session(self.db) as session:
            job = session.get(SyncJob, job_id)
            assert job is not None
            job.lease_expires_at, job.last_error = None, error
            if retry and job.attempts < MAX_ATTEMPTS and self._waiting(session, job.calendar_id):
                job.state, job.finished_at = JobState.DONE, now  # the waiting job covers it
            elif retry and job.attempts < MAX_ATTEMPTS:
                backoff = min(600.0, 2.0**job.attempts) * random.uniform(0.5, 1.0)
                job.state, job.run_after = JobState.QUEUED, now + timedelta(seconds=backoff)
                job.worker = None
            else:
                job.state = JobState.FAILED if error else JobState.DONE
                job.finished_at = now
            session.add(job)
            session.commit()
            return JobState(job.state)
