"""The dry run (domain.md "Trust"): each calendar read afresh from its provider (reads only, no
cursor kept), the whole user planned with the planner's reasons and the safety catch, and shown
per target; a full one also lists calsync's blocks in every target as the full reconcile does
(orphans it would delete, lost rows it would adopt); nothing written to a provider or the
database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.model import ProviderError
from calsync_server.sync import holds
from calsync_server.sync.ingest import unmask_blocks
from calsync_server.sync.planner import ExistingBlock, SourceEvent, sync_window
from calsync_server.sync.preview import UserPlan, plan_user
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import user_calendars, user_time_zone, user_views
from calsync_server.sync.safety import read_dropped
from calsync_server.sync.settle import Orphan, square_listing
from calsync_server.sync.verdicts import REASONS, Verdict, not_a_target_words
from shared.domain import AccountState
from shared.schemas import MAX_PLANNED_ITEMS, PlannedChange, PlannedTarget, PlanPreview


def read_fresh(
    session: Session,
    pool: ProviderPool,
    calendars: Sequence[Calendar],
    accounts: dict[int, Account],
    window: tuple[datetime, datetime],
    zone: str,
    notes: list[str],
) -> tuple[dict[int, list[SourceEvent]], set[int]]:
    """Each calendar's events as a full read gives them now (read only: no cursor is kept),
    and the calendars whose read suddenly returned far fewer events than calsync holds."""
    fresh: dict[int, list[SourceEvent]] = {}
    dropped: set[int] = set()
    for calendar in calendars:
        assert calendar.id is not None
        try:
            provider = pool.get(accounts[calendar.account_id])
            changes = provider.read_changes(
                calendar.provider_calendar_id, cursor=None, window=window
            )
            changes = unmask_blocks(session, calendar, changes, provider)
        except (ProviderError, ValueError) as exc:
            notes.append(f"{calendar.name} could not be read: {exc}")
            continue
        blocks = set(
            session.exec(
                select(BusyBlock.provider_event_id).where(
                    BusyBlock.target_calendar_id == calendar.id
                )
            )
        )
        tz = calendar.time_zone or zone
        fresh[calendar.id] = [
            SourceEvent(calendar.id, e, time_zone=tz)
            for e in changes.events
            if not e.cancelled and not e.is_block and e.id not in blocks
        ]
        if read_dropped(holds.live_events(session, calendar.id), len(fresh[calendar.id])):
            dropped.add(calendar.id)
    return fresh, dropped


def _when(found: UserPlan, block: ExistingBlock) -> tuple[datetime | None, datetime | None]:
    """A block's times as its target shows them: an all-day block's days run from midnight
    in the target calendar's zone (not in UTC, nor in its source's; a planned block's instants
    are already so, planner.desired_block)."""
    zone = found.calendars[block.target_calendar_id].time_zone or "UTC"
    start = block.start.to_utc(zone) if block.start is not None else None
    return start, block.end.to_utc(zone) if block.end is not None else block.end_at


def _delete_reason(found: UserPlan, block: ExistingBlock) -> str:
    target = found.views[block.target_calendar_id]
    if not target.receives_blocks:
        return not_a_target_words(target, found.copies.get(target.id))
    origin = block.source_key.split(":", 1)[0]
    verdict = found.trace.sources.get(origin)
    if verdict is None:
        return "its event is gone (deleted, or out of the window)"
    if verdict is Verdict.BLOCKS:
        wanted = found.trace.blocks.get((block.target_calendar_id, origin), [])
        return "a second block of the same event" if block.source_key in wanted else "replaced"
    return REASONS[verdict]


def preview(
    found: UserPlan, read: Sequence[int], notes: list[str], orphans: Sequence[Orphan] = ()
) -> PlanPreview:
    """The plan as the API and the command show it: per target, with reasons."""
    per: dict[int, PlannedTarget] = {}
    items: dict[int, list[PlannedChange]] = defaultdict(list)

    def target(tid: int) -> PlannedTarget:
        if tid not in per:
            per[tid] = PlannedTarget(calendar_id=tid, calendar_name=found.calendars[tid].name)
        return per[tid]

    for d in found.plan.creates:
        target(d.target_calendar_id).creates += 1
        why = "a blocking event has no block there yet"
        items[d.target_calendar_id].append(
            PlannedChange(
                action="create", summary=d.summary, start_at=d.start_at, end_at=d.end_at, reason=why
            )
        )
    for old, d in found.plan.patches:
        target(d.target_calendar_id).updates += 1
        why = f'the block shows "{old.summary}" at other times or title than its event now'
        items[d.target_calendar_id].append(
            PlannedChange(
                action="update", summary=d.summary, start_at=d.start_at, end_at=d.end_at, reason=why
            )
        )
    held = [
        (b, True)
        for targets in found.held.blocks.values()
        for blocks in targets.values()
        for b in blocks
    ]
    for b, is_held in [*((b, False) for b in found.plan.deletes), *held]:
        planned = target(b.target_calendar_id)
        if is_held:
            planned.held += 1
        else:
            planned.deletes += 1
        start, end = _when(found, b)
        why = _delete_reason(found, b)
        if is_held:
            why += "; held: its source suddenly returned far fewer events (confirm to delete)"
        items[b.target_calendar_id].append(
            PlannedChange(
                action="delete",
                summary=b.summary,
                start_at=start,
                end_at=end,
                reason=why,
                held=is_held,
            )
        )
    for orphan in orphans:
        target(orphan.target_calendar_id).deletes += 1
        zone = found.calendars[orphan.target_calendar_id].time_zone or "UTC"
        items[orphan.target_calendar_id].append(
            PlannedChange(
                action="delete",
                summary=orphan.block.title,
                start_at=orphan.block.start.to_utc(zone),
                end_at=orphan.block.end.to_utc(zone),
                reason=orphan.reason,
            )
        )
    targets = []
    for tid in sorted(per):
        per[tid].changes = items[tid][:MAX_PLANNED_ITEMS]
        targets.append(per[tid])
    return PlanPreview(
        calendars_read=list(read),
        creates=sum(t.creates for t in targets),
        updates=sum(t.updates for t in targets),
        deletes=sum(t.deletes for t in targets),
        held=sum(t.held for t in targets),
        targets=targets,
        notes=[*found.notes, *notes],
    )


def dry_run(
    db: sa.Engine,
    pool: ProviderPool,
    user_id: int,
    calendar_ids: Sequence[int] | None,
    now: datetime,
    horizon_days: int,
    *,
    full: bool = False,
) -> PlanPreview:
    """What syncing ``calendar_ids`` (None: every synced calendar) of the user whole would
    change now: each read afresh from its provider, the whole user planned; nothing written.
    ``full``: what a full reconcile would change, its listing of every target's blocks too."""
    notes: list[str] = []
    with Session(db, autoflush=False) as session:
        try:
            accounts, calendars = user_calendars(session, user_id)
            zone = user_time_zone(calendars.values())
            window = sync_window(now, zone, horizon_days)
            wanted = [
                c
                for cid, c in sorted(calendars.items())
                if (calendar_ids is None or cid in calendar_ids)
                and c.sync_enabled
                and accounts[c.account_id].state == AccountState.ACTIVE
            ]
            fresh, dropped = read_fresh(session, pool, wanted, accounts, window, zone, notes)
            orphans: list[Orphan] = []
            adopted: list[BusyBlock] = []
            if full:
                report = SyncReport()
                views = user_views(calendars, accounts, report)
                # The session is never flushed (autoflush off) and rolled back below: the
                # listing's adoptions and hand-edit marks live only in it, for the planner.
                orphans = square_listing(
                    session, pool, calendars, accounts, views, window, report, now
                )
                adopted = [row for row in session.new if isinstance(row, BusyBlock)]
                notes += report.notes
            found = plan_user(
                session, user_id, now, horizon_days, fresh=fresh, dropped=dropped, adopted=adopted
            )
            # As the engine does: a listed block the plan creates again or moves is no orphan.
            planned = {(d.target_calendar_id, d.provider_event_id) for d in found.plan.creates}
            planned |= {(b.target_calendar_id, b.provider_event_id) for b, _ in found.plan.patches}
            orphans = [o for o in orphans if (o.target_calendar_id, o.block.id) not in planned]
            return preview(found, sorted(fresh), notes, orphans)
        finally:
            session.rollback()
            pool.close()
