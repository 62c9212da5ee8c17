"""Graph's words into calsync's and back: events, blocks, calendars and failures.

Nothing past this module reads a Graph field name or a status code.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync_server.providers.microsoft.wire import DateTimeTimeZone, GraphCalendar, GraphEvent
from calsync_server.providers.model import (
    BlockContent,
    ErrorKind,
    EventKind,
    EventTime,
    ProviderCalendar,
    RemoteEvent,
    Response,
)

# calsync's own property namespace: a fixed GUID, so every calsync install marks alike and
# a block written by one server is recognised by another.
CALSYNC_GUID = "{6c0c9a51-3b1e-4d55-9f0e-ca15c0de0017}"
MARK_ID = f"String {CALSYNC_GUID} Name calsync_source"

RESPONSES = {
    "none": Response.NONE,
    "organizer": Response.NONE,
    "accepted": Response.ACCEPTED,
    "tentativelyAccepted": Response.TENTATIVE,
    "notResponded": Response.NEEDS_ACTION,
    "declined": Response.DECLINED,
}
KINDS = {"workingElsewhere": EventKind.WORKING_ELSEWHERE, "oof": EventKind.OUT_OF_OFFICE}
UTC_NAMES = frozenset({"", "utc", "etc/utc", "coordinated universal time", "tzone://microsoft/utc"})
# An expired or unknown delta cursor, in Graph's words (410 says it too).
CURSOR_CODES = frozenset({"syncstatenotfound", "invaliddeltatoken", "resyncrequired"})
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def _zone(name: str | None) -> ZoneInfo | None:
    """An IANA zone by name; None for UTC and for names zoneinfo does not know (Windows
    names): Graph answers in UTC because calsync asks it to, so these are rare."""
    if name is None or name.strip().lower() in UTC_NAMES:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local(text: str) -> datetime:
    # Graph writes seven fractional digits; Python reads at most six.
    head, dot, fraction = text.partition(".")
    return datetime.fromisoformat(f"{head}.{fraction[:6]}" if dot else head)


def parse_instant(value: DateTimeTimeZone) -> datetime:
    """An aware instant from Graph's {dateTime, timeZone}."""
    local = _local(value.dateTime)
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    zone = _zone(value.timeZone)
    return local.replace(tzinfo=zone or UTC).astimezone(UTC)


def parse_stamp(value: str | None) -> datetime | None:
    """Graph's timestamps (`lastModifiedDateTime`): UTC, seven fractional digits, a Z."""
    if not value:
        return None
    try:
        moment = _local(value[:-1] if value.endswith("Z") else value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _event_time(value: DateTimeTimeZone, all_day: bool, zone: str | None) -> EventTime:
    if all_day:
        return EventTime.on(_local(value.dateTime).date())
    return EventTime.at(parse_instant(value), zone)


def mark_of(event: GraphEvent) -> str | None:
    """calsync's source key in the event's mark, when it carries one."""
    for prop in event.singleValueExtendedProperties or ():
        if prop.id.strip().lower() == MARK_ID.lower():
            return prop.value
    return None


def version_of(event: GraphEvent) -> str | None:
    """The event's etag (`W/"<changeKey>"`): what If-Match takes, and what changes on every
    write."""
    if event.etag:
        return event.etag
    return f'W/"{event.changeKey}"' if event.changeKey else None


def to_remote_event(event: GraphEvent, *, block_source: str | None = None) -> RemoteEvent:
    """A Graph event (or occurrence) in calsync's words; ``block_source`` stands in for the
    mark where Graph did not send it (a block calsync just wrote)."""
    if event.start is None or event.end is None:
        raise ValueError(f"the event {event.id} has no start or end")
    zone = event.originalStartTimeZone
    show_as = event.showAs or "busy"
    mark = mark_of(event)
    response = RESPONSES.get(
        (event.responseStatus.response if event.responseStatus else None) or "none", Response.NONE
    )
    return RemoteEvent(
        id=event.id,
        start=_event_time(event.start, event.isAllDay, zone),
        end=_event_time(event.end, event.isAllDay, zone),
        title=event.subject or "",
        series_id=event.seriesMasterId,
        version=version_of(event),
        cancelled=event.isCancelled,
        busy=show_as != "free",
        kind=KINDS.get(show_as, EventKind.DEFAULT),
        response=response,
        attendees=tuple(
            a.emailAddress.address.lower()
            for a in event.attendees
            if a.emailAddress is not None and a.emailAddress.address
        ),
        block_source=mark or block_source,
        updated=parse_stamp(event.lastModifiedDateTime),
        # Delta items never carry the mark; one with a transactionId may be calsync's block.
        maybe_block=bool(event.transactionId) and not (mark or block_source),
    )


def to_calendar(calendar: GraphCalendar) -> ProviderCalendar:
    # Graph calendars carry no zone of their own (the mailbox's settings do).
    return ProviderCalendar(
        id=calendar.id,
        name=calendar.name,
        time_zone=None,
        color=calendar.hexColor or calendar.color,
        writable=calendar.canEdit,
        primary=calendar.isDefaultCalendar,
    )


def transaction_id(digest: str) -> str:
    """Graph's transactionId for a block's digest: a GUID derived from it.

    Graph takes any string, but documents and shows GUIDs; a GUID keeps whatever length or
    alphabet the digest has out of an undocumented limit, and the same digest always gives
    the same GUID, so a repeated create is deduplicated.
    """
    try:
        return str(uuid.UUID(digest))
    except ValueError:
        return str(uuid.UUID(bytes=hashlib.sha256(digest.encode()).digest()[:16]))


def _graph_time(time: EventTime) -> dict[str, str]:
    if time.day is not None:
        return {"dateTime": _day_text(time.day), "timeZone": "UTC"}
    assert time.instant is not None
    zone = _zone(time.zone)
    if zone is not None and time.zone is not None:
        # In the source's zone, so the block reads as the source does.
        local = time.instant.astimezone(zone).replace(tzinfo=None)
        return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": time.zone}
    moment = time.instant.astimezone(UTC).replace(tzinfo=None)
    return {"dateTime": moment.isoformat(timespec="seconds"), "timeZone": "UTC"}


def _day_text(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def block_body(content: BlockContent, *, digest: str | None = None) -> dict[str, Any]:
    """A busy block as Graph takes it: private, busy, no reminder, never any attendee (Graph
    cannot create one without mailing them), marked with calsync's extended property."""
    body: dict[str, Any] = {
        "subject": content.title,
        "body": {"contentType": "text", "content": ""},
        "start": _graph_time(content.start),
        "end": _graph_time(content.end),
        "isAllDay": content.start.all_day,
        "showAs": "busy",
        "sensitivity": "private",
        "isReminderOn": False,
        "singleValueExtendedProperties": [{"id": MARK_ID, "value": content.source_key}],
    }
    if digest is not None:
        body["transactionId"] = transaction_id(digest)
    return body


def error_kind(status: int, code: str, *, reading_delta: bool = False) -> ErrorKind:
    """What a Graph failure means to calsync."""
    lowered = code.lower()
    if reading_delta and (status == 410 or lowered in CURSOR_CODES):
        return ErrorKind.CURSOR_EXPIRED
    if status in TRANSIENT_STATUSES or status == 0:
        return ErrorKind.TRANSIENT
    if status == 401:
        return ErrorKind.AUTH
    if status == 403:
        return ErrorKind.FORBIDDEN
    if status in (404, 410):
        return ErrorKind.GONE
    if status in (409, 412):
        return ErrorKind.STALE
    return ErrorKind.INVALID
