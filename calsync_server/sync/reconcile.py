"""Reconcile: the rows and events in scope of a sync, planned together, and a plan that leaves
out only the calendar whose data breaks the planner."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session, col, or_, select

from calsync_server.db.models import Account, BusyBlock, Calendar, Event
from calsync_server.providers.registry import block_identity
from calsync_server.sync.planner import (
    BlockIdentity,
    BusyBlockPlan,
    CalendarView,
    DesiredBlock,
    ExistingBlock,
    SourceEvent,
    plan_busy_blocks,
    second_copies,
    source_key,
)
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import chunks, events_by_id, existing_of, source_of
from calsync_server.sync.verdicts import Outcome, PlanTrace

PIECES_CHUNK = 50  # prefix matches per query: one LIKE each


def identity_of(
    calendars: Mapping[int, Calendar], accounts: Mapping[int, Account]
) -> BlockIdentity:
    """Each target's block ids, by its account's provider (pure: no provider is opened)."""

    def block_id(target_id: int, digest: str) -> str | None:
        account = accounts[calendars[target_id].account_id]
        return block_identity(str(account.provider))(digest)

    return block_id


def block_rows(
    session: Session, calendars: Mapping[int, Calendar]
) -> dict[int, dict[str, BusyBlock]]:
    """Every block row of the user's calendars, by target and source key: loaded once for a
    full pass, which squares the listing with them and then plans from them."""
    found: dict[int, dict[str, BusyBlock]] = {cid: {} for cid in calendars}
    for row in session.exec(
        select(BusyBlock).where(col(BusyBlock.target_calendar_id).in_(list(calendars)))
    ):
        found[row.target_calendar_id][row.source_key] = row
    return found


def whole_user_scope(
    session: Session,
    calendars: Mapping[int, Calendar],
    window: tuple[datetime, datetime],
    loaded: Mapping[int, Mapping[str, BusyBlock]] | None = None,
) -> tuple[list[Event], list[BusyBlock]]:
    """Every live event in the window and every block row of the user's calendars (`loaded`:
    the rows as block_rows read them, and what the listing adopted since)."""
    events = list(
        session.exec(
            select(Event).where(
                col(Event.calendar_id).in_(list(calendars)),
                col(Event.is_deleted).is_(False),
                col(Event.end_at) > window[0],
                col(Event.start_at) < window[1],
            )
        )
    )
    if loaded is not None:
        return events, [row for by_key in loaded.values() for row in by_key.values()]
    rows = list(
        session.exec(
            select(BusyBlock).where(col(BusyBlock.target_calendar_id).in_(list(calendars)))
        )
    )
    return events, rows


def changed_scope(
    session: Session,
    calendar_id: int,
    changed: Sequence[str],
    views: Mapping[int, CalendarView],
    calendars: Mapping[int, Calendar],
) -> tuple[list[Event], list[BusyBlock]]:
    """The changed events of one calendar and every block row of their source keys (and of
    the later pieces working hours cut an event into: ``<key>:<date>``)."""
    events = events_by_id(session, calendar_id, changed)
    keys = [source_key(views[calendar_id], pid) for pid in changed]
    # By key in any of the user's calendars, whichever calendar wrote the row: the same
    # calendar seen through another account has the same keys.
    rows = [
        row
        for chunk in chunks(keys)
        for row in session.exec(
            select(BusyBlock).where(
                col(BusyBlock.target_calendar_id).in_(list(calendars)),
                col(BusyBlock.source_key).in_(chunk),
            )
        )
    ]
    if any(v.receives_blocks and v.rules.working_hours for v in views.values()):
        rows += [
            row
            for chunk in chunks(keys, PIECES_CHUNK)
            for row in session.exec(
                select(BusyBlock).where(
                    col(BusyBlock.target_calendar_id).in_(list(calendars)),
                    or_(*(col(BusyBlock.source_key).startswith(f"{key}:") for key in chunk)),
                )
            )
        ]
    return events, rows


def readable(
    events: Iterable[Event], calendars: Mapping[int, Calendar], zone: str
) -> tuple[list[SourceEvent], list[Event]]:
    """Stored events as the planner reads them, and the live ones whose times cannot be read
    (their calendars' blocks are then left as they are: never deleted because calsync cannot
    read its own row)."""
    sources: list[SourceEvent] = []
    unreadable: list[Event] = []
    for e in events:
        source = source_of(e, calendars[e.calendar_id].time_zone or zone)
        if source is not None:
            sources.append(source)
        elif not e.is_deleted:
            unreadable.append(e)
    return sources, unreadable


def plan_scope(
    views: dict[int, CalendarView],
    events: Sequence[Event],
    rows: Sequence[BusyBlock],
    calendars: dict[int, Calendar],
    accounts: dict[int, Account],
    *,
    now: datetime,
    zone: str,
    horizon_days: int,
    report: SyncReport,
) -> BusyBlockPlan:
    """The plan for everything in scope; if one calendar's data breaks the planner, the plan
    of every other calendar's blocks, and a note naming the one left out."""
    sources, unreadable = readable(events, calendars, zone)
    plan, _ = plan_leaving_out(
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
    )
    return plan


