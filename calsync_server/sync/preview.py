"""Explain and the dry run (domain.md "Trust"): the plan a sync would make now, with the
planner's own reasons (its PlanTrace), from the inputs the engine plans with. Nothing here
writes: not to a provider (a dry run only reads) and not to the database (the session is
only read and never flushed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar, Event, SyncLog
from calsync_server.providers.model import ProviderError
from calsync_server.sync import holds
from calsync_server.sync.ingest import unmask_blocks
from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    ExistingBlock,
    SourceEvent,
    plan_busy_blocks,
    second_copies,
    source_key,
    sync_window,
)
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.reconcile import identity_of, whole_user_scope
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import (
    existing_of,
    source_of,
    user_calendars,
    user_time_zone,
    user_views,
)
from calsync_server.sync.safety import Held, hold_deletes, read_dropped
from calsync_server.sync.verdicts import (
    OUTCOME_WORDS,
    REASONS,
    Outcome,
    PlanTrace,
    Verdict,
    not_a_target_words,
    verdict_in,
)
from shared.domain import AccountState
from shared.schemas import (
    MAX_PLANNED_ITEMS,
    ExplainBlock,
    ExplainEvent,
    ExplainTarget,
    PlannedChange,
    PlannedTarget,
    PlanPreview,
)


@dataclass
class UserPlan:
    """One user's world as the planner reads it, planned with its reasons."""

    accounts: dict[int, Account]
    calendars: dict[int, Calendar]
    views: dict[int, CalendarView]
    now: datetime
    rows: list[BusyBlock]
    plan: BusyBlockPlan = field(default_factory=BusyBlockPlan)
    trace: PlanTrace = field(default_factory=PlanTrace)
    held: Held = field(default_factory=lambda: Held({}))
    notes: list[str] = field(default_factory=list)

    @property
    def copies(self) -> dict[int, CalendarView]:
        return second_copies(self.views.values())


def plan_user(
    session: Session,
    user_id: int,
    now: datetime,
    horizon_days: int,
    *,
    extra: Sequence[Event] = (),
    fresh: dict[int, list[SourceEvent]] | None = None,
    dropped: set[int] | None = None,
) -> UserPlan:
    """The whole user's plan now: stored events (``extra`` rows too, even deleted or outside
    the window, so that they get a verdict), except the calendars in ``fresh``, whose events
    are the ones just read; the safety catch as the engine applies it."""
    accounts, calendars = user_calendars(session, user_id)
    report = SyncReport()
    views = user_views(calendars, accounts, report)
    zone = user_time_zone(calendars.values())
    window = sync_window(now, zone, horizon_days)
    rows_events, rows = whole_user_scope(session, calendars, window)
    fresh = fresh or {}
    seen = {e.id for e in rows_events}
    sources: list[SourceEvent] = []
    for e in [*rows_events, *(x for x in extra if x.id not in seen)]:
        if e.calendar_id in fresh:
            continue
        source = source_of(e, calendars[e.calendar_id].time_zone or zone)
        if source is not None:
            sources.append(source)
    for events in fresh.values():
        sources.extend(events)
    found = UserPlan(accounts, calendars, views, now, rows, notes=report.notes)
    found.plan = plan_busy_blocks(
        views.values(),
        sources,
        [existing_of(row) for row in rows],
        now=now,
        time_zone=zone,
        horizon_days=horizon_days,
        block_id=identity_of(calendars, accounts),
        trace=found.trace,
    )
    holding = holds.holding(calendars) | (dropped or set())
    if holding:
        future = holds.future_blocks(session, list(calendars), now)
        found.plan, found.held = hold_deletes(found.plan, holding, future, now)
    return found


# -- explain -----------------------------------------------------------------------------------


