"""The sync engine: fetch a calendar's changes, plan the busy blocks they imply, apply, log them.

Blocking (database and provider calls): the server runs it in worker threads, never on the
event loop. One sync per calendar at a time is the caller's promise (the job queue's).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.accounts.vault import CredentialVault
from calsync_server.db.engine import lock_beside
from calsync_server.db.models import Account, BusyBlock, Calendar, Event, SyncLog, User
from calsync_server.providers.base import (
    BlockWrite,
    BlockWriteKind,
    EventFeed,
    ProviderError,
    ProviderUnavailable,
    ReauthRequired,
    SyncTokenExpired,
)
from calsync_server.providers.google import RetryPolicy
from calsync_server.sync.applier import BlockApplier, BlockKey
from calsync_server.sync.echoes import BlockChange, classify_block_change
from calsync_server.sync.events import EventSnapshot
from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    DesiredBlock,
    ExistingBlock,
    SourceEvent,
    plan_busy_blocks,
    second_copies,
    source_key,
    sync_window,
)
from calsync_server.sync.providers import ProviderFactory, ProviderPool, google_provider_factory
from calsync_server.sync.report import SyncReport
from shared.clock import Clock, SystemClock
from shared.domain import AccountState, BusyTitle, CalendarRole, SyncKind
from shared.settings import Settings

_CHUNK = 500  # keeps IN (...) lists well inside every database's limits
# How far back a disconnect looks for calsync blocks in the leaving account's calendars.
RELEASE_LOOKBACK = timedelta(days=366)


class CalendarNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class StoredFeed:
    changed: list[str]  # ids of the source events whose blocks must be planned again
    block_items: list[EventSnapshot]  # the feed's items of calsync's own blocks


@dataclass(frozen=True, slots=True)
class SyncResult:
    log: SyncLog
    report: SyncReport


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def calendar_view(calendar: Calendar, account: Account) -> CalendarView:
    assert calendar.id is not None
    return CalendarView(
        id=calendar.id,
        user_id=account.user_id,
        provider_calendar_id=calendar.provider_calendar_id,
        sync_enabled=calendar.sync_enabled,
        # Columns hold plain strings; the planner works with the enums.
        role=CalendarRole(calendar.role),
        busy_title=BusyTitle(calendar.busy_title),
        include_all_day=calendar.include_all_day,
        read_only=calendar.read_only,
        account_active=account.state == AccountState.ACTIVE,
        keep_blocks_when_off=calendar.keep_blocks_when_off,
    )


def frozen_view(calendar: Calendar, account: Account) -> CalendarView:
    """A calendar whose settings calsync cannot read (a value it does not know): nothing is
    read from or written to it, and no block is deleted because of it, as for a lost login."""
    assert calendar.id is not None
    return CalendarView(
        id=calendar.id,
        user_id=account.user_id,
        provider_calendar_id=calendar.provider_calendar_id,
        sync_enabled=False,
        role=CalendarRole.BOTH,
        busy_title=BusyTitle.PRIVATE,
        include_all_day=False,
        read_only=True,
        account_active=False,
    )


def user_views(
    calendars: dict[int, Calendar], accounts: dict[int, Account], report: SyncReport
) -> dict[int, CalendarView]:
    """The planner's view of each of the user's calendars; one with settings calsync cannot
    read is frozen, never a reason to fail the others' syncs."""
    views: dict[int, CalendarView] = {}
    for cid, calendar in calendars.items():
        account = accounts[calendar.account_id]
        try:
            views[cid] = calendar_view(calendar, account)
        except ValueError as exc:
            views[cid] = frozen_view(calendar, account)
            report.note(f"{calendar.name} is left alone: its settings cannot be read ({exc})")
    return views


