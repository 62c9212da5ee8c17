"""A mixed user end to end through the server: a Google calendar (the emulator), a Microsoft 365
one (the Graph emulator) and a CalDAV one (a real Radicale), each edited through its driver.
Google and Graph push to the server, Radicale is polled. After creates, moves, deletes, a
recurring series with a moved and a cancelled occurrence, all-day events across a DST change
and a zoned daily series across it, the invariant holds in all three providers' calendars;
disconnecting the Microsoft account takes its blocks out of the others and calsync's out of
its calendar, and stops its Graph subscription."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import Session, col, select

from calsync_server.db.models import Notification, PushSubscription
from calsync_server.emulators.google.runner import RunningEmulator
from tests.server.conftest import ServerWorld, microsoft_world
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer
from tests.support.drivers.connect import Span, blocks, connect, own_events
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.waiting import wait_until
from tests.support.world import Cal, at

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def mixed(
    emulator: RunningEmulator,
    graph: GraphEndpoints,
    radicale: CalDAVServer,
    database_url: str,
    tmp_path: Path,
    unique: str,
) -> Iterator[tuple[ServerWorld, GoogleDriver, MicrosoftDriver, CalDAVDriver]]:
    # Radicale is polled every 2 s; calendars with push only every 2 minutes (the safety poll), and
    # the horizon reaches the next DST change wherever the year is.
    world = microsoft_world(
        emulator,
        graph,
        database_url,
        tmp_path / "home",
        poll_interval_seconds=2.0,
        horizon_days=400,
    )
    google, ms, dav = GoogleDriver(emulator, unique), MicrosoftDriver(graph), CalDAVDriver(radicale)
    try:
        yield world, google, ms, dav
    finally:
        google.close()
        ms.admin.delete("/emulator/faults")
        ms.close()
        world.close()


def instant(hours: float, days: int = 1) -> datetime:
    return datetime.fromisoformat(at(hours, days).replace("Z", "+00:00"))


def next_dst_change(today: date) -> date:
    """The next day Berlin's clocks change, at least three days ahead."""
    changes = []
    for year in (today.year, today.year + 1):
        for month in (3, 10):
            last = date(year, month, 31)
            while last.weekday() != 6:
                last -= timedelta(days=1)
            if last > today + timedelta(days=3):
                changes.append(last)
    return min(changes)


class Person:
    """What the person has in each calendar (the blocking instances, as spans), so the
    blocks every other calendar must hold can be said."""

    def __init__(self, cals: dict[str, tuple[Driver, Cal]]) -> None:
        self.cals = cals
        self.held: dict[str, dict[str, list[Span]]] = {name: {} for name in cals}

    def add(self, where: str, key: str, *spans: Span) -> None:
        self.held[where][key] = list(spans)

    def drop(self, where: str, key: str) -> None:
        del self.held[where][key]

    def wanted(self, target: str) -> list[Span]:
        found = [
            ("Busy", start, end)
            for source, events in self.held.items()
            if source != target
            for spans in events.values()
            for _title, start, end in spans
        ]
        return sorted(found, key=lambda s: (str(s[1]), str(s[2]), s[0]))

    def seen(self) -> dict[str, list[Span]]:
        return {name: blocks(driver, cal) for name, (driver, cal) in self.cals.items()}

    def expected(self) -> dict[str, list[Span]]:
        return {name: self.wanted(name) for name in self.cals}

    def settles(self, what: str) -> None:
        """The invariant in every provider's own copy: exactly one exact block per blocking
        instance of every other calendar, nothing else of calsync's."""
        wanted = self.expected()
        wait_until(lambda: self.seen() == wanted, timeout=45, what=what)


def span(title: str, start: datetime | date, end: datetime | date) -> Span:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (title, start.astimezone(UTC), end.astimezone(UTC))
    return (title, start, end)


def announced(world: ServerWorld, cal: Cal) -> set[str]:
    """The outcomes of the change notifications recorded for the calendar's subscriptions."""
    with Session(world.db) as session:
        keys = session.exec(
            select(PushSubscription.key).where(PushSubscription.calendar_id == cal.id)
        ).all()
        rows = session.exec(
            select(Notification).where(
                col(Notification.channel_id).in_(keys), Notification.kind == "changed"
            )
        ).all()
    return {str(n.outcome) for n in rows}


