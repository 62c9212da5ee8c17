"""Graph's `patternedRecurrence` (pattern + range) checked and expanded into occurrence starts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule

from calsync_server.emulators.microsoft import errors

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
PATTERNS = (
    "daily",
    "weekly",
    "absoluteMonthly",
    "relativeMonthly",
    "absoluteYearly",
    "relativeYearly",
)
RANGES = ("endDate", "noEnd", "numbered")


def _int(value: Any, name: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise errors.bad_request(f"Invalid recurrence: '{name}' must be a number.")
    return value


def _date(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise errors.bad_request(f"Invalid recurrence: '{name}' must be a date.") from None


def normalise(recurrence: Any, first_day: date) -> dict[str, Any]:
    """The recurrence as Graph stores and returns it, with every field present; 400 when it
    is not one Graph accepts."""
    if not isinstance(recurrence, dict):
        raise errors.bad_request("Invalid recurrence.")
    pattern = recurrence.get("pattern")
    span = recurrence.get("range")
    if not isinstance(pattern, dict) or not isinstance(span, dict):
        raise errors.bad_request("Invalid recurrence: 'pattern' and 'range' are required.")
    kind = pattern.get("type")
    if kind not in PATTERNS:
        raise errors.bad_request(f"Invalid recurrence pattern type '{kind}'.")
    days = pattern.get("daysOfWeek") or []
    if not isinstance(days, list) or any(d not in DAYS for d in days):
        raise errors.bad_request("Invalid recurrence: 'daysOfWeek'.")
    if kind in ("weekly", "relativeMonthly", "relativeYearly") and not days:
        raise errors.bad_request(f"Invalid recurrence: a {kind} pattern needs 'daysOfWeek'.")
    interval = _int(pattern.get("interval"), "interval", 1)
    if interval < 1:
        raise errors.bad_request("Invalid recurrence: 'interval' must be at least 1.")
    range_type = span.get("type")
    if range_type not in RANGES:
        raise errors.bad_request(f"Invalid recurrence range type '{range_type}'.")
    start_date = _date(span.get("startDate") or first_day.isoformat(), "startDate")
    end_date = "0001-01-01"
    if range_type == "endDate":
        end_date = _date(span.get("endDate"), "endDate").isoformat()
    count = _int(span.get("numberOfOccurrences"), "numberOfOccurrences", 0)
    if range_type == "numbered" and count < 1:
        raise errors.bad_request("Invalid recurrence: 'numberOfOccurrences' must be positive.")
    return {
        "pattern": {
            "type": kind,
            "interval": interval,
            "month": _int(pattern.get("month"), "month", 0),
            "dayOfMonth": _int(pattern.get("dayOfMonth"), "dayOfMonth", 0),
            "daysOfWeek": days,
            "firstDayOfWeek": pattern.get("firstDayOfWeek") or "sunday",
            "index": pattern.get("index") or "first",
        },
        "range": {
            "type": range_type,
            "startDate": start_date.isoformat(),
            "endDate": end_date,
            "recurrenceTimeZone": span.get("recurrenceTimeZone") or "",
            "numberOfOccurrences": count if range_type == "numbered" else 0,
        },
    }


def _rule(recurrence: dict[str, Any], start: datetime) -> rrule.rrule:
    pattern, span = recurrence["pattern"], recurrence["range"]
    kind = pattern["type"]
    weekdays = [rrule.weekdays[DAYS.index(d)] for d in pattern["daysOfWeek"]]
    options: dict[str, Any] = {
        "interval": pattern["interval"],
        "wkst": DAYS.index(pattern["firstDayOfWeek"]),
    }
    if kind == "daily":
        freq = rrule.DAILY
    elif kind == "weekly":
        freq = rrule.WEEKLY
        options["byweekday"] = weekdays
    elif kind == "absoluteMonthly":
        freq = rrule.MONTHLY
        options["bymonthday"] = pattern["dayOfMonth"] or start.day
    elif kind == "relativeMonthly":
        freq = rrule.MONTHLY
        options.update(byweekday=weekdays, bysetpos=INDEXES.get(pattern["index"], 1))
    elif kind == "absoluteYearly":
        freq = rrule.YEARLY
        options.update(
            bymonth=pattern["month"] or start.month,
            bymonthday=pattern["dayOfMonth"] or start.day,
        )
    else:
        freq = rrule.YEARLY
        options.update(
            bymonth=pattern["month"] or start.month,
            byweekday=weekdays,
            bysetpos=INDEXES.get(pattern["index"], 1),
        )
    if span["type"] == "numbered":
        options["count"] = span["numberOfOccurrences"]
    elif span["type"] == "endDate":
        options["until"] = datetime.combine(date.fromisoformat(span["endDate"]), time(23, 59, 59))
    options["freq"] = freq
    return rrule.rrule(dtstart=start, **options)


def occurrence_starts(
    recurrence: dict[str, Any], first_start: datetime, zone: ZoneInfo, limit: int
) -> Iterator[datetime]:
    """Aware starts of the series' occurrences, in order: the pattern runs on wall-clock time
    in the series' zone (a 9:30 meeting stays at 9:30 across a DST change)."""
    local = first_start.astimezone(zone).replace(tzinfo=None)
    begin = datetime.combine(date.fromisoformat(recurrence["range"]["startDate"]), local.time())
    for index, naive in enumerate(_rule(recurrence, begin)):
        if index >= limit:
            return
        yield naive.replace(tzinfo=zone)
