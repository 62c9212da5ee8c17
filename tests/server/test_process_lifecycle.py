"""Real processes: a restarted `calsync serve` takes back its dead predecessor's jobs at once,
SIGINT stops it cleanly mid-sync, and `calsync sync` runs beside it on one SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from calsync_server.db.models import SyncJob, SyncLog
from calsync_server.jobs.queue import claimed_for
from shared.domain import JobState
from tests.server.test_processes import _insert_many, _jobs
from tests.support.processes import REPO, Served, Servers
from tests.support.waiting import wait_until
from tests.support.world import Cal, World, timed

# `calsync serve` and `calsync sync` run in processes of their own, on the real clock whatever
# this one's says.
pytestmark = pytest.mark.real_clock


def _slow_inserts(world: World, delay_ms: int) -> None:
    world.admin.post(
        "/emulator/faults",
        json={"method": "events.insert", "status": 200, "times": 10**5, "delay_ms": delay_ms},
    ).raise_for_status()


def _inserts(world: World) -> int:
    return int(world.stats()["calls"].get("events.insert", 0))


def _syncing(
    servers: Servers,
    world: World,
    database_url: str,
    tmp_path: Path,
    unique: str,
    *,
    events: int,
    delay_ms: int,
    **settings: Any,
) -> tuple[Cal, Served]:
    """Work's `events` on their way into home, each block's insert `delay_ms` slow: a server
    started with `settings` and its sync writing blocks. Home and the server."""
    work, home = world.work_and_home(unique)
    _insert_many(world, work, events)
    world.configure(work, home)
    _slow_inserts(world, delay_ms)
    served = servers.start(tmp_path / "home", database_url, **settings)
    before = _inserts(world)
    with served.api() as api:
        assert api.post("/sync", json={}).status_code == 202
    wait_until(lambda: _inserts(world) > before, timeout=30, what="a sync writing blocks")
    return home, served


def _held_by(job: SyncJob, pid: int, jobs: list[SyncJob]) -> bool:
    """The job runs in process `pid`: a worker of it, or the first-sync pass of one of that
    worker's jobs, which claims the user's other calendars (jobs.queue.claimed_for)."""
    if f"-{pid}-" in (job.worker or ""):
        return True
    return any(
        job.worker == claimed_for(other.id) and f"-{pid}-" in (other.worker or "") for other in jobs
    )


def test_a_restarted_server_takes_back_its_dead_predecessors_jobs_at_once(
    servers: Servers, world: World, database_url: str, unique: str, tmp_path: Path
) -> None:
    # The default lease (300 s): only knowing the predecessor is dead frees its jobs in time.
    settings = {"google_api_url": world.emulator.url, "poll_interval_seconds": 3600}
    home, first = _syncing(
        servers, world, database_url, tmp_path, unique, events=600, delay_ms=150, **settings
    )
    running = [j for j in _jobs(world.db) if j.state == JobState.RUNNING]
    assert running
    assert all(_held_by(j, first.pid, running) for j in running), running
    first.stop(signal.SIGKILL)
    world.admin.delete("/emulator/faults").raise_for_status()

    second = servers.start(tmp_path / "home", database_url, **settings)
    killed = {j.id for j in running}

    def taken_back() -> bool:
        jobs = _jobs(world.db)
        return all(
            j.state != JobState.RUNNING or _held_by(j, second.pid, jobs)
            for j in jobs
            if j.id in killed
        )

    wait_until(
        taken_back,
        timeout=10,
        what="the dead process's jobs taken back (not after a 300 s lease)",
    )
    wait_until(lambda: len(world.blocks(home)) == 600, timeout=60, what="every block")
    assert second.stop(signal.SIGTERM) == 0, second.output()


def test_sigint_mid_sync_stops_the_server_cleanly(
    servers: Servers, world: World, database_url: str, unique: str, tmp_path: Path
) -> None:
    _, served = _syncing(
        servers,
        world,
        database_url,
        tmp_path,
        unique,
        events=200,
        delay_ms=100,
        google_api_url=world.emulator.url,
    )

    assert served.stop(signal.SIGINT, timeout=30) == 0, served.output()  # Ctrl-C
    output = served.output()
    assert "Traceback" not in output, output
    assert "Exception in ASGI application" not in output, output
    # The running sync finished before the process ended: nothing is left running.
    jobs = _jobs(world.db)
    assert not [j for j in jobs if j.state == JobState.RUNNING], jobs
    with Session(world.db) as session:
        logs = list(session.exec(select(SyncLog)))
    assert logs, "the sync that was running wrote its log"


def test_calsync_sync_beside_calsync_serve_on_one_sqlite_file(
    servers: Servers, world: World, database_url: str, unique: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the SQLite file shared by two processes")
    cals = []
    for n in range(3):
        cals.append(world.account(f"a{n}-{unique}@example.com")["primary"])
    for index, cal in enumerate(cals):
        for day in range(1, 6):
            world.insert(cal, **timed(f"c{index}d{day}", 8 + index, 8.5 + index, days=day))
    world.configure(*cals)
    home = tmp_path / "home"
    # The server syncs on its own (the first full syncs, then its polls every second) while
    # `calsync sync` asks for every calendar at once.
    served = servers.start(
        home, database_url, google_api_url=world.emulator.url, poll_interval_seconds=1
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    env.update(
        CALSYNC_HOME=str(home),
        CALSYNC_DATABASE_URL=database_url,
        CALSYNC_GOOGLE_API_URL=world.emulator.url,
    )
    done = subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", "sync"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "locked" not in done.stdout + done.stderr

    # Every calendar holds a block of each of the others' events, once.
    for cal in cals:
        blocks = wait_until(
            lambda c=cal: len(world.blocks(c)) == 10 and world.blocks(c),
            timeout=30,
            what="the others' blocks",
        )
        assert assert_once(blocks)
    jobs = _jobs(world.db)
    assert not [j for j in jobs if j.state == JobState.FAILED], jobs
    assert served.stop(signal.SIGTERM) == 0, served.output()
    assert "locked" not in served.output(), served.output()
    # Both processes queued and claimed from the one file; which of them ran each job is a race
    # (the server's workers often take the CLI's jobs first), so only the server's are sure.
    # Both name their workers "<host>-<pid>-<tag>-w<n>": the server's by its pid.
    by_server = [j for j in jobs if j.state == JobState.DONE and _held_by(j, served.pid, jobs)]
    assert by_server, jobs


def assert_once(blocks: list[dict[str, object]]) -> bool:
    starts = [str(b["start"]) for b in blocks]
    assert len(starts) == len(set(starts)), starts
    return True
