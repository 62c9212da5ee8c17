"""Google's event JSON <-> calsync's own types (domain.md's table, the Google column).

Pure: no I/O. Past this module nothing reads `dateTime`, `transparency` or
`extendedProperties`; a status code is turned into an ErrorKind here too.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync_server.providers.google.wire import ProviderCalendar as GoogleCalendar
from calsync_server.providers.google.wire import (
    ProviderError as GoogleError,
)
from calsync_server.providers.google.wire import (
    ReauthRequired,
    SyncTokenExpired,
)
from calsync_server.providers.model import (
    BlockContent,
    ErrorKind,
    EventKind,
    EventTime,
    ProviderCalendar,
    ProviderError,
    RemoteEvent,
    Response,
)

# calsync's mark in extendedProperties.private: how calsync knows its own events in Google.
MARK_KEY = "calsync"
MARK = "busy-block"
SOURCE_PROPERTY = "calsync_source"

_KINDS = {
    "outOfOffice": EventKind.OUT_OF_OFFICE,
    "focusTime": EventKind.FOCUS_TIME,
    "workingLocation": EventKind.WORKING_ELSEWHERE,
    "birthday": EventKind.BIRTHDAY,
}
_RESPONSES = {
    "needsAction": Response.NEEDS_ACTION,
    "tentative": Response.TENTATIVE,
    "accepted": Response.ACCEPTED,
    "declined": Response.DECLINED,
}


def block_id(digest: str) -> str:
    """A block's Google event id: its identity digest (hex) in base32hex, lower case.

    Byte for byte the ids calsync always gave blocks (20 bytes: no padding), so existing
    users' blocks keep theirs.
    """
    return base64.b32hexencode(bytes.fromhex(digest)).decode("ascii").lower()


def event_time(value: Any) -> EventTime | None:
    """Google's start/end object, or None when absent or malformed."""
    if not isinstance(value, Mapping):
        return None
    zone = value.get("timeZone")
    zone = str(zone) if zone else None
    try:
        if value.get("dateTime"):
            moment = datetime.fromisoformat(str(value["dateTime"]))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(zone or "UTC"))
            return EventTime.at(moment, zone)
        if value.get("date"):
            return EventTime.on(date.fromisoformat(str(value["date"])))
    except (ValueError, ZoneInfoNotFoundError):
        return None
    return None


def time_object(moment: EventTime) -> dict[str, str]:
    """calsync's time as Google's start/end object: the instant shown in its zone."""
    if moment.day is not None:
        return {"date": moment.day.isoformat()}
    assert moment.instant is not None
    zone = moment.zone
    try:
        shown = moment.instant.astimezone(ZoneInfo(zone)) if zone else moment.instant
    except (ValueError, ZoneInfoNotFoundError):
        shown, zone = moment.instant.astimezone(UTC), None
    # RFC 3339 as Google writes it: UTC as "Z" (a block copies its source's text as before).
    answer = {"dateTime": _rfc3339(shown)}
    if zone:
        answer["timeZone"] = zone
    return answer


def _rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def remote_event(item: Mapping[str, Any]) -> RemoteEvent | None:
    """One event (instance) of Google's feed, or None when it cannot stand as an event: a
    cancelled item carries little more than its id (the caller counts it as removed)."""
    start, end = event_time(item.get("start")), event_time(item.get("end"))
    if start is None or end is None or item.get("status") == "cancelled":
        return None
    private = (item.get("extendedProperties") or {}).get("private") or {}
    marked = isinstance(private, Mapping) and private.get(MARK_KEY) == MARK
    attendees = [a for a in item.get("attendees") or [] if isinstance(a, Mapping)]
    own = next((a for a in attendees if a.get("self")), None)
    updated = item.get("updated")
    return RemoteEvent(
        id=str(item["id"]),
        start=start,
        end=end,
        title=str(item.get("summary") or ""),
        series_id=item.get("recurringEventId"),
        version=item.get("etag"),
        busy=item.get("transparency") != "transparent",
        kind=_KINDS.get(str(item.get("eventType") or ""), EventKind.DEFAULT),
        response=_RESPONSES.get(str(own.get("responseStatus")), Response.NONE)
        if own
        else Response.NONE,
        attendees=tuple(str(a["email"]) for a in attendees if a.get("email")),
        block_source=str(private.get(SOURCE_PROPERTY) or "") if marked else None,
        updated=_instant(updated) if isinstance(updated, str) else None,
    )


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def block_body(content: BlockContent, event_id: str | None = None) -> dict[str, Any]:
    """Every field calsync owns on a block: private, opaque, no reminders, no attendees, marked.

    ``status: confirmed`` brings back a block the user deleted when a create meets 409.
    """
    body: dict[str, Any] = {
        "summary": content.title,
        "start": time_object(content.start),
        "end": time_object(content.end),
        "transparency": "opaque",
        "visibility": "private",
        "status": "confirmed",
        "reminders": {"useDefault": False, "overrides": []},
        "attendees": [],
        "extendedProperties": {
            "private": {MARK_KEY: MARK, SOURCE_PROPERTY: content.source_key},
        },
    }
    if event_id is not None:
        body["id"] = event_id
    return body


def calendar(listed: GoogleCalendar) -> ProviderCalendar:
    return ProviderCalendar(
        id=listed.provider_calendar_id,
        name=listed.name,
        time_zone=listed.time_zone,
        color=listed.color,
        writable=listed.writable,
        primary=listed.primary,
        access_role=listed.access_role,
    )


def error(failure: GoogleError) -> ProviderError:
    """Google's failure in calsync's words (domain.md "Provider failures")."""
    detail = str(failure)
    if isinstance(failure, SyncTokenExpired):
        kind = ErrorKind.CURSOR_EXPIRED
    elif isinstance(failure, ReauthRequired) or failure.status == 401:
        kind = ErrorKind.AUTH
    elif failure.transient:
        kind = ErrorKind.TRANSIENT
    elif failure.gone:
        kind = ErrorKind.GONE
    elif failure.status == 409:
        kind = ErrorKind.EXISTS
    elif failure.status == 412:
        kind = ErrorKind.STALE
    elif failure.forbidden:
        kind = ErrorKind.FORBIDDEN
    else:
        kind = ErrorKind.INVALID
    return ProviderError(kind, detail)
