"""`calsync serve` as a user runs it: real processes on real ports, killed with real signals.

The server shares the test's database and home (the credential key lives there), the emulator
runs in the test process, and every outcome is checked where it lands: the blocks in the
emulator's calendars and the rows in the database.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.db.engine import alembic_config, create_db_engine, current_revision
from calsync_server.db.models import BusyBlock, SyncJob, SyncLog, User
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.jobs.queue import CLAIMED_BY
from calsync_server.providers.google.mapping import SOURCE_PROPERTY as SOURCE_KEY_PROPERTY
from calsync_server.providers.google.mapping import event_time
from calsync_server.sync.stored import decode_time
from shared.domain import JobState
from tests.support.processes import Served, Servers
from tests.support.waiting import wait_until
from tests.support.world import Cal, World, timed

# `calsync serve` runs in processes of its own, on the real clock whatever this one's says.
pytestmark = pytest.mark.real_clock


def _jobs(db: sa.Engine) -> list[SyncJob]:
    with Session(db) as session:
        return list(session.exec(select(SyncJob)))


def _insert_many(world: World, cal: Cal, count: int, per_day: int = 25) -> None:
    """`count` timed events, `per_day` half-hour slots a day, in batches of 500."""
    service = world.service(cal.email)
    for chunk in range(0, count, 500):
        batch = service.new_batch_http_request()
        for i in range(chunk, min(count, chunk + 500)):
            day, slot = 1 + i // per_day, i % per_day
            body = timed(f"e{i}", slot * 0.5, slot * 0.5 + 0.5, days=day)
            batch.add(service.events().insert(calendarId=cal.provider_id, body=body))
        batch.execute()


# -- 1. start, migrate, answer, stop ------------------------------------------------------------


@pytest.mark.empty_database
def test_serve_migrates_a_fresh_database_answers_and_stops_cleanly_on_sigterm(
    servers: Servers, database_url: str, emulator: RunningEmulator, tmp_path: Path
) -> None:
    served = servers.start(
        tmp_path / "home",
        database_url,
        google_api_url=emulator.url,
        api_token="the-configured-token",
    )

    db = create_db_engine(database_url)
    try:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
        assert current_revision(db) == head  # migrated on start
    finally:
        db.dispose()
    assert httpx.get(f"{served.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert httpx.get(f"{served.url}/api/v1/status", timeout=5).status_code == 401
    with served.api("not-the-token") as wrong:
        assert wrong.get("/status").status_code == 401
    with served.api("the-configured-token") as api:
        status = api.get("/status")
        assert status.status_code == 200, status.text
        assert status.json()["accounts"] == 0
        assert status.json()["push_enabled"] is False

    assert served.stop(signal.SIGTERM, timeout=10) == 0, served.output()


@pytest.mark.empty_database
def test_servers_started_together_on_a_new_database_all_start(
    servers: Servers, database_url: str, emulator: RunningEmulator, tmp_path: Path
) -> None:
    # Each migrates the database and makes the default user as it starts: all at once, the
    # losers crashed on a unique violation (on SQLite; PostgreSQL had its advisory lock).
    together = [
        servers.launch(tmp_path / "home", database_url, google_api_url=emulator.url)
        for _ in range(3)
    ]
    for served in together:
        served.wait_ready()
    token = (tmp_path / "home" / "api-token").read_text().strip()
    for served in together:
        with served.api(token) as api:
            assert api.get("/status").status_code == 200
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            assert len(session.exec(select(User)).all()) == 1
    finally:
        db.dispose()
    for served in together:
        assert served.stop(signal.SIGTERM) == 0, served.output()


def test_sigterm_ends_open_live_streams_cleanly(
    servers: Servers, database_url: str, emulator: RunningEmulator, tmp_path: Path
) -> None:
    served = servers.start(tmp_path / "home", database_url, google_api_url=emulator.url)
    token = (tmp_path / "home" / "api-token").read_text().strip()
    lines: list[str] = []
    ended: list[BaseException | None] = []

    def listen() -> None:
        try:
            with (
                served.api(token) as api,
                api.stream("GET", "/stream", timeout=30) as response,
            ):
                for line in response.iter_lines():
                    lines.append(line)
            ended.append(None)
        except BaseException as exc:  # what the assertion shows: how the stream ended
            ended.append(exc)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_until(lambda: "event: hello" in lines, what="the stream's hello")

    assert served.stop(signal.SIGTERM, timeout=10) == 0, served.output()
    listener.join(timeout=10)

    assert ended == [None], ended  # the stream ended as a stream ends, not cut off
    assert "Exception in ASGI application" not in served.output(), served.output()
    assert "timeout graceful shutdown exceeded" not in served.output(), served.output()


# -- 2. kill -9 mid-sync, restart, nothing lost or duplicated -------------------------------------

EVENTS = 1500


def _kill_settings(emulator: RunningEmulator) -> dict[str, Any]:
    return {
        "google_api_url": emulator.url,
        "job_lease_seconds": 3,
        "poll_interval_seconds": 1,
    }


def test_sigkill_mid_sync_then_restart_loses_and_duplicates_nothing(
    servers: Servers, world: World, database_url: str, unique: str, tmp_path: Path
) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    _insert_many(world, work, EVENTS)
    world.configure(work, home)
    # Every batch of block inserts answers 150 ms late: the sync of `work` takes seconds.
    world.admin.post(
        "/emulator/faults",
        json={"method": "events.insert", "status": 200, "times": 100_000, "delay_ms": 150},
    ).raise_for_status()

    world.reset_stats()
    first = servers.start(tmp_path / "home", database_url, **_kill_settings(world.emulator))
    with first.api() as api:
        answer = api.post("/sync", json={})
        assert answer.status_code == 202, answer.text
        assert {j["calendar_id"] for j in answer.json()["jobs"]} == {work.id, home.id}

    def inserts() -> int:
        return int(world.stats()["calls"].get("events.insert", 0))

    # Blocks are going into home, a batch at a time (the emulator counts them as they come).
    wait_until(lambda: 0 < inserts() < EVENTS // 2, timeout=30, what="a sync half done")
    running = [j for j in _jobs(world.db) if j.state == JobState.RUNNING]
    assert work.id in {j.calendar_id for j in running}, running
    killed = {j.id for j in running}
    first.stop(signal.SIGKILL)
    killed_with = len(world.blocks(home))
    assert 0 < killed_with < EVENTS  # the kill landed mid-sync
    with Session(world.db) as session:
        assert session.exec(select(BusyBlock)).all() == []  # the blocks were never committed
    world.admin.delete("/emulator/faults").raise_for_status()

    second = servers.start(tmp_path / "home", database_url, **_kill_settings(world.emulator))
    wait_until(lambda: len(world.rows()) >= EVENTS, timeout=40, interval=0.2, what="all rows")
    # The rows can all be there (another calendar's full sync writes them) before the killed
    # job's lease runs out: it is taken back only then.
    wait_until(
        lambda: not [j for j in _jobs(world.db) if j.id in killed and j.state == JobState.RUNNING],
        timeout=20,
        interval=0.2,
        what="the killed process's jobs taken back",
    )
    assert second.stop(signal.SIGTERM) == 0, second.output()  # lets a running sync finish

    blocks = world.blocks(home)
    sources = Counter(b["extendedProperties"]["private"][SOURCE_KEY_PROPERTY] for b in blocks)
    assert len(blocks) == EVENTS
    assert len(sources) == EVENTS  # no duplicates
    assert max(sources.values()) == 1
    assert world.blocks(work) == []  # home has no events: nothing goes back
    rows = world.rows()
    assert len(rows) == EVENTS
    assert {r.provider_event_id for r in rows} == {b["id"] for b in blocks}
    assert {r.source_key for r in rows} == set(sources)
    assert all(r.target_calendar_id == home.id for r in rows)
    by_id = {b["id"]: b for b in blocks}
    # Each row holds the time its block has at Google (stored in calsync's own words).
    assert all(
        event_time(by_id[r.provider_event_id]["start"]) == decode_time(r.start) for r in rows
    )
    jobs = _jobs(world.db)
    assert not [j for j in jobs if j.state == JobState.RUNNING], jobs  # none left running
    taken_back = [j for j in jobs if j.calendar_id == work.id and j.id in killed]
    assert taken_back, running
    assert all(j.state == JobState.DONE for j in taken_back), taken_back


# -- 3. two processes, one queue ----------------------------------------------------------------


def _pid(worker: str | None) -> int:
    assert worker is not None  # "<host>-<pid>-<tag>-w<n>" (runtime.Runtime.worker_name)
    return int(worker.split("-")[-3])


def _calendars(world: World, unique: str, accounts: int = 4) -> list[Cal]:
    """Two calendars in each of `accounts` accounts of one user."""
    cals: list[Cal] = []
    for n in range(accounts):
        made = world.account(f"a{n}-{unique}@example.com", "Side")
        cals += [made["primary"], made["Side"]]
    return cals


def _insert_each(world: World, cals: list[Cal], per_calendar: int) -> None:
    for index, cal in enumerate(cals):
        service = world.service(cal.email)
        batch = service.new_batch_http_request()
        for i in range(per_calendar):
            body = timed(f"c{index}e{i}", 8 + index, 8.5 + index, days=1 + i)
            batch.add(service.events().insert(calendarId=cal.provider_id, body=body))
        batch.execute()


def _drain_with_two_servers(
    servers: Servers,
    world: World,
    database_url: str,
    cals: list[Cal],
    *,
    per_calendar: int,
    full: bool,
    slow_ms: int = 0,
) -> tuple[list[SyncJob], list[SyncLog], tuple[Served, Served]]:
    """Two `calsync serve` on one database, one POST /sync for every calendar; once the queue
    is empty and every block is there, both stop. The jobs, the logs and the servers."""
    if slow_ms:
        world.admin.post(
            "/emulator/faults",
            json={"method": "events.insert", "status": 200, "times": 10**5, "delay_ms": slow_ms},
        ).raise_for_status()
    home = world.settings.home
    settings = {"google_api_url": world.emulator.url, "poll_interval_seconds": 3600}
    one, two = (servers.launch(home, database_url, **settings) for _ in range(2))
    one.wait_ready()
    two.wait_ready()
    with one.api() as api:
        answer = api.post("/sync", json={"full": full})
        assert answer.status_code == 202, answer.text
    assert len(answer.json()["jobs"]) == len(cals)
    expected_rows = len(cals) * per_calendar * (len(cals) - 1)

    def drained() -> list[SyncJob] | None:
        jobs = _jobs(world.db)
        if any(j.state in (JobState.QUEUED, JobState.RUNNING) for j in jobs):
            return None
        return jobs if len(world.rows()) == expected_rows else None

    jobs = wait_until(drained, timeout=40, interval=0.2, what="an empty queue and every block")
    assert jobs is not None
    for served in (one, two):
        assert served.stop(signal.SIGTERM) == 0, served.output()
    with Session(world.db) as session:
        logs = list(session.exec(select(SyncLog)))
    for cal in cals:
        assert len(world.blocks(cal)) == per_calendar * (len(cals) - 1)
    return jobs, logs, (one, two)


COALESCED = "deferred; coalesced into the waiting job"  # jobs/queue.py put_back


def _ran_once(jobs: list[SyncJob], logs: list[SyncLog]) -> None:
    seen = [(j.id, j.calendar_id, j.attempts, j.state, j.last_error) for j in jobs] + [
        (log.job_id, log.calendar_id, log.status, log.error, log.notes) for log in logs
    ]
    assert all(j.state == JobState.DONE for j in jobs), "\n".join(map(str, seen))
    # A first sync that stepped aside may meet a job queued for its calendar meanwhile (its
    # new channel's catch-up): it joins that one without running. Every other job ran once.
    joined = {j.id for j in jobs if j.attempts == 0 and j.last_error == COALESCED}
    ran = [j for j in jobs if j.id not in joined]
    assert all(j.attempts == 1 for j in ran), "\n".join(map(str, seen))
    for j in jobs:
        if j.id in joined:  # the job it joined was queued after it, and ran
            assert any(r.calendar_id == j.calendar_id and r.id > j.id for r in ran), seen
    per_job = Counter(log.job_id for log in logs if log.job_id is not None)
    assert set(per_job) == {j.id for j in ran}, per_job
    assert set(per_job.values()) == {1}, per_job  # one sync (and its log) per job


def test_two_servers_drain_one_postgres_queue_running_every_job_once(
    servers: Servers, world: World, database_url: str, unique: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several server processes share a database on PostgreSQL only")
    cals = _calendars(world, unique)
    world.configure(*cals)
    world.sync_all(*cals)  # the first (full) syncs: the servers below sync incrementally
    _insert_each(world, cals, 20)

    # Writes answer 100 ms late, so that eight syncs outlast the other server's idle poll.
    jobs, logs, servers_ = _drain_with_two_servers(
        servers, world, database_url, cals, per_calendar=20, full=False, slow_ms=100
    )

    _ran_once(jobs, logs)
    # A first sync's pass claims the calendars turned on with it (rows of its own, no worker's).
    by_pid = Counter(_pid(j.worker) for j in jobs if not (j.worker or "").startswith(CLAIMED_BY))
    assert set(by_pid) == {s.pid for s in servers_}, f"one process took every job: {by_pid}"


def test_concurrent_first_syncs_of_one_user_run_every_job_once(
    servers: Servers, world: World, database_url: str, unique: str
) -> None:
    # Also on one SQLite file: `calsync sync` beside a server is two processes on it.
    cals = _calendars(world, unique, accounts=2)
    _insert_each(world, cals, 5)
    world.configure(*cals)

    jobs, logs, _ = _drain_with_two_servers(
        servers, world, database_url, cals, per_calendar=5, full=True
    )

    _ran_once(jobs, logs)
