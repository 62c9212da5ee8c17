"""Event times and recurrence: parse start/end, expand RRULEs into bounded instances."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rruleset, rrulestr

from calsync_server.emulators.google import errors


def zone(name: str | None, fallback: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise errors.invalid(f"Invalid time zone definition for start time: {name}") from exc


def parse_rfc3339(value: str, location: str) -> datetime:
    """An RFC 3339 instant with offset, as timeMin/timeMax must be."""
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:
        raise errors.bad_request() from exc
    if parsed.tzinfo is None:
        raise errors.bad_request()
    del location
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class EventTime:
    """One side (start or end) of an event, resolved: an instant, and how it was written."""

    instant: datetime  # timezone-aware, UTC
    all_day: bool
    tz: ZoneInfo


def parse_event_time(value: Any, calendar_tz: str, side: str) -> EventTime:
    if not isinstance(value, dict):
        raise errors.required(f"Missing {side} time.")
    if value.get("date"):
        try:
            day = date.fromisoformat(str(value["date"]))
        except ValueError as exc:
            raise errors.invalid(f"Invalid {side} time.") from exc
        # Google places all-day events in the calendar's time zone.
        tz = zone(None, calendar_tz)
        return EventTime(
            datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC), True, tz
        )
    if value.get("dateTime"):
        tz = zone(value.get("timeZone"), calendar_tz)
        try:
            parsed = datetime.fromisoformat(str(value["dateTime"]).replace("z", "Z"))
        except ValueError as exc:
            raise errors.invalid(f"Invalid {side} time.") from exc
        if parsed.tzinfo is None:
            if not value.get("timeZone"):
                raise errors.invalid(f"Missing time zone definition for {side} time.")
            parsed = parsed.replace(tzinfo=tz)
        return EventTime(parsed.astimezone(UTC), False, tz)
    raise errors.required(f"Missing {side} time.")


def format_timestamp(moment: datetime) -> str:
    """`created`/`updated` as Google writes them: UTC with milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def instance_suffix(original_start: datetime, all_day: bool, tz: ZoneInfo) -> str:
    if all_day:
        return original_start.astimezone(tz).strftime("%Y%m%d")
    return original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def time_field(moment: datetime, all_day: bool, tz: ZoneInfo) -> dict[str, str]:
    local = moment.astimezone(tz)
    if all_day:
        return {"date": local.date().isoformat()}
    return {"dateTime": local.isoformat(), "timeZone": tz.key}


_UNTIL = re.compile(r"UNTIL=(\d{8}(?:T\d{6}Z?)?)")
_DATE_VALUE = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")


def _naive_local(value: str, tz: ZoneInfo, param_tz: ZoneInfo | None) -> datetime:
    match = _DATE_VALUE.match(value.strip())
    if not match:
        raise errors.invalid("Invalid recurrence rule.")
    day, clock, utc = match.groups()
    if clock is None:
        return datetime.strptime(day, "%Y%m%d")
    naive = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    if utc:
        return naive.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
    if param_tz is not None:
        return naive.replace(tzinfo=param_tz).astimezone(tz).replace(tzinfo=None)
    return naive


@dataclass
class Series:
    """A recurring master, ready to expand: its rules in the event's local wall time (so DST
    moves instants, not meeting times), and its duration."""

    rules: rruleset
    tz: ZoneInfo
    all_day: bool
    duration: timedelta

    def occurrences(
        self, after: datetime | None, before: datetime | None, cap: int, horizon: datetime
    ) -> list[datetime]:
        """Original start instants (UTC) of occurrences overlapping (after, before), at most
        `cap` of them; without `before` the expansion stops at `horizon`."""
        upper = before if before is not None else horizon
        found: list[datetime] = []
        for naive in self.rules:
            start = naive.replace(tzinfo=self.tz).astimezone(UTC)
            if start >= upper:
                break
            if after is not None and start + self.duration <= after:
                continue
            found.append(start)
            if len(found) >= cap:
                break
        return found


def parse_series(recurrence: list[str], start: EventTime, end: EventTime) -> Series:
    tz = start.tz
    local_start = start.instant.astimezone(tz).replace(tzinfo=None)
    rules = rruleset()
    has_rule = False
    for raw in recurrence:
        line = str(raw).strip()
        name, _, value = line.partition(":")
        head, *params = name.split(";")
        head = head.upper()
        param_tz: ZoneInfo | None = None
        for param in params:
            key, _, pval = param.partition("=")
            if key.upper() == "TZID":
                param_tz = zone(pval, tz.key)
        try:
            if head in ("RRULE", "EXRULE"):
                # Expanding in naive wall time: UNTIL must be naive too.
                text = _UNTIL.sub(
                    lambda m: (
                        "UNTIL=" + _naive_local(m.group(1), tz, None).strftime("%Y%m%dT%H%M%S")
                    ),
                    value,
                )
                rule = rrulestr(text, dtstart=local_start)
                if head == "RRULE":
                    rules.rrule(rule)  # type: ignore[arg-type]
                    has_rule = True
                else:
                    rules.exrule(rule)  # type: ignore[arg-type]
            elif head in ("RDATE", "EXDATE"):
                for item in value.split(","):
                    moment = _naive_local(item, tz, param_tz)
                    if start.all_day or len(item.strip()) == 8:
                        moment = moment.replace(
                            hour=local_start.hour,
                            minute=local_start.minute,
                            second=local_start.second,
                        )
                    if head == "RDATE":
                        rules.rdate(moment)
                        has_rule = True
                    else:
                        rules.exdate(moment)
            else:
                raise errors.invalid("Invalid recurrence rule.")
        except (ValueError, TypeError) as exc:
            raise errors.invalid("Invalid recurrence rule.") from exc
    if not has_rule:
        raise errors.invalid("Invalid recurrence rule.")
    return Series(rules, tz, start.all_day, end.instant - start.instant)
