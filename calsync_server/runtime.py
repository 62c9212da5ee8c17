"""One server process's moving parts: database, queue, engine, workers, scheduler, live bus.

The workers and the scheduler are asyncio tasks that hand every blocking step (database,
provider) to threads, so the event loop stays free for webhooks and the API.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from calsync_server.accounts.service import default_api_token, ensure_default_user
from calsync_server.accounts.vault import CredentialVault
from calsync_server.db.engine import create_db_engine, lock_beside, upgrade_database
from calsync_server.db.models import Account, Calendar, SyncJob
from calsync_server.db.prepared import Prepared
from calsync_server.jobs.queue import Enqueued, JobQueue, process_name, this_host, worker_name
from calsync_server.jobs.worker import run_job
from calsync_server.live import LiveBus, LiveUpdate
from calsync_server.metrics import Metrics
from calsync_server.providers.registry import ProviderFactory
from calsync_server.providers.retry import RetryPolicy
from calsync_server.push.channels import ChannelKeeper, note_poll
from calsync_server.push.webhook_batch import WebhookBatcher
from calsync_server.scheduler import Scheduler
from calsync_server.sync.engine import SyncEngine, SyncResult, default_factory
from calsync_server.sync.report import SyncProgress
from shared.clock import Clock, SystemClock
from shared.domain import JobState, SyncKind
from shared.schemas import Readiness, ReadinessCheck
from shared.settings import Settings

log = logging.getLogger("calsync.server")

SCHEDULER_TASK = "calsync-scheduler"
# The PostgreSQL advisory lock that serialises server start-ups (any constant; "calsync").
STARTUP_LOCK_KEY = 0x63616C73796E63

# Workers look for jobs other processes queued this often; local enqueues wake them at once.
IDLE_POLL_SECONDS = 0.5
# A running sync's progress goes out at most this often (and at every change of phase).
PROGRESS_SECONDS = 0.25
PROGRESS_AFTER_SECONDS = 1.0
# The longest pause of a worker or the scheduler after errors in a row.
BACKOFF_MAX_SECONDS = 5.0
# Readiness: the database must answer within this; the scheduler's loop must have gone round
# within this (a tick making many channels takes a while); a due job may wait this long.
READINESS_DB_TIMEOUT_SECONDS = 5.0
SCHEDULER_LATE_SECONDS = 300.0
QUEUE_STUCK_SECONDS = 120.0


# A calendar's user and when it last synced (None, None: unknown).
_Owner = tuple[int | None, datetime | None]
# Read around every sync (building them costs more than running them).
_OWNER = Prepared(
    sa.select(col(Account.user_id), col(Calendar.last_sync_at))
    .join(Calendar, col(Calendar.account_id) == col(Account.id))
    .where(col(Calendar.id) == sa.bindparam("id"))
)
_JOB_STATE = Prepared(sa.select(col(SyncJob.state)).where(col(SyncJob.id) == sa.bindparam("id")))


@dataclasses.dataclass
class _Ran:
    """A claimed job as its worker thread left it."""

    job: SyncJob
    user_id: int | None
    last_sync_at: datetime | None
    result: SyncResult | None = None
    # What run_job raised: it could not close the job (the database went away, a bug).
    failure: Exception | None = None
    seconds: float = 0.0
    state: str = "gone"


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
        self.provider_factory = provider_factory or default_factory(settings, retry, self.clock)
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
        self.host = this_host()
        self.scheduler = Scheduler(
            self.db, settings, self.clock, self.queue, self.channels, host=self.host
        )
        self.bus = LiveBus()
        # Records push notifications in batches; its thread starts with the first one.
        self.webhooks = WebhookBatcher(
            self.db,
            self.clock,
            self.queue,
            self.wake,
            likely_echo=self.engine.recent_writes.lately,
        )
        self.metrics = Metrics(self._gauges)
        # Workers and the scheduler run unless a caller (a test of one part) turns them off.
        self.background = background
        # "<host>-<pid>-<tag>": a restarted process knows its dead predecessor's jobs by it
        # (JobQueue.reclaim_orphans).
        self.worker_name = process_name(self.host)
        self.default_token = ""
        self._tasks: list[asyncio.Task[None]] = []
        # When the scheduler's loop last went round (the event loop's clock): readiness.
        self._scheduler_beat: float | None = None
        # Idle workers, each waiting on its own future: a wake-up goes to one of them, not to
        # all (they would all claim, and all but one find nothing).
        self._idle: collections.deque[asyncio.Future[None]] = collections.deque()
        # Wake-ups that found no idle worker: a worker whose claim ran meanwhile tries again.
        self._missed_wakes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set to run the scheduler's next tick now rather than at its interval.
        self._tick_now: asyncio.Event | None = None
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
        if self.background:
            # This host's dead processes can renew no lease: their jobs now, not in 300 s.
            await asyncio.to_thread(self.queue.reclaim_orphans, self.host, self.scheduler.alive)
        self._loop = asyncio.get_running_loop()
        self._tick_now = asyncio.Event()
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
        while self._idle:
            self._wake_one()
        # Workers are not cancelled: a cancelled worker's claim went on in its thread and left
        # the job it took running, with nobody to finish it, until its lease ran out. Each
        # worker ends on its own once its claim (and the sync it got) is over.
        for task in self._tasks:
            if task.get_name() == SCHEDULER_TASK:
                task.cancel()
        ended = await asyncio.gather(*self._tasks, return_exceptions=True)
        for task, outcome in zip(self._tasks, ended, strict=True):
            if isinstance(outcome, Exception):
                log.error("%s had ended with an error", task.get_name(), exc_info=outcome)
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
        """Any thread: a job is due; one idle worker goes to claim it."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_one)

    def tick_soon(self) -> None:
        """Any thread: the scheduler ticks now, not at its interval (up to 5 s away): a calendar
        just turned on gets its push channel at once, so its changes are pushed from then on."""
        loop, tick_now = self._loop, self._tick_now
        if loop is not None and tick_now is not None and not loop.is_closed():
            loop.call_soon_threadsafe(tick_now.set)

    @property
    def idle_workers(self) -> int:
        """How many workers wait for a wake-up now."""
        return sum(1 for waiter in self._idle if not waiter.done())

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._missed_wakes += 1

    async def _idle_wait(self) -> None:
        """Wait for a wake-up, or IDLE_POLL_SECONDS (jobs other processes queued)."""
        if self._stopping:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            await asyncio.wait_for(waiter, IDLE_POLL_SECONDS)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(waiter)

    async def _work(self, number: int) -> None:
        """One worker: claim, run, repeat. It never ends of an error (the database away, a
        bug): it logs it, backs off, and goes on; only `stop()` ends it."""
        name = worker_name(self.worker_name, number)
        failures = 0
        while not self._stopping:
            try:
                missed = self._missed_wakes
                ran = await asyncio.to_thread(self._claim_and_run, name)
                if ran is None:
                    failures = 0
                    # A wake-up while this claim ran may be for a job it did not see yet.
                    if self._missed_wakes == missed:
                        await self._idle_wait()
                    continue
                await self._after(ran, name)
                failures = 0
            except Exception:
                failures += 1
                log.exception("worker %s: an error (%d in a row); going on", name, failures)
                self.metrics.errors.labels("worker").inc()
                await self._pause(backoff(failures))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but end early when the runtime stops."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, IDLE_POLL_SECONDS))

    def _claim_and_run(self, worker: str) -> _Ran | None:
        """Blocking: claim a job, tell the live stream, sync, and read how the job was closed,
        in one hand-off to a thread (each hand-off waits its turn on a busy event loop: the
        claim's and the sync's were two on every push-driven sync's path); None: no job."""
        job, more = self.queue.claim_next(worker)
        if job is None:
            return None
        assert job.id is not None
        if more:
            self.wake()  # another due job: another worker for it
        user_id, last_sync_at = None, None
        try:
            user_id, last_sync_at = self._owner(job.calendar_id)
        except Exception:
            # Only for the live update and the poll's bookkeeping: the sync runs without.
            log.exception("reading the owner of calendar %s failed", job.calendar_id)
        kind = SyncKind(job.kind)
        self.bus.publish(
            LiveUpdate(
                user_id,
                "sync.started",
                {"calendar_id": job.calendar_id, "kind": kind.value, "full": job.full},
            )
        )
        ran = _Ran(job, user_id, last_sync_at)
        started = time.monotonic()
        try:
            progress = self._progress_publisher(user_id, job.calendar_id)
            ran.result = run_job(self.queue, self.engine, job, progress)
        except Exception as exc:
            ran.failure = exc
        ran.seconds = time.monotonic() - started
        if ran.failure is None:
            with contextlib.suppress(Exception):  # only for the metrics
                ran.state = self._job_state(job.id)
        return ran

    async def _after(self, ran: _Ran, worker: str) -> None:
        """What follows a sync on the loop: the metrics, a failed job put back, the poll's
        bookkeeping, and the live stream told."""
        job, result = ran.job, ran.result
        assert job.id is not None
        kind = SyncKind(job.kind)
        if ran.failure is not None:
            exc = ran.failure
            log.error(
                "sync of calendar %s failed unexpectedly",
                job.calendar_id,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            self.metrics.errors.labels("sync").inc()
            # run_job could not close the job (the database went away): the job stays this
            # worker's, running, until it is put back; else it waits out its lease.
            await self._put_back(job, worker, f"{type(exc).__name__}: {exc}"[:500])
            ran.state = await asyncio.to_thread(self._job_state, job.id)
        self.metrics.sync_seconds.observe(ran.seconds)
        if result is not None:
            report = result.report
            self.metrics.syncs.labels(kind.value, report.status.value).inc()
            self.metrics.provider_calls.inc(report.provider_calls)
            self.metrics.provider_retries.inc(report.retries)
            if report.error:
                self.metrics.errors.labels("provider").inc()
            if kind is SyncKind.POLLING and report.events_fetched:
                await asyncio.to_thread(
                    note_poll, self.db, self.clock, job.calendar_id, ran.last_sync_at
                )
        self.metrics.jobs.labels(ran.state).inc()
        self.bus.publish(LiveUpdate(ran.user_id, "changed", {"calendar_id": job.calendar_id}))

    def _progress_publisher(
        self, user_id: int | None, calendar_id: int
    ) -> Callable[[SyncProgress], None]:
        """Publishes a sync's progress on the live bus (from its worker thread): every change
        of phase, and within one at most every PROGRESS_SECONDS; nothing for a short sync
        (the first PROGRESS_AFTER_SECONDS), which a progress display would only flash."""
        began = time.monotonic()
        last_phase = ""
        last_at = 0.0

        def publish(progress: SyncProgress) -> None:
            nonlocal last_phase, last_at
            now = time.monotonic()
            if now - began < PROGRESS_AFTER_SECONDS:
                return
            if progress.phase == last_phase and now - last_at < PROGRESS_SECONDS:
                return
            last_phase, last_at = progress.phase, now
            data = {"calendar_id": calendar_id, **dataclasses.asdict(progress)}
            self.bus.publish(LiveUpdate(user_id, "sync.progress", data))

        return publish

    async def _put_back(self, job: SyncJob, worker: str, error: str) -> None:
        """Put a job this worker could not close back in the queue, trying until the database
        answers (or the runtime stops: then its lease, or the next start, takes it back)."""
        assert job.id is not None
        failures = 0
        while True:
            try:
                await asyncio.to_thread(self.queue.release, job.id, worker, error)
                return
            except Exception:
                failures += 1
                log.warning("putting back job %s failed (%d); trying again", job.id, failures)
                if self._stopping:
                    return
                await self._pause(backoff(failures))

    def _owner(self, calendar_id: int) -> _Owner:
        with self.db.connect() as connection:
            rows = _OWNER.rows(connection, {"id": calendar_id})
        return (rows[0].user_id, rows[0].last_sync_at) if rows else (None, None)

    def _job_state(self, job_id: int) -> str:
        with self.db.connect() as connection:
            rows = _JOB_STATE.rows(connection, {"id": job_id})
        return JobState(rows[0].state).value if rows else "gone"

    async def _schedule(self) -> None:
        """The scheduler's loop: it never ends of an error either (log, back off, go on)."""
        failures = 0
        while not self._stopping:
            self._scheduler_beat = asyncio.get_running_loop().time()
            try:
                # First what the webhooks could not record while the database was away.
                await asyncio.to_thread(self.webhooks.recover_lost)
                result = await asyncio.to_thread(self.scheduler.tick)
            except Exception:
                failures += 1
                log.exception("scheduler tick failed (%d in a row)", failures)
                self.metrics.errors.labels("scheduler").inc()
                await asyncio.sleep(max(self.scheduler.interval_seconds, backoff(failures)))
                continue
            failures = 0
            try:
                if result.polled or result.full or result.reclaimed or result.caught_up:
                    self.wake()
                if result.channels:
                    self.bus.publish(LiveUpdate(None, "channels.changed"))
            except Exception:
                log.exception("after a scheduler tick")
            await self._until_next_tick()

    async def _until_next_tick(self) -> None:
        tick_now = self._tick_now
        assert tick_now is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tick_now.wait(), self.scheduler.interval_seconds)
        tick_now.clear()

    # -- readiness ----------------------------------------------------------------------------

    async def readiness(self) -> Readiness:
        """Whether this process can do its work now: the database answers, every worker and the
        scheduler run, the queue moves. For a process manager or load balancer (/readyz)."""
        checks: list[ReadinessCheck] = []
        try:
            stuck = await asyncio.wait_for(
                asyncio.to_thread(self._queue_stuck), READINESS_DB_TIMEOUT_SECONDS
            )
        except Exception as exc:  # TimeoutError included: a database that hangs is not ready
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            checks.append(ReadinessCheck(name="database", ok=False, detail=reason[:300]))
            stuck = None
        else:
            checks.append(ReadinessCheck(name="database", ok=True, detail="reachable"))
        if self.background:
            workers = [t for t in self._tasks if t.get_name() != SCHEDULER_TASK]
            alive = sum(not t.done() for t in workers)
            checks.append(
                ReadinessCheck(
                    name="workers",
                    ok=alive == self.settings.workers and not self._stopping,
                    detail=f"{alive} of {self.settings.workers} running",
                )
            )
            scheduler = next((t for t in self._tasks if t.get_name() == SCHEDULER_TASK), None)
            beat = self._scheduler_beat
            now = asyncio.get_running_loop().time()
            late = beat is None or now - beat > SCHEDULER_LATE_SECONDS
            scheduler_ok = scheduler is not None and not scheduler.done() and not late
            checks.append(
                ReadinessCheck(
                    name="scheduler",
                    ok=scheduler_ok and not self._stopping,
                    detail="running" if scheduler_ok else "not running",
                )
            )
        if stuck is not None:
            checks.append(
                ReadinessCheck(
                    name="queue",
                    ok=not stuck,
                    detail=stuck or "moving",
                )
            )
        return Readiness(ready=all(c.ok for c in checks), checks=checks)

    def _queue_stuck(self) -> str:
        """Blocking: why the queue looks stuck ("" when it does not). Stuck: a due job has
        waited over QUEUE_STUCK_SECONDS while no job started in that time and none runs."""
        now = self.clock.now()
        limit = now - timedelta(seconds=QUEUE_STUCK_SECONDS)
        with Session(self.db) as session:
            oldest = session.exec(
                select(func.min(SyncJob.run_after)).where(SyncJob.state == JobState.QUEUED)
            ).one()
            if oldest is None or _aware(oldest) > limit:
                return ""
            moving = session.exec(
                select(func.count())
                .select_from(SyncJob)
                .where(
                    sa.or_(
                        sa.and_(
                            col(SyncJob.state) == JobState.RUNNING,
                            col(SyncJob.lease_expires_at) > now,
                        ),
                        col(SyncJob.started_at) > limit,
                    )
                )
            ).one()
        if moving:
            return ""
        waited = int((now - _aware(oldest)).total_seconds())
        return f"a due job has waited {waited} s and no job started meanwhile"

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


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` errors in a row: 0.25 s doubling, at most 5 s, so a
    database that returns is used again within seconds."""
    return float(min(BACKOFF_MAX_SECONDS, 0.25 * 2 ** min(failures - 1, 10)))


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes (stored in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
