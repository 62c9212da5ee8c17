"""iCalendar <-> calsync's types: one resource expanded into its instances, and a block's text.

A CalDAV resource holds one series: a master (RRULE, RDATE, EXDATE) and its overrides
(RECURRENCE-ID), or one single event. calsync expands it within the window with
recurring-ical-events; an instance's id is the resource's name, plus the instant it recurs at
for a recurring one, so an override moved to another time keeps its id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events  # type: ignore[import-untyped]

from calsync_server.providers.model import (
    BlockContent,
    EventTime,
    RemoteEvent,
    Response,
)

MARK = "X-CALSYNC-SOURCE"
PRODID = "-//calsync//calsync busy blocks//EN"

_PARTSTAT = {
    "NEEDS-ACTION": Response.NEEDS_ACTION,
    "TENTATIVE": Response.TENTATIVE,
    "ACCEPTED": Response.ACCEPTED,
    "DECLINED": Response.DECLINED,
    "DELEGATED": Response.DECLINED,  # handed to someone else: not the owner's time
}


class BadResource(ValueError):
    """A resource calsync cannot read as iCalendar."""


def parse(text: str | bytes) -> icalendar.Calendar:
    try:
        cal = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise BadResource(str(exc)) from exc
    if not isinstance(cal, icalendar.Calendar):
        raise BadResource("not a VCALENDAR")
    return cal


def is_recurring(cal: icalendar.Calendar) -> bool:
    events = list(cal.walk("VEVENT"))
    return len(events) > 1 or any(
        "RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e for e in events
    )


def expand(
    cal: icalendar.Calendar,
    *,
    key: str,
    version: str | None,
    window: tuple[datetime, datetime],
    own: frozenset[str],
    calendar_zone: str | None = None,
) -> list[RemoteEvent]:
    """Every instance of the resource ``key`` that overlaps the window, in calsync's words."""
    recurring = is_recurring(cal)
    start, end = window
    try:
        occurrences: Iterable[Any] = recurring_ical_events.of(cal, components=["VEVENT"]).between(
            start, end
        )
    except Exception as exc:  # the library raises its own errors for broken rules
        raise BadResource(f"{key}: {exc}") from exc
    events = [
        to_event(
            component,
            key=key,
            recurring=recurring,
            version=version,
            own=own,
            calendar_zone=calendar_zone,
        )
        for component in occurrences
    ]
    events.sort(key=lambda e: (e.start.to_utc(calendar_zone or "UTC"), e.id))
    return events


def to_event(
    component: Any,
    *,
    key: str,
    recurring: bool,
    version: str | None,
    own: frozenset[str],
    calendar_zone: str | None = None,
) -> RemoteEvent:
    start = event_time(component["DTSTART"], calendar_zone)
    end = _end(component, start, calendar_zone)
    instance = key
    if recurring:
        rid = component.get("RECURRENCE-ID") or component["DTSTART"]
        instance = f"{key}#{_instant_id(rid.dt)}"
    attendees: list[str] = []
    response = Response.NONE
    for attendee in _as_list(component.get("ATTENDEE")):
        address = str(attendee).removeprefix("mailto:").removeprefix("MAILTO:").lower()
        attendees.append(address)
        if address in own:
            partstat = str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
            response = _PARTSTAT.get(partstat, Response.NEEDS_ACTION)
    mark = component.get(MARK)
    updated = component.get("LAST-MODIFIED") or component.get("DTSTAMP")
    updated_at = updated.dt if updated is not None and isinstance(updated.dt, datetime) else None
    return RemoteEvent(
        id=instance,
        series_id=key,
        start=start,
        end=end,
        title=str(component.get("SUMMARY", "")),
        version=version,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
        busy=str(component.get("TRANSP", "OPAQUE")).upper() != "TRANSPARENT",
        response=response,
        attendees=tuple(attendees),
        block_source=_mark_text(mark) if mark is not None else None,
        updated=_aware(updated_at, None) if updated_at is not None else None,
    )


def event_time(prop: Any, calendar_zone: str | None = None) -> EventTime:
    value = prop.dt
    if not isinstance(value, datetime):
        return EventTime.on(value)
    tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
    return EventTime.at(_aware(value, calendar_zone), _zone_name(value, tzid))


def _end(component: Any, start: EventTime, calendar_zone: str | None) -> EventTime:
    if "DTEND" in component:
        return event_time(component["DTEND"], calendar_zone)
    duration = component.get("DURATION")
    if start.day is not None:
        days = duration.dt.days if duration is not None else 1
        return EventTime.on(start.day + timedelta(days=max(days, 1)))
    assert start.instant is not None
    return EventTime.at(start.instant + (duration.dt if duration else timedelta()), start.zone)


def _aware(value: datetime, calendar_zone: str | None) -> datetime:
    if value.tzinfo is not None:
        return value
    # A floating time is the calendar's wall clock.
    return value.replace(tzinfo=_zone(calendar_zone) or UTC)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _zone_name(value: datetime, tzid: Any) -> str | None:
    """The IANA name of the zone the event was written in, when there is one."""
    if tzid and _zone(str(tzid)) is not None:
        return str(tzid)
    key = getattr(value.tzinfo, "key", None)
    if isinstance(key, str) and _zone(key) is not None:
        return key
    if (
        value.tzinfo is not None
        and value.utcoffset() == timedelta(0)
        and str(value.tzinfo).upper() in ("UTC", "Z")
    ):
        return "UTC"
    return None


def _mark_text(value: Any) -> str:
    """The mark's value: icalendar leaves an X- property's text escaped (vUnknown)."""
    if isinstance(value, list):  # a repeated mark: the first one counts
        value = value[0]
    if isinstance(value, icalendar.vText):
        return str(value)
    raw = value.to_ical().decode() if hasattr(value, "to_ical") else str(value)
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _instant_id(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return _aware(value, None).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# -- blocks ------------------------------------------------------------------------------------


def block_uid(digest: str) -> str:
    return f"{digest}@calsync"


def block_name(digest: str) -> str:
    """A block's resource name in its calendar (its id): pure, so the planner can know it."""
    return f"{digest}.ics"


def block_text(digest: str, content: BlockContent, *, stamp: datetime) -> str:
    """A busy block as calsync writes it: UTC times (VALUE=DATE all-day, end exclusive), always
    a DTEND, private and opaque, marked with its source key; no organizer, attendees or alarms,
    so nobody is notified because of it."""
    event = icalendar.Event()
    event.add("UID", block_uid(digest))
    event.add("DTSTAMP", stamp.astimezone(UTC))
    event.add("DTSTART", _block_time(content.start))
    event.add("DTEND", _block_time(content.end))
    event.add("SUMMARY", content.title)
    event.add("CLASS", "PRIVATE")
    event.add("TRANSP", "OPAQUE")
    # As TEXT, escaped: servers re-serialise unknown properties and would cut at a comma.
    event.add(MARK, icalendar.vText(content.source_key))
    cal = icalendar.Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", PRODID)
    cal.add_component(event)
    return str(cal.to_ical().decode())


def _block_time(value: EventTime) -> date | datetime:
    if value.day is not None:
        return value.day
    assert value.instant is not None
    return value.instant.astimezone(UTC)


def block_event(
    text: str | bytes, *, key: str, version: str | None, own: frozenset[str] = frozenset()
) -> RemoteEvent:
    """The block (or whatever sits at a block's href) as calsync reads it back."""
    cal = parse(text)
    for component in cal.walk("VEVENT"):
        return to_event(component, key=key, recurring=False, version=version, own=own)
    raise BadResource(f"{key} holds no VEVENT")
