"""Figure 6: CalDAV requests per change and per quiet poll, counted by the proxy in front of a
real server (Radicale, then Xandikos, then Radicale made a server without sync-collection):
one new event in a CalDAV source with K CalDAV targets against the least it can cost on that
server (one sync-collection REPORT + K PUTs, and one calendar-multiget more where the server's
sync-collection answers leave the data out; by ctag, its PROPFIND + the window's query + K
PUTs), a poll of a calendar where nothing changed against one small request, and the discovery
a sync reading an invitation costs with a login kept before calsync kept the calendar home and
after."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

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


def _discovery(server: CalDAVServer) -> int:
    """PROPFINDs above the calendars (well-known, root, principal): discovery's."""
    depth = server.home_path.count("/")
    return sum(
        1
        for method, path in server.proxy.requests()
        if method == "PROPFIND" and unquote(path).count("/") <= depth
    )


# A sync-collection REPORT from the start, asking for each resource's data in the answer.
SYNC_COLLECTION = b"""<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:sync-token/>
  <D:sync-level>1</D:sync-level>
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
</D:sync-collection>"""


def _answers_with_data(driver: CalDAVDriver, calendar_id: str) -> bool:
    """Whether the server puts the calendar data a sync-collection REPORT asks for in its
    answer (RFC 6578 lets it leave properties out): if not, any reader of a change needs a
    calendar-multiget more. Asked of the server itself, not through the counting proxy."""
    reply = driver.server.http.request(
        "REPORT",
        driver.path_of(calendar_id),
        content=SYNC_COLLECTION,
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
    )
    assert reply.status_code == 207, (reply.status_code, reply.text[:500])
    return b"BEGIN:VCALENDAR" in reply.content


def _one_server(table: Table, tmp: Path, kind: str, *, ctag: bool = False) -> None:
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    name = f"{kind}-ctag" if ctag else kind
    with (
        run_emulator(EmulatorConfig()) as emulator,
        caldav_server(kind, _made(tmp / name)) as server,  # type: ignore[arg-type]
    ):
        world = World(emulator, f"sqlite:///{tmp / f'{name}.db'}", tmp / f"{name}-home")
        try:
            driver = CalDAVDriver(server)
            if ctag:
                server.proxy.without_sync_collection(501)
            source, *targets = connect(world, driver, "Source", *(f"T{n}" for n in range(K)))
            for n in range(EXISTING):
                begins = start + timedelta(days=1 + n // 4, hours=2 * (n % 4))
                driver.add(
                    source.provider_id,
                    PersonEvent(f"Meeting {n}", begins, begins + timedelta(minutes=45)),
                )
            world.configure(source, *targets)
            world.sync_all(source, *targets)  # everything written, echoes consumed
            with_data = ctag or _answers_with_data(driver, source.provider_id)

            server.proxy.state.log.clear()
            world.sync(source)
            quiet = _requests(server)

            begins = start + timedelta(days=5)
            driver.add(source.provider_id, PersonEvent("New", begins, begins + timedelta(hours=1)))
            server.proxy.state.log.clear()
            world.sync(source)
            change = _requests(server)
            written = all(len(blocks(driver, t)) == EXISTING + 1 for t in targets)

            # The login was kept without its calendar home (as before calsync kept it): the
            # first sync reading an invitation discovers, the next ones start from the home.
            discovery = []
            for title in ("Pitch", "Offer"):
                begins = start + timedelta(days=6)
                invitation = PersonEvent(title, begins, begins + timedelta(hours=1), declined=True)
                driver.add(source.provider_id, invitation)
                server.proxy.state.log.clear()
                world.sync(source)
                discovery.append(_discovery(server))
        finally:
            world.close()
    # The least a reader can send on this server: with sync-collection, one REPORT, and one
    # calendar-multiget more where its answers leave the data out (Xandikos).
    minimum = (2 if ctag or not with_data else 1) + K
    label = f"{kind} without sync-collection" if ctag else kind
    read = (
        "ctag PROPFIND + calendar-query"
        if ctag
        else "1 sync-collection"
        if with_data
        else "1 sync-collection without the data + 1 calendar-multiget"
    )
    table.add(
        f"6. CalDAV ({label}) requests for one new event, K={K} targets",
        f"{sum(change.values())} ({_spelled(change)})",
        f"minimum {minimum} ({read} + {K} PUTs)",
        f"{sum(change.values()) / minimum:.2f}x minimum",
        sum(change.values()) == minimum and written,
    )
    table.add(
        f"6. CalDAV ({label}) requests for a poll that finds nothing",
        f"{sum(quiet.values())} ({_spelled(quiet)})",
        "1 small request",
        f"{sum(quiet.values()):.0f}x",
        sum(quiet.values()) == 1,
    )
    if not ctag:
        table.add(
            f"6. CalDAV ({kind}) discovery requests in a sync reading an invitation",
            f"{discovery[1]} with the calendar home kept, {discovery[0]} before it was",
            "0",
            f"{discovery[0] - discovery[1]} saved per such sync",
            discovery[1] == 0,
        )


def measure(table: Table, tmp: Path) -> None:
    for kind in ("radicale", "xandikos"):
        _one_server(table, tmp, kind)
    _one_server(table, tmp, "radicale", ctag=True)
    table.notes.append(
        "CalDAV requests: counted by the proxy in front of the server (tests/support/"
        "fault_proxy.py), for the source's own sync only; a poll finds changes by a "
        "sync-collection REPORT from the stored token. Xandikos answers sync-collection without "
        "the calendar data calsync asks for in the same REPORT (the benchmark asks each server "
        "the same REPORT itself, past the proxy, and finds none), so reading a change there "
        "costs any reader one calendar-multiget more, and its minimum has it. Without "
        "sync-collection (the proxy refuses the REPORT with 501 and hides the sync-token), a "
        "poll is the calendar's ctag, and a change adds one time-range query of the window "
        "(ETags and data), diffed against the last one. The "
        "calendar home (and the principal's addresses) kept in the login since sign-in spares "
        "the discovery a sync reading an invitation otherwise costs."
    )
