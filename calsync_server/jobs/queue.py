"""The durable sync-job queue in the database: coalescing, leases, one running job per calendar.

Two partial unique indexes carry the promises: at most one queued and at most one running job
per calendar. So a burst of notifications coalesces into one more sync, and two processes (or
the CLI and a server) can never sync the same calendar at once.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from calsync_server.db.models import SyncJob
from calsync_server.db.prepared import Prepared
from shared.clock import Clock
from shared.domain import JobState, SyncKind

log = logging.getLogger("calsync.jobs")

MAX_ATTEMPTS = 6
# However long a burst lasts, a debounced job waits at most this long after it was queued.
MAX_DEBOUNCE = timedelta(seconds=5)
# A join moves a waiting job's time by at least this much, or leaves it: a burst's every batch
# of notifications (a millisecond apart) rewrote the job row and its index for a millisecond.
DEBOUNCE_STEP = timedelta(milliseconds=10)
# Tries to queue or join before giving up, each lost to a concurrent queue or claim.
ENQUEUE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Enqueued:
    job_id: int
    # True when the request joined a job that was already waiting.
    coalesced: bool


class _Waiting(NamedTuple):
    id: int
    full: bool
    run_after: datetime
    created_at: datetime


def _joined(
    run_after: datetime,
    job_full: bool,
    created_at: datetime,
    full: bool,
    debounce: timedelta,
    now: datetime,
) -> tuple[datetime, bool]:
    """A waiting job's (run_after, full) once a request joins it."""
    if debounce:
        run_after = max(run_after, min(now + debounce, created_at + MAX_DEBOUNCE))
    # A full request widens the waiting job, never narrows it.
    return run_after, job_full or full


# The worker name of the running job rows a first-sync pass holds for the calendars it claims.
CLAIMED_BY = "user-pass"

# The statements `enqueue_in` runs, built once (building them costs more than running them).
_jobs = SQLModel.metadata.tables[SyncJob.__tablename__]
_waiting_job = sa.select(
    _jobs.c.id, _jobs.c.calendar_id, _jobs.c.full, _jobs.c.run_after, _jobs.c.created_at
)
# The state written into the statement, not bound: only then may the database read a
# calendar's waiting job from the partial unique index of queued jobs, instead of going
# through every job the calendar ever had (a busy channel's calendar gathers thousands).
_queued = _jobs.c.state == sa.literal_column(f"'{JobState.QUEUED.value}'")
_WAITING = _waiting_job.where(_jobs.c.calendar_id.in_(sa.bindparam("ids", expanding=True)), _queued)
# One calendar's (most batches of webhooks): prepared, as is the join that follows it
# (SQLAlchemy's work per execution, and an IN list's expansion, cost more than SQLite's).
_WAITING_ONE = Prepared(_waiting_job.where(_jobs.c.calendar_id == sa.bindparam("id"), _queued))
# An INSERT that does nothing when the calendar already has a queued job (the partial unique
# index) instead of failing the caller's whole transaction; one per dialect.
_QUEUE = {
    "sqlite": sqlite.insert(_jobs).on_conflict_do_nothing().returning(_jobs.c.id),
    "postgresql": postgresql.insert(_jobs).on_conflict_do_nothing().returning(_jobs.c.id),
}
# A claim's statements (building them costs more than running them).
_DUE = (
    _jobs.c.state == JobState.QUEUED.value,
    _jobs.c.run_after <= sa.bindparam("now"),
)
# PostgreSQL locks the rows it reads so several server processes share the queue without
# blocking on each other (SQLite has no FOR UPDATE: its compiler leaves it out).
_CANDIDATES = (
    sa.select(_jobs.c.id)
    .where(*_DUE)
    .order_by(_jobs.c.run_after, _jobs.c.id)
    .limit(20)
    .with_for_update(skip_locked=True)
)
_CANDIDATES_OF = _CANDIDATES.where(_jobs.c.calendar_id.in_(sa.bindparam("ids", expanding=True)))
# Every worker's claim (the rest are `calsync sync`'s, of some calendars): prepared, as the
# claim itself, since a claim is on every push-driven sync's path.
_DUE_JOBS = Prepared(_CANDIDATES)
_CLAIM = (
    sa.update(_jobs)
    .where(_jobs.c.id == sa.bindparam("b_id"), _jobs.c.state == JobState.QUEUED.value)
    .values(
        state=JobState.RUNNING.value,
        worker=sa.bindparam("b_worker"),
        started_at=sa.bindparam("b_now"),
        lease_expires_at=sa.bindparam("b_lease"),
        attempts=_jobs.c.attempts + 1,
    )
    .returning(*_jobs.c)
)
_CLAIM_ONE = Prepared(_CLAIM)
# A running job's lease, and those of the claims its first-sync pass holds (named after it):
# a pass longer than a lease kept its claims only that long, and they then ran again.
_RENEW = (
    sa.update(_jobs)
    .where(
        sa.or_(_jobs.c.id == sa.bindparam("b_id"), _jobs.c.worker == sa.bindparam("b_claims")),
        _jobs.c.state == JobState.RUNNING.value,
    )
    .values(lease_expires_at=sa.bindparam("b_lease"))
)
_CLOSE = (
    sa.update(_jobs)
    .where(_jobs.c.id == sa.bindparam("b_id"))
    .values(
        state=sa.bindparam("b_state"),
        finished_at=sa.bindparam("b_now"),
        lease_expires_at=None,
        last_error=sa.bindparam("b_error"),
    )
)
_JOIN = Prepared(
    sa.update(_jobs)
    .where(_jobs.c.id == sa.bindparam("b_id"), _jobs.c.state == JobState.QUEUED.value)
    .values(run_after=sa.bindparam("b_run_after"), full=sa.bindparam("b_full"))
)


