"""Small builders of calendars and events for the planner's tests: events are written as
Google resources (readable) and read through Google's mapping into calsync's types."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from calsync_server.providers.google import mapping
from calsync_server.providers.model import EventTime, RemoteEvent
from calsync_server.sync import stored
from calsync_server.sync.planner import CalendarView, SourceEvent
from shared.domain import BusyTitle, CalendarRole

NOW = datetime(2024, 6, 10, 8, 0, tzinfo=UTC)


def calendar(
    calendar_id: int,
    *,
    user_id: int = 1,
    sync_enabled: bool = True,
    role: CalendarRole = CalendarRole.BOTH,
    busy_title: BusyTitle = BusyTitle.PRIVATE,
    include_all_day: bool = False,
    read_only: bool = False,
    account_active: bool = True,
    keep_blocks_when_off: bool = False,
    provider_calendar_id: str | None = None,
) -> CalendarView:
    return CalendarView(
        id=calendar_id,
        user_id=user_id,
        provider_calendar_id=provider_calendar_id or f"calendar-{calendar_id}@example.com",
        sync_enabled=sync_enabled,
        role=role,
        busy_title=busy_title,
        include_all_day=include_all_day,
        read_only=read_only,
        account_active=account_active,
        keep_blocks_when_off=keep_blocks_when_off,
    )


def timed(
    event_id: str, start: str, end: str, time_zone: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A timed Google event resource; ``start``/``end`` are RFC 3339 ``dateTime`` strings."""
    start_object: dict[str, Any] = {"dateTime": start}
    end_object: dict[str, Any] = {"dateTime": end}
    if time_zone is not None:
        start_object["timeZone"] = time_zone
        end_object["timeZone"] = time_zone
    return {
        "id": event_id,
        "summary": "Standup",
        "start": start_object,
        "end": end_object,
        **fields,
    }


def all_day(event_id: str, start: str, end: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "summary": "Holiday",
        "start": {"date": start},
        "end": {"date": end},
        **fields,
    }


def source_event(
    calendar_id: int,
    resource: dict[str, Any],
    *,
    calendar_time_zone: str = "UTC",
    is_deleted: bool = False,
) -> SourceEvent:
    return SourceEvent(
        calendar_id=calendar_id,
        event=remote(resource, calendar_time_zone),
        is_deleted=is_deleted,
        time_zone=calendar_time_zone,
    )


def remote(resource: dict[str, Any], calendar_time_zone: str = "UTC") -> RemoteEvent:
    """A Google resource in calsync's words; a cancelled one stays an event marked cancelled
    (one that is only an id gets times that block nothing)."""
    found = mapping.remote_event({**resource, "status": "confirmed"})
    if found is None:
        moment = EventTime.at(datetime(1970, 1, 1, tzinfo=UTC))
        found = RemoteEvent(id=str(resource["id"]), start=moment, end=moment)
    # Local wall-clock times without a zone float with the calendar, as the rows read them.
    start = when(resource.get("start"), calendar_time_zone) or found.start
    end = when(resource.get("end"), calendar_time_zone) or found.end
    return dataclasses.replace(
        found, start=start, end=end, cancelled=resource.get("status") == "cancelled"
    )


def google_ids(target_calendar_id: int, digest: str) -> str | None:
    """The block identity every planner test uses: Google's (client-chosen ids)."""
    return mapping.block_id(digest)


GOOGLE_TIME_KEYS = {"date": "day", "dateTime": "instant", "timeZone": "zone"}


def when(value: Any, zone: str = "UTC") -> EventTime | None:
    """A start/end written as Google's object, read as the rows read theirs (a wall-clock time
    without a zone floats with the calendar), as calsync's time."""
    if isinstance(value, dict):
        value = {GOOGLE_TIME_KEYS.get(key, key): item for key, item in value.items()}
    return stored.decode_time(value, zone)
