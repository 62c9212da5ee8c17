"""Provider events as immutable snapshots: Google's event resource parsed into what sync needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

# calsync's mark in extendedProperties.private (domain.md: how calsync recognises its own events).
BUSY_BLOCK_MARK_KEY = "calsync"
BUSY_BLOCK_MARK = "busy-block"
SOURCE_KEY_PROPERTY = "calsync_source"

# Only these keys of a Google start/end object say when an event is; anything else is dropped.
TIME_KEYS = ("date", "dateTime", "timeZone")


def time_object(value: Any) -> dict[str, Any] | None:
    """Google's start/end object reduced to its time keys, or None when absent or malformed."""
    if not isinstance(value, Mapping):
        return None
    kept = {key: value[key] for key in TIME_KEYS if value.get(key) is not None}
    if "date" not in kept and "dateTime" not in kept:
        return None
    return kept


def is_all_day(value: Mapping[str, Any] | None) -> bool:
    return value is not None and "date" in value and "dateTime" not in value


def instant_of(value: Mapping[str, Any] | None, default_time_zone: str) -> datetime | None:
    """The aware UTC instant a start/end object stands for.

    An offset in ``dateTime`` wins (Google's rule); a local ``dateTime`` is read in its
    ``timeZone``, else in ``default_time_zone`` (the calendar's). An all-day ``date`` means
    midnight in ``default_time_zone``, because all-day events float with their calendar.
    """
    if value is None:
        return None
    if "dateTime" in value:
        moment = datetime.fromisoformat(str(value["dateTime"]))
        if moment.tzinfo is None:
            zone = str(value.get("timeZone") or default_time_zone)
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        return moment.astimezone(UTC)
    if "date" in value:
        day = date.fromisoformat(str(value["date"]))
        return datetime.combine(day, time(0), ZoneInfo(default_time_zone)).astimezone(UTC)
    return None


def shows_same_time(
    actual: Mapping[str, Any] | None,
    wanted: Mapping[str, Any] | None,
    default_time_zone: str = "UTC",
) -> bool:
    """Whether a block's start/end (``actual``) shows the time calsync wants (``wanted``).

    Compared as instants, not strings: Google rewrites ``dateTime`` into the calendar's offset.
    A time zone calsync asked for must be kept; one the provider added on its own is ignored.
    """
    if actual is None or wanted is None:
        return actual is None and wanted is None
    if is_all_day(actual) or is_all_day(wanted):
        return is_all_day(actual) and is_all_day(wanted) and actual["date"] == wanted["date"]
    wanted_zone = wanted.get("timeZone")
    if wanted_zone is not None and actual.get("timeZone") != wanted_zone:
        return False
    return instant_of(actual, default_time_zone) == instant_of(wanted, default_time_zone)


def _parse_rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _private_properties(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    extended = resource.get("extendedProperties")
    if not isinstance(extended, Mapping):
        return {}
    private = extended.get("private")
    return private if isinstance(private, Mapping) else {}


def _self_response_status(resource: Mapping[str, Any]) -> str | None:
    for attendee in resource.get("attendees") or ():
        if isinstance(attendee, Mapping) and attendee.get("self") is True:
            status = attendee.get("responseStatus")
            return str(status) if status is not None else None
    return None


@dataclass(frozen=True, slots=True)
class EventSnapshot:
    """One event instance as the provider last showed it; field names follow the event table."""

    provider_event_id: str
    recurring_event_id: str | None
    etag: str | None
    status: str
    summary: str | None
    # Google's own start/end objects, kept so a block copies the time zone and all-day-ness.
    start: dict[str, Any] | None
    end: dict[str, Any] | None
    start_at: datetime | None
    end_at: datetime | None
    all_day: bool
    transparency: str
    event_type: str
    self_response_status: str | None
    is_busy_block: bool
    block_source_key: str | None
    updated: datetime | None

    @classmethod
    def from_google(cls, resource: Mapping[str, Any], calendar_time_zone: str) -> EventSnapshot:
        """Parse an events.list/get item; cancelled items may carry little more than ``id``."""
        event_id = resource.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise ValueError("a Google event resource needs an id")
        start = time_object(resource.get("start"))
        end = time_object(resource.get("end"))
        private = _private_properties(resource)
        source_key = private.get(SOURCE_KEY_PROPERTY)
        recurring_event_id = resource.get("recurringEventId")
        etag = resource.get("etag")
        summary = resource.get("summary")
        return cls(
            provider_event_id=event_id,
            recurring_event_id=str(recurring_event_id) if recurring_event_id else None,
            etag=str(etag) if etag is not None else None,
            status=str(resource.get("status") or "confirmed"),
            summary=str(summary) if summary is not None else None,
            start=start,
            end=end,
            start_at=instant_of(start, calendar_time_zone),
            end_at=instant_of(end, calendar_time_zone),
            all_day=is_all_day(start),
            transparency=str(resource.get("transparency") or "opaque"),
            event_type=str(resource.get("eventType") or "default"),
            self_response_status=_self_response_status(resource),
            is_busy_block=private.get(BUSY_BLOCK_MARK_KEY) == BUSY_BLOCK_MARK,
            block_source_key=str(source_key) if source_key is not None else None,
            updated=_parse_rfc3339(resource.get("updated")),
        )
