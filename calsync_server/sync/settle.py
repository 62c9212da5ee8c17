"""Settle: what calsync's own blocks seen in a calendar's read mean (echoes of its writes, or
the user's hand edits), and the full reconcile's squaring of the provider's blocks with the
table (adopting blocks whose row was lost, finding orphans and blocks deleted by hand)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar, Event
from calsync_server.providers.model import (
    BlockAction,
    BlockOp,
    ErrorKind,
    ProviderError,
    RemoteEvent,
)
from calsync_server.sync import stored
from calsync_server.sync.echoes import BlockChange, classify_block_change
from calsync_server.sync.planner import CalendarView, second_copies, source_key
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import chunks, existing_of


def settle_seen_blocks(
    session: Session,
    calendar: Calendar,
    account: Account,
    seen: Sequence[RemoteEvent],
    removed: Sequence[str],
    pool: ProviderPool,
    report: SyncReport,
) -> None:
    """Record what the read's blocks of calsync's mean: echoes, or hand edits.

    Runs under the user's lock, so the rows hold every write calsync has made. The read may be
    older than they are (made before another sync rewrote a block): a block that does not match
    its row is read again before it is called a hand edit.
    """
    ids = [event.id for event in seen] + list(removed)
    rows = {
        row.provider_event_id: row
        for chunk in chunks(ids)
        for row in session.exec(
            select(BusyBlock).where(
                BusyBlock.target_calendar_id == calendar.id,
                col(BusyBlock.provider_event_id).in_(chunk),
            )
        )
        if not row.user_deleted
    }
    suspects: list[BusyBlock] = [rows[pid] for pid in removed if pid in rows]
    for event in seen:
        row = rows.get(event.id)
        if row is None:
            continue
        if row.etag is not None and event.version == row.etag:
            continue  # the echo of calsync's last write, already recorded (no row decoded)
        if classify_block_change(existing_of(row), event) is BlockChange.ECHO:
            row.etag = event.version or row.etag
            session.add(row)
        else:
            suspects.append(row)
    if not suspects:
        return
    reads = pool.get(account).apply(
        [
            BlockOp(BlockAction.READ, calendar.provider_calendar_id, block_id=row.provider_event_id)
            for row in suspects
        ]
    )
    modified = 0
    for row, read in zip(suspects, reads, strict=True):
        if read.error is not None and read.error.kind is not ErrorKind.GONE:
            report.note(f"a block could not be read again: {read.error}")
            continue  # the next read or the full reconcile looks again
        change = classify_block_change(existing_of(row), read.block if read.ok else None)
        if change is BlockChange.ECHO:
            row.etag = (read.block.version if read.block else None) or row.etag
        elif change is BlockChange.USER_DELETED:
            row.user_deleted = True
        else:
            modified += not row.user_modified
            row.user_modified = True
        session.add(row)
    if modified:
        report.note(f"preserved {modified} user modification{'s' if modified > 1 else ''}")


@dataclass(frozen=True, slots=True)
class Orphan:
    """A block of calsync's that the provider lists and nothing wants: the full pass deletes it."""

    target_calendar_id: int
    block: RemoteEvent
    reason: str


def reconcile_listing(
    session: Session,
    pool: ProviderPool,
    calendars: dict[int, Calendar],
    accounts: dict[int, Account],
    views: dict[int, CalendarView],
    window: tuple[datetime, datetime],
    report: SyncReport,
    now: datetime,
    rows: dict[int, dict[str, BusyBlock]] | None = None,
) -> list[tuple[int, str]]:
    """The full reconcile's listing (see square_listing), written to the session: the orphans
    as (target, block id)."""
    orphans = square_listing(
        session, pool, calendars, accounts, views, window, report, now, rows=rows
    )
    session.flush()
    return [(o.target_calendar_id, o.block.id) for o in orphans]