def this_host() -> str:
    """This host's name as worker names and `JobQueue.reclaim_orphans` spell it."""
    return socket.gethostname()


def process_name(host: str) -> str:
    """`{host}-{pid}-{tag}`: the part of its workers' names that says which process of which
    host claimed a job, so that once that process is dead a server of the same host takes its
    jobs back at once (`JobQueue.reclaim_orphans`) instead of after their lease. The random tag
    tells a process from an earlier one that had its pid."""
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def worker_name(process: str, number: int) -> str:
    """The name the process's worker `number` claims jobs by (every process's, the server's
    and `calsync sync`'s, so that the reclaim knows them all)."""
    return f"{process}-w{number}"


def _worker_pattern(host: str) -> re.Pattern[str]:
    """What `worker_name(process_name(host), n)` gives, with the pid as group 1."""
    return re.compile(re.escape(host) + r"-(\d+)-[0-9a-f]+-w\d+")


class JobQueue:
    def __init__(self, db: sa.Engine, clock: Clock, *, lease_seconds: float = 300.0) -> None:
        self.db = db
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)
        self.leases = LeaseKeeper(self)

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
        with self.db.begin() as connection:
            (enqueued,) = self.enqueue_in(
                connection,
                [calendar_id],
                kind,
                full=full,
                delay_seconds=delay_seconds,
                debounce_seconds=debounce_seconds,
            )
        return enqueued

    def enqueue_in(
        self,
        connection: sa.Connection,
        calendar_ids: Sequence[int],
        kind: SyncKind,
        *,
        full: bool = False,
        delay_seconds: float = 0,
        debounce_seconds: float = 0,
        now: datetime | None = None,
    ) -> list[Enqueued]:
        """`enqueue` for several requests inside the caller's transaction (which commits).

        One answer per request, in order. A calendar may come more than once: its requests
        count as successive `enqueue` calls (the first may queue a job, the others join it,
        debouncing it), at the cost of one write per calendar. Calendars are written in id
        order, so two transactions doing this lock their rows in the same order.
        """
        now = self.clock.now() if now is None else now
        requests = Counter(calendar_ids)
        waiting = self._waiting_rows(connection, list(requests))
        jobs = {
            calendar_id: self._enqueue_calendar(
                connection,
                calendar_id,
                waiting.get(calendar_id),
                kind,
                joins=requests[calendar_id] - 1,
                full=full,
                delay=timedelta(seconds=delay_seconds),
                debounce=timedelta(seconds=debounce_seconds),
                now=now,
            )
            for calendar_id in sorted(requests)
        }
        answers: list[Enqueued] = []
        seen: set[int] = set()
        for calendar_id in calendar_ids:
            job_id, created = jobs[calendar_id]
            answers.append(Enqueued(job_id, coalesced=calendar_id in seen or not created))
            seen.add(calendar_id)
        return answers

    def _enqueue_calendar(
        self,
        connection: sa.Connection,
        calendar_id: int,
        waiting: _Waiting | None,
        kind: SyncKind,
        *,
        joins: int,
        full: bool,
        delay: timedelta,
        debounce: timedelta,
        now: datetime,
    ) -> tuple[int, bool]:
        """(the job's id, whether it was queued now) for one calendar's requests."""
        for _ in range(ENQUEUE_ATTEMPTS):
            if waiting is None:
                run_after, job_full = now + delay, full
                if joins:  # the later requests join the job the first one queues
                    run_after, job_full = _joined(run_after, job_full, now, full, debounce, now)
                inserted = connection.execute(
                    _QUEUE[connection.dialect.name],
                    {
                        "calendar_id": calendar_id,
                        "kind": kind.value,
                        "full": job_full,
                        "state": JobState.QUEUED.value,
                        "attempts": 0,
                        "run_after": run_after,
                        "created_at": now,
                    },
                ).scalar()
                if inserted is not None:
                    return int(inserted), True
                # Another transaction queued one in between: join it.
            else:
                run_after, job_full = _joined(
                    waiting.run_after, waiting.full, waiting.created_at, full, debounce, now
                )
                if job_full == waiting.full and run_after - waiting.run_after < DEBOUNCE_STEP:
                    return waiting.id, False
                moved = _JOIN.execute(
                    connection, {"b_id": waiting.id, "b_run_after": run_after, "b_full": job_full}
                )
                if moved == 1:
                    return waiting.id, False
                # A worker took it in between: this request needs a job of its own.
            waiting = self._waiting_rows(connection, [calendar_id]).get(calendar_id)
        raise RuntimeError(f"could not queue a sync of calendar {calendar_id}: too much contention")

    @staticmethod
    def _waiting_rows(connection: sa.Connection, calendar_ids: list[int]) -> dict[int, _Waiting]:
        rows = (
            _WAITING_ONE.rows(connection, {"id": calendar_ids[0]})
            if len(calendar_ids) == 1
            else connection.execute(_WAITING, {"ids": calendar_ids})
        )
        return {
            row.calendar_id: _Waiting(row.id, row.full, row.run_after, row.created_at)
            for row in rows
        }

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
                put_back(session, job, now, "lease expired")
                reclaimed += 1
            session.commit()
        return reclaimed

    def reclaim_orphans(self, host: str, alive: Callable[[int], bool]) -> int:
        """Jobs left running by a dead process of this host go back at once, without waiting
        out their lease: a worker's name says its host and pid (`worker_name`: a server's
        workers and `calsync sync`'s), and a pid that is gone here can renew no lease. A pid
        reused since is taken for alive (its jobs wait for their lease, as before)."""
        now = self.clock.now()
        pattern = _worker_pattern(host)
        reclaimed = 0
        with Session(self.db) as session:
            running = session.exec(
                select(SyncJob).where(
                    SyncJob.state == JobState.RUNNING,
                    col(SyncJob.worker).startswith(f"{host}-", autoescape=True),
                )
            ).all()
            for job in running:
                match = pattern.fullmatch(job.worker or "")
                if match is None or alive(int(match.group(1))):
                    continue
                put_back(session, job, now, "its process died")
                reclaimed += 1
            session.commit()
        return reclaimed

    def release(self, job_id: int, worker: str, error: str) -> bool:
        """Put back a job `worker` still holds but could not close (the database went away
        while it ran): queued again after a short backoff, or failed after MAX_ATTEMPTS. A job
        already closed, or taken back by another process, is left alone."""
        now = self.clock.now()
        with Session(self.db) as session:
            job = session.get(SyncJob, job_id)
            if job is None or job.state != JobState.RUNNING or job.worker != worker:
                return False
            if job.attempts >= MAX_ATTEMPTS:
                job.state, job.finished_at, job.last_error = JobState.FAILED, now, error
                job.lease_expires_at = None
            else:
                # Not at once: a failure that is not the database's would otherwise loop.
                delay = timedelta(seconds=min(60.0, 2.0**job.attempts / 2))
                put_back(session, job, now, error, delay=delay)
            session.add(job)
            session.commit()
        return True

    def put_back_held(self, worker: str, why: str) -> int:
        """Put back at once every job `worker` still holds (the claims of their first-sync
        passes with them): its process is stopping mid-sync (Ctrl-C). Due now and the claim
        not counted as an attempt, since nothing failed: a server takes the calendar up at
        once, and the sync's writes so far are redone safely (finding blocks by their mark).
        How many were put back."""
        now = self.clock.now()
        with Session(self.db) as session:
            held = session.exec(
                select(SyncJob).where(SyncJob.state == JobState.RUNNING, SyncJob.worker == worker)
            ).all()
            for job in held:
                job.attempts = max(0, job.attempts - 1)
                put_back(session, job, now, why)
            session.commit()
        return len(held)

    def defer(self, job_id: int, seconds: float) -> None:
        """A claimed job that did nothing (its sync stepped aside) is queued again `seconds`
        from now, its claim not counted as an attempt; done when another job waits already."""
        now = self.clock.now()
        with Session(self.db) as session:
            job = session.get(SyncJob, job_id)
            if job is None or job.state != JobState.RUNNING:
                return
            job.attempts = max(0, job.attempts - 1)
            put_back(session, job, now, "deferred", delay=timedelta(seconds=seconds))
            session.commit()

    def claim(self, worker: str, *, calendar_ids: set[int] | None = None) -> SyncJob | None:
        """Take the oldest due job whose calendar has no running job; None when there is none."""
        return self.claim_next(worker, calendar_ids=calendar_ids)[0]

    def claim_next(
        self, worker: str, *, calendar_ids: set[int] | None = None
    ) -> tuple[SyncJob | None, bool]:
        """`claim`, and whether other due jobs were seen behind the one taken (worth waking
        another worker for)."""
        now = self.clock.now()
        with self.db.connect() as connection:
            with connection.begin():
                if calendar_ids is None:
                    candidates = [row.id for row in _DUE_JOBS.rows(connection, {"now": now})]
                else:
                    params = {"now": now, "ids": sorted(calendar_ids)}
                    candidates = list(connection.execute(_CANDIDATES_OF, params).scalars())
            for n, job_id in enumerate(candidates):
                claimed = self._try_claim(connection, job_id, worker)
                if claimed is not None:
                    return claimed, n + 1 < len(candidates)
        return None, False

    def _try_claim(self, connection: sa.Connection, job_id: int, worker: str) -> SyncJob | None:
        now = self.clock.now()
        try:
            with connection.begin():
                rows = _CLAIM_ONE.rows(
                    connection,
                    {"b_id": job_id, "b_worker": worker, "b_now": now, "b_lease": now + self.lease},
                )
        except sa.exc.IntegrityError:
            return None  # that calendar is already syncing elsewhere
        if not rows:
            return None  # someone else took it first
        return SyncJob(**rows[0]._asdict())

    def heartbeat(self, job_id: int) -> None:
        """Renew a running job's lease, and its pass's claims' (a job closed meanwhile is left
        alone)."""
        lease = self.clock.now() + self.lease
        with self.db.begin() as connection:
            connection.execute(
                _RENEW, {"b_id": job_id, "b_claims": claimed_for(job_id), "b_lease": lease}
            )

    def finish(self, job_id: int, *, error: str | None = None, retry: bool = False) -> JobState:
        """Close a claimed job: done, failed, or back in the queue after a backoff."""
        now = self.clock.now()
        if not retry:
            # Most jobs: one statement, no row loaded.
            state = JobState.FAILED if error else JobState.DONE
            with self.db.begin() as connection:
                connection.execute(
                    _CLOSE,
                    {"b_id": job_id, "b_state": state.value, "b_now": now, "b_error": error},
                )
            return state
        with Session(self.db) as session:
            job = session.get(SyncJob, job_id)
            assert job is not None
            job.lease_expires_at, job.last_error = None, error
            if retry and job.attempts < MAX_ATTEMPTS and _joined_waiting(session, job):
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


