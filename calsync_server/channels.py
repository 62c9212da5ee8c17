"""Push channels: made for synced calendars, renewed before expiry, stopped when not wanted.

Blocking (database and provider calls): the scheduler runs it in a worker thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.accounts.vault import CredentialVault
from calsync_server.db.lease import Leases
from calsync_server.db.models import Account, Calendar, Notification, PushChannel
from calsync_server.providers.model import ProviderError
from calsync_server.providers.registry import ProviderFactory
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from shared.clock import Clock
from shared.domain import AccountState, ChannelState
from shared.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "webhooks/google"
# Retrying a failed channel: the first wait (shorter when polling is more frequent), the longest.
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
# Polls finding changes no notification announced before a channel counts as failing.
UNANNOUNCED_BEFORE_FAILING = 2
# Held by the process making channels; extended before every watch call.
LEASE = "push-channels"
LEASE_TTL = timedelta(minutes=2)
# Stopping channels calsync does not know costs the user's quota, and anybody can send a
# notification naming a channel id and a calendar: each unknown channel is stopped at most
# once this often, at most UNKNOWN_STOPS_PER_ACCOUNT times a minute per account, and at most
# UNKNOWN_REMEMBERED channel ids are remembered (the oldest are forgotten first).
UNKNOWN_STOP_PERIOD = timedelta(hours=1)
UNKNOWN_STOPS_PER_ACCOUNT = 5
UNKNOWN_STOP_WINDOW = timedelta(minutes=1)
UNKNOWN_REMEMBERED = 10_000


def webhook_address(settings: Settings) -> str | None:
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + "/" + WEBHOOK_PATH


def healthy(channel: PushChannel, now: datetime) -> bool:
    return channel.state == ChannelState.ACTIVE and (
        channel.expires_at is None or channel.expires_at > now
    )


@dataclass(slots=True)
class ChannelChanges:
    created: list[int] = field(default_factory=list)  # calendar ids
    stopped: list[str] = field(default_factory=list)  # channel ids
    failed: list[int] = field(default_factory=list)  # calendar ids

    def __bool__(self) -> bool:
        return bool(self.created or self.stopped or self.failed)


class ChannelKeeper:
    def __init__(
        self,
        db: sa.Engine,
        settings: Settings,
        clock: Clock,
        vault: CredentialVault,
        provider_factory: ProviderFactory,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.vault = vault
        self.provider_factory = provider_factory
        self.leases = Leases(db, clock)
        # Unknown channels tried lately (id -> when), and each account's recent stop calls.
        self._unknown_tried: OrderedDict[str, datetime] = OrderedDict()
        self._stops_by_account: dict[int, deque[datetime]] = {}
        self._unknown_lock = threading.Lock()

    def maintain(self) -> ChannelChanges:
        """One pass: make missing channels, renew expiring or failing ones, stop unwanted ones.

        One process at a time: two passes side by side would each make a channel for the same
        calendar (each reads the channels before the other's watch call is recorded).
        """
        with self.leases.held(LEASE, LEASE_TTL) as mine:
            return self._maintain() if mine else ChannelChanges()

    def _maintain(self) -> ChannelChanges:
        changes = ChannelChanges()
        now = self.clock.now()
        address = webhook_address(self.settings)
        renew_before = timedelta(seconds=self.settings.channel_renew_before_seconds)
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            rows = session.exec(
                select(Calendar, Account).join(Account, col(Calendar.account_id) == Account.id)
            ).all()
            live = list(
                session.exec(
                    select(PushChannel).where(col(PushChannel.state) != ChannelState.STOPPED)
                )
            )
            by_calendar: dict[int, list[PushChannel]] = {}
            for channel in live:
                by_calendar.setdefault(channel.calendar_id, []).append(channel)
            for calendar, account in rows:
                assert calendar.id is not None
                channels = by_calendar.get(calendar.id, [])
                wanted = (
                    address is not None
                    and calendar.sync_enabled
                    and account.state == AccountState.ACTIVE
                )
                if not wanted:
                    for channel in channels:
                        self._stop(session, pool, account, channel, now, changes)
                    continue
                assert address is not None
                good = [c for c in channels if healthy(c, now)]
                newest = max(good, key=lambda c: c.expires_at or now, default=None)
                due = newest is None or (
                    newest.expires_at is not None and newest.expires_at - now <= renew_before
                )
                if due and self._retry_due(channels, now):
                    if not self.leases.take(LEASE, LEASE_TTL):
                        break  # a pass this long lost the lease: the new holder goes on
                    self._replace(session, pool, account, calendar, channels, address, now, changes)
            pool.finish(session, SyncReport())
            session.commit()
        return changes

    def _retry_due(self, channels: list[PushChannel], now: datetime) -> bool:
        """After failed attempts, wait longer before the next: one poll interval (at most 30 s;
        the calendar is polled meanwhile), doubling with each failure, up to an hour."""
        failing = [c for c in channels if c.state == ChannelState.FAILING and c.last_attempt_at]
        if not failing:
            return True
        latest = max(failing, key=lambda c: c.last_attempt_at or now)
        base = min(RETRY_BASE_SECONDS, self.settings.poll_interval_seconds)
        wait = min(RETRY_MAX_SECONDS, base * 2 ** max(0, latest.failures - 1))
        assert latest.last_attempt_at is not None
        return now - latest.last_attempt_at >= timedelta(seconds=wait)

    def _replace(
        self,
        session: Session,
        pool: ProviderPool,
        account: Account,
        calendar: Calendar,
        old: list[PushChannel],
        address: str,
        now: datetime,
        changes: ChannelChanges,
    ) -> None:
        """New channel first, then stop the old ones: no gap in which a change goes unheard."""
        assert calendar.id is not None
        channel = PushChannel(
            calendar_id=calendar.id,
            channel_id=f"calsync-{secrets.token_hex(16)}",
            token=secrets.token_urlsafe(32),
            address=address,
            created_at=now,
            last_attempt_at=now,
        )
        # Committed before the watch call: Google's first ("sync") message may arrive before
        # the watch answers, and must find a known channel, not an unknown one to stop.
        session.add(channel)
        session.commit()
        try:
            info = _channels(pool.get(account)).watch(
                calendar.provider_calendar_id,
                channel_id=channel.channel_id,
                token=channel.token,
                address=address,
                ttl_seconds=int(self.settings.channel_ttl_seconds),
            )
        except (ProviderError, ValueError) as exc:
            log.warning("could not make a push channel for calendar %s: %s", calendar.id, exc)
            session.delete(channel)
            self._record_failure(session, calendar.id, old, str(exc), now)
            session.commit()
            changes.failed.append(calendar.id)
            return
        channel.resource_id, channel.expires_at = info.resource_id, info.expires_at
        session.add(channel)
        session.commit()
        changes.created.append(calendar.id)
        for previous in old:
            self._stop(session, pool, account, previous, now, changes)
        session.commit()

    def _record_failure(
        self,
        session: Session,
        calendar_id: int,
        old: list[PushChannel],
        error: str,
        now: datetime,
    ) -> None:
        # The failure is kept on a failing row so the dashboard can show it and retries back off.
        failing = next((c for c in old if c.state == ChannelState.FAILING), None)
        if failing is None:
            failing = PushChannel(
                calendar_id=calendar_id,
                channel_id=f"calsync-{secrets.token_hex(16)}",
                token=secrets.token_urlsafe(32),
                address="",
                created_at=now,
                state=ChannelState.FAILING,
            )
        failing.failures += 1
        failing.last_error = error[:500]
        failing.last_attempt_at = now
        session.add(failing)
        session.flush()

    def _stop(
        self,
        session: Session,
        pool: ProviderPool,
        account: Account,
        channel: PushChannel,
        now: datetime,
        changes: ChannelChanges,
    ) -> None:
        if channel.resource_id and account.state == AccountState.ACTIVE:
            try:
                _channels(pool.get(account)).stop_channel(channel.channel_id, channel.resource_id)
            except (ProviderError, ValueError) as exc:
                # Already gone at the provider, or unreachable: it expires there by itself.
                log.info("stopping channel %s: %s", channel.channel_id, exc)
        channel.state, channel.stopped_at = ChannelState.STOPPED, now
        session.add(channel)
        changes.stopped.append(channel.channel_id)

    def stop_calendar_channels(self, calendar_ids: list[int]) -> int:
        """Stop every live channel of these calendars now (sync turned off, disconnect)."""
        changes = ChannelChanges()
        now = self.clock.now()
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            rows = session.exec(
                select(PushChannel, Account)
                .join(Calendar, col(PushChannel.calendar_id) == Calendar.id)
                .join(Account, col(Calendar.account_id) == Account.id)
                .where(
                    col(PushChannel.calendar_id).in_(calendar_ids),
                    col(PushChannel.state) != ChannelState.STOPPED,
                )
            ).all()
            for channel, account in rows:
                self._stop(session, pool, account, channel, now, changes)
            pool.finish(session, SyncReport())
            session.commit()
        return len(changes.stopped)

    def stop_unknown_wanted(self, channel_id: str) -> bool:
        """Whether a notification of this unknown channel should lead to a stop call: not when
        the channel was tried within UNKNOWN_STOP_PERIOD (in memory: no database work)."""
        now = self.clock.now()
        with self._unknown_lock:
            tried = self._unknown_tried.get(channel_id)
            return tried is None or now - tried >= UNKNOWN_STOP_PERIOD

    def _claim_unknown(self, channel_id: str) -> bool:
        """Note that this unknown channel is tried now; False when it was tried lately."""
        now = self.clock.now()
        with self._unknown_lock:
            tried = self._unknown_tried.get(channel_id)
            if tried is not None and now - tried < UNKNOWN_STOP_PERIOD:
                return False
            self._unknown_tried[channel_id] = now
            self._unknown_tried.move_to_end(channel_id)
            while len(self._unknown_tried) > UNKNOWN_REMEMBERED:
                self._unknown_tried.popitem(last=False)
            return True

    def _stop_allowed(self, account_id: int | None) -> bool:
        """Count one stop call against the account, unless it made its share this minute."""
        if account_id is None:
            return False
        now = self.clock.now()
        with self._unknown_lock:
            calls = self._stops_by_account.setdefault(account_id, deque())
            while calls and now - calls[0] >= UNKNOWN_STOP_WINDOW:
                calls.popleft()
            if len(calls) >= UNKNOWN_STOPS_PER_ACCOUNT:
                return False
            calls.append(now)
            return True

    def stop_unknown(self, channel_id: str, resource_id: str, resource_uri: str) -> bool:
        """Stop a channel calsync no longer wants (or never knew), so the provider stops sending.

        Stopping needs a login: the account of the calendar the channel watches (named in its
        resource URI), or, for a channel calsync still knows as stopped, that calendar's account.
        Forged notifications must not spend the user's quota: see UNKNOWN_STOP_PERIOD.
        """
        if not self._claim_unknown(channel_id):
            return False
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            known = session.exec(
                select(PushChannel).where(PushChannel.channel_id == channel_id)
            ).first()
            query = select(Account).join(Calendar, col(Calendar.account_id) == Account.id)
            if known is not None:
                query = query.where(Calendar.id == known.calendar_id)
            else:
                query = query.where(Calendar.provider_calendar_id == _calendar_in(resource_uri))
            accounts = session.exec(
                query.where(Account.state == AccountState.ACTIVE).limit(5)
            ).all()
            stopped = False
            for account in accounts:
                if not self._stop_allowed(account.id):
                    log.info("not stopping unknown channel %s: too many such stops", channel_id)
                    continue
                try:
                    _channels(pool.get(account)).stop_channel(channel_id, resource_id)
                except (ProviderError, ValueError) as exc:
                    log.info("stopping unknown channel %s: %s", channel_id, exc)
                    continue
                stopped = True
                break
            pool.finish(session, SyncReport())
            session.commit()
        return stopped


def _calendar_in(resource_uri: str) -> str:
    """The calendar id in `.../calendars/<id>/events...` (Google's X-Goog-Resource-URI)."""
    parts = urlsplit(resource_uri).path.split("/")
    try:
        return unquote(parts[parts.index("calendars") + 1])
    except (ValueError, IndexError):
        return ""


def note_poll(db: sa.Engine, clock: Clock, calendar_id: int, since: datetime | None) -> bool:
    """A poll found changes: if the calendar's healthy channel announced nothing since `since`,
    count it against the channel; repeated, the channel is failing and the calendar polled."""
    now = clock.now()
    with Session(db) as session:
        channel = next(
            (
                c
                for c in session.exec(
                    select(PushChannel).where(
                        PushChannel.calendar_id == calendar_id,
                        PushChannel.state == ChannelState.ACTIVE,
                    )
                )
                if healthy(c, now)
            ),
            None,
        )
        if channel is None:
            return False
        # Only a change message announces a change: the "sync" message that opens every
        # channel says nothing about the calendar.
        announcements = select(Notification.id).where(
            Notification.channel_id == channel.channel_id,
            col(Notification.resource_state).in_(("exists", "not_exists")),
        )
        if since is not None:
            announcements = announcements.where(col(Notification.received_at) >= since)
        if session.exec(announcements.limit(1)).first() is not None:
            return False
        channel.unannounced_changes += 1
        if channel.unannounced_changes >= UNANNOUNCED_BEFORE_FAILING:
            channel.state = ChannelState.FAILING
            channel.last_error = "polling found changes no notification announced"
            channel.last_attempt_at = None  # replace it at once; poll meanwhile
        session.add(channel)
        session.commit()
        return True


@runtime_checkable
class _ChannelProvider(Protocol):
    """A provider with Google-style channels at one fixed address: what this keeper drives
    until push moves to /webhooks/{provider}/{key} and PushProvider.subscribe (issue 14 item 6).
    """

    def watch(
        self, calendar_id: str, *, channel_id: str, token: str, address: str, ttl_seconds: int
    ) -> _Channel: ...

    def stop_channel(self, channel_id: str, resource_id: str) -> None: ...


class _Channel(Protocol):
    @property
    def resource_id(self) -> str: ...
    @property
    def expires_at(self) -> datetime | None: ...


def _channels(provider: object) -> _ChannelProvider:
    if not isinstance(provider, _ChannelProvider):
        raise ValueError("this account's provider has no push channels")
    return provider