def square_listing(
    session: Session,
    pool: ProviderPool,
    calendars: dict[int, Calendar],
    accounts: dict[int, Account],
    views: dict[int, CalendarView],
    window: tuple[datetime, datetime],
    report: SyncReport,
    now: datetime,
    *,
    rows: dict[int, dict[str, BusyBlock]] | None = None,
) -> list[Orphan]:
    """List calsync's blocks in every writable calendar and square them with the table.

    A block the provider has but the table lacks (a crash between write and commit, or a
    provider that assigns ids answering too late) is adopted when its source is known, deleted
    when not, and so is a second block of the same source; a block the table has but the
    provider lost was deleted by hand and is not recreated while its source is unchanged.
    Nothing is flushed: the dry run squares the same way in a session it never writes.
    `rows`: the block rows already loaded, by target and source key (the pass plans from
    them: read once); adopted rows join them. None: each target's are loaded here.
    """
    copies = second_copies(views.values())

    def speaker(calendar_id: int) -> int:
        return copies[calendar_id].id if calendar_id in copies else calendar_id

    known_sources = {
        source_key(views[calendar_id], event_id): speaker(calendar_id)
        for calendar_id, event_id in session.exec(
            select(Event.calendar_id, Event.provider_event_id).where(
                col(Event.calendar_id).in_(list(calendars))
            )
        )
    }
    orphans: list[Orphan] = []
    vanished = 0
    # Nothing reaches the database between listings: on SQLite a flush would hold the file's
    # one write lock across the next provider call (see UserLocks.free_the_file).
    with session.no_autoflush:
        for cid, target in calendars.items():
            view = views[cid]
            # A second copy lists the first copy's blocks: they are squared there.
            if not view.is_writable_target or cid in copies:
                continue
            try:
                listed = pool.get(accounts[target.account_id]).list_blocks(
                    target.provider_calendar_id, window=window
                )
            except ProviderError as exc:
                if exc.kind is ErrorKind.AUTH:
                    raise
                # One calendar the provider will not list fails no other's reconcile.
                report.note(f"the blocks in {target.name} could not be listed: {exc}")
                continue
            if rows is None:
                mine = {
                    b.source_key: b
                    for b in session.exec(
                        select(BusyBlock).where(BusyBlock.target_calendar_id == cid)
                    )
                }
            else:
                mine = rows.setdefault(cid, {})
            listed_ids: set[str] = set()
            for block in listed:
                listed_ids.add(block.id)
                key = block.block_source
                row = mine.get(key) if key else None
                if row is not None and row.provider_event_id == block.id:
                    # The version calsync's own write left: nobody changed the block since.
                    if row.etag is not None and row.etag == block.version:
                        continue
                    if (
                        not row.user_deleted
                        and not row.user_modified
                        and classify_block_change(existing_of(row), block)
                        is BlockChange.USER_MODIFIED
                    ):
                        row.user_modified = True
                        report.note("a block changed by hand was left as the user made it")
                        session.add(row)
                    continue
                # A later piece of an event cut by working hours is "<key>:<date>".
                origin = key.split(":", 1)[0] if key else None
                if not key or origin not in known_sources or row is not None:
                    why = (
                        "a second block of the same event"
                        if row is not None
                        else "a block of calsync's whose event calsync does not know (an orphan)"
                    )
                    orphans.append(Orphan(cid, block, why))
                    continue
                calendar_zone = target.time_zone or "UTC"
                adopted = BusyBlock(
                    target_calendar_id=cid,
                    source_calendar_id=known_sources[origin],
                    source_key=key,
                    provider_event_id=block.id,
                    etag=block.version,
                    summary=block.title,
                    start=stored.encode_time(block.start),
                    end=stored.encode_time(block.end),
                    start_at=block.start.to_utc(calendar_zone),
                    end_at=block.end.to_utc(calendar_zone),
                    created_at=now,
                    updated_at=now,
                )
                mine[key] = adopted
                session.add(adopted)
            for row in mine.values():
                if (
                    row.provider_event_id not in listed_ids
                    and not row.user_deleted
                    and row.id is not None
                    and (row.end_at is None or row.end_at > window[0])
                ):
                    row.user_deleted = True
                    session.add(row)
                    vanished += 1
    if vanished:
        report.note(f"{vanished} block(s) deleted by hand are not recreated")
    return orphans