def find_events(
    session: Session,
    user_id: int,
    *,
    event_id: int | None,
    calendar_id: int | None,
    provider_event_id: str | None,
    title: str | None,
    at: datetime | None,
    limit: int,
) -> tuple[list[Event], bool]:
    """The events asked for: by calsync's id, by calendar and the provider's id, or by a piece
    of the title (and an instant the event holds); at most ``limit``, only the user's."""
    calendars = list(user_calendars(session, user_id)[1])
    query = select(Event).where(col(Event.calendar_id).in_(calendars))
    if event_id is not None:
        query = query.where(Event.id == event_id)
    elif provider_event_id is not None:
        if calendar_id is None:
            raise ValueError("provider_event_id needs calendar_id")
        query = query.where(
            Event.calendar_id == calendar_id, Event.provider_event_id == provider_event_id
        )
    elif title is not None:
        escaped = title.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(col(Event.summary).ilike(f"%{escaped}%", escape="\\"))
        if calendar_id is not None:
            query = query.where(Event.calendar_id == calendar_id)
        if at is not None:
            query = query.where(col(Event.start_at) <= at, col(Event.end_at) > at)
    else:
        raise ValueError("give event_id, calendar_id and provider_event_id, or title")
    if not calendars:
        return [], False
    rows = list(session.exec(query.order_by(col(Event.start_at), col(Event.id)).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def _log_of(session: Session, row: BusyBlock, calendar_ids: list[int]) -> SyncLog | None:
    """The sync that wrote the block last: the log of a sync of the user's that ran when the
    row was written, its source's before others'."""
    candidates = list(
        session.exec(
            select(SyncLog)
            .where(
                col(SyncLog.calendar_id).in_(calendar_ids),
                col(SyncLog.started_at) <= row.updated_at,
                col(SyncLog.finished_at) >= row.updated_at,
            )
            .order_by(col(SyncLog.id).desc())
            .limit(50)
        )
    )
    candidates.sort(key=lambda log: log.calendar_id != row.source_calendar_id)
    return candidates[0] if candidates else None


def _explained_block(
    session: Session, found: UserPlan, target_id: int, key: str, row: BusyBlock | None
) -> ExplainBlock:
    outcome = found.trace.outcomes.get((target_id, key), Outcome.CREATE)
    desired = next(
        (d for d in found.plan.creates if (d.target_calendar_id, d.source_key) == (target_id, key)),
        None,
    )
    if row is None:
        return ExplainBlock(
            summary=desired.summary if desired else "",
            start_at=desired.start_at if desired else None,
            end_at=desired.end_at if desired else None,
            outcome=outcome.value,
            outcome_words=OUTCOME_WORDS[outcome],
        )
    held = any(
        b.provider_event_id == row.provider_event_id
        for targets in found.held.blocks.values()
        for b in targets.get(target_id, ())
    )
    words = OUTCOME_WORDS[outcome]
    if held:
        words = "held by the safety catch: its source suddenly returned far fewer events"
    by = "deleted by hand" if row.user_deleted else "changed by hand" if row.user_modified else ""
    log = _log_of(session, row, list(found.calendars))
    return ExplainBlock(
        summary=row.summary,
        start_at=row.start_at,
        end_at=row.end_at,
        outcome=outcome.value,
        outcome_words=words,
        provider_event_id=row.provider_event_id,
        written_by=by or "calsync",
        written_at=row.updated_at,
        sync_log_id=log.id if log else None,
        sync_calendar_id=log.calendar_id if log else None,
    )


def explain(session: Session, found: UserPlan, event: Event) -> ExplainEvent:
    """Why ``event`` blocks or not in each of the user's other calendars, from the plan."""
    calendar = found.calendars[event.calendar_id]
    view = found.views[event.calendar_id]
    key = source_key(view, event.provider_event_id)
    copies = found.copies
    verdict = found.trace.sources.get(key, Verdict.NOT_A_SOURCE)
    reason = REASONS[verdict]
    if verdict is Verdict.NOT_A_SOURCE:
        reason = _not_a_source_words(view, copies.get(view.id))
    rows_at: dict[tuple[int, str], BusyBlock] = {
        (r.target_calendar_id, r.source_key): r for r in found.rows
    }
    targets: list[ExplainTarget] = []
    for tid, target in sorted(found.views.items()):
        if tid == view.id:
            continue
        got = verdict_in(found.trace, key, target, copies.get(tid))
        words = REASONS[got]
        if got is Verdict.NOT_A_TARGET:
            words = not_a_target_words(target, copies.get(tid))
        elif got is Verdict.NOT_A_SOURCE:
            words = reason
        keys = list(found.trace.blocks.get((tid, key), []))
        keys += [
            k
            for (t, k) in rows_at
            if t == tid and (k == key or k.startswith(f"{key}:")) and k not in keys
        ]
        blocks = [_explained_block(session, found, tid, k, rows_at.get((tid, k))) for k in keys]
        targets.append(
            ExplainTarget(
                calendar_id=tid,
                calendar_name=found.calendars[tid].name,
                verdict=got.value,
                reason=words,
                blocks=blocks,
            )
        )
    assert event.id is not None
    return ExplainEvent(
        event_id=event.id,
        calendar_id=event.calendar_id,
        calendar_name=calendar.name,
        provider_event_id=event.provider_event_id,
        title=event.summary,
        start_at=event.start_at,
        end_at=event.end_at,
        all_day=event.all_day,
        verdict=verdict.value,
        reason=reason,
        targets=targets,
    )


def _not_a_source_words(view: CalendarView, copy_of: CalendarView | None) -> str:
    if copy_of is not None:
        return f"its calendar is synced through another account (calendar {copy_of.id})"
    if not view.sync_enabled:
        return "sync is off for its calendar"
    if not view.role.is_source:
        return "its calendar is a target only"
    if not view.account_active:
        return "its calendar's login needs renewing"
    return REASONS[Verdict.NOT_A_SOURCE]


# -- the dry run -------------------------------------------------------------------------------


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


def _when(block: ExistingBlock) -> tuple[datetime | None, datetime | None]:
    start = block.start.to_utc("UTC") if block.start is not None else None
    return start, block.end_at or (block.end.to_utc("UTC") if block.end is not None else None)


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


def preview(found: UserPlan, read: Sequence[int], notes: list[str]) -> PlanPreview:
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
        start, end = _when(b)
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
) -> PlanPreview:
    """What syncing ``calendar_ids`` (None: every synced calendar) of the user whole would
    change now: each read afresh from its provider, the whole user planned; nothing written."""
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
            found = plan_user(session, user_id, now, horizon_days, fresh=fresh, dropped=dropped)
            return preview(found, sorted(fresh), notes)
        finally:
            session.rollback()
            pool.close()
