"""Purge: find calsync's blocks by their mark on the provider's side and delete them, without
trusting the database's block rows (after a lost database, or to leave calsync for good).

Only the accounts' logins and the provider protocol's listing of marked blocks are needed; the
block rows are removed afterwards so that a later sync does not think the blocks still exist.
Two steps, so a person sees what goes before it goes: `find_blocks`, then `purge_blocks`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.model import (
    BlockAction,
    BlockOp,
    ErrorKind,
    ProviderError,
    RemoteEvent,
)
from calsync_server.sync.engine import SyncEngine
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import chunks
from shared.domain import AccountState, CalendarRole

# How far back blocks are looked for: history older than this stays (listing a calendar over
# many years costs every recurring series of the person expanded over them, on CalDAV).
PURGE_LOOKBACK = timedelta(days=731)
# How far past the sync window: a window that was longer once left blocks out there.
PURGE_BEYOND_WINDOW = timedelta(days=366)
# Deletes sent to a provider at once: a failure mid-way loses one chunk, not the calendar.
PURGE_CHUNK = 50


class PurgeError(ValueError):
    """The purge asked for cannot be done (an unknown account or calendar); for the person."""


@dataclass(frozen=True, slots=True)
class PurgeScope:
    """Whose blocks: one user's (None: every user's), one account's, one calendar's."""

    user_id: int | None = None
    account_id: int | None = None
    calendar_id: int | None = None


@dataclass(slots=True)
class PurgeFailure:
    block: RemoteEvent
    reason: str  # the provider's own words


@dataclass(slots=True)
class PurgeCalendar:
    """One calendar's marked blocks, and what became of them."""

    calendar_id: int
    name: str
    user_id: int
    account_id: int
    account_email: str
    provider: str
    provider_calendar_id: str
    # Sync is on and it is a target: the next sync writes its blocks again.
    receives_blocks: bool
    found: list[RemoteEvent] = field(default_factory=list)
    # The listing failed: nothing is known of this calendar's blocks (the provider's words).
    error: str | None = None
    # calsync's other calendars that are this same provider calendar (one calendar reached
    # through two accounts): their rows stand for the same blocks.
    copies: tuple[int, ...] = ()
    deleted: int = 0
    already_gone: int = 0
    failed: list[PurgeFailure] = field(default_factory=list)
    rows_removed: int = 0
    # How it stopped receiving blocks (--stop-sync): "source" (it gives blocks still, role
    # both became source) or "off" (a target only: sync turned off); None: it did not.
    stopped: str | None = None

    @property
    def left(self) -> int:
        """Blocks still at the provider, as far as calsync knows: failed or never listed."""
        return len(self.failed)


@dataclass(slots=True)
class PurgePlan:
    calendars: list[PurgeCalendar] = field(default_factory=list)
    # Accounts that cannot be reached (their login needs renewing): nothing of theirs is known.
    skipped: list[str] = field(default_factory=list)

    @property
    def found(self) -> int:
        return sum(len(c.found) for c in self.calendars)

    @property
    def receiving(self) -> list[PurgeCalendar]:
        return [c for c in self.calendars if c.receives_blocks and c.found]


def _span(engine: SyncEngine) -> tuple[datetime, datetime]:
    now = engine.clock.now()
    ahead = timedelta(days=engine.settings.horizon_days) + PURGE_BEYOND_WINDOW
    return now - PURGE_LOOKBACK, now + ahead


def _in_scope(session: Session, scope: PurgeScope) -> list[tuple[Calendar, Account]]:
    query = select(Calendar, Account).join(Account, col(Calendar.account_id) == Account.id)
    if scope.user_id is not None:
        query = query.where(Account.user_id == scope.user_id)
    if scope.account_id is not None:
        query = query.where(Account.id == scope.account_id)
    if scope.calendar_id is not None:
        query = query.where(Calendar.id == scope.calendar_id)
    found = list(session.exec(query.order_by(col(Calendar.id))).all())
    if not found:
        if scope.calendar_id is not None:
            raise PurgeError(
                f"no calendar {scope.calendar_id} in scope (see `calsync calendars list`)"
            )
        if scope.account_id is not None:
            raise PurgeError(
                f"no account {scope.account_id} in scope (see `calsync accounts list`)"
            )
    return found


def _receives(calendar: Calendar) -> bool:
    try:
        role = CalendarRole(calendar.role)
    except ValueError:
        return False
    return calendar.sync_enabled and role.is_target and not calendar.read_only