def test_google_microsoft_and_caldav_block_each_other_until_microsoft_leaves(
    mixed: tuple[ServerWorld, GoogleDriver, MicrosoftDriver, CalDAVDriver],
) -> None:
    world, google, ms, dav = mixed
    (home,) = connect(world, google, "Home")
    (work,) = connect(world, ms, "Work")
    (personal,) = connect(world, dav, "Personal")
    world.configure(home, work, personal, include_all_day=True)
    person = Person({"google": (google, home), "microsoft": (ms, work), "caldav": (dav, personal)})
    world.start()
    api: httpx.Client
    with world.api() as api:
        wait_until(lambda: world.settled(api), what="the first syncs")
        change = next_dst_change(instant(0, days=0).date())

        # Creates: timed, recurring, all-day across the DST change, a zoned series across it.
        board = google.add(home.provider_id, PersonEvent("Board", instant(9), instant(10)))
        person.add("google", "board", span("Board", instant(9), instant(10)))
        standup = ms.add(work.provider_id, PersonEvent("Standup", instant(14), instant(15)))
        person.add("microsoft", "standup", span("Standup", instant(14), instant(15)))
        dentist = dav.add(personal.provider_id, PersonEvent("Dentist", instant(16), instant(17)))
        person.add("caldav", "dentist", span("Dentist", instant(16), instant(17)))
        daily = ms.add(
            work.provider_id,
            PersonEvent("Daily", instant(8), instant(8.5), recurrence="FREQ=DAILY;COUNT=3"),
        )
        person.add(
            "microsoft",
            "daily",
            *(span("Daily", instant(8, d), instant(8.5, d)) for d in (1, 2, 3)),
        )
        gym = google.add(
            home.provider_id,
            PersonEvent("Gym", instant(18), instant(19), recurrence="FREQ=DAILY;COUNT=3"),
        )
        person.add(
            "google", "gym", *(span("Gym", instant(18, d), instant(19, d)) for d in (1, 2, 3))
        )
        for where, driver, cal, first in (
            ("google", google, home, change - timedelta(days=1)),
            ("microsoft", ms, work, change - timedelta(days=2)),
            ("caldav", dav, personal, change),
        ):
            last = first + timedelta(days=3)
            driver.add(cal.provider_id, PersonEvent("Away", first, last))
            person.add(where, "away", span("Away", first, last))
        nine = datetime.combine(change - timedelta(days=2), time(9), tzinfo=BERLIN)
        ms.add(
            work.provider_id,
            PersonEvent("Berlin", nine, nine + timedelta(hours=1), recurrence="FREQ=DAILY;COUNT=4"),
        )
        berlin = [
            span("Berlin", nine + timedelta(days=d), nine + timedelta(days=d, hours=1))
            for d in range(4)
        ]
        assert len({start.hour for _, start, _ in berlin}) == 2  # type: ignore[union-attr]
        person.add("microsoft", "berlin", *berlin)
        person.settles("every event of each calendar as one exact block in the other two")

        # Moves, and a recurring series with a moved and a cancelled occurrence.
        google.move(home.provider_id, board, instant(11), instant(12))
        person.add("google", "board", span("Board", instant(11), instant(12)))
        ms.move(work.provider_id, standup, instant(15), instant(16))
        person.add("microsoft", "standup", span("Standup", instant(15), instant(16)))
        dav.move(personal.provider_id, dentist, instant(17, 2), instant(18, 2))
        person.add("caldav", "dentist", span("Dentist", instant(17, 2), instant(18, 2)))
        ms.cancel_occurrence(work.provider_id, daily, instant(8, 2))
        ms.move_occurrence(work.provider_id, daily, instant(8, 3), instant(10, 3), instant(11, 3))
        person.add(
            "microsoft",
            "daily",
            span("Daily", instant(8, 1), instant(8.5, 1)),
            span("Daily", instant(10, 3), instant(11, 3)),
        )
        google.move_occurrence(
            home.provider_id, gym, instant(18, 2), instant(20, 2), instant(21, 2)
        )
        person.add(
            "google",
            "gym",
            span("Gym", instant(18, 1), instant(19, 1)),
            span("Gym", instant(20, 2), instant(21, 2)),
            span("Gym", instant(18, 3), instant(19, 3)),
        )
        person.settles("moves, and a moved and a cancelled occurrence")

        # Deletes.
        google.delete(home.provider_id, board)
        person.drop("google", "board")
        ms.delete(work.provider_id, standup)
        person.drop("microsoft", "standup")
        dav.delete(personal.provider_id, dentist)
        person.drop("caldav", "dentist")
        person.settles("deletes in each provider")

        # Google and Graph announced their changes by push; Radicale was polled.
        assert announced(world, home) & {"enqueued", "coalesced"}
        assert announced(world, work) & {"enqueued", "coalesced"}
        pushes = {c["calendar_id"]: c["push"] for c in api.get("/api/v1/channels").json()}
        assert pushes[personal.id] == "polled"
        assert (pushes[home.id], pushes[work.id]) == ("active", "active")

        # Disconnecting the Microsoft account: its blocks leave Google and Radicale, calsync's
        # blocks leave its calendar, its Graph subscription is deleted, the person's own
        # events stay where they are.
        mine = own_events(ms, work)
        [account] = [a for a in api.get("/api/v1/accounts").json() if a["provider"] == "microsoft"]
        gone = api.delete(f"/api/v1/accounts/{account['id']}")
        assert gone.status_code == 200, gone.text
        del person.cals["microsoft"], person.held["microsoft"]
        person.settles("no block of the Microsoft account left in Google or Radicale")
        wait_until(lambda: blocks(ms, work) == [], what="no block of calsync's left in Work")
        assert own_events(ms, work) == mine
        held = ms.admin.get("/emulator/subscriptions").json()
        assert [s for s in held if s["calendar_id"] == work.provider_id] == []
        assert sorted(a["provider"] for a in api.get("/api/v1/accounts").json()) == [
            "caldav",
            "google",
        ]