def snapshot_of(event: Event) -> EventSnapshot:
    return EventSnapshot(
        provider_event_id=event.provider_event_id,
        recurring_event_id=event.recurring_event_id,
        etag=event.etag,
        status=event.status,
        summary=event.summary,
        start=event.start,
        end=event.end,
        start_at=event.start_at,
        end_at=event.end_at,
        all_day=event.all_day,
        transparency=event.transparency,
        event_type=event.event_type,
        self_response_status=event.self_response_status,
        is_busy_block=False,
        block_source_key=None,
        updated=event.provider_updated_at,
    )


def existing_of(row: BusyBlock) -> ExistingBlock:
    return ExistingBlock(
        target_calendar_id=row.target_calendar_id,
        source_calendar_id=row.source_calendar_id,
        source_key=row.source_key,
        provider_event_id=row.provider_event_id,
        summary=row.summary,
        start=row.start,
        end=row.end,
        user_modified=row.user_modified,
        user_deleted=row.user_deleted,
        source_fingerprint=row.source_fingerprint,
        end_at=row.end_at,
        etag=row.etag,
    )


def _apply_snapshot(event: Event, snapshot: EventSnapshot) -> None:
    event.recurring_event_id = snapshot.recurring_event_id
    event.etag = snapshot.etag
    event.status = snapshot.status
    event.summary = snapshot.summary
    event.start = snapshot.start
    event.end = snapshot.end
    event.start_at = snapshot.start_at
    event.end_at = snapshot.end_at
    event.all_day = snapshot.all_day
    event.transparency = snapshot.transparency
    event.event_type = snapshot.event_type
    event.self_response_status = snapshot.self_response_status
    event.provider_updated_at = snapshot.updated
    event.is_deleted = snapshot.status == "cancelled"


