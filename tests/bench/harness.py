"""What every benchmark shares: a calsync server as a real process, the emulator's counters, the
figures' table and the machine it ran on."""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sqlmodel import Session, col, func, select

from calsync_server.db.models import BusyBlock, PushSubscription, SyncJob
from calsync_server.emulators.microsoft.runner import RunningGraphEmulator
from calsync_server.sync.engine import SyncEngine
from shared.domain import ChannelState, JobState
from tests.support.drivers.microsoft import GraphEndpoints
from tests.support.waiting import wait_until
from tests.support.world import FAST_RETRY, World

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A child process on a port: a calsync server, or the bare endpoint."""

    popen: subprocess.Popen[bytes]
    url: str
    port: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def peak_rss_mib(self) -> float:
        """Peak resident memory so far (VmHWM), read while the process still runs."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")


@contextmanager
def child(args: Sequence[str], port: int, env: dict[str, str], ready: str) -> Iterator[Process]:
    """Start a child, wait until `ready` answers 200, and stop it (SIGTERM) at the end."""
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    popen = subprocess.Popen(
        list(args), cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/"

    def answering() -> bool:
        if popen.poll() is not None:
            err = popen.stderr.read().decode() if popen.stderr else ""
            raise RuntimeError(f"{args} exited with {popen.returncode}: {err[-2000:]}")
        try:
            return httpx.get(url + ready, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answering, timeout=60, what=f"{args[2:4]} to answer")
        yield Process(popen, url, port)
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        log.close()


@contextmanager
def calsync_server(
    world: World, *, push: bool, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[Process]:
    """`calsync serve` as its own process on the world's database and home, so the load
    generator and the benchmark do not share its interpreter; `env` adds settings."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    args = [PYTHON, "-m", "calsync_server.cli", "serve", "--port", str(port)]
    if push:
        args += ["--public-url", url]
    env = {
        "CALSYNC_HOME": str(world.settings.home),
        "CALSYNC_DATABASE_URL": world.settings.database_url_resolved,
        "CALSYNC_GOOGLE_API_URL": world.emulator.url,
        "CALSYNC_POLL_INTERVAL_SECONDS": "3600",
        "CALSYNC_WORKERS": str(workers),
        **(env or {}),
    }
    with child(args, port, env, "healthz") as process:
        yield process


def with_graph(world: World, graph: GraphEndpoints) -> dict[str, str]:
    """Point the world's engine (which imports calendars) at the Graph emulator; the same
    settings for `calsync serve`, as its environment."""
    where = {
        "microsoft_graph_url": f"{graph.url}v1.0",
        "microsoft_login_url": graph.tls_url,
        "microsoft_ca_file": graph.ca_path,
    }
    world.settings = msgspec.structs.replace(world.settings, **where)
    world.engine = SyncEngine(world.db, world.settings, vault=world.vault, retry=FAST_RETRY)
    return {f"CALSYNC_{name.upper()}": value for name, value in where.items()}


def graph_endpoints(running: RunningGraphEmulator) -> GraphEndpoints:
    return GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


def graph_subscriptions(world: World, *calendar_ids: int) -> dict[int, PushSubscription]:
    """Each calendar's live Graph subscription once Graph answered its create (its handshake
    went through), or {} while one is missing."""
    with Session(world.db) as session:
        rows = session.exec(
            select(PushSubscription).where(
                PushSubscription.state == ChannelState.ACTIVE,
                PushSubscription.provider == "microsoft",
                col(PushSubscription.remote_id).is_not(None),
            )
        ).all()
        found = {row.calendar_id: row for row in rows if row.calendar_id in calendar_ids}
    return found if len(found) == len(calendar_ids) else {}


def api(process: Process, user: str = "ada") -> httpx.Client:
    return httpx.Client(
        base_url=process.url, headers={"Authorization": f"Bearer token-{user}"}, timeout=60
    )


def enable(client: httpx.Client, *calendar_ids: int) -> None:
    for calendar_id in calendar_ids:
        answer = client.patch(f"/api/v1/calendars/{calendar_id}", json={"sync_enabled": True})
        answer.raise_for_status()


def working_channels(world: World, *calendar_ids: int) -> dict[int, PushSubscription]:
    with Session(world.db) as session:
        rows = session.exec(
            select(PushSubscription).where(
                PushSubscription.state == ChannelState.ACTIVE,
                col(PushSubscription.last_sequence).is_not(None),
            )
        ).all()
        found = {row.calendar_id: row for row in rows if row.calendar_id in calendar_ids}
    return found if len(found) == len(calendar_ids) else {}


def settled(world: World) -> bool:
    """Nothing queued or running."""
    with Session(world.db) as session:
        busy = session.exec(
            select(func.count())
            .select_from(SyncJob)
            .where(col(SyncJob.state).in_([JobState.QUEUED, JobState.RUNNING]))
        ).one()
    return int(busy) == 0


def block_rows(world: World) -> int:
    with Session(world.db) as session:
        return int(session.exec(select(func.count()).select_from(BusyBlock)).one())


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: str
    reference: str
    ratio: str
    met: str  # "yes", "**no**", or "-" where no target was set


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, reference: str, ratio: str, met: bool | None) -> None:
        verdict = "-" if met is None else ("yes" if met else "**no**")
        self.rows.append(Row(figure, value, reference, ratio, verdict))

    def missing(self, figure: str, why: str) -> None:
        self.rows.append(Row(figure, "not measured", "-", "-", "**no**"))
        self.notes.append(f"{figure}: not measured ({why})")

    def markdown(self) -> str:
        lines = [
            "| figure | value | reference | ratio | target met? |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in self.rows:
            cells = [row.figure, row.value, row.reference, row.ratio, row.met]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines)


def machine(load: tuple[float, float] | None = None) -> list[str]:
    """The machine, and with `load` its 1-minute load average as the run began and ended:
    above the CPU count, other work shared the CPUs and every timing is slower for it."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    shared = (
        [f"- Load average (1 min): {load[0]:.1f} as the run began, {load[1]:.1f} as it ended"]
        if load is not None
        else []
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs",
        *shared,
        f"- RAM: {mem_kib / 1024 / 1024:.1f} GiB",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- OS: {os_name}",
        f"- Database: SQLite {sqlite3.sqlite_version} (a file in a temporary directory); "
        "PostgreSQL not measured (the benchmarks run on SQLite only)",
    ]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.0995 else f"{seconds * 1000:.1f} ms"


def elapsed(started: float) -> float:
    return time.perf_counter() - started


def stats_calls(world: World) -> dict[str, Any]:
    return world.stats()