def plan_leaving_out(
    views: Mapping[int, CalendarView],
    sources: Sequence[SourceEvent],
    unreadable: Sequence[Event],
    existing: Sequence[ExistingBlock],
    calendars: Mapping[int, Calendar],
    block_id: BlockIdentity,
    *,
    now: datetime,
    zone: str,
    horizon_days: int,
    report: SyncReport,
    trace: PlanTrace | None = None,
) -> tuple[BusyBlockPlan, set[int]]:
    """The plan of ``sources`` and ``existing``, as the sync and the previews (dry run,
    explain) both plan: whole, or, if a calendar's data breaks the planner (an ``unreadable``
    event of it, or an error planning its keys), the plan of every other calendar's blocks,
    that calendar's blocks left as they are and a note naming it. Returns the plan and the
    calendars left out (by the id of the copy that speaks for each). ``trace`` is filled from
    the plan returned only, never from a try that failed."""
    copies = second_copies(views.values())

    def speaker(calendar_id: int) -> int:
        return copies[calendar_id].id if calendar_id in copies else calendar_id

    broken = {speaker(e.calendar_id) for e in unreadable}
    traces: list[PlanTrace] = []

    def plan(
        part_views: Iterable[CalendarView],
        part_events: Iterable[SourceEvent],
        part_blocks: Iterable[ExistingBlock],
    ) -> BusyBlockPlan:
        # A fresh trace per try: one that fails may have filled part of its own.
        tried = PlanTrace() if trace is not None else None
        found = plan_busy_blocks(
            part_views,
            part_events,
            part_blocks,
            now=now,
            time_zone=zone,
            horizon_days=horizon_days,
            block_id=block_id,
            trace=tried,
        )
        if tried is not None:
            traces.append(tried)
        return found

    failure: Exception = ValueError("an event without start and end cannot be mirrored")
    if not broken:
        try:
            whole = plan(views.values(), sources, existing)
            _fill(trace, traces)
            return whole, set()
        except (ValueError, KeyError, TypeError) as whole_failed:
            failure = whole_failed
    # Planning per source key gives the plan of the whole (the planner's property tests): so
    # plan each source calendar's keys apart, and leave out only those that fail.
    owner: dict[str, int] = {}
    events_of: dict[int, list[SourceEvent]] = defaultdict(list)
    for e in unreadable:
        owner.setdefault(
            source_key(views[e.calendar_id], e.provider_event_id), speaker(e.calendar_id)
        )
    for event in sources:
        cid = speaker(event.calendar_id)
        key = source_key(views[event.calendar_id], event.event.id)
        owner.setdefault(key, cid)
        events_of[owner[key]].append(event)
    blocks_of: dict[int, list[ExistingBlock]] = defaultdict(list)
    for block in existing:
        blocks_of[owner.get(block.source_key, block.source_calendar_id)].append(block)
    creates: list[DesiredBlock] = []
    patches: list[tuple[ExistingBlock, DesiredBlock]] = []
    deletes: list[ExistingBlock] = []
    preserved: list[ExistingBlock] = []
    restamps: list[tuple[ExistingBlock, DesiredBlock]] = []
    failed: set[int] = set()
    for cid in sorted(events_of.keys() | blocks_of.keys() | broken):
        try:
            if cid in broken:
                raise failure
            part = plan(views.values(), events_of[cid], blocks_of[cid])
        except (ValueError, KeyError, TypeError) as exc:
            name = calendars[cid].name if cid in calendars else f"calendar {cid}"
            report.unplanned += 1
            report.note(f"the blocks of {name} were left as they are: {exc}")
            failed.add(cid)
            continue
        creates += part.creates
        patches += part.patches
        deletes += part.deletes
        preserved += part.preserved
        restamps += part.restamps
    if not failed:  # the whole failed, yet no part: say why all the same
        report.unplanned += 1
        report.note(f"planning failed: {failure}")
    if failed and any(v.receives_blocks and v.rules.merge for v in views.values()):
        # Planned apart, a target that merges would merge each source's blocks alone and
        # split the merged blocks of the healthy ones. So the healthy ones are planned
        # together, the failed ones' blocks left standing as for a refused login (a merged
        # block one of them is a member of stands whole, and covers what it spans).
        together = unplannable(views, failed)
        parts = len(traces)
        try:
            found = plan(
                together.values(),
                [e for e in sources if speaker(e.calendar_id) not in failed],
                existing,
            )
            _fill(trace, traces[parts:])
            return found, failed
        except (ValueError, KeyError, TypeError):
            pass  # the parts planned apart, as they came
    if trace is not None:
        # What the plan does with the blocks it left out: it leaves them as they are.
        left = PlanTrace()
        for cid in failed:
            for block in blocks_of[cid]:
                left.outcomes[(block.target_calendar_id, block.source_key)] = Outcome.LEFT
        traces.append(left)
    _fill(trace, traces)
    return (
        BusyBlockPlan(
            creates=tuple(creates),
            patches=tuple(patches),
            deletes=tuple(deletes),
            preserved=tuple(preserved),
            restamps=tuple(restamps),
        ),
        failed,
    )


def _fill(trace: PlanTrace | None, parts: Sequence[PlanTrace]) -> None:
    """Each part's reasons into ``trace`` (parts plan disjoint source keys)."""
    if trace is None:
        return
    for part in parts:
        trace.sources.update(part.sources)
        trace.targets.update(part.targets)
        trace.blocks.update(part.blocks)
        trace.outcomes.update(part.outcomes)


def unplannable(views: Mapping[int, CalendarView], failed: set[int]) -> dict[int, CalendarView]:
    """The views with each failed calendar (and every copy of it) unplannable."""
    copies = second_copies(views.values())
    return {
        cid: replace(view, unplannable=True)
        if (copies[cid].id if cid in copies else cid) in failed
        else view
        for cid, view in views.items()
    }
