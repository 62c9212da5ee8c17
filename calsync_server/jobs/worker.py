"""Running one claimed job: the sync itself, its lease kept alive, its outcome fed back."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from calsync_server.db.models import SyncJob
from calsync_server.jobs.queue import JobQueue
from calsync_server.sync.engine import CalendarNotFound, SyncEngine, SyncResult
from calsync_server.sync.report import SyncProgress
from shared.domain import SyncKind

# How long a first sync that stepped aside for another first sync of its user waits before it
# looks again: that pass takes it over meanwhile, or has written its blocks and ended.
DEFER_SECONDS = 1.0


def lease_kept(queue: JobQueue, job_id: int) -> AbstractContextManager[None]:
    """Renew the job's lease while it runs, so only a dead process loses its job."""
    return queue.leases.kept(job_id)


def run_job(
    queue: JobQueue,
    engine: SyncEngine,
    job: SyncJob,
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncResult | None:
    """Sync the job's calendar and close the job: done, failed, or queued again with backoff;
    `progress` is told how far the sync is as it goes."""
    assert job.id is not None
    try:
        with lease_kept(queue, job.id):
            result = engine.sync_calendar(
                job.calendar_id,
                kind=SyncKind(job.kind),
                full=job.full,
                trigger=SyncKind(job.kind).value,
                job_id=job.id,
                progress=progress,
            )
    except CalendarNotFound as exc:
        queue.finish(job.id, error=str(exc))
        return None
    except Exception as exc:
        # Unexpected: keep the job for later rather than lose the change it stands for.
        queue.finish(job.id, error=f"{type(exc).__name__}: {exc}", retry=True)
        raise
    report = result.report
    if report.deferred:
        queue.defer(job.id, DEFER_SECONDS)
        return result
    retry = report.retryable or (report.failed_writes > 0 and report.error is None)
    queue.finish(job.id, error=report.error, retry=retry)
    return result
