"""`calsync sync` as a user runs it: a real process against the emulator and a real database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from calsync_server.db.models import SyncJob
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from calsync_server.jobs.queue import JobQueue
from calsync_server.jobs.worker import run_job
from calsync_server.push.channels import ChannelKeeper
from calsync_server.scheduler import Scheduler
from calsync_server.sync.engine import default_factory
from shared.clock import SystemClock
from shared.domain import JobState, SyncKind
from tests.server.test_processes import _insert_many, _jobs
from tests.support.held import HeldAnswers
from tests.support.waiting import wait_until
from tests.support.world import FAST_RETRY, Cal, World, timed

# `calsync sync` runs in a process of its own, on the real clock whatever this one's says.
pytestmark = pytest.mark.real_clock


def _env(world: World) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CALSYNC_HOME": str(world.settings.home),
        "CALSYNC_DATABASE_URL": world.settings.database_url,
        "CALSYNC_GOOGLE_API_URL": world.settings.google_api_url,
        "COLUMNS": "200",
    }


def _calsync(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env=_env(world),
        timeout=120,
    )


# `calsync` as a terminal starts it, Ctrl-C raising KeyboardInterrupt: a shell that ran the
# tests in the background may have left SIGINT ignored, and Python then leaves it so.
_AS_IN_A_TERMINAL = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "from calsync_server.cli import main\n"
    "main(sys.argv[1:])\n"
)


class _Syncing:
    """A `calsync sync` running in a process of its own; its output goes to a file."""

    def __init__(self, world: World, log: Path, *args: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _AS_IN_A_TERMINAL, "sync", *args],
                env=_env(world),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self, world: World) -> list[SyncJob]:
        """The jobs running (the test's own process claims none)."""
        if self.process.poll() is not None:
            status = self.process.returncode
            raise AssertionError(f"calsync sync exited ({status}):\n{self.output()}")
        return [j for j in _jobs(world.db) if j.state == JobState.RUNNING]

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def syncs() -> Iterator[list[_Syncing]]:
    """`calsync sync` processes a test starts; none outlives it."""
    started: list[_Syncing] = []
    yield started
    for sync in started:
        sync.end()


@pytest.fixture
def gated(database_url: str, tmp_path: Path) -> Iterator[tuple[World, HeldAnswers]]:
    """A world on an emulator of its own whose fault delays are a gate the test opens: a
    `calsync sync` waiting for such an answer is surely mid-sync, however busy the machine."""
    held = HeldAnswers()
    with run_emulator(EmulatorConfig(sleep=held.wait)) as emulator:
        built = World(emulator, database_url, tmp_path / "home")
        try:
            yield built, held
        finally:
            held.release()  # the emulator ends only once its answers are out
            built.close()


def _hold(world: World, method: str, cal: Cal) -> None:
    """Calls of `method` about `cal` wait at the gate for their answers."""
    world.admin.post(
        "/emulator/faults",
        json={
            "method": method,
            "status": 200,
            "times": 10**5,
            "delay_ms": 1,
            "calendar_id": cal.provider_id,
        },
    ).raise_for_status()


def _waiting_for(world: World, held: HeldAnswers, sync: _Syncing, what: str) -> list[SyncJob]:
    """The jobs `sync` holds once it waits for an answer at the gate."""
    return wait_until(
        lambda: sync.running(world) if held.holding else [], timeout=60, what=f"calsync sync {what}"
    )


def _run_queue(world: World) -> None:
    """Run every due job, as a server's worker would, until none is left."""
    queue = JobQueue(world.db, SystemClock())
    while (job := queue.claim("test-worker")) is not None:
        run_job(queue, world.engine, job)


def _blocks_once(world: World, home: Cal, count: int) -> None:
    starts = [str(b["start"]) for b in world.blocks(home)]
    assert len(starts) == count, starts
    assert len(set(starts)) == count, starts


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


def test_a_killed_calsync_sync_gives_its_job_back_at_the_next_scheduler_tick(
    gated: tuple[World, HeldAnswers], unique: str, tmp_path: Path, syncs: list[_Syncing]
) -> None:
    world, held = gated
    work, home = world.work_and_home(unique)
    _insert_many(world, work, 120)
    world.configure(work, home)
    _hold(world, "events.insert", home)
    sync = _Syncing(world, tmp_path / "sync.log", "--calendar", str(work.id))
    syncs.append(sync)
    running = {j.id for j in _waiting_for(world, held, sync, "writing blocks")}

    sync.process.send_signal(signal.SIGKILL)  # kill -9, or a closed terminal
    sync.process.wait(timeout=30)
    world.admin.delete("/emulator/faults").raise_for_status()
    held.release()
    # A server's scheduler on this host, its lease the default (300 s, long after this test).
    clock = SystemClock()
    keeper = ChannelKeeper(
        world.db, world.settings, clock, world.vault, default_factory(world.settings, FAST_RETRY)
    )
    queue = JobQueue(world.db, clock, lease_seconds=world.settings.job_lease_seconds)
    scheduler = Scheduler(world.db, world.settings, clock, queue, keeper, host=socket.gethostname())
    result = scheduler.tick()

    assert result.reclaimed >= 1
    jobs = _jobs(world.db)
    assert [j for j in jobs if j.state == JobState.RUNNING] == [], jobs
    # Its job, and the claims of the first-sync pass it ran (jobs.queue.claimed_for).
    assert {j.state for j in jobs if j.id in running} == {JobState.QUEUED}, jobs
    # The calendar then syncs: every block once, the killed sync's writes redone safely.
    _run_queue(world)
    _blocks_once(world, home, 120)


def test_ctrl_c_puts_the_running_sync_back_in_the_queue_and_exits_130(
    gated: tuple[World, HeldAnswers], unique: str, tmp_path: Path, syncs: list[_Syncing]
) -> None:
    world, held = gated
    work, home = world.work_and_home(unique)
    for day in range(1, 4):
        world.insert(work, **timed(f"e{day}", 9, 10, days=day))
    world.configure(work, home)
    _hold(world, "events.list", work)
    sync = _Syncing(world, tmp_path / "sync.log", "--calendar", str(work.id))
    syncs.append(sync)
    running = {j.id for j in _waiting_for(world, held, sync, "reading work's events")}

    sync.process.send_signal(signal.SIGINT)  # Ctrl-C
    status = sync.process.wait(timeout=60)

    output = sync.output()
    assert status == 130, output
    assert "Interrupted: the sync that was running is queued again" in output, output
    assert "Traceback" not in output, output
    jobs = _jobs(world.db)
    assert [j for j in jobs if j.state == JobState.RUNNING] == [], jobs
    assert {(j.state, j.worker) for j in jobs if j.id in running} == {(JobState.QUEUED, None)}
    # Due now, and the interrupted claim not counted against the job's attempts.
    assert [j.attempts for j in jobs if j.id in running and j.calendar_id == work.id] == [0]
    world.admin.delete("/emulator/faults").raise_for_status()
    held.release()
    _run_queue(world)
    _blocks_once(world, home, 3)


def test_calsync_sync_takes_back_a_killed_one_s_job_at_once(world: World, unique: str) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.configure(work)
    queue = JobQueue(world.db, SystemClock())
    queue.enqueue(work.id, SyncKind.WEBHOOK)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    # Held by a process of this host that has ended (a `calsync sync` killed), its lease 300 s.
    assert queue.claim(f"{socket.gethostname()}-{int(gone.stdout)}-0a1b2c-w0") is not None

    result = _calsync(world, "sync", "--calendar", str(work.id))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "success" in result.stdout