def _joined_waiting(session: Session, job: SyncJob) -> bool:
    """Whether the job's calendar has a queued job to cover it (read through the partial
    index of queued jobs, `_queued`). A full job widens that one: a first sync coalesced into
    a catch-up must still read the calendar whole."""
    waiting = session.exec(
        select(SyncJob).where(col(SyncJob.calendar_id) == job.calendar_id, _queued)
    ).first()
    if waiting is None:
        return False
    if job.full and not waiting.full:
        waiting.full = True
        session.add(waiting)
    return True


def claimed_for(job_id: int | None) -> str:
    """The worker name of a first-sync pass's claims (sync/user_pass.py): the job whose sync
    the pass is, so that when that job is put back (its process died, the database went away)
    its claims go back with it instead of waiting out their lease."""
    return CLAIMED_BY if job_id is None else f"{CLAIMED_BY} of job {job_id}"


def put_back(
    session: Session, job: SyncJob, now: datetime, why: str, *, delay: timedelta = timedelta(0)
) -> None:
    """A running job nobody runs any more: queued again, or done when another waits. The
    calendars its sync's pass claimed go back with it: their own first syncs, taken over by
    the pass, would otherwise wait out the claims' lease."""
    if job.state != JobState.RUNNING:
        return  # put back already, with the pass whose claim it was
    claims = session.exec(
        select(SyncJob).where(
            SyncJob.worker == claimed_for(job.id), SyncJob.state == JobState.RUNNING
        )
    ).all()
    for claim in claims:
        put_back(session, claim, now, why)
    if not _joined_waiting(session, job):
        job.state, job.run_after = JobState.QUEUED, now + delay
    else:
        job.state, job.finished_at = JobState.DONE, now
        job.last_error = f"{why}; coalesced into the waiting job"
    job.lease_expires_at, job.worker = None, None
    session.add(job)


