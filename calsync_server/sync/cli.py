"""`calsync sync`: a sync from the command line, through the job queue, showing its progress."""

from __future__ import annotations

import functools
import threading
import time

import click
import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table
from sqlmodel import Session, col, select

from calsync_server.db.engine import create_db_engine, upgrade_database
from calsync_server.db.models import Account, Calendar, SyncJob, SyncLog
from calsync_server.jobs.queue import JobQueue, process_name, this_host, worker_name
from calsync_server.jobs.worker import run_job
from calsync_server.scheduler import pid_alive
from calsync_server.sync.engine import SyncEngine
from calsync_server.sync.report import SyncProgress
from shared.clock import SystemClock
from shared.domain import AccountState, JobState, SyncKind, SyncStatus
from shared.settings import Settings

# How long to wait for jobs another process (a running server) took over.
WAIT_FOR_OTHERS_SECONDS = 600.0
# The exit status after Ctrl-C (128 + SIGINT), as a shell gives a command SIGINT ended.
INTERRUPTED = 130


def _calendars(db: sa.Engine, ids: tuple[int, ...]) -> list[Calendar]:
    with Session(db) as session:
        if ids:
            query = select(Calendar).where(col(Calendar.id).in_(ids))
            found = {c.id: c for c in session.exec(query)}
            missing = [str(i) for i in ids if i not in found]
            if missing:
                raise click.BadParameter(
                    f"no calendar with id {', '.join(missing)}", param_hint="--calendar"
                )
            return [found[i] for i in ids]
        return list(
            session.exec(
                select(Calendar)
                .join(Account)
                .where(col(Calendar.sync_enabled).is_(True), Account.state == AccountState.ACTIVE)
                .order_by(col(Calendar.id))
            )
        )


def run_sync(settings: Settings, calendar_ids: tuple[int, ...], full: bool) -> int:
    console = Console(stderr=True)
    db = create_db_engine(settings.database_url_resolved)
    host = this_host()
    # Named as a server's workers are: once this process is dead (kill -9, a closed terminal),
    # a server of this host takes its job back on its next tick instead of after the lease.
    worker = worker_name(process_name(host), 0)
    queue = JobQueue(db, SystemClock(), lease_seconds=settings.job_lease_seconds)
    try:
        return _sync(settings, db, queue, host, worker, calendar_ids, full, console)
    except KeyboardInterrupt:
        # Ctrl-C. KeyboardInterrupt is no Exception: run_job left its job running, held by
        # this process until its lease ran out. Back in the queue, due now.
        try:
            put_back = queue.put_back_held(worker, "interrupted (Ctrl-C)")
        except Exception as exc:
            console.print(
                f"[red]Interrupted; putting the running sync back in the queue failed "
                f"({escape(str(exc))}): "
                "a calsync server of this host takes it back once this command has ended."
            )
        else:
            console.print(
                "[yellow]Interrupted: the sync that was running is queued again, for a server "
                "or the next `calsync sync`."
                if put_back
                else "[yellow]Interrupted."
            )
        return INTERRUPTED
    finally:
        db.dispose()


