"""Ingest: store what one read of a calendar brought (a ChangeSet), and set calsync's own
blocks seen in it aside to be settled under the user's lock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.models import BusyBlock, Calendar, Event
from calsync_server.providers.model import (
    BlockAction,
    BlockOp,
    ChangeSet,
    ErrorKind,
    Provider,
    RemoteEvent,
)
from calsync_server.sync import stored
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import chunks, event_columns, events_by_id, store_event


@dataclass(slots=True)
class Ingested:
    changed: list[str] = field(default_factory=list)  # source events to plan again (ids)
    blocks_seen: list[RemoteEvent] = field(default_factory=list)  # calsync's blocks in the read
    blocks_removed: list[str] = field(default_factory=list)  # ids of calsync's blocks removed


def _soft_delete(
    event: Event,
    session: Session,
    report: SyncReport,
    changed: list[str],
    *,
    cancelled: bool = True,
) -> None:
    if not event.is_deleted:
        event.is_deleted = True
        if cancelled:  # the provider said so; one merely out of a full listing keeps its status
            event.status = stored.CANCELLED
        session.add(event)
        report.events_deleted += 1
    # Planned again even when its row says deleted already: a sync that stored the delete
    # and died before its writes (killed, database gone) left its blocks standing, and the
    # sync run again reads the delete again from the same cursor (as an unchanged live event
    # read again is planned again below).
    changed.append(event.provider_event_id)


def _soft_delete_new(values: dict[str, Any], report: SyncReport, changed: list[str]) -> None:
    """_soft_delete of an event read and removed in one read, before its row is inserted."""
    if not values["is_deleted"]:
        values.update(is_deleted=True, status=stored.CANCELLED)
        report.events_deleted += 1
        changed.append(values["provider_event_id"])


def unmask_blocks(
    session: Session, calendar: Calendar, changes: ChangeSet, provider: Provider
) -> ChangeSet:
    """The read's items that may be calsync's blocks without showing its mark (Graph's delta
    never does), and whose ids calsync has not stored, read again with the mark.

    Such an item is a block whose row was lost (a crash between the create and the commit) or
    is not committed yet (another sync is writing it): taken for a person's event it would be
    mirrored back as a block of a block. Echoes of stored blocks cost no read.
    """
    assert calendar.id is not None
    maybe = [event for event in changes.events if event.maybe_block and not event.is_block]
    if not maybe:
        return changes
    known = {
        pid
        for chunk in chunks([event.id for event in maybe])
        for pid in session.exec(
            select(BusyBlock.provider_event_id).where(
                BusyBlock.target_calendar_id == calendar.id,
                col(BusyBlock.provider_event_id).in_(chunk),
            )
        )
    }
    unknown = [event for event in maybe if event.id not in known]
    if not unknown:
        return changes
    reads = provider.apply(
        [
            BlockOp(BlockAction.READ, calendar.provider_calendar_id, block_id=event.id)
            for event in unknown
        ]
    )
    marked: dict[str, RemoteEvent] = {}
    for event, read in zip(unknown, reads, strict=True):
        if read.error is not None and read.error.kind is not ErrorKind.GONE:
            # Unread, it could be stored as a source: the sync fails and reads again.
            raise read.error
        if read.block is not None and read.block.is_block:
            marked[event.id] = replace(event, block_source=read.block.block_source)
    if not marked:
        return changes
    return replace(changes, events=tuple(marked.get(e.id, e) for e in changes.events))


def store_changes(
    session: Session, calendar: Calendar, changes: ChangeSet, zone: str, report: SyncReport
) -> Ingested:
    """Upsert the changed events, soft-delete the removed ones (and what a series replaced
    whole no longer holds), and keep calsync's own blocks apart."""
    assert calendar.id is not None
    calendar_zone = calendar.time_zone or zone
    report.events_fetched += len(changes.events) + len(changes.removed)
    ids = [event.id for event in changes.events] + list(changes.removed)
    block_ids = select(BusyBlock.provider_event_id).where(
        BusyBlock.target_calendar_id == calendar.id
    )
    if changes.full or changes.series_replaced:
        rows = {
            e.provider_event_id: e
            for e in session.exec(select(Event).where(Event.calendar_id == calendar.id))
        }
    else:
        rows = {e.provider_event_id: e for e in events_by_id(session, calendar.id, ids)}
    if changes.full:
        blocks = set(session.exec(block_ids))
    else:
        blocks = {
            pid
            for chunk in chunks(ids)
            for pid in session.exec(block_ids.where(col(BusyBlock.provider_event_id).in_(chunk)))
        }
    found = Ingested()
    seen: set[str] = set()
    # Events new to calsync, as their rows' columns: inserted together once the read is
    # stored (a first sync brings thousands; an ORM object each cost most of storing them).
    new: dict[str, dict[str, Any]] = {}
    for event in changes.events:
        seen.add(event.id)
        if event.id in blocks or event.is_block:
            # calsync's own block in this calendar: settled later, under the user's lock.
            found.blocks_seen.append(event)
            continue
        row = rows.get(event.id)
        fresh = new.get(event.id)  # the same item twice in one read (Graph's delta may)
        if event.cancelled:
            if row is not None:
                _soft_delete(row, session, report, found.changed)
            elif fresh is not None:
                _soft_delete_new(fresh, report, found.changed)
            continue
        if row is None:
            if fresh is None:
                report.events_created += 1
            elif fresh["etag"] != event.version or fresh["is_deleted"]:
                report.events_updated += 1
            new[event.id] = {
                "calendar_id": calendar.id,
                "provider_event_id": event.id,
                **event_columns(event, calendar_zone),
            }
            found.changed.append(event.id)
            continue
        if row.etag != event.version or row.is_deleted:
            report.events_updated += 1
        # An unchanged event (read again after a failed sync) is planned again all the same:
        # its blocks may be what that sync failed to write.
        store_event(row, event, calendar_zone)
        session.add(row)
        found.changed.append(event.id)
    for removed in changes.removed:
        seen.add(removed)
        if removed in blocks:
            found.blocks_removed.append(removed)
        elif (row := rows.get(removed)) is not None:
            _soft_delete(row, session, report, found.changed)
        elif (fresh := new.get(removed)) is not None:
            _soft_delete_new(fresh, report, found.changed)
    if new:
        session.execute(sa.insert(Event), list(new.values()))
    if changes.full:
        # Whatever a full listing no longer shows is gone (or out of the window).
        gone = [row for pid, row in rows.items() if pid not in seen]
    else:
        # A series sent whole (CalDAV): its instances not sent again are gone.
        replaced = set(changes.series_replaced)
        gone = [
            row
            for pid, row in rows.items()
            if pid not in seen and row.recurring_event_id in replaced
        ]
    for row in gone:
        _soft_delete(row, session, report, found.changed, cancelled=False)
    return found