class LeaseKeeper:
    """Renews the leases of every job this process runs, from one thread: only a dead
    process loses its jobs. (A thread per job cost a start and a join on every sync.) The
    thread ends once no job is left to renew, and starts again with the next."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._lock = threading.Lock()
        self._jobs: set[int] = set()
        self._thread: threading.Thread | None = None
        self.interval = max(1.0, queue.lease.total_seconds() / 3)

    @contextmanager
    def kept(self, job_id: int) -> Iterator[None]:
        """The job's lease is renewed while the block runs."""
        with self._lock:
            self._jobs.add(job_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="leases", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._jobs.discard(job_id)

    @property
    def renewing(self) -> bool:
        """Whether the renewing thread runs (it ends once no job is kept)."""
        with self._lock:
            return self._thread is not None

    def _renew(self) -> None:
        pause = threading.Event()  # never set: waits out the interval
        while True:
            pause.wait(self.interval)
            with self._lock:
                jobs = sorted(self._jobs)
                if not jobs:
                    self._thread = None
                    return
            for job_id in jobs:
                # A failed renewal (the database away a moment) must not end the renewals:
                # the next one may work, and without them another process takes the job.
                try:
                    self._queue.heartbeat(job_id)
                except Exception:
                    log.exception("renewing the lease of job %s failed", job_id)
