"""The feed's content: the person's own busy times over the sync window, from every synced
source calendar, merged and rendered as iCalendar with nothing but "Busy".

Which events count is the planner's own rule (`is_blocking` and the source's rules), so the
feed shows exactly the times the busy blocks stand for. calsync's blocks are never stored as
events, so they never count twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import icalendar
from sqlmodel import Session, col, select

from calsync_server.db.models import Event
from calsync_server.sync import rules as rule
from calsync_server.sync.planner import is_blocking, second_copies, sync_window
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import source_of, user_calendars, user_time_zone, user_views

Span = tuple[datetime, datetime]
TITLE = "Busy"
PRODID = "-//calsync//busy feed//EN"
# How often a subscriber is asked to read the feed again (calendars that honour it).
REFRESH = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class FeedDocument:
    body: bytes
    etag: str  # quoted, as the header carries it
    spans: tuple[Span, ...]


def merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping or touching spans become one."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def busy_spans(
    session: Session, user_id: int, now: datetime, horizon_days: int
) -> tuple[list[Span], Span]:
    """The user's merged busy times (UTC) over the sync window, and the window."""
    accounts, calendars = user_calendars(session, user_id)
    views = user_views(calendars, accounts, SyncReport())
    copies = second_copies(views.values())
    zone = user_time_zone(calendars.values())
    window = sync_window(now, zone, horizon_days)
    # A source whose login needs renewing still counts: its blocks stay in the targets too
    # (domain.md: no block is deleted because of it), and the feed shows what they show.
    sources = [
        cid
        for cid, view in views.items()
        if view.sync_enabled and view.role.is_source and cid not in copies
    ]
    if not sources:
        return [], window
    rows = session.exec(
        select(Event).where(
            col(Event.calendar_id).in_(sources),
            col(Event.is_deleted).is_(False),
            col(Event.end_at) > window[0],
            col(Event.start_at) < window[1],
        )
    )
    spans: list[Span] = []
    for row in rows:
        source = source_of(row, calendars[row.calendar_id].time_zone or zone)
        if source is None:
            continue
        view = views[row.calendar_id]
        if not is_blocking(source, view, window):
            continue
        if rule.source_removes(view.rules, source.event) is not None:
            continue
        spans.append((source.start_at, source.end_at))
    return merge(spans), window


def render(spans: Iterable[Span], window: Span, salt: str) -> FeedDocument:
    """The iCalendar document: one opaque "Busy" VEVENT per merged span, nothing else of the
    events. Deterministic (DTSTAMP is the window's start), so its ETag changes only when the
    busy times or the day do. ``salt`` keeps UIDs of two people's feeds apart."""
    cal = icalendar.Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("CALSCALE", "GREGORIAN")
    cal.add("METHOD", "PUBLISH")
    cal.add("X-WR-CALNAME", "Busy (calsync)")
    cal.add("REFRESH-INTERVAL", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("X-PUBLISHED-TTL", icalendar.vDuration(REFRESH))
    kept = tuple(spans)
    for start, end in kept:
        event = icalendar.Event()
        digest = hashlib.sha256(f"{salt}|{start.isoformat()}|{end.isoformat()}".encode())
        event.add("UID", f"{digest.hexdigest()[:32]}@calsync")
        event.add("DTSTAMP", window[0])
        event.add("DTSTART", start)
        event.add("DTEND", end)
        event.add("SUMMARY", TITLE)
        event.add("TRANSP", "OPAQUE")
        cal.add_component(event)
    body = cal.to_ical()
    return FeedDocument(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', kept)
