"""The sync engine: read a calendar's changes, plan the busy blocks they imply, apply, log them.

Blocking (database and provider calls): the server runs it in worker threads, never on the
event loop. One sync per calendar at a time is the caller's promise (the job queue's). The
engine speaks calsync's own types through the Provider protocol; which provider an account
has is the registry's business. The parts, each in its module: ingest (store a read),
settle (echoes and hand edits, the full reconcile's listing), reconcile (scope and plan),
applier (the writes), release (a leaving account), locks (one writer per user).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session

from calsync_server.accounts.vault import CredentialVault
from calsync_server.db.models import Account, BusyBlock, Calendar, SyncLog
from calsync_server.providers.model import ChangeSet, ErrorKind, ProviderError
from calsync_server.providers.registry import ProviderConfig, ProviderFactory, provider_factory
from calsync_server.providers.retry import RetryPolicy
from calsync_server.sync import dry_run, holds
from calsync_server.sync.applier import BlockApplier, BlockKey
from calsync_server.sync.echoes import echo_sync
from calsync_server.sync.ingest import Ingested, store_changes, unmask_blocks
from calsync_server.sync.locks import UserLocks
from calsync_server.sync.planner import BusyBlockPlan, second_copies, sync_window
from calsync_server.sync.providers import ProviderCache, ProviderPool
from calsync_server.sync.recent_writes import RecentWrites
from calsync_server.sync.reconcile import (
    block_rows,
    changed_scope,
    plan_scope,
    whole_user_scope,
)
from calsync_server.sync.release import history_left_behind, release_account
from calsync_server.sync.report import SyncProgress, SyncReport
from calsync_server.sync.rows import calendar_view, user_calendars, user_time_zone, user_views
from calsync_server.sync.safety import hold_deletes, may_drop, read_dropped
from calsync_server.sync.settle import reconcile_listing, settle_seen_blocks
from calsync_server.sync.user_pass import (
    OthersRead,
    first_sync_running,
    read_others,
    store_cursors,
)
from calsync_server.sync.user_pass import covered as user_pass_covered
from calsync_server.sync.user_pass import release as release_claims
from shared.clock import Clock, SystemClock
from shared.domain import AccountState, SyncKind
from shared.schemas import PlanPreview
from shared.settings import Settings


class CalendarNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class SyncResult:
    log: SyncLog
    report: SyncReport


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
        self.provider_factory = provider_factory or default_factory(settings, retry, self.clock)
        self.locks = UserLocks(db)
        # Providers kept across syncs: building them sat on every propagation's critical path.
        self.providers = ProviderCache()
        # The calendars this engine writes blocks to: the webhooks tell their echoes by it.
        self.recent_writes = RecentWrites()

    def _pool(self) -> ProviderPool:
        return ProviderPool(self.vault, self.provider_factory, self.providers)

    # -- entry point --------------------------------------------------------------------------

    def sync_calendar(
        self,
        calendar_id: int,
        *,
        kind: SyncKind = SyncKind.MANUAL,
        full: bool = False,
        trigger: str = "",
        job_id: int | None = None,
        progress: Callable[[SyncProgress], None] | None = None,
    ) -> SyncResult:
        """`progress` is told how far the sync is as it goes (from this thread)."""
        report = SyncReport(listener=progress)
        started = self.clock.now()
        pool = self._pool()
        with Session(self.db, expire_on_commit=False) as session:
            calendar = session.get(Calendar, calendar_id)
            if calendar is None:
                raise CalendarNotFound(f"calendar {calendar_id} does not exist")
            if job_id is not None and self._steps_aside(session, calendar, job_id):
                report.deferred = True
                report.note("waits for the first sync of the user's other calendars")
                # No log row: this was no sync; the job runs later or the pass takes it.
                return SyncResult(
                    log=SyncLog(
                        calendar_id=calendar_id, job_id=job_id, kind=kind, started_at=started
                    ),
                    report=report,
                )
            # A full sync is the user's full pass: every calendar read, the user planned once.
            others = OthersRead(job_id=job_id)
            try:
                self._sync(
                    session,
                    calendar,
                    full or kind is SyncKind.FULL,
                    report,
                    pool,
                    user_pass=(kind is SyncKind.FULL, job_id, others),
                )
            except ProviderError as exc:
                session.rollback()
                if exc.kind is ErrorKind.AUTH:
                    # The account whose login failed, which need not be this calendar's own.
                    failed = exc.account_id if exc.account_id is not None else calendar.account_id
                    self._needs_reauth(session, failed, report, exc)
                else:
                    report.error = str(exc)
                    report.retryable = exc.kind is ErrorKind.TRANSIENT
            finally:
                release_claims(self.db, others, self.clock.now())
            pool.finish(session, report)
            log = SyncLog(
                calendar_id=calendar_id,
                job_id=job_id,
                sync_key=report.sync_key,
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

    def _steps_aside(self, session: Session, calendar: Calendar, job_id: int) -> bool:
        """A queued first sync that another first sync of its user, running already, would
        take over: it waits for it (user_pass.first_sync_running)."""
        # A full one too: the scheduler asks a never-synced calendar for its daily full pass
        # as it is turned on, and the first sync pass reads it whole all the same.
        if not calendar.sync_enabled or calendar.sync_token is not None:
            return False
        account = session.get(Account, calendar.account_id)
        if account is None or account.state != AccountState.ACTIVE:
            return False
        return first_sync_running(session, calendar, account.user_id, job_id)

    def _needs_reauth(
        self, session: Session, account_id: int, report: SyncReport, exc: ProviderError
    ) -> None:
        # The login is gone: stop syncing the account, delete nothing (domain.md).
        account = session.get(Account, account_id)
        email = ""
        if account is not None:
            account.state = AccountState.NEEDS_REAUTH
            session.add(account)
            email = f" {account.email}"
        report.error = f"the account{email} needs re-authorisation ({exc.detail or exc})"
        report.note("login expired or revoked: sign in again to resume")

    # -- the sync -----------------------------------------------------------------------------

    def _sync(
        self,
        session: Session,
        calendar: Calendar,
        full: bool,
        report: SyncReport,
        pool: ProviderPool,
        user_pass: tuple[bool, int | None, OthersRead] | None = None,
    ) -> None:
        assert calendar.id is not None
        whole_user, job_id, others = user_pass or (False, None, OthersRead())
        if whole_user and user_pass_covered(session, calendar, job_id):
            report.note("read by the user's full pass that began after this sync was asked for")
            return
        account = session.get(Account, calendar.account_id)
        assert account is not None
        if account.state != AccountState.ACTIVE:
            report.error = "the account needs re-authorisation: nothing synced"
            return
        accounts, calendars = user_calendars(session, account.user_id)
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
        zone = user_time_zone(calendars.values())
        now = self.clock.now()
        window = sync_window(now, zone, self.settings.horizon_days)

        changes: ChangeSet | None = None
        ingested = Ingested()
        dropped = False
        first_sync = False
        if calendar.sync_enabled:
            provider = pool.get(account)
            report.progress("reading")
            cursor = None if full else calendar.sync_token
            # A first sync is a full one: a new target needs blocks for everything already there.
            full = cursor is None
            first_sync = calendar.sync_token is None
            try:
                changes = provider.read_changes(
                    calendar.provider_calendar_id, cursor=cursor, window=window
                )
            except ProviderError as exc:
                if exc.kind is not ErrorKind.CURSOR_EXPIRED:
                    raise
                report.note("token expired: full sync")
                full = True
                changes = provider.read_changes(
                    calendar.provider_calendar_id, cursor=None, window=window
                )
            changes = unmask_blocks(session, calendar, changes, provider)
            # Counted around storing only when the read could be a sudden drop (not for the
            # few changes of a push: two queries on its path).
            weighed = may_drop(changes)
            live_before = holds.live_events(session, calendar.id) if weighed else 0
            ingested = store_changes(session, calendar, changes, zone, report)
            report.progress("read")
            # Events are committed before any block is written: a crash re-reads, never skips.
            session.commit()
            dropped = weighed and read_dropped(live_before, holds.live_events(session, calendar.id))
            if (
                not full
                and not dropped
                and echo_sync(
                    session,
                    calendar.id,
                    accounts,
                    calendars,
                    ingested.changed,
                    ingested.blocks_seen,
                    ingested.blocks_removed,
                )
            ):
                # Only calsync's own writes coming back: no lock, no plan (echoes.echo_sync).
                calendar.sync_token, calendar.last_sync_at = changes.cursor, now
                session.add(calendar)
                session.commit()
                return
        if (whole_user or first_sync) and calendar.sync_enabled:
            lease = timedelta(seconds=self.settings.job_lease_seconds)
            views = user_views(calendars, accounts, SyncReport())
            read_others(
                self.db,
                session,
                calendar,
                account.user_id,
                views,
                (window, zone, now, lease),
                pool,
                report,
                others,
                first_only=not whole_user,
            )

        with self.locks.held(session, account.user_id):
            session.expire_all()  # rows read before the lock may have been rewritten since
            # And the user's settings read again: a calendar turned on meanwhile, whose first
            # sync has written its blocks, must not look off (its blocks would be deleted).
            accounts, calendars = user_calendars(session, account.user_id)
            views = user_views(calendars, accounts, report)
            if ingested.blocks_seen or ingested.blocks_removed:
                settle_seen_blocks(
                    session,
                    calendar,
                    account,
                    ingested.blocks_seen,
                    ingested.blocks_removed,
                    pool,
                    report,
                )
            orphans: list[tuple[int, str]] = []
            # A target that merges blocks joins events of any source: one changed event may
            # join or split a merged block with events this read did not bring.
            merging = any(v.receives_blocks and v.rules.merge for v in views.values())
            # The safety catch weighs a source's deletes whole: a held source plans the user.
            holding = holds.holding(calendars) | ({calendar.id} if dropped else set())
            holding |= others.dropped
            if full or not calendar.sync_enabled or merging or holding:
                # The whole user is in scope: a full reconcile, or a calendar turned off.
                loaded = None
                if full:
                    # The rows are read once: squared with the listing, then planned from.
                    loaded = block_rows(session, calendars)
                    orphans = reconcile_listing(
                        session, pool, calendars, accounts, views, window, report, now, loaded
                    )
                events, rows = whole_user_scope(session, calendars, window, loaded)
                if full or not calendar.sync_enabled:
                    # No target any more (turned off, made a source): its blocks go, past
                    # ones too. Not on every sync a merge or a hold makes whole: one listing.
                    orphans += history_left_behind(
                        session,
                        pool,
                        calendar,
                        accounts[calendar.account_id],
                        views,
                        now,
                        self.settings.horizon_days,
                        report,
                    )
            else:
                events, rows = changed_scope(
                    session, calendar.id, ingested.changed, views, calendars
                )

            plan = plan_scope(
                views,
                events,
                rows,
                calendars,
                accounts,
                now=now,
                zone=zone,
                horizon_days=self.settings.horizon_days,
                report=report,
            )
            if holding:
                future = holds.future_blocks(session, list(calendars), now)
                plan, held = hold_deletes(plan, holding, future, now)
                holds.record_holds(calendars, holding, held, now, report)
            row_index: dict[BlockKey, BusyBlock] = {
                (row.target_calendar_id, row.source_key): row for row in rows
            }
            event_ids = {(e.calendar_id, e.provider_event_id): e.id for e in events if e.id}
            applier = BlockApplier(
                session, pool, calendars, accounts, row_index, event_ids, report, now
            )
            # A listed block whose key calsync cannot trace (a merged block whose row was lost)
            # is no orphan when the plan creates it again: the create meets it and adopts it.
            planned = {(d.target_calendar_id, d.provider_event_id) for d in plan.creates}
            # Nor is one the plan moves (its mark already names the key its row is moved to,
            # when a crash came between the write and the commit).
            planned |= {(b.target_calendar_id, b.provider_event_id) for b, _ in plan.patches}
            orphans = [(cid, bid) for cid, bid in orphans if (cid, bid) not in planned]
            self.locks.free_the_file(session)
            self.recent_writes.wrote(written_to(plan, orphans))
            applier.apply(plan, orphans)
            for note in plan.notes:
                report.note(note)

            if changes is not None and not (report.failed_writes or report.unplanned):
                # Stored only now, with the blocks it led to: a crash before this re-reads.
                calendar.sync_token = changes.cursor
            calendar.last_sync_at = now
            if full:
                calendar.last_full_sync_at = now
            store_cursors(session, others, now, report)
            session.add(calendar)
            session.commit()
            others.committed(report)

    # -- the dry run ---------------------------------------------------------------------------

    def dry_run(
        self, user_id: int, calendar_ids: list[int] | None = None, *, full: bool = False
    ) -> PlanPreview:
        """What syncing these calendars (None: all) whole would change now (``full``: a full
        reconcile, its listing of every target's blocks too); nothing written."""
        return dry_run.dry_run(
            self.db,
            self._pool(),
            user_id,
            calendar_ids,
            self.clock.now(),
            self.settings.horizon_days,
            full=full,
        )

    # -- release ------------------------------------------------------------------------------

    def release_account(self, account_id: int) -> SyncReport:
        """Remove the leaving account's blocks everywhere it can still reach (see release)."""
        return release_account(self.db, self.locks, self._pool(), self.clock.now(), account_id)


def written_to(plan: BusyBlockPlan, orphans: Sequence[tuple[int, str]]) -> set[int]:
    """The calendars a plan (and its orphans' deletes) writes to."""
    return (
        {d.target_calendar_id for d in plan.creates}
        | {existing.target_calendar_id for existing, _ in plan.patches}
        | {existing.target_calendar_id for existing in plan.deletes if not existing.user_deleted}
        | {target_id for target_id, _ in orphans}
    )


def default_factory(
    settings: Settings, retry: RetryPolicy | None = None, clock: Clock | None = None
) -> ProviderFactory:
    """The registry's providers, pointed where the settings say (the composition root's), on
    the engine's clock."""
    return provider_factory(ProviderConfig.from_settings(settings, retry, clock=clock))