class SyncEngine:
    """Syncs one calendar at a time; every caller (worker, CLI, tests) goes through here."""

    def __init__(
        self,
        db: sa.Engine,
        settings: Settings,
        *,
        clock: Clock | None = None,
        vault: CredentialVault | None = None,
        provider_factory: ProviderFactory | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or SystemClock()
        self.vault = vault or CredentialVault(settings.home)
        self.provider_factory = provider_factory or google_provider_factory(
            settings.google_api_url, retry
        )
        self._locks_guard = threading.Lock()
        self._user_locks: dict[int, threading.Lock] = {}

    @contextmanager
    def user_lock(self, session: Session, user_id: int) -> Iterator[None]:
        """Hold the user's block-writing lock: a lock per process, and so that several
        processes agree too, the user's row on PostgreSQL (until the transaction ends) or a
        lock file beside a SQLite file (`calsync sync` beside a server)."""
        with self._locks_guard:
            lock = self._user_locks.setdefault(user_id, threading.Lock())
        with lock, lock_beside(self.db, f"user-{user_id}"):
            if self.db.dialect.name == "postgresql":
                session.exec(select(User.id).where(User.id == user_id).with_for_update()).all()
            yield

    # -- entry point --------------------------------------------------------------------------

    def sync_calendar(
        self,
        calendar_id: int,
        *,
        kind: SyncKind = SyncKind.MANUAL,
        full: bool = False,
        trigger: str = "",
        job_id: int | None = None,
    ) -> SyncResult:
        report = SyncReport()
        started = self.clock.now()
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            calendar = session.get(Calendar, calendar_id)
            if calendar is None:
                raise CalendarNotFound(f"calendar {calendar_id} does not exist")
            try:
                self._sync(session, calendar, full or kind is SyncKind.FULL, report, pool)
            except ReauthRequired as exc:
                session.rollback()
                # The account whose login failed, which need not be this calendar's own.
                failed = exc.account_id if exc.account_id is not None else calendar.account_id
                self._needs_reauth(session, failed, report, exc)
            except ProviderUnavailable as exc:
                session.rollback()
                report.error, report.retryable = str(exc), True
            except ProviderError as exc:
                session.rollback()
                report.error = str(exc)
            pool.finish(session, report)
            log = SyncLog(
                calendar_id=calendar_id,
                job_id=job_id,
                kind=kind,
                trigger=trigger or kind.value,
                status=report.status,
                started_at=started,
                finished_at=self.clock.now(),
                notes=list(report.notes),
                error=report.error,
                **report.counts(),
            )
            session.add(log)
            session.commit()
        return SyncResult(log=log, report=report)

    def _free_the_file(self, session: Session) -> None:
        """On SQLite, commit what is settled before the provider calls: one writer holds the
        whole file, and a transaction left open while the provider answers would stall every
        webhook and scheduler tick for as long. What is committed (adopted blocks, hand edits
        noticed) is what the provider already holds, so a crash after it loses nothing. The
        user's lock outlives the commit there: it is a lock file. On PostgreSQL it is a row
        lock of this transaction, and row locks stall no one else: keep it."""
        if self.db.dialect.name == "sqlite":
            session.commit()

    def _needs_reauth(
        self, session: Session, account_id: int, report: SyncReport, exc: ReauthRequired
    ) -> None:
        # The login is gone: stop syncing the account, delete nothing (domain.md).
        account = session.get(Account, account_id)
        email = ""
        if account is not None:
            account.state = AccountState.NEEDS_REAUTH
            session.add(account)
            email = f" {account.email}"
        report.error = f"the account{email} needs re-authorisation ({exc.reason})"
        report.note("login expired or revoked: sign in again to resume")

    # -- the sync -----------------------------------------------------------------------------

    def _sync(
        self,
        session: Session,
        calendar: Calendar,
        full: bool,
        report: SyncReport,
        pool: ProviderPool,
    ) -> None:
        assert calendar.id is not None
        account = session.get(Account, calendar.account_id)
        assert account is not None
        if account.state != AccountState.ACTIVE:
            report.error = "the account needs re-authorisation: nothing synced"
            return
        accounts, calendars = self._user_calendars(session, account.user_id)
        if calendar.sync_enabled:
            try:
                calendar_view(calendar, account)
            except ValueError as exc:
                report.error = f"this calendar's settings cannot be read: {exc}"
                return
            copy_of = second_copies(user_views(calendars, accounts, SyncReport()).values()).get(
                calendar.id
            )
            if copy_of is not None:
                # One calendar through two accounts is one calendar: the copy that came first
                # syncs it, and this one would only write its blocks a second time.
                first = calendars[copy_of.id]
                report.error = (
                    f"this calendar is also reached through {accounts[first.account_id].email} "
                    f'("{first.name}", calendar {first.id}), which syncs it: turn sync off here'
                )
                return
        zone = self._user_time_zone(calendars.values())
        now = self.clock.now()
        window = sync_window(now, zone, self.settings.horizon_days)

        feed: EventFeed | None = None
        stored = StoredFeed([], [])
        if calendar.sync_enabled:
            provider = pool.get(account)
            token = None if full else calendar.sync_token
            # A first sync is a full one: a new target needs blocks for everything already there.
            full = token is None
            try:
                feed = provider.fetch_events(
                    calendar.provider_calendar_id,
                    sync_token=token,
                    time_min=window[0],
                    time_max=window[1],
                )
            except SyncTokenExpired:
                report.note("token expired: full sync")
                full = True
                feed = provider.fetch_events(
                    calendar.provider_calendar_id,
                    sync_token=None,
                    time_min=window[0],
                    time_max=window[1],
                )
            stored = self._store_feed(session, calendar, feed, zone, report)
            # Events are committed before any block is written: a crash re-reads, never skips.
            session.commit()

        # Block rows of one user are read, planned and written by one sync at a time: two
        # full passes side by side would insert the same rows (unique violations, deadlocks),
        # and an echo compared with a row another sync is rewriting looks like a hand edit.
        with self.user_lock(session, account.user_id):
            session.expire_all()  # rows read before the lock may have been rewritten since
            # And the user's settings read again: a calendar turned on meanwhile, whose first
            # sync has written its blocks, must not look off (its blocks would be deleted).
            accounts, calendars = self._user_calendars(session, account.user_id)
            views = user_views(calendars, accounts, report)
            if stored.block_items:
                self._settle_block_items(
                    session, calendar, account, stored.block_items, pool, report
                )
            changed = stored.changed
            orphans: list[tuple[int, str]] = []
            if full or not calendar.sync_enabled:
                # The whole user is in scope: a full reconcile, or a calendar turned off.
                if full:
                    orphans = self._reconcile_listing(
                        session, pool, calendars, accounts, views, window, report
                    )
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
                rows = list(
                    session.exec(
                        select(BusyBlock).where(
                            col(BusyBlock.target_calendar_id).in_(list(calendars))
                        )
                    )
                )
            else:
                events = self._events_by_id(session, calendar.id, changed)
                keys = [source_key(views[calendar.id], pid) for pid in changed]
                # By key in any of the user's calendars, whichever calendar wrote the row: the
                # same calendar seen through another account has the same keys.
                rows = [
                    row
                    for chunk in _chunks(keys)
                    for row in session.exec(
                        select(BusyBlock).where(
                            col(BusyBlock.target_calendar_id).in_(list(calendars)),
                            col(BusyBlock.source_key).in_(chunk),
                        )
                    )
                ]

            plan = self._plan(views, events, rows, calendars, now, zone, report)
            row_index: dict[BlockKey, BusyBlock] = {
                (row.target_calendar_id, row.source_key): row for row in rows
            }
            event_ids = {(e.calendar_id, e.provider_event_id): e.id for e in events if e.id}
            applier = BlockApplier(
                session, pool, calendars, accounts, row_index, event_ids, report, now
            )
            self._free_the_file(session)
            applier.apply(plan, orphans)

            if feed is not None and not (report.failed_writes or report.unplanned):
                # Stored only now, with the blocks it led to: a crash before this re-reads.
                calendar.sync_token = feed.next_sync_token
            calendar.last_sync_at = now
            if full:
                calendar.last_full_sync_at = now
            session.add(calendar)
            session.commit()

    def _plan(
        self,
        views: dict[int, CalendarView],
        events: Sequence[Event],
        rows: Sequence[BusyBlock],
        calendars: dict[int, Calendar],
        now: datetime,
        zone: str,
        report: SyncReport,
    ) -> BusyBlockPlan:
        """The plan for everything in scope; if one calendar's data breaks the planner, the
        plan of every other calendar's blocks, and a note naming the one left out."""
        sources = [SourceEvent(e.calendar_id, snapshot_of(e), e.is_deleted) for e in events]
        existing = [existing_of(row) for row in rows]

        def plan(part_events: list[SourceEvent], part_blocks: list[ExistingBlock]) -> BusyBlockPlan:
            return plan_busy_blocks(
                views.values(),
                part_events,
                part_blocks,
                now=now,
                time_zone=zone,
                horizon_days=self.settings.horizon_days,
            )

        try:
            return plan(sources, existing)
        except (ValueError, KeyError, TypeError) as whole_failed:
            failure = whole_failed
        # Planning per source key gives the plan of the whole (the planner's property tests):
        # so plan each source calendar's keys apart, and leave out only those that fail.
        copies = second_copies(views.values())
        owner: dict[str, int] = {}
        events_of: dict[int, list[SourceEvent]] = defaultdict(list)
        for event in sources:
            speaker = copies[event.calendar_id].id if event.calendar_id in copies else None
            cid = speaker or event.calendar_id
            key = source_key(views[event.calendar_id], event.event.provider_event_id)
            owner.setdefault(key, cid)
            events_of[owner[key]].append(event)
        blocks_of: dict[int, list[ExistingBlock]] = defaultdict(list)
        for block in existing:
            blocks_of[owner.get(block.source_key, block.source_calendar_id)].append(block)
        creates: list[DesiredBlock] = []
        patches: list[tuple[ExistingBlock, DesiredBlock]] = []
        deletes: list[ExistingBlock] = []
        preserved: list[ExistingBlock] = []
        for cid in sorted(events_of.keys() | blocks_of.keys()):
            try:
                part = plan(events_of[cid], blocks_of[cid])
            except (ValueError, KeyError, TypeError) as exc:
                name = calendars[cid].name if cid in calendars else f"calendar {cid}"
                report.unplanned += 1
                report.note(f"the blocks of {name} were left as they are: {exc}")
                continue
            creates += part.creates
            patches += part.patches
            deletes += part.deletes
            preserved += part.preserved
        if not report.unplanned:  # the whole failed, yet no part: say why all the same
            report.unplanned += 1
            report.note(f"planning failed: {failure}")
        return BusyBlockPlan(
            creates=tuple(creates),
            patches=tuple(patches),
            deletes=tuple(deletes),
            preserved=tuple(preserved),
        )

    # -- release ------------------------------------------------------------------------------

    def release_account(self, account_id: int) -> SyncReport:
        """Remove every block the account's calendars sourced from the user's other calendars,
        and every calsync block in the account's own calendars while it can still reach them
        (disconnect, domain.md). Blocks the user edited by hand go too: their source is leaving.
        """
        report = SyncReport()
        pool = ProviderPool(self.vault, self.provider_factory)
        now = self.clock.now()
        with Session(self.db, expire_on_commit=False) as session:
            leaving = session.get(Account, account_id)
            if leaving is None:
                return report
            with self.user_lock(session, leaving.user_id):
                accounts, calendars = self._user_calendars(session, leaving.user_id)
                own = {cid for cid, c in calendars.items() if c.account_id == account_id}
                views = user_views(calendars, accounts, report)
                rows = [
                    row
                    for chunk in _chunks(sorted(own))
                    for row in session.exec(
                        select(BusyBlock).where(
                            sa.or_(
                                col(BusyBlock.source_calendar_id).in_(chunk),
                                col(BusyBlock.target_calendar_id).in_(chunk),
                            )
                        )
                    )
                ]
                # The account's calendars are off by now: one that another account reaches too
                # and syncs is a second copy, and its blocks are that account's to keep.
                copies = second_copies(views.values())
                staying: list[BusyBlock] = []
                for row in rows:
                    if row.target_calendar_id in copies:
                        staying.append(row)  # the same provider event as the first copy's
                    elif row.source_calendar_id in copies:
                        # Sourced by the same calendar the other account still syncs: kept,
                        # and now the other copy's (this account's rows go with it).
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
                        # Blocks whose row was lost (a crash) are found by calsync's private mark.
                        listed = pool.get(leaving).list_busy_blocks(
                            calendars[cid].provider_calendar_id, time_min=now - RELEASE_LOOKBACK
                        )
                        orphans += [
                            (cid, item["id"]) for item in listed if (cid, item["id"]) not in known
                        ]
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

    @staticmethod
    def _user_calendars(
        session: Session, user_id: int
    ) -> tuple[dict[int, Account], dict[int, Calendar]]:
        """The user's accounts and all their calendars (synced or not), by id."""
        accounts = {
            a.id: a
            for a in session.exec(select(Account).where(Account.user_id == user_id))
            if a.id is not None
        }
        calendars = {
            c.id: c
            for c in session.exec(
                select(Calendar).where(col(Calendar.account_id).in_(list(accounts)))
            )
            if c.id is not None
        }
        return accounts, calendars

    @staticmethod
    def _user_time_zone(calendars: Iterable[Calendar]) -> str:
        """The user's zone for "start of today": their first calendar that names one."""
        for calendar in sorted(calendars, key=lambda c: c.id or 0):
            if calendar.time_zone:
                return calendar.time_zone
        return "UTC"

    @staticmethod
    def _events_by_id(session: Session, calendar_id: int, ids: Sequence[str]) -> list[Event]:
        return [
            event
            for chunk in _chunks(ids)
            for event in session.exec(
                select(Event).where(
                    Event.calendar_id == calendar_id, col(Event.provider_event_id).in_(chunk)
                )
            )
        ]

    def _store_feed(
        self,
        session: Session,
        calendar: Calendar,
        feed: EventFeed,
        zone: str,
        report: SyncReport,
    ) -> StoredFeed:
        """Upsert the feed's events; set calsync's own blocks seen in it aside for settling."""
        assert calendar.id is not None
        report.events_fetched += len(feed.items)
        ids = [str(item["id"]) for item in feed.items if item.get("id")]
        block_ids = select(BusyBlock.provider_event_id).where(
            BusyBlock.target_calendar_id == calendar.id
        )
        if feed.full:
            stored = {
                e.provider_event_id: e
                for e in session.exec(select(Event).where(Event.calendar_id == calendar.id))
            }
            blocks = set(session.exec(block_ids))
        else:
            stored = {e.provider_event_id: e for e in self._events_by_id(session, calendar.id, ids)}
            blocks = {
                pid
                for chunk in _chunks(ids)
                for pid in session.exec(
                    block_ids.where(col(BusyBlock.provider_event_id).in_(chunk))
                )
            }
        changed: list[str] = []
        block_items: list[EventSnapshot] = []
        seen: set[str] = set()
        for item in feed.items:
            snapshot = EventSnapshot.from_google(item, calendar.time_zone or zone)
            pid = snapshot.provider_event_id
            seen.add(pid)
            if pid in blocks or snapshot.is_busy_block:
                # calsync's own block in this calendar: settled later, under the user's lock.
                block_items.append(snapshot)
                continue
            event = stored.get(pid)
            if snapshot.status == "cancelled":
                if event is not None and not event.is_deleted:
                    event.is_deleted = True
                    event.status = "cancelled"
                    session.add(event)
                    report.events_deleted += 1
                    changed.append(pid)
                continue
            if event is None:
                event = Event(calendar_id=calendar.id, provider_event_id=pid)
                stored[pid] = event
                report.events_created += 1
            elif event.etag != snapshot.etag or event.is_deleted:
                report.events_updated += 1
            # An unchanged event (read again after a failed sync) is planned again all the same:
            # its blocks may be what that sync failed to write.
            _apply_snapshot(event, snapshot)
            session.add(event)
            changed.append(pid)
        if feed.full:
            # Whatever a full listing no longer shows is gone (or out of the window).
            for pid, event in stored.items():
                if pid not in seen and not event.is_deleted:
                    event.is_deleted = True
                    session.add(event)
                    report.events_deleted += 1
                    changed.append(pid)
        return StoredFeed(changed, block_items)

    def _settle_block_items(
        self,
        session: Session,
        calendar: Calendar,
        account: Account,
        items: Sequence[EventSnapshot],
        pool: ProviderPool,
        report: SyncReport,
    ) -> None:
        """Record what the feed's items of calsync's own blocks mean: echoes, or hand edits.

        Runs under the user's lock, so the rows hold every write calsync has made. The feed may
        be older than they are (read before another sync rewrote a block): an item that does
        not match its row is read again before it is called a hand edit.
        """
        rows = {
            row.provider_event_id: row
            for chunk in _chunks([item.provider_event_id for item in items])
            for row in session.exec(
                select(BusyBlock).where(
                    BusyBlock.target_calendar_id == calendar.id,
                    col(BusyBlock.provider_event_id).in_(chunk),
                )
            )
            if not row.user_deleted
        }
        suspects: list[BusyBlock] = []
        for item in items:
            row = rows.get(item.provider_event_id)
            if row is None:
                continue
            if classify_block_change(row, item) is BlockChange.ECHO:
                row.etag = item.etag or row.etag
                session.add(row)
            else:
                suspects.append(row)
        if not suspects:
            return
        zone = calendar.time_zone or "UTC"
        reads = pool.get(account).write(
            [
                BlockWrite(BlockWriteKind.GET, calendar.provider_calendar_id, row.provider_event_id)
                for row in suspects
            ]
        )
        modified = 0
        for row, read in zip(suspects, reads, strict=True):
            if read.error is not None and not read.error.gone:
                report.note(f"a block could not be read again: {read.error}")
                continue  # the next feed or the full reconcile looks again
            if read.error is not None or read.resource is None:
                change = BlockChange.USER_DELETED
            else:
                change = classify_block_change(row, EventSnapshot.from_google(read.resource, zone))
            if change is BlockChange.ECHO:
                row.etag = (read.resource or {}).get("etag") or row.etag
            elif change is BlockChange.USER_DELETED:
                row.user_deleted = True
            else:
                modified += not row.user_modified
                row.user_modified = True
            session.add(row)
        if modified:
            report.note(f"preserved {modified} user modification{'s' if modified > 1 else ''}")

    def _reconcile_listing(
        self,
        session: Session,
        pool: ProviderPool,
        calendars: dict[int, Calendar],
        accounts: dict[int, Account],
        views: dict[int, CalendarView],
        window: tuple[datetime, datetime],
        report: SyncReport,
    ) -> list[tuple[int, str]]:
        """List calsync's blocks in every writable calendar and square them with the table.

        A block the provider has but the table lacks (a crash between write and commit) is
        adopted when its source is known, deleted when not; a block the table has but the
        provider lost was deleted by hand and is not recreated while its source is unchanged.
        """
        copies = second_copies(views.values())

        def speaker(calendar_id: int) -> int:
            return copies[calendar_id].id if calendar_id in copies else calendar_id

        known_sources = {
            source_key(views[e.calendar_id], e.provider_event_id): speaker(e.calendar_id)
            for e in session.exec(select(Event).where(col(Event.calendar_id).in_(list(calendars))))
        }
        orphans: list[tuple[int, str]] = []
        vanished = 0
        # Nothing reaches the database between listings: on SQLite a flush would hold the
        # file's one write lock across the next provider call (see _free_the_file).
        with session.no_autoflush:
            for cid, target in calendars.items():
                view = views[cid]
                # A second copy lists the first copy's blocks: they are squared there.
                if not view.is_writable_target or cid in copies:
                    continue
                try:
                    listed = pool.get(accounts[target.account_id]).list_busy_blocks(
                        target.provider_calendar_id, time_min=window[0]
                    )
                except ReauthRequired:
                    raise
                except ProviderError as exc:
                    # One calendar the provider will not list fails no other's reconcile.
                    report.note(f"the blocks in {target.name} could not be listed: {exc}")
                    continue
                rows = {
                    b.source_key: b
                    for b in session.exec(
                        select(BusyBlock).where(BusyBlock.target_calendar_id == cid)
                    )
                }
                listed_ids: set[str] = set()
                for item in listed:
                    snapshot = EventSnapshot.from_google(item, target.time_zone or "UTC")
                    listed_ids.add(snapshot.provider_event_id)
                    key = snapshot.block_source_key
                    row = rows.get(key) if key else None
                    if row is not None and row.provider_event_id == snapshot.provider_event_id:
                        if (
                            not row.user_deleted
                            and not row.user_modified
                            and classify_block_change(row, snapshot) is BlockChange.USER_MODIFIED
                        ):
                            row.user_modified = True
                            report.note("a block changed by hand was left as the user made it")
                            session.add(row)
                        continue
                    if key is None or key not in known_sources or row is not None:
                        orphans.append((cid, snapshot.provider_event_id))
                        continue
                    adopted = BusyBlock(
                        target_calendar_id=cid,
                        source_calendar_id=known_sources[key],
                        source_key=key,
                        provider_event_id=snapshot.provider_event_id,
                        etag=snapshot.etag,
                        summary=snapshot.summary or "",
                        start=snapshot.start,
                        end=snapshot.end,
                        start_at=snapshot.start_at,
                        end_at=snapshot.end_at,
                        created_at=self.clock.now(),
                        updated_at=self.clock.now(),
                    )
                    rows[key] = adopted
                    session.add(adopted)
                for row in rows.values():
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
        session.flush()
        return orphans
