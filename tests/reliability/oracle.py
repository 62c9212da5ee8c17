"""The season's independent oracle: what every target should hold, worked out from what the
providers' own calendars hold now and domain.md's rules, never from calsync's planner or
database; and what the targets do hold, read back the same way."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events  # type: ignore[import-untyped]

from tests.support.drivers.base import Driver
from tests.support.drivers.caldav import CalDAVDriver
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.microsoft import MicrosoftDriver

# The walk's events carry their handle at the head of the title ("e12 Dentist"): the oracle
# knows an instance's invitation answer and free/busy from it, whatever the provider calls them.
HANDLE = re.compile(r"^(u\d+-e\d+)\b")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Instance:
    """One occurrence as a provider's calendar holds it; times in UTC, or dates when all-day."""

    id: str
    title: str
    start: datetime | date
    end: datetime | date
    mark: str | None

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


Span = tuple[str, datetime | date, datetime | date]


@dataclass
class CalendarState:
    """What the walk knows of a calendar: the user's settings for it, as the user set them."""

    name: str
    user: str
    driver: Driver
    provider_id: str
    enabled: bool = False
    role: str = "both"
    busy_title: str = "private"
    include_all_day: bool = False
    exclude: list[str] = field(default_factory=list)
    working_hours: dict[str, Any] | None = None
    time_zone: str | None = None
    merge: bool = False
    # The account is gone (disconnected) or its login refused: not synced, not checked.
    reachable: bool = True

    @property
    def is_source(self) -> bool:
        return self.enabled and self.reachable and self.role in ("source", "both")

    @property
    def is_target(self) -> bool:
        return self.enabled and self.reachable and self.role in ("target", "both")


def utc(value: datetime | date) -> datetime | date:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def read(driver: Driver, calendar_id: str, low: datetime, high: datetime) -> list[Instance]:
    """Every instance of the calendar between ``low`` and ``high``, through the provider's own
    protocol (a fixed range: the drivers' own reads are around the wall clock's today)."""
    if isinstance(driver, MicrosoftDriver):
        marks = driver.marks(calendar_id)
        view = driver._pages(
            f"/me/calendars/{quote(calendar_id, safe='')}/calendarView",
            {
                "startDateTime": low.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endDateTime": high.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "$top": "500",
            },
        )
        out = []
        for item in view:
            all_day = bool(item["isAllDay"])
            start, end = (_graph_time(item[k], all_day) for k in ("start", "end"))
            out.append(Instance(item["id"], item["subject"], start, end, marks.get(item["id"])))
        return out
    if isinstance(driver, CalDAVDriver):
        out = []
        for href, _etag, text in driver.resources(calendar_id):
            cal = icalendar.Calendar.from_ical(text)
            for vevent in recurring_ical_events.of(cal).between(low, high):
                mark = vevent.get("X-CALSYNC-SOURCE")
                out.append(
                    Instance(
                        href.rstrip("/").rsplit("/", 1)[-1],
                        str(vevent.get("SUMMARY", "")),
                        utc(vevent["DTSTART"].dt),
                        utc(vevent["DTEND"].dt),
                        str(mark) if mark is not None else None,
                    )
                )
        return out
    assert isinstance(driver, GoogleDriver)
    items = (
        driver._events(calendar_id)
        .list(
            calendarId=calendar_id,
            singleEvents=True,
            timeMin=low.isoformat(),
            timeMax=high.isoformat(),
            maxResults=2500,
        )
        .execute()["items"]
    )
    return [
        Instance(
            str(item["id"]),
            str(item.get("summary", "")),
            _google_time(item["start"]),
            _google_time(item["end"]),
            ((item.get("extendedProperties") or {}).get("private") or {}).get("calsync_source"),
        )
        for item in items
        if item.get("status") != "cancelled"
    ]


def _google_time(value: dict[str, Any]) -> datetime | date:
    if "dateTime" in value:
        return datetime.fromisoformat(value["dateTime"]).astimezone(UTC)
    return date.fromisoformat(value["date"])


def _graph_time(value: dict[str, Any], all_day: bool) -> datetime | date:
    moment = datetime.fromisoformat(value["dateTime"].rstrip("Z")[:26])
    if all_day:
        return moment.date()
    return moment.replace(tzinfo=ZoneInfo(value.get("timeZone") or "UTC")).astimezone(UTC)


def _instant(value: datetime | date, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), zone).astimezone(UTC)


