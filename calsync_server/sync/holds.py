"""The safety catch's rows: counting what the catch weighs (a calendar's live events, each
target's future blocks), keeping a source's held deletes on its calendar row ("needs you"),
and the user's confirmation that lets them go."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from sqlmodel import Session, col, func, select

from calsync_server.db.models import BusyBlock, Calendar, Event
from calsync_server.sync.plan_types import ExistingBlock
from calsync_server.sync.report import SyncReport
from calsync_server.sync.safety import Held

# The held blocks shown per target (the count says how many there are).
SAMPLE = 5


def live_events(session: Session, calendar_id: int) -> int:
    """How many events of the calendar are live (not deleted) in the database."""
    return int(
        session.exec(
            select(func.count())
            .select_from(Event)
            .where(Event.calendar_id == calendar_id, col(Event.is_deleted).is_(False))
        ).one()
    )


def future_blocks(session: Session, calendar_ids: Collection[int], now: datetime) -> dict[int, int]:
    """Each target's blocks that have not ended (hand-deleted ones are not there)."""
    if not calendar_ids:
        return {}
    rows = session.exec(
        select(BusyBlock.target_calendar_id, func.count())
        .where(
            col(BusyBlock.target_calendar_id).in_(list(calendar_ids)),
            col(BusyBlock.user_deleted).is_(False),
            (col(BusyBlock.end_at).is_(None)) | (col(BusyBlock.end_at) > now),
        )
        .group_by(col(BusyBlock.target_calendar_id))
    ).all()
    return {int(t): int(n) for t, n in rows}


def holding(calendars: Mapping[int, Calendar]) -> set[int]:
    """The calendars whose blocks' deletes are held now."""
    return {cid for cid, c in calendars.items() if c.held_deletes}


def record_holds(
    calendars: Mapping[int, Calendar],
    sources: Collection[int],
    held: Held,
    now: datetime,
    report: SyncReport,
) -> None:
    """Keep on each source's row what is held of it now; a source nothing is held of any more
    (it recovered, or the deletes no longer cross the line) is cleared."""
    for source_id in sources:
        calendar = calendars.get(source_id)
        if calendar is None:
            continue
        targets = held.of(source_id)
        if not targets:
            if calendar.held_deletes:
                calendar.held_deletes = None
                report.note(f"{calendar.name} is back: no delete is held any more")
            continue
        since = (calendar.held_deletes or {}).get("since") or now.isoformat()
        calendar.held_deletes = {
            "since": since,
            "targets": [
                {
                    "target_calendar_id": target_id,
                    "count": len(blocks),
                    "sample": [_shown(b) for b in _first(blocks)],
                }
                for target_id, blocks in sorted(targets.items())
            ],
        }
        for target_id, blocks in sorted(targets.items()):
            name = calendars[target_id].name if target_id in calendars else target_id
            report.note(
                f"held {len(blocks)} deletes in {name}: {calendar.name} suddenly returned far "
                "fewer events; confirm to delete them, or they stay until it recovers"
            )


def _start(block: ExistingBlock) -> datetime | None:
    return block.start.to_utc("UTC") if block.start is not None else None


def _first(blocks: tuple[ExistingBlock, ...]) -> list[ExistingBlock]:
    return sorted(blocks, key=lambda b: _start(b) or datetime.max.replace(tzinfo=UTC))[:SAMPLE]


def _shown(block: ExistingBlock) -> dict[str, str | None]:
    start = _start(block)
    end = block.end_at or (block.end.to_utc("UTC") if block.end is not None else None)
    return {
        "title": block.summary,
        "start": start.isoformat() if start is not None else None,
        "end": end.isoformat() if end is not None else None,
    }


def confirm(session: Session, calendar: Calendar) -> int:
    """The user lets the held deletes of ``calendar`` go: the hold is cleared (the caller then
    syncs it whole, which deletes them). How many were held."""
    count = sum(int(t.get("count", 0)) for t in (calendar.held_deletes or {}).get("targets", []))
    calendar.held_deletes = None
    session.add(calendar)
    return count
