"""Figure 6: CalDAV requests per change and per quiet poll, counted by the proxy in front of a
real server (Radicale, then Xandikos): one new event in a CalDAV source with K CalDAV targets
against the least it can cost (one sync-collection REPORT + K PUTs), and a poll of a calendar
where nothing changed against one small request."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from tests.bench.harness import Table
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer, caldav_server
from tests.support.drivers.connect import blocks, connect
from tests.support.world import World

K = 3  # targets
EXISTING = 10  # events already in the source: a light working week


def _requests(server: CalDAVServer) -> Counter[str]:
    return Counter(method for method, _path in server.proxy.requests())


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _spelled(counts: Counter[str]) -> str:
    return ", ".join(f"{method} {n}" for method, n in sorted(counts.items()))


def _one_server(table: Table, tmp: Path, kind: str) -> None:
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    with (
        run_emulator(EmulatorConfig()) as emulator,
        caldav_server(kind, _made(tmp / kind)) as server,  # type: ignore[arg-type]
    ):
        world = World(emulator, f"sqlite:///{tmp / f'{kind}.db'}", tmp / f"{kind}-home")
        try:
            driver = CalDAVDriver(server)
            source, *targets = connect(world, driver, "Source", *(f"T{n}" for n in range(K)))
            for n in range(EXISTING):
                begins = start + timedelta(days=1 + n // 4, hours=2 * (n % 4))
                driver.add(
                    source.provider_id,
                    PersonEvent(f"Meeting {n}", begins, begins + timedelta(minutes=45)),
                )
            world.configure(source, *targets)
            world.sync_all(source, *targets)  # everything written, echoes consumed

            server.proxy.state.log.clear()
            world.sync(source)
            quiet = _requests(server)

            begins = start + timedelta(days=5)
            driver.add(source.provider_id, PersonEvent("New", begins, begins + timedelta(hours=1)))
            server.proxy.state.log.clear()
            world.sync(source)
            change = _requests(server)
            written = all(len(blocks(driver, t)) == EXISTING + 1 for t in targets)
        finally:
            world.close()
    minimum = 1 + K
    table.add(
        f"6. CalDAV ({kind}) requests for one new event, K={K} targets",
        f"{sum(change.values())} ({_spelled(change)})",
        f"minimum {minimum} (1 sync-collection + {K} PUTs)",
        f"{sum(change.values()) / minimum:.2f}x minimum",
        sum(change.values()) == minimum and written,
    )
    table.add(
        f"6. CalDAV ({kind}) requests for a poll that finds nothing",
        f"{sum(quiet.values())} ({_spelled(quiet)})",
        "1 small request",
        f"{sum(quiet.values()):.0f}x",
        sum(quiet.values()) == 1,
    )


def measure(table: Table, tmp: Path) -> None:
    for kind in ("radicale", "xandikos"):
        _one_server(table, tmp, kind)
    table.notes.append(
        "CalDAV requests: counted by the proxy in front of the server (tests/support/"
        "fault_proxy.py), for the source's own sync only; a poll finds changes by a "
        "sync-collection REPORT from the stored token. Xandikos answers sync-collection without "
        "the calendar data calsync asks for in the same REPORT, so a change there costs one "
        "calendar-multiget more."
    )