def _hours_windows(
    start: datetime, end: datetime, hours: dict[str, Any], zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) inside the working hours, each day read on the zone's clock."""
    days = {WEEKDAYS.index(d) for d in hours["days"]}
    h0, m0 = (int(x) for x in hours["start"].split(":"))
    h1, m1 = (int(x) for x in hours["end"].split(":"))
    out = []
    day = start.astimezone(zone).date()
    while day <= end.astimezone(zone).date():
        if day.weekday() in days:
            low = datetime.combine(day, time(h0, m0), zone).astimezone(UTC)
            high = datetime.combine(day, time(h1, m1), zone).astimezone(UTC)
            if max(low, start) < min(high, end):
                out.append((max(low, start), min(high, end)))
        day += timedelta(days=1)
    return out


def _merged(spans: list[Span]) -> list[Span]:
    """Overlapping or touching timed blocks as one (all-day ones stay), titled by their members'
    title when they share one, else Busy (domain.md: Merge)."""
    timed = sorted((s for s in spans if isinstance(s[1], datetime)), key=lambda s: (s[1], s[2]))
    out = [s for s in spans if not isinstance(s[1], datetime)]
    group: list[Span] = []
    for span in timed:
        if group and span[1] <= max(g[2] for g in group):
            group.append(span)
            continue
        if group:
            out.append(_one(group))
        group = [span]
    if group:
        out.append(_one(group))
    return out


def _one(group: list[Span]) -> Span:
    titles = {g[0] for g in group}
    title = titles.pop() if len(titles) == 1 else "Busy"
    return (title, group[0][1], max(g[2] for g in group))


@dataclass(frozen=True, slots=True)
class HandEdit:
    """A block of calsync's the person changed by hand in a target (domain.md: The user edits
    a busy block by hand): "modified" (moved or retitled: it stays as ``span`` while the
    target is one, whatever its source does) or "deleted" (not made again while its source
    would give the block ``span`` it showed)."""

    kind: str
    span: Span
    source: str  # the source calendar's name


@dataclass(frozen=True, slots=True)
class Flags:
    """What the person said about an event when making it."""

    free: bool = False
    declined: bool = False


def expected_blocks(
    target: CalendarState,
    sources: Iterable[tuple[CalendarState, list[Instance]]],
    flags: dict[str, Flags],
    window: tuple[datetime, datetime],
    hand: dict[str, HandEdit] | None = None,
    still_deleted: set[str] | None = None,
) -> list[Span]:
    """The blocks domain.md asks for in ``target``: one per blocking instance of each other
    source of the user inside the window, shaped by the target's rules. ``hand`` (by the
    event's handle) says which of them the person changed by hand there: a modified one is
    left to the caller (it stands as the person made it), a deleted one stays away while its
    source would show the same block again; those handles go in ``still_deleted``. (The walk
    edits blocks by hand only in targets that neither merge nor cut by working hours.)"""
    low, high = window
    spans: list[Span] = []
    zone = ZoneInfo(target.time_zone or "UTC")
    for source, instances in sources:
        if source.name == target.name or source.user != target.user or not source.is_source:
            continue
        for inst in instances:
            if inst.mark is not None:
                continue  # a block is never a source
            found = HANDLE.match(inst.title)
            flag = flags.get(found.group(1), Flags()) if found else Flags()
            if flag.free or flag.declined:
                continue
            if any(word.lower() in inst.title.lower() for word in source.exclude):
                continue
            if inst.all_day and not source.include_all_day:
                continue
            start, end = _instant(inst.start, zone), _instant(inst.end, zone)
            if not (start < high and end > low):
                continue
            title = f"Busy - {inst.title}" if source.busy_title == "title" else "Busy"
            edit = (hand or {}).get(found.group(1)) if found else None
            if edit is not None and found is not None:
                if edit.kind == "modified":
                    continue
                if edit.span == (title, inst.start, inst.end):
                    if still_deleted is not None:
                        still_deleted.add(found.group(1))
                    continue
            if target.working_hours and not inst.all_day:
                assert isinstance(inst.start, datetime)
                assert isinstance(inst.end, datetime)
                spans += [
                    (title, a, b)
                    for a, b in _hours_windows(inst.start, inst.end, target.working_hours, zone)
                ]
            else:
                spans.append((title, inst.start, inst.end))
    return _merged(spans) if target.merge else spans


def compare(
    expected: list[Span], held: list[Instance], now: datetime, horizon: datetime
) -> tuple[Counter[Span], Counter[Span]]:
    """(missing, extra) blocks among those ending after ``now``; a band of a day either side
    of the horizon is left out (the user's zone decides on which day the window ends)."""

    def kept(span: Span) -> bool:
        zone = ZoneInfo("UTC")
        start, end = _instant(span[1], zone), _instant(span[2], zone)
        return end > now and not (
            horizon - timedelta(days=1) <= start < horizon + timedelta(days=1)
        )

    want = Counter(s for s in expected if kept(s))
    have = Counter(s for s in ((b.title, b.start, b.end) for b in held if b.mark) if kept(s))
    return want - have, have - want
