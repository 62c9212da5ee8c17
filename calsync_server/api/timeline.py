"""GET /api/v1/timeline: the user's own events and calsync's blocks in a bounded time range (the
dashboard's week view draws it)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from sqlmodel import Session, col, select

from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import WITH_PARAMETERS, errors
from calsync_server.api.queries import user_calendar_ids
from calsync_server.db.models import BusyBlock, Event
from calsync_server.providers.model import Response
from calsync_server.runtime import Runtime
from calsync_server.sync import stored
from shared.schemas import (
    MAX_TIMELINE_DAYS,
    MAX_TIMELINE_ITEMS,
    Timeline,
    TimelineBlock,
    TimelineEvent,
)

UserId = NamedDependency[int]
Instant = Annotated[
    datetime,
    QueryParameter(description="An ISO 8601 instant with its offset (2025-03-10T00:00:00+01:00)"),
]
# All-day rows keep start_at at midnight in their calendar's zone: a day's slack either side
# finds them, and their own dates decide.
SLACK = timedelta(days=1)


def _problem(message: str, key: str) -> ValidationException:
    return ValidationException(message, extra=[{"message": message, "key": key, "source": "query"}])


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    for key, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _problem(f"{key} needs an offset or Z (an instant, not a wall-clock time)", key)
    if end <= start:
        raise _problem("end must come after start", "end")
    if end - start > timedelta(days=MAX_TIMELINE_DAYS):
        raise _problem(f"the range may span at most {MAX_TIMELINE_DAYS} days", "end")
    return start, end


def _day(value: Any) -> date | None:
    time = stored.decode_time(value)
    return time.day if time is not None else None


def _overlaps(
    start_at: datetime | None,
    end_at: datetime | None,
    days: tuple[date | None, date | None],
    start: datetime,
    end: datetime,
) -> bool:
    first, after = days
    if first is not None and after is not None:
        # An all-day item covers whole days: the range's days in the range's own offset.
        return first < (end - timedelta(microseconds=1)).date() + timedelta(days=1) and (
            after > start.date()
        )
    return start_at is not None and end_at is not None and start_at < end and end_at > start


def timeline(session: Session, user_id: int, start: datetime, end: datetime) -> Timeline:
    calendar_ids = user_calendar_ids(session, user_id)
    events: list[TimelineEvent] = []
    blocks: list[TimelineBlock] = []
    truncated = False
    if calendar_ids:
        event_rows = session.exec(
            select(Event)
            .where(
                col(Event.calendar_id).in_(calendar_ids),
                col(Event.is_deleted).is_(False),
                Event.status != "cancelled",
                col(Event.start_at) < end + SLACK,
                col(Event.end_at) > start - SLACK,
            )
            .order_by(col(Event.start_at), col(Event.id))
            .limit(MAX_TIMELINE_ITEMS + 1)
        ).all()
        truncated = len(event_rows) > MAX_TIMELINE_ITEMS
        for row in event_rows[:MAX_TIMELINE_ITEMS]:
            days = (_day(row.start), _day(row.end)) if row.all_day else (None, None)
            if not _overlaps(row.start_at, row.end_at, days, start, end):
                continue
            events.append(
                TimelineEvent(
                    id=row.id or 0,
                    calendar_id=row.calendar_id,
                    summary=row.summary,
                    start_at=row.start_at,
                    end_at=row.end_at,
                    all_day=row.all_day,
                    start_day=days[0],
                    end_day=days[1],
                    free=row.transparency == stored.TRANSPARENT,
                    declined=stored.response_of(row.self_response_status) is Response.DECLINED,
                    kind=row.event_type,
                )
            )
        block_rows = session.exec(
            select(BusyBlock)
            .where(
                col(BusyBlock.target_calendar_id).in_(calendar_ids),
                col(BusyBlock.user_deleted).is_(False),
                col(BusyBlock.start_at) < end + SLACK,
                col(BusyBlock.end_at) > start - SLACK,
            )
            .order_by(col(BusyBlock.start_at), col(BusyBlock.id))
            .limit(MAX_TIMELINE_ITEMS + 1)
        ).all()
        truncated = truncated or len(block_rows) > MAX_TIMELINE_ITEMS
        for block in block_rows[:MAX_TIMELINE_ITEMS]:
            all_day = stored.is_all_day(block.start)
            days = (_day(block.start), _day(block.end)) if all_day else (None, None)
            if not _overlaps(block.start_at, block.end_at, days, start, end):
                continue
            blocks.append(
                TimelineBlock(
                    id=block.id or 0,
                    target_calendar_id=block.target_calendar_id,
                    source_calendar_id=block.source_calendar_id,
                    source_event_id=block.source_event_id,
                    summary=block.summary,
                    start_at=block.start_at,
                    end_at=block.end_at,
                    all_day=all_day,
                    start_day=days[0],
                    end_day=days[1],
                    user_modified=block.user_modified,
                )
            )
    return Timeline(start=start, end=end, events=events, blocks=blocks, truncated=truncated)


class TimelineApi(Controller):
    path = "/api/v1"
    tags = ["api"]
    security = [{"BearerToken": []}]
    dependencies = {"user_id": Provide(provide_user_id)}

    @get("/timeline", sync_to_thread=True, responses=errors(*WITH_PARAMETERS))
    def timeline(
        self, request: Request[Any, Any, Any], user_id: UserId, start: Instant, end: Instant
    ) -> Timeline:
        """The user's own events and calsync's blocks overlapping [start, end), at most
        35 days; both instants need an offset. Cancelled events and blocks the user deleted
        by hand are left out; `truncated` when more than 5000 of either lie in the range."""
        first, last = _range(start, end)
        runtime: Runtime = request.app.state.runtime
        with Session(runtime.db) as session:
            return timeline(session, user_id, first, last)