def find_blocks(engine: SyncEngine, scope: PurgeScope) -> PurgePlan:
    """Blocking. Every calsync block in the calendars in scope, listed by the provider's mark
    (never the title, never the block rows). A calendar whose listing fails says why."""
    plan = PurgePlan()
    with Session(engine.db) as session:
        pairs = _in_scope(session, scope)
        # One provider calendar reached through two accounts of a user is listed once, through
        # an account that can reach it.
        same: dict[tuple[int, str, str], list[tuple[Calendar, Account]]] = defaultdict(list)
        for calendar, account in pairs:
            key = (account.user_id, str(account.provider), calendar.provider_calendar_id)
            same[key].append((calendar, account))
        pool = ProviderPool(engine.vault, engine.provider_factory)
        span = _span(engine)
        report = SyncReport()
        try:
            for group in same.values():
                group.sort(key=lambda pair: (pair[1].state != AccountState.ACTIVE, pair[0].id))
                calendar, account = group[0]
                if account.state != AccountState.ACTIVE:
                    note = f"{account.email}: its login needs renewing; sign in again first"
                    if note not in plan.skipped:
                        plan.skipped.append(note)
                    continue
                if calendar.read_only:
                    continue  # calsync cannot write there: it holds no block of calsync's
                assert calendar.id is not None
                assert account.id is not None
                found = PurgeCalendar(
                    calendar_id=calendar.id,
                    name=calendar.name,
                    user_id=account.user_id,
                    account_id=account.id,
                    account_email=account.email,
                    provider=str(account.provider),
                    provider_calendar_id=calendar.provider_calendar_id,
                    receives_blocks=any(_receives(c) for c, _ in group),
                    copies=tuple(c.id for c, _ in group[1:] if c.id is not None),
                )
                try:
                    provider = pool.get(account)
                    listed = provider.list_blocks(calendar.provider_calendar_id, window=span)
                    found.found = sorted(listed, key=lambda b: (b.start.to_utc(), b.id))
                except (ProviderError, ValueError) as exc:
                    found.error = str(exc)
                plan.calendars.append(found)
        finally:
            pool.finish(session, report)
            session.commit()
    return plan


def purge_blocks(engine: SyncEngine, plan: PurgePlan, *, stop_receiving: bool = False) -> PurgePlan:
    """Blocking. Delete the blocks `find_blocks` listed, then calsync's rows for them; with
    `stop_receiving`, the calendars first stop being targets so no sync writes them again.

    Each user's calendars are done under the user's block-writing lock, so no sync of theirs
    writes a block or a row in between. A block the provider says is gone counts as done."""
    by_user: dict[int, list[PurgeCalendar]] = defaultdict(list)
    for calendar in plan.calendars:
        if calendar.error is None:
            by_user[calendar.user_id].append(calendar)
    for user_id, calendars in sorted(by_user.items()):
        pool = ProviderPool(engine.vault, engine.provider_factory)
        report = SyncReport()
        with (
            Session(engine.db, expire_on_commit=False) as session,
            engine.locks.held(session, user_id),
        ):
            if stop_receiving:
                _stop_receiving(session, calendars)
            engine.locks.free_the_file(session)
            for calendar in calendars:
                _delete(session, pool, calendar)
            for calendar in calendars:
                _forget(session, calendar)
            pool.finish(session, report)
            session.commit()
    return plan


def _stop_receiving(session: Session, calendars: Sequence[PurgeCalendar]) -> None:
    """A calendar that gives blocks too stays a source (role `source`): the person's events
    there keep their blocks elsewhere; a target only has its sync turned off."""
    for found in calendars:
        if not found.receives_blocks:
            continue
        for calendar_id in (found.calendar_id, *found.copies):
            calendar = session.get(Calendar, calendar_id)
            if calendar is None or not _receives(calendar):
                continue
            if CalendarRole(calendar.role) is CalendarRole.BOTH:
                calendar.role = CalendarRole.SOURCE
                found.stopped = found.stopped or "source"
            else:
                calendar.sync_enabled = False
                calendar.sync_token = None
                found.stopped = "off"
            session.add(calendar)
    session.flush()


def _delete(session: Session, pool: ProviderPool, found: PurgeCalendar) -> None:
    account = session.get(Account, found.account_id)
    if account is None:
        found.failed = [PurgeFailure(b, "the account was disconnected") for b in found.found]
        return
    provider = pool.get(account)
    for start in range(0, len(found.found), PURGE_CHUNK):
        blocks = found.found[start : start + PURGE_CHUNK]
        ops = [
            # Unconditional: the block goes whatever it shows now (a hand edit included).
            BlockOp(BlockAction.DELETE, found.provider_calendar_id, block_id=block.id)
            for block in blocks
        ]
        try:
            results = provider.apply(ops)
        except ProviderError as exc:
            found.failed += [PurgeFailure(b, str(exc)) for b in blocks]
            continue
        for block, result in zip(blocks, results, strict=True):
            if result.error is None:
                found.deleted += 1
            elif result.error.kind is ErrorKind.GONE:
                found.already_gone += 1
            else:
                found.failed.append(PurgeFailure(block, str(result.error)))


def _forget(session: Session, found: PurgeCalendar) -> None:
    """Remove the rows of the blocks that are gone now (by id, or by source key: a row for a
    key whose block was listed and deleted stands for nothing any more)."""
    failed = {f.block.id for f in found.failed}
    gone = [b for b in found.found if b.id not in failed]
    if not gone:
        return
    targets = [found.calendar_id, *found.copies]
    ids = sorted({b.id for b in gone})
    kept_keys = {f.block.block_source for f in found.failed}
    keys = sorted({b.block_source for b in gone if b.block_source} - kept_keys)
    removed = 0
    for chunk in chunks(ids):
        removed += _delete_rows(session, targets, col(BusyBlock.provider_event_id).in_(chunk))
    for chunk in chunks(keys):
        removed += _delete_rows(session, targets, col(BusyBlock.source_key).in_(chunk))
    found.rows_removed = removed


def _delete_rows(session: Session, targets: list[int], which: sa.ColumnElement[bool]) -> int:
    statement = sa.delete(BusyBlock).where(col(BusyBlock.target_calendar_id).in_(targets), which)
    return int(session.connection().execute(statement).rowcount or 0)
