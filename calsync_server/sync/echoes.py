"""Telling calsync's own writes coming back (echoes) from the user's hand edits of a block."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.model import EventTime, RemoteEvent
from calsync_server.sync.planner import shows_same_time
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import chunks, user_views


class StoredBlock(Protocol):
    """What calsync last wrote for a block (a planner ExistingBlock, or a row's view of it)."""

    @property
    def provider_event_id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def start(self) -> EventTime | None: ...
    @property
    def end(self) -> EventTime | None: ...
    @property
    def etag(self) -> str | None: ...


class BlockChange(StrEnum):
    # calsync's own write coming back: costs no further provider call.
    ECHO = "echo"
    # Moved, retitled or freed by the user: marked user_modified and left alone.
    USER_MODIFIED = "user_modified"
    # Deleted by the user: not recreated while its source is unchanged.
    USER_DELETED = "user_deleted"


def classify_block_change(stored: StoredBlock, incoming: RemoteEvent | None) -> BlockChange:
    """What the provider now shows for a block calsync has stored (None: it is gone).

    The version the provider gave calsync's last write is the echo check; without it, the
    fields calsync owns are compared. Deletions calsync made itself never reach here: their
    rows are gone once applied.
    """
    if incoming is None or incoming.cancelled:
        return BlockChange.USER_DELETED
    if incoming.id != stored.provider_event_id:
        raise ValueError("the incoming event is not the stored block")
    if stored.etag is not None and incoming.version == stored.etag:
        return BlockChange.ECHO
    unchanged = (
        incoming.is_block
        and incoming.busy
        and incoming.title == stored.summary
        and shows_same_time(incoming.start, stored.start)
        and shows_same_time(incoming.end, stored.end)
    )
    return BlockChange.ECHO if unchanged else BlockChange.USER_MODIFIED


def only_recorded_echoes(
    session: Session,
    calendar_id: int,
    changed: Sequence[str],
    seen: Sequence[RemoteEvent],
    removed: Sequence[str],
) -> bool:
    """Whether a read brought nothing but calsync's own writes coming back, each in the very
    version calsync recorded for it (or nothing at all).

    Such a read is the echo of calsync's own write (every propagation makes one in each
    target): there is nothing to settle (settling an echo records the version calsync
    already holds) and nothing to plan, so its sync need not take the user's lock. Read
    without the lock, a row may be rewritten meanwhile; then the version no longer matches
    the read, and the sync settles it the usual way.
    """
    if changed or removed:
        return False
    if any(event.version is None for event in seen):
        return False
    ids = [event.id for event in seen]
    recorded = {
        pid: etag
        for chunk in chunks(ids)
        for pid, etag in session.exec(
            select(BusyBlock.provider_event_id, BusyBlock.etag).where(
                BusyBlock.target_calendar_id == calendar_id,
                col(BusyBlock.provider_event_id).in_(chunk),
                col(BusyBlock.user_deleted).is_(False),
            )
        )
    }
    return all(recorded.get(event.id) == event.version for event in seen)


def echo_sync(
    session: Session,
    calendar_id: int,
    accounts: dict[int, Account],
    calendars: dict[int, Calendar],
    changed: Sequence[str],
    seen: Sequence[RemoteEvent],
    removed: Sequence[str],
) -> bool:
    """Whether an incremental read of this calendar leaves its sync nothing to do but keep
    the cursor: only recorded echoes (above), and no reason to plan the whole user regardless
    (a merging target, whose plan spans every source; held deletes, weighed whole)."""
    if any(c.held_deletes for c in calendars.values()):
        return False
    if not only_recorded_echoes(session, calendar_id, changed, seen, removed):
        return False
    views = user_views(calendars, accounts, SyncReport())
    return not any(v.receives_blocks and v.rules.merge for v in views.values())
