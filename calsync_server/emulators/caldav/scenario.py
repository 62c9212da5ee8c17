"""The demo's family calendar on CalDAV (iCloud style): seeded around today, with live changes
written every few seconds as the person's own calendar app would (plain HTTP PUT and DELETE)."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import icalendar

from calsync_server.emulators.caldav.runner import RunningRadicale

USERNAME = "alex.morgan@icloud.example"
FAMILY = "Family"
ZONE = "America/New_York"

log = logging.getLogger("calsync.demo.caldav")


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(ZONE))


def _ics(
    title: str,
    start: datetime | date,
    end: datetime | date,
    *,
    rule: str | None = None,
    free: bool = False,
    uid: str | None = None,
) -> bytes:
    event = icalendar.Event()
    event.add("UID", uid or f"{uuid.uuid4()}@family.example")
    event.add("DTSTAMP", datetime.now(UTC))
    event.add("DTSTART", start)
    event.add("DTEND", end)
    event.add("SUMMARY", title)
    if rule:
        event.add("RRULE", icalendar.vRecur.from_ical(rule))
    if free:
        event.add("TRANSP", "TRANSPARENT")
    calendar = icalendar.Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", "-//calsync demo//family calendar//EN")
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


class FamilyCalendar:
    """The family's calendar in Radicale, written through plain HTTP as the user."""

    def __init__(self, server: RunningRadicale) -> None:
        self.http = server.client()
        self.path = f"/{server.username}/family/"

    def create(self) -> None:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{FAMILY}</D:displayname>"
            "</D:prop></D:set></C:mkcalendar>"
        )
        answer = self.http.request(
            "MKCALENDAR", self.path, content=body, headers={"Content-Type": "application/xml"}
        )
        answer.raise_for_status()

    def put(self, name: str, ics: bytes) -> None:
        answer = self.http.put(
            self.path + name, content=ics, headers={"Content-Type": "text/calendar; charset=utf-8"}
        )
        answer.raise_for_status()

    def delete(self, name: str) -> None:
        answer = self.http.delete(self.path + name)
        if answer.status_code != 404:
            answer.raise_for_status()

    def close(self) -> None:
        self.http.close()


def seed(family: FamilyCalendar, today: date) -> None:
    """The family's fortnight around `today` (last week to next week), in New York time."""
    family.create()
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(days=7)
    until = f"{start + timedelta(days=20):%Y%m%d}"
    family.put(
        "school-pick-up.ics",
        _ics(
            "School pick-up",
            _at(start, 15, 0),
            _at(start, 15, 30),
            rule=f"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;UNTIL={until}",
        ),
    )
    family.put(
        "swimming.ics",
        _ics(
            "Swimming lessons",
            _at(start + timedelta(days=2), 17, 0),
            _at(start + timedelta(days=2), 18, 0),
            rule="FREQ=WEEKLY",
        ),
    )
    family.put(
        "weekend-trip.ics",
        _ics("Weekend trip", monday + timedelta(days=5), monday + timedelta(days=7)),
    )
    family.put(
        "parents-evening.ics",
        _ics(
            "Parents' evening",
            _at(monday + timedelta(days=1), 11, 0),
            _at(monday + timedelta(days=1), 12, 0),
        ),
    )
    family.put(
        "birthday.ics",
        _ics(
            "Grandma's birthday",
            monday + timedelta(days=3),
            monday + timedelta(days=4),
            free=True,
        ),
    )


class LiveChanges:
    """Every few seconds a new, moved or deleted family event, so the demo shows a polled
    calendar syncing too."""

    def __init__(self, family: FamilyCalendar, seed_value: int = 11) -> None:
        self.family = family
        self.random = random.Random(seed_value)
        self.made: dict[str, tuple[str, datetime]] = {}  # resource name -> (title, start)
        self.steps = itertools.count(1)

    def step(self) -> str:
        number = next(self.steps)
        action = (
            "create" if len(self.made) < 2 else self.random.choice(["create", "move", "delete"])
        )
        if action == "create":
            day = datetime.now(UTC).date() + timedelta(days=self.random.randint(0, 6))
            start = _at(day, self.random.randint(8, 18), 30)
            name = f"live-{number}.ics"
            title = f"Family change {number}"
            self.family.put(name, _ics(title, start, start + timedelta(minutes=45), uid=name))
            self.made[name] = (title, start)
            return f"created {name}"
        name = self.random.choice(sorted(self.made))
        if action == "move":
            title, start = self.made[name]
            start += timedelta(minutes=30 * self.random.choice([-2, -1, 1, 2]))
            self.family.put(name, _ics(title, start, start + timedelta(minutes=45), uid=name))
            self.made[name] = (title, start)
            return f"moved {name}"
        self.family.delete(name)
        del self.made[name]
        return f"deleted {name}"


@contextmanager
def live_changes(family: FamilyCalendar, interval_s: float) -> Iterator[LiveChanges]:
    """Run LiveChanges in a thread until the block ends; the thread is joined on leaving."""
    changes = LiveChanges(family)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            try:
                changes.step()
            except httpx.HTTPError:
                # The server stopping under a change, or a moment's failure: the next one.
                log.warning("a live change to the family calendar failed", exc_info=True)

    thread = threading.Thread(target=run, name="calsync-caldav-live", daemon=True)
    thread.start()
    try:
        yield changes
    finally:
        stop.set()
        thread.join(timeout=10)
