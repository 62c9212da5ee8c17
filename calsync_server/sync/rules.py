"""The rules a user chooses per calendar (domain.md "Rules the user chooses"), as pure planner
inputs: title filters and tentative invitations of a source; working hours, already-invited
and merged blocks of a target. Nothing here reads a database, a provider or the clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from calsync_server.providers.model import EventTime, RemoteEvent, Response

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_MINUTES = 24 * 60
# Bounds on what a user may set: patterns are run against every title of every sync.
MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 200
BUSY = "Busy"


class RuleError(ValueError):
    """A rule the user set cannot stand; the message says why, in words for the user."""


# -- working hours -----------------------------------------------------------------------------


def _minutes(text: str, *, what: str) -> int:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if match is None:
        raise RuleError(f'working hours {what} "{text}" is not a time like 09:00')
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise RuleError(f'working hours {what} "{text}" is not a time of day (00:00 to 24:00)')
    return hours * 60 + minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Weekdays (0 Monday .. 6 Sunday) and a range of the day in minutes after local midnight,
    read in the target calendar's zone on each day (so DST moves them with the clock)."""

    days: frozenset[int]
    start: int
    end: int

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise RuleError("working hours need at least one weekday")
        if not 0 <= self.start < self.end <= DAY_MINUTES:
            raise RuleError(
                f"working hours must end after they start ({_clock(self.start)} to "
                f"{_clock(self.end)}); a range across midnight is two days' ranges"
            )

    @classmethod
    def parse(cls, days: Sequence[str], start: str, end: str) -> WorkingHours:
        """From the words the API and the command take: ``["mon", ...]``, ``"09:00"``."""
        numbers: set[int] = set()
        for day in days:
            word = day.strip().lower()
            if word not in WEEKDAYS and word not in DAY_NAMES:
                raise RuleError(f'"{day}" is not a weekday (use {", ".join(WEEKDAYS)})')
            numbers.add(WEEKDAYS.index(word[:3]))
        return cls(frozenset(numbers), _minutes(start, what="start"), _minutes(end, what="end"))

    @classmethod
    def stored(cls, value: object) -> WorkingHours:
        """From the column's ``{"days", "start", "end"}``."""
        if not isinstance(value, dict) or not isinstance(value.get("days"), list):
            raise RuleError(f"working hours {value!r} cannot be read")
        return cls.parse(
            [str(d) for d in value["days"]], str(value.get("start")), str(value.get("end"))
        )

    def to_stored(self) -> dict[str, object]:
        return {"days": self.day_names, "start": self.start_text, "end": self.end_text}

    @property
    def day_names(self) -> list[str]:
        return [WEEKDAYS[day] for day in sorted(self.days)]

    @property
    def start_text(self) -> str:
        return _clock(self.start)

    @property
    def end_text(self) -> str:
        return _clock(self.end)

    def windows(
        self, start_at: datetime, end_at: datetime, zone: str
    ) -> list[tuple[datetime, datetime]]:
        """The parts of [start_at, end_at) inside working hours, in UTC, in order; ranges
        that meet at midnight (00:00 to 24:00 on two days) are one part."""
        tz = ZoneInfo(zone)
        parts: list[tuple[datetime, datetime]] = []
        day = start_at.astimezone(tz).date()
        last = end_at.astimezone(tz).date()
        while day <= last:
            if day.weekday() in self.days:
                low = max(_local(day, self.start, tz), start_at)
                high = min(_local(day, self.end, tz), end_at)
                if low < high:
                    if parts and parts[-1][1] >= low:
                        parts[-1] = (parts[-1][0], high)
                    else:
                        parts.append((low, high))
            day += timedelta(days=1)
        return parts


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The instant the clock in ``tz`` shows ``minutes`` after midnight of ``day``; a time the
    clock skips that day (DST) is read with the offset before the change, as zoneinfo does."""
    day += timedelta(days=minutes // DAY_MINUTES)
    minutes %= DAY_MINUTES
    return datetime.combine(day, time(minutes // 60, minutes % 60), tz).astimezone(UTC)


# -- title filters -----------------------------------------------------------------------------


def compile_pattern(text: str) -> re.Pattern[str]:
    """``/.../`` is a regular expression; anything else plain words, matched as whole words
    (``standup`` matches "Daily Standup", not "standups"). Both ignore case."""
    pattern = text.strip()
    if not pattern:
        raise RuleError("a title pattern cannot be empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RuleError(f"a title pattern is at most {MAX_PATTERN_CHARS} characters")
    if len(pattern) > 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            return re.compile(pattern[1:-1], re.IGNORECASE)
        except re.error as exc:
            raise RuleError(f'"{pattern}" is not a valid regular expression: {exc}') from None
    words = r"\s+".join(re.escape(word) for word in pattern.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TitleFilter:
    """A source's filters: a title matching an exclude pattern does not block; with include
    patterns, only a title matching one does."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _compiled: tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]] = field(
        default=((), ()), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.include) + len(self.exclude) > MAX_PATTERNS:
            raise RuleError(f"at most {MAX_PATTERNS} title patterns per calendar")
        compiled = (
            tuple(compile_pattern(p) for p in self.include),
            tuple(compile_pattern(p) for p in self.exclude),
        )
        object.__setattr__(self, "_compiled", compiled)

    def lets(self, title: str) -> bool:
        include, exclude = self._compiled
        if any(p.search(title) for p in exclude):
            return False
        return not include or any(p.search(title) for p in include)


