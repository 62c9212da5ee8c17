"""Small builders of calendars and Google event resources for the planner's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from calsync_server.sync.events import EventSnapshot
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
        event=EventSnapshot.from_google(resource, calendar_time_zone),
        is_deleted=is_deleted,
    )
