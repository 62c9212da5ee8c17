"""Explain (domain.md "Trust"): the whole user's plan with the planner's own reasons (its
PlanTrace), from the inputs the engine plans with, and why each event blocks or not in each
target. The dry run (dry_run.py) plans through here too, and both plan as the sync does
(reconcile.plan_leaving_out: a calendar whose data breaks the planner is left out, named in a
note). Nothing here writes: the session is only read and never flushed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar, Event, SyncLog
from calsync_server.sync import holds
from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    SourceEvent,
    second_copies,
    source_key,
    sync_window,
)
from calsync_server.sync.reconcile import (
    identity_of,
    plan_leaving_out,
    readable,
    unplannable,
    whole_user_scope,
)
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import (
    existing_of,
    user_calendars,
    user_time_zone,
    user_views,
)
from calsync_server.sync.safety import Held, hold_deletes
from calsync_server.sync.verdicts import (
    OUTCOME_WORDS,
    REASONS,
    Outcome,
    PlanTrace,
    Verdict,
    not_a_target_words,
    verdict_in,
)
from shared.schemas import (
    ExplainBlock,
    ExplainEvent,
    ExplainTarget,
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
    adopted: Sequence[BusyBlock] = (),
) -> UserPlan:
    """The whole user's plan now: stored events (``extra`` rows too, even deleted or outside
    the window, so that they get a verdict), except the calendars in ``fresh``, whose events
    are the ones just read; ``adopted`` block rows (a full listing's, never stored) with the
    stored ones; the safety catch as the engine applies it."""
    accounts, calendars = user_calendars(session, user_id)
    report = SyncReport()
    views = user_views(calendars, accounts, report)
    zone = user_time_zone(calendars.values())
    window = sync_window(now, zone, horizon_days)
    rows_events, rows = whole_user_scope(session, calendars, window)
    rows += adopted
    fresh = fresh or {}
    seen = {e.id for e in rows_events}
    stored = [
        e
        for e in [*rows_events, *(x for x in extra if x.id not in seen)]
        if e.calendar_id not in fresh
    ]
    sources, unreadable = readable(stored, calendars, zone)
    for events in fresh.values():
        sources.extend(events)
    found = UserPlan(accounts, calendars, views, now, rows, notes=report.notes)
    # Planned as the sync plans: a calendar whose data breaks the planner is left out, its
    # blocks left as they are, and a note names it.
    found.plan, left_out = plan_leaving_out(
        views,
        sources,
        unreadable,
        [existing_of(row) for row in rows],
        calendars,
        identity_of(calendars, accounts),
        now=now,
        zone=zone,
        horizon_days=horizon_days,
        report=report,
        trace=found.trace,
    )
    found.views = unplannable(views, left_out)
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


def _log_of(session: Session, row: BusyBlock) -> SyncLog | None:
    """The sync that wrote the block last: the log carrying the key its row carries (none for
    a row adopted by a full reconcile, or written before calsync kept the key)."""
    if row.sync_key is None:
        return None
    return session.exec(select(SyncLog).where(SyncLog.sync_key == row.sync_key)).first()


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
    log = _log_of(session, row)
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
    if view.unplannable:
        return (
            "its calendar's events could not be planned this time: its blocks are left as they are"
        )
    return REASONS[Verdict.NOT_A_SOURCE]