def _sync(
    settings: Settings,
    db: sa.Engine,
    queue: JobQueue,
    host: str,
    worker: str,
    calendar_ids: tuple[int, ...],
    full: bool,
    console: Console,
) -> int:
    """The sync itself, its progress shown; its jobs claimed as `worker`."""
    upgrade_database(db)
    calendars = _calendars(db, calendar_ids)
    if not calendars:
        console.print("No calendar has sync turned on: nothing to do.")
        return 0
    engine = SyncEngine(db, settings, clock=queue.clock)
    kind = SyncKind.FULL if full else SyncKind.MANUAL
    jobs = {queue.enqueue(c.id, kind, full=full).job_id: c for c in calendars if c.id}
    pending = set(jobs)
    queue.reclaim_expired()
    # A `calsync sync` killed before this one (or a server) left its job running: taken
    # back now rather than waited for until its lease runs out.
    queue.reclaim_orphans(host, pid_alive)
    deadline = time.monotonic() + WAIT_FOR_OTHERS_SECONDS
    idle = threading.Event()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("syncing", total=len(pending), count=f"0/{len(jobs)} calendars")
        # The calendar being synced: events read, then blocks written of how many.
        detail = progress.add_task("", total=None, visible=False, count="")
        while pending and time.monotonic() < deadline:
            wanted = {cid for j in pending if (cid := jobs[j].id) is not None}
            job = queue.claim(worker, calendar_ids=wanted)
            if job is not None and job.id is not None:
                name = jobs[job.id].name
                progress.update(task, description=f"syncing {name}")
                progress.reset(detail, total=None, visible=True, description=f"  {name}", count="")
                run_job(queue, engine, job, functools.partial(_show, progress, detail, name))
                # Ran once and logged: a failed job stays queued for a server to retry,
                # but this command reports now instead of waiting out the backoff.
                pending.discard(job.id)
            pending -= _finished(db, pending)
            done = len(jobs) - len(pending)
            progress.update(task, completed=done, count=f"{done}/{len(jobs)} calendars")
            if job is None and pending:
                idle.wait(0.2)  # another process holds these calendars: poll its progress
    if pending:
        console.print(f"[red]{len(pending)} calendar(s) still syncing elsewhere")
    return _summary(db, list(jobs), Console())


def _show(progress: Progress, task: TaskID, name: str, step: SyncProgress) -> None:
    """One calendar's sync as it goes: reading, events read, blocks written of how many."""
    if step.phase == "reading":
        progress.update(task, description=f"  {name}: reading changes", total=None)
        return
    read = f"{step.events_read} event{'' if step.events_read == 1 else 's'} read"
    if step.phase == "writing" and step.blocks_total:
        progress.update(
            task,
            description=f"  {name}: {read}, blocks written",
            total=step.blocks_total,
            completed=step.blocks_done,
            count=f"{step.blocks_done}/{step.blocks_total} blocks",
        )
    else:
        progress.update(task, description=f"  {name}: {read}")


def _finished(db: sa.Engine, job_ids: set[int]) -> set[int]:
    with Session(db) as session:
        return {
            job.id
            for job in session.exec(select(SyncJob).where(col(SyncJob.id).in_(job_ids)))
            if job.id is not None and job.state in (JobState.DONE, JobState.FAILED)
        }


def _summary(db: sa.Engine, job_ids: list[int], console: Console) -> int:
    """Print one row per calendar from its sync log; non-zero when anything failed."""
    table = Table(title="calsync sync")
    for column in ("calendar", "status", "events", "blocks +", "blocks ~", "blocks -", "calls"):
        table.add_column(column, justify="left" if column in ("calendar", "status") else "right")
    table.add_column("notes")
    failed = False
    with Session(db) as session:
        for job_id in job_ids:
            log = session.exec(
                select(SyncLog).where(SyncLog.job_id == job_id).order_by(col(SyncLog.id).desc())
            ).first()
            job = session.get(SyncJob, job_id)
            calendar = session.get(Calendar, job.calendar_id) if job else None
            name = calendar.name if calendar else f"job {job_id}"
            if log is None:
                failed = True
                error = (job.last_error if job else None) or ""
                table.add_row(name, "[red]not run", "", "", "", "", "", error)
                continue
            status = SyncStatus(log.status)
            failed = failed or status is not SyncStatus.SUCCESS
            colour = {"success": "green", "partial": "yellow", "error": "red"}[status.value]
            notes = "; ".join([*log.notes, *([log.error] if log.error else [])])
            table.add_row(
                name,
                f"[{colour}]{status.value}",
                str(log.events_fetched),
                str(log.blocks_created),
                str(log.blocks_updated),
                str(log.blocks_deleted),
                str(log.provider_calls),
                notes,
            )
    console.print(table)
    return 1 if failed else 0
