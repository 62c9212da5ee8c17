"""Retention: the events and blocks that ended before the retained history leave the database,
so what calsync stores (and every full pass reads) follows the window, not the account's age.

The retained history reaches as far back as the window reaches ahead (domain.md's window: from
the start of today to `horizon_days` ahead). Only the rows go: a block that ended in the past
stays in the person's calendar as history (domain.md), and nothing here calls a provider.
Nothing plans with those rows any more either: an event that ended before today blocks nothing,
and a block that ended is left alone while its target stays a target. A calendar that stops
being a target later loses its older blocks too (domain.md: "past ones included"): they are
found by calsync's mark then (release.history_left_behind). The dashboard's week view shows no
rows before the retained history. Sync logs go at the same age, but for those a retained block
still names (explain says which sync wrote a block): the sync log screen shows that much history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, or_, select

from calsync_server.db.models import BusyBlock, Event, SyncLog

# Today starts up to 14 hours earlier or later than in UTC (the zones run from -12 to +14):
# a day more, so no user's history is cut short by their zone.
ZONE_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Purged:
    events: int
    blocks: int
    logs: int


def retained_since(now: datetime, horizon_days: int) -> datetime:
    """The earliest end a stored event or block may have: `horizon_days` before today."""
    return now - timedelta(days=horizon_days) - ZONE_SLACK


def purge_history(session: Session, now: datetime, horizon_days: int) -> Purged:
    """Delete the rows of events, blocks and sync logs that ended before the retained history,
    in the caller's transaction (it commits). Rows whose times could not be read are kept: nothing
    says they ended."""
    cutoff = retained_since(now, horizon_days)
    # Blocks first: a block's row names its source event's.
    blocks = session.exec(
        delete(BusyBlock).where(col(BusyBlock.end_at).is_not(None), col(BusyBlock.end_at) < cutoff)
    ).rowcount
    events = session.exec(
        delete(Event).where(col(Event.end_at).is_not(None), col(Event.end_at) < cutoff)
    ).rowcount
    # After the blocks: a log stays while a retained block names it as its writer.
    writers = select(BusyBlock.sync_key).where(col(BusyBlock.sync_key).is_not(None))
    logs = session.exec(
        delete(SyncLog).where(
            col(SyncLog.finished_at) < cutoff,
            or_(col(SyncLog.sync_key).is_(None), col(SyncLog.sync_key).not_in(writers)),
        )
    ).rowcount
    return Purged(events=int(events or 0), blocks=int(blocks or 0), logs=int(logs or 0))