# -- a calendar's rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalendarRules:
    """A calendar's choices; the defaults change nothing (every rule off)."""

    # As a source.
    titles: TitleFilter = TitleFilter()
    block_tentative: bool = True
    # As a target.
    working_hours: WorkingHours | None = None
    skip_invited: bool = False
    merge: bool = False


NO_RULES = CalendarRules()


class Removed(StrEnum):
    """What a rule took away, for the sync log."""

    TITLE = "title"
    TENTATIVE = "tentative"
    INVITED = "invited"
    HOURS = "hours"


def _events(count: int) -> str:
    return f"{count} event{'s' if count != 1 else ''}"


def removal_notes(removed: Iterable[tuple[Removed, int]], merged: tuple[int, int]) -> list[str]:
    """The sync log's sentences for what the rules removed and merged."""
    words = {
        Removed.TITLE: "left out by title filters",
        Removed.TENTATIVE: "tentative or unanswered, left out",
        Removed.INVITED: "already in the target calendar (invited there)",
        Removed.HOURS: "outside working hours",
    }
    notes = [f"{_events(count)} {words[rule]}" for rule, count in removed if count]
    members, blocks = merged
    if members:
        notes.append(f"{members} blocks merged into {blocks}")
    return notes


def source_removes(rules: CalendarRules, event: RemoteEvent) -> Removed | None:
    """The source's rule that keeps a blocking event from blocking, if any."""
    if not rules.titles.lets(event.title):
        return Removed.TITLE
    if not rules.block_tentative and event.response in (Response.TENTATIVE, Response.NEEDS_ACTION):
        return Removed.TENTATIVE
    return None


def invited_there(rules: CalendarRules, addresses: frozenset[str], event: RemoteEvent) -> bool:
    """The target's own account is among the event's attendees: the person sees it there."""
    return rules.skip_invited and any(a.strip().lower() in addresses for a in event.attendees)


# -- pieces and merged blocks -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """One block's worth of a blocking event in one target: the whole event, or one part of
    it inside working hours. ``key`` is the block's source key: the event's own for its first
    piece, the event's with the local date of the piece for the others."""

    key: str
    source_calendar_id: int
    source_event_id: str
    title: str
    start: EventTime
    end: EventTime
    start_at: datetime
    end_at: datetime
    # A merged piece's members' source calendars (sorted, distinct); empty for one event's.
    member_sources: tuple[int, ...] = ()


def pieces(
    key: str,
    source_calendar_id: int,
    event: RemoteEvent,
    title: str,
    span: tuple[datetime, datetime],
    hours: WorkingHours | None,
    zone: str,
) -> list[Piece]:
    """The blocks an event gives in a target with ``hours`` in ``zone`` (none if none)."""
    start_at, end_at = span
    if hours is None:
        return [Piece(key, source_calendar_id, event.id, title, event.start, event.end, *span)]
    found: list[Piece] = []
    # A clipped end is shown in the event's zone where it named one, else the target's.
    shown = event.start.zone if not event.all_day and event.start.zone else zone
    tz = ZoneInfo(shown)
    for n, (low, high) in enumerate(hours.windows(start_at, end_at, zone)):
        start = event.start if low == start_at and not event.all_day else _at(low, tz, shown)
        end = event.end if high == end_at and not event.all_day else _at(high, tz, shown)
        piece_key = key if n == 0 else f"{key}:{low.astimezone(ZoneInfo(zone)).date()}"
        found.append(Piece(piece_key, source_calendar_id, event.id, title, start, end, low, high))
    return found


def _at(moment: datetime, tz: ZoneInfo, zone: str) -> EventTime:
    return EventTime.at(moment.astimezone(tz), zone)


def merged_key(keys: Iterable[str]) -> str:
    """The source key of a block standing for several: derived from the keys it covers, so it
    changes exactly when they change."""
    text = json.dumps(["merge", *sorted(keys)], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def merge(found: Sequence[Piece]) -> tuple[list[Piece], int, int]:
    """Overlapping or touching timed pieces as one piece each (all-day ones stay as they are),
    with how many pieces went into merged ones and how many merged ones they made.

    A merged piece spans its members, carries the first member's source (for the row's
    reference) and every member's source calendar (a block standing for a source whose login
    is refused must be found whichever member came first), and shows the members' title when
    they all show the same one, else ``Busy``.
    """
    timed = sorted(
        (p for p in found if not p.start.all_day), key=lambda p: (p.start_at, p.end_at, p.key)
    )
    groups: list[list[Piece]] = []
    for piece in timed:
        if groups and piece.start_at <= max(p.end_at for p in groups[-1]):
            groups[-1].append(piece)
        else:
            groups.append([piece])
    out = [p for p in found if p.start.all_day]
    members = merged = 0
    for group in groups:
        if len(group) == 1:
            out.append(group[0])
            continue
        members += len(group)
        merged += 1
        first = group[0]
        last = max(group, key=lambda p: (p.end_at, p.key))
        titles = {p.title for p in group}
        out.append(
            Piece(
                merged_key(p.key for p in group),
                first.source_calendar_id,
                first.source_event_id,
                titles.pop() if len(titles) == 1 else BUSY,
                first.start,
                last.end,
                first.start_at,
                last.end_at,
                tuple(sorted({p.source_calendar_id for p in group})),
            )
        )
    return out, members, merged
