"""Release: a leaving account takes its blocks with it (disconnect, domain.md), and so does a
calendar that stops being a target, past ones included."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.model import ErrorKind, ProviderError
from calsync_server.sync.applier import BlockApplier
from calsync_server.sync.locks import UserLocks
from calsync_server.sync.plan_types import CalendarView
from calsync_server.sync.planner import BusyBlockPlan, second_copies
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from calsync_server.sync.retention import retained_since
from calsync_server.sync.rows import chunks, existing_of, user_calendars, user_views

# How far back a disconnect looks for calsync blocks in the leaving account's calendars.
RELEASE_LOOKBACK = timedelta(days=366)


def release_account(
    db: sa.Engine, locks: UserLocks, pool: ProviderPool, now: datetime, account_id: int
) -> SyncReport:
    """Remove every block the account's calendars sourced from the user's other calendars,
    and every calsync block in the account's own calendars while it can still reach them.
    Blocks the user edited by hand go too: their source is leaving.
    """
    report = SyncReport()
    with Session(db, expire_on_commit=False) as session:
        leaving = session.get(Account, account_id)
        if leaving is None:
            return report
        with locks.held(session, leaving.user_id):
            accounts, calendars = user_calendars(session, leaving.user_id)
            own = {cid for cid, c in calendars.items() if c.account_id == account_id}
            views = user_views(calendars, accounts, report)
            rows = [
                row
                for chunk in chunks(sorted(own))
                for row in session.exec(
                    select(BusyBlock).where(
                        sa.or_(
                            col(BusyBlock.source_calendar_id).in_(chunk),
                            col(BusyBlock.target_calendar_id).in_(chunk),
                        )
                    )
                )
            ]
            # A merged block stands for every member's source; its row names only the first
            # member's. One that stands for a leaving calendar's event goes too (the others'
            # events get blocks of their own at the next plan, merged again where they touch).
            seen = {id(row) for row in rows}
            rows += [
                row
                for chunk in chunks(sorted(calendars))
                for row in session.exec(
                    select(BusyBlock).where(
                        col(BusyBlock.target_calendar_id).in_(chunk),
                        col(BusyBlock.member_sources).is_not(None),
                    )
                )
                if id(row) not in seen and own.intersection(row.member_sources or ())
            ]
            # The account's calendars are off by now: one that another account reaches too
            # and syncs is a second copy, and its blocks are that account's to keep.
            copies = second_copies(views.values())
            staying: list[BusyBlock] = []
            for row in rows:
                if row.target_calendar_id in copies:
                    staying.append(row)  # the same provider event as the first copy's
                elif row.source_calendar_id in copies:
                    # Sourced by the same calendar the other account still syncs: kept, and
                    # now the other copy's (this account's rows go with it).
                    row.source_calendar_id = copies[row.source_calendar_id].id
                    session.add(row)
                    staying.append(row)
            kept = {id(row) for row in staying}
            leaving_rows = [r for r in rows if id(r) not in kept]
            deletes = tuple(
                existing_of(r)
                for r in leaving_rows
                if views[r.target_calendar_id].is_writable_target
            )
            known = {(r.target_calendar_id, r.provider_event_id) for r in rows}
            orphans: list[tuple[int, str]] = []
            try:
                for cid in sorted(own):
                    if not views[cid].is_writable_target or cid in copies:
                        continue
                    # Blocks whose row was lost (a crash) are found by calsync's mark.
                    listed = pool.get(leaving).list_blocks(
                        calendars[cid].provider_calendar_id,
                        window=(now - RELEASE_LOOKBACK, now + RELEASE_LOOKBACK),
                    )
                    orphans += [(cid, b.id) for b in listed if (cid, b.id) not in known]
                applier = BlockApplier(
                    session,
                    pool,
                    calendars,
                    accounts,
                    {(r.target_calendar_id, r.source_key): r for r in leaving_rows},
                    {},
                    report,
                    now,
                )
                applier.apply(BusyBlockPlan(deletes=deletes), orphans)
            except ProviderError as exc:
                session.rollback()
                report.error = str(exc)
            pool.finish(session, report)
            session.commit()
    return report


def history_left_behind(
    session: Session,
    pool: ProviderPool,
    calendar: Calendar,
    account: Account,
    views: dict[int, CalendarView],
    now: datetime,
    horizon_days: int,
    report: SyncReport,
) -> list[tuple[int, str]]:
    """The blocks a calendar that is no target any more holds from before the retained history.

    It keeps no calsync block, past ones included (domain.md), but the rows of blocks that
    ended before the retained history are gone (retention): the plan deletes the blocks it has
    rows for, and these are found by calsync's mark, as a disconnect finds them. One listing,
    only in a sync of the calendar itself that plans the whole user (turned off, or a full
    pass): a calendar that never was a target answers it empty.
    """
    assert calendar.id is not None
    view = views[calendar.id]
    if view.receives_blocks or view.keeps_blocks_while_off or not view.is_writable_target:
        return []
    if calendar.id in second_copies(views.values()):
        return []  # the first copy's blocks, which that copy keeps while it is a target
    try:
        listed = pool.get(account).list_blocks(
            calendar.provider_calendar_id,
            window=(now - RELEASE_LOOKBACK, retained_since(now, horizon_days)),
        )
    except ProviderError as exc:
        if exc.kind is ErrorKind.AUTH:
            raise
        report.note(f"older blocks in {calendar.name} could not be listed: {exc}")
        return []
    known = set(
        session.exec(
            select(BusyBlock.provider_event_id).where(BusyBlock.target_calendar_id == calendar.id)
        )
    )
    return [(calendar.id, block.id) for block in listed if block.id not in known]
