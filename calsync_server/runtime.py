"""One server process's moving parts: database, queue, engine, workers, scheduler, live bus.

The workers and the scheduler are asyncio tasks that hand every blocking step (database,
provider) to threads, so the event loop stays free for webhooks and the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from calsync_server.accounts.service import default_api_token, ensure_default_user
from calsync_server.accounts.vault import CredentialVault
from calsync_server.channels import ChannelKeeper, note_poll
from calsync_server.db.engine import create_db_engine, lock_beside, upgrade_database
from calsync_server.db.models import Account, Calendar, SyncJob
from calsync_server.jobs.queue import Enqueued, JobQueue
from calsync_server.jobs.worker import run_job
from calsync_server.live import LiveBus, LiveUpdate
from calsync_server.metrics import Metrics
from calsync_server.providers.google import RetryPolicy
from calsync_server.scheduler import Scheduler
from calsync_server.sync.engine import SyncEngine, SyncResult
from calsync_server.sync.providers import ProviderFactory, google_provider_factory
from calsync_server.webhook_batch import WebhookBatcher
from shared.clock import Clock, SystemClock
from shared.domain import JobState, SyncKind
from shared.settings import Settings

log = logging.getLogger("calsync.server")

SCHEDULER_TASK = "calsync-scheduler"
# The PostgreSQL advisory lock that serialises server start-ups (any constant; "calsync").
STARTUP_LOCK_KEY = 0x63616C73796E63

# Workers look for jobs other processes queued this often; local enqueues wake them at once.
IDLE_POLL_SECONDS = 0.5


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        provider_factory: ProviderFactory | None = None,
        retry: RetryPolicy | None = None,
        background: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = create_db_engine(settings.database_url_resolved)
        self.vault = CredentialVault(settings.home)
        self.provider_factory = provider_factory or google_provider_factory(
            settings.google_api_url, retry
        )
        self.queue = JobQueue(self.db, self.clock, lease_seconds=settings.job_lease_seconds)
        self.engine = SyncEngine(
            self.db,
            settings,
            clock=self.clock,
            vault=self.vault,
            provider_factory=self.provider_factory,
        )
        self.channels = ChannelKeeper(
            self.db, settings, self.clock, self.vault, self.provider_factory
        )
        self.scheduler = Scheduler(self.db, settings, self.clock, self.queue, self.channels)
        self.bus = LiveBus()
        # Records push notifications in batches; its thread starts with the first one.
        self.webhooks = WebhookBatcher(self.db, self.clock, self.queue, self.wake)
        self.metrics = Metrics(self._gauges)
        # Workers and the scheduler run unless a caller (a test of one part) turns them off.
        self.background = background
        self.worker_name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.default_token = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Blocking start-up: migrations, then the default user and its token."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.default_token = default_api_token(self.settings.home, self.settings.api_token)
        # Several processes starting together on one database would all migrate it and all
        # create the default user: the losers crashed on a unique violation. One at a time.
        with _startup_lock(self.db):
            upgrade_database(self.db)
            with Session(self.db) as session:
                ensure_default_user(session, self.default_token, self.clock.now())
                session.commit()

    async def start(self) -> None:
        await asyncio.to_thread(self.prepare)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.bus.bind(self._loop)
        if self.background:
            self._tasks = [
                asyncio.create_task(self._work(n), name=f"calsync-worker-{n}")
                for n in range(self.settings.workers)
            ]
            self._tasks.append(asyncio.create_task(self._schedule(), name=SCHEDULER_TASK))

    async def stop(self) -> None:
        """Stop taking work; a sync already running finishes (or its lease lets another take it)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        # Workers are not cancelled: a cancelled worker's claim went on in its thread and left
        # the job it took running, with nobody to finish it, until its lease ran out. Each
        # worker ends on its own once its claim (and the sync it got) is over.
        for task in self._tasks:
            if task.get_name() == SCHEDULER_TASK:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.to_thread(self.webhooks.close)
        self.db.dispose()

    # -- work ---------------------------------------------------------------------------------

    def enqueue(
        self, calendar_id: int, kind: SyncKind, *, full: bool = False, debounce: float = 0
    ) -> Enqueued:
        """Blocking (any thread): queue or coalesce a sync, and wake a worker at once."""
        enqueued = self.queue.enqueue(calendar_id, kind, full=full, debounce_seconds=debounce)
        self.wake()
        return enqueued

    def wake(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _work(self, number: int) -> None:
        name = f"{self.worker_name}-w{number}"
        assert self._wake is not None
        while not self._stopping:
            try:
                job = await asyncio.to_thread(self.queue.claim, name)
            except Exception:
                log.exception("claiming a job failed")
                self.metrics.errors.labels("claim").inc()
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_SECONDS)
                self._wake.clear()
                continue
            await self._run(job)

    async def _run(self, job: SyncJob) -> None:
        user_id, last_sync_at = await asyncio.to_thread(self._owner, job.calendar_id)
        kind = SyncKind(job.kind)
        self.bus.publish(
            LiveUpdate(
                user_id,
                "sync.started",
                {"calendar_id": job.calendar_id, "kind": kind.value, "full": job.full},
            )
        )
        started = asyncio.get_running_loop().time()
        result: SyncResult | None = None
        try:
            result = await asyncio.to_thread(run_job, self.queue, self.engine, job)
        except Exception:
            log.exception("sync of calendar %s failed unexpectedly", job.calendar_id)
            self.metrics.errors.labels("sync").inc()
        self.metrics.sync_seconds.observe(asyncio.get_running_loop().time() - started)
        if result is not None:
            report = result.report
            self.metrics.syncs.labels(kind.value, report.status.value).inc()
            self.metrics.provider_calls.inc(report.provider_calls)
            self.metrics.provider_retries.inc(report.retries)
            if report.error:
                self.metrics.errors.labels("provider").inc()
            if kind is SyncKind.POLLING and report.events_fetched:
                await asyncio.to_thread(
                    note_poll, self.db, self.clock, job.calendar_id, last_sync_at
                )
        state = await asyncio.to_thread(self._job_state, job.id)
        self.metrics.jobs.labels(state).inc()
        self.bus.publish(LiveUpdate(user_id, "changed", {"calendar_id": job.calendar_id}))

    def _owner(self, calendar_id: int) -> tuple[int | None, datetime | None]:
        with Session(self.db) as session:
            row = session.exec(
                select(Account.user_id, Calendar.last_sync_at)
                .join(Calendar, col(Calendar.account_id) == Account.id)
                .where(Calendar.id == calendar_id)
            ).first()
        return (row[0], row[1]) if row else (None, None)

    def _job_state(self, job_id: int | None) -> str:
        with Session(self.db) as session:
            job = session.get(SyncJob, job_id)
            return JobState(job.state).value if job else "gone"

    async def _schedule(self) -> None:
        while not self._stopping:
            try:
                result = await asyncio.to_thread(self.scheduler.tick)
            except Exception:
                log.exception("scheduler tick failed")
                self.metrics.errors.labels("scheduler").inc()
            else:
                if result.polled or result.full or result.reclaimed:
                    self.wake()
                if result.channels:
                    self.bus.publish(LiveUpdate(None, "channels.changed"))
            await asyncio.sleep(self.scheduler.interval_seconds)

    # -- metrics ------------------------------------------------------------------------------

    def _gauges(self) -> dict[str, float]:
        with Session(self.db) as session:
            depth = session.exec(
                select(func.count()).select_from(SyncJob).where(SyncJob.state == JobState.QUEUED)
            ).one()
            running = session.exec(
                select(func.count()).select_from(SyncJob).where(SyncJob.state == JobState.RUNNING)
            ).one()
        return {"queue_depth": float(depth), "jobs_running": float(running)}


@contextlib.contextmanager
def _startup_lock(db: sa.Engine) -> Iterator[None]:
    """Hold a database-wide lock: an advisory lock on PostgreSQL, a lock file beside a SQLite
    file (both can be shared between processes)."""
    if db.dialect.name != "postgresql":
        with lock_beside(db, "startup"):
            yield
        return
    with db.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY}
            )
            connection.commit()
