"""`calsync sync` as a user runs it: a real process against the emulator and a real database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import Session, select

from calsync_server.db.models import SyncJob
from calsync_server.jobs.queue import JobQueue
from shared.clock import SystemClock
from shared.domain import JobState, SyncKind
from tests.support.world import World, timed

# `calsync sync` runs in a process of its own, on the real clock whatever this one's says.
pytestmark = pytest.mark.real_clock


def _calsync(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CALSYNC_HOME": str(world.settings.home),
        "CALSYNC_DATABASE_URL": world.settings.database_url,
        "CALSYNC_GOOGLE_API_URL": world.settings.google_api_url,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def test_calsync_sync_mirrors_and_prints_a_summary(world: World, unique: str) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.insert(work, **timed("Offsite", 9, 17))

    first = _calsync(world, "sync")
    second = _calsync(world, "sync", "--calendar", str(home.id), "--full")

    assert first.returncode == 0, first.stderr
    assert "success" in first.stdout
    assert work.email in first.stdout
    assert second.returncode == 0, second.stderr
    assert len(world.blocks(home)) == 1


def test_calsync_sync_fails_loudly_when_a_calendar_fails(world: World, unique: str) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.configure(work)
    world.fault("events.list", 500, times=50)

    result = _calsync(world, "sync", "--calendar", str(work.id))

    assert result.returncode == 1
    assert "error" in result.stdout
    # The change is not lost: the job waits in the queue for a later retry.
    with Session(world.db) as session:
        states = [job.state for job in session.exec(select(SyncJob))]
    assert states == [JobState.QUEUED]


def test_calsync_sync_rejects_an_unknown_calendar(world: World) -> None:
    result = _calsync(world, "sync", "--calendar", "999999")
    assert result.returncode == 2
    assert "no calendar with id 999999" in result.stderr


def test_calsync_sync_waits_for_a_calendar_another_process_is_syncing(
    world: World, unique: str
) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.configure(work)
    queue = JobQueue(world.db, SystemClock())
    queue.enqueue(work.id, SyncKind.WEBHOOK)
    held = queue.claim("another-process")
    assert held is not None
    assert held.id is not None
    # While it is held, nobody else can run that calendar: the CLI's own job stays queued.
    assert queue.enqueue(work.id, SyncKind.MANUAL).coalesced is False
    assert queue.claim("cli", calendar_ids={work.id}) is None
    queue.finish(held.id)
    assert queue.claim("cli", calendar_ids={work.id}) is not None
