"""Push subscriptions (Google channels, Graph subscriptions): made for synced calendars whose
provider has push, renewed as the provider's capabilities say, stopped when not wanted.

Renewal by capabilities: a provider that renews in place (Graph) is renewed at about
half-life, and replaced when renewal says it is gone; one that does not (Google) gets a new
subscription first, then the old one is stopped, so no change goes unheard. A provider without
push (CalDAV) never gets one: its calendars are polled by design. This code names no provider:
it reads capabilities from the registry and drives `PushProvider`.

Blocking (database and provider calls): the scheduler runs it in a worker thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.accounts.vault import CredentialVault
from calsync_server.db.lease import Leases
from calsync_server.db.models import Account, Calendar, Notification, PushSubscription
from calsync_server.providers.model import (
    BlockIds,
    Capabilities,
    ErrorKind,
    NoticeKind,
    ProviderError,
    PushKind,
    PushProvider,
    Subscription,
)
from calsync_server.providers.registry import ProviderFactory, UnknownProvider, capabilities
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport
from shared.clock import Clock
from shared.domain import AccountState, ChannelState
from shared.settings import Settings

if TYPE_CHECKING:
    from calsync_server.push.webhook_batch import Incoming

log = logging.getLogger(__name__)

WEBHOOK_ROOT = "webhooks"
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
# What a notice of these kinds says: the calendar changed (a poll finding changes after one is
# no sign of a broken subscription).
ANNOUNCING = (NoticeKind.CHANGED.value, NoticeKind.MISSED.value)


def webhook_base(settings: Settings) -> str | None:
    """Where the webhooks are, as providers reach them; None: no public URL (polling only)."""
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + "/" + WEBHOOK_ROOT


def webhook_address(base: str, provider: str, key: str) -> str:
    return f"{base}/{provider}/{key}"


def healthy(channel: PushSubscription, now: datetime) -> bool:
    return channel.state == ChannelState.ACTIVE and (
        channel.expires_at is None or channel.expires_at > now
    )


def push_kind(provider: str) -> PushKind:
    """A provider's push, NONE for one calsync cannot open (nothing to subscribe with)."""
    return capabilities_of(provider).push


def capabilities_of(provider: str) -> Capabilities:
    try:
        return capabilities(provider)
    except UnknownProvider:
        return _NO_PUSH


_NO_PUSH = Capabilities(block_ids=BlockIds.CLIENT, push=PushKind.NONE)


def _push(provider: object) -> PushProvider:
    if not callable(getattr(provider, "subscribe", None)):
        raise ValueError("this account's provider has no push")
    return cast(PushProvider, provider)


def _remote(channel: PushSubscription) -> Subscription:
    return Subscription(
        remote_id=channel.remote_id or channel.key,
        expires_at=channel.expires_at,
        resource=channel.resource or "",
    )


@dataclass(slots=True)
class ChannelChanges:
    created: list[int] = field(default_factory=list)  # calendar ids
    stopped: list[str] = field(default_factory=list)  # subscription keys
    failed: list[int] = field(default_factory=list)  # calendar ids
    renewed: list[int] = field(default_factory=list)  # calendar ids (in place)

    def __bool__(self) -> bool:
        return bool(self.created or self.stopped or self.failed or self.renewed)


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
        """One pass: make missing subscriptions, renew expiring or failing ones, stop unwanted
        ones.

        One process at a time: two passes side by side would each make a channel for the same
        calendar (each reads the channels before the other's watch call is recorded).
        """
        with self.leases.held(LEASE, LEASE_TTL) as mine:
            return self._maintain() if mine else ChannelChanges()

    def _maintain(self) -> ChannelChanges:
        changes = ChannelChanges()
        now = self.clock.now()
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            rows = session.exec(
                select(Calendar, Account).join(Account, col(Calendar.account_id) == Account.id)
            ).all()
            live = list(
                session.exec(
                    select(PushSubscription).where(
                        col(PushSubscription.state) != ChannelState.STOPPED
                    )
                )
            )
            by_calendar: dict[int, list[PushSubscription]] = {}
            for channel in live:
                by_calendar.setdefault(channel.calendar_id, []).append(channel)
            for calendar, account in rows:
                assert calendar.id is not None
                opened = partial(pool.get, account)
                caps = capabilities_of(str(account.provider))
                channels = by_calendar.get(calendar.id, [])
                if not self.keep(session, opened, account, calendar, channels, caps, now, changes):
                    break  # a pass this long lost the lease: the new holder goes on
            pool.finish(session, SyncReport())
            session.commit()
        return changes

    def keep(
        self,
        session: Session,
        provider: Callable[[], object],
        account: Account,
        calendar: Calendar,
        channels: list[PushSubscription],
        caps: Capabilities,
        now: datetime,
        changes: ChannelChanges,
    ) -> bool:
        """Keep one calendar's live subscriptions as its provider's capabilities say (the
        provider is opened only when called); False when this pass lost the lease."""
        assert calendar.id is not None
        base = webhook_base(self.settings)
        wanted = (
            base is not None
            and caps.push is not PushKind.NONE
            and calendar.sync_enabled
            and account.state == AccountState.ACTIVE
        )
        if not wanted:
            for channel in channels:
                self._stop(session, provider, account, channel, now, changes)
            return True
        assert base is not None
        good = [c for c in channels if healthy(c, now)]
        newest = max(good, key=lambda c: c.expires_at or now, default=None)
        if newest is not None and caps.renew_in_place:
            if self._half_life(newest, now) and self._retry_due([newest], now):
                if not self.leases.take(LEASE, LEASE_TTL):
                    return False
                self._renew(
                    session, provider, account, calendar, channels, newest, base, now, changes
                )
            return True
        due = newest is None or newest.renew_requested_at is not None or self._expiring(newest, now)
        if due and self._retry_due(channels, now):
            if not self.leases.take(LEASE, LEASE_TTL):
                return False
            self._replace(session, provider, account, calendar, channels, base, now, changes)
        return True

    def _expiring(self, channel: PushSubscription, now: datetime) -> bool:
        renew_before = timedelta(seconds=self.settings.channel_renew_before_seconds)
        return channel.expires_at is not None and channel.expires_at - now <= renew_before

    def _half_life(self, channel: PushSubscription, now: datetime) -> bool:
        """Renewal in place is due at about half-life (Graph's advice), when asked to
        (a lifecycle notice), or within the renew-before margin, whichever comes first."""
        if channel.renew_requested_at is not None or self._expiring(channel, now):
            return True
        if channel.expires_at is None:
            return False
        since = channel.renewed_at or channel.created_at
        return now >= since + (channel.expires_at - since) / 2

    def _retry_due(self, channels: list[PushSubscription], now: datetime) -> bool:
        """After failed attempts, wait longer before the next: one poll interval (at most 30 s;
        the calendar is polled meanwhile), doubling with each failure, up to an hour."""
        failing = [
            c
            for c in channels
            if c.last_attempt_at and (c.state == ChannelState.FAILING or c.failures)
        ]
        if not failing:
            return True
        latest = max(failing, key=lambda c: c.last_attempt_at or now)
        base = min(RETRY_BASE_SECONDS, self.settings.poll_interval_seconds)
        wait = min(RETRY_MAX_SECONDS, base * 2 ** max(0, latest.failures - 1))
        assert latest.last_attempt_at is not None
        return now - latest.last_attempt_at >= timedelta(seconds=wait)

    def _lifetime(self) -> timedelta:
        return timedelta(seconds=self.settings.channel_ttl_seconds)

    def _renew(
        self,
        session: Session,
        provider: Callable[[], object],
        account: Account,
        calendar: Calendar,
        channels: list[PushSubscription],
        channel: PushSubscription,
        base: str,
        now: datetime,
        changes: ChannelChanges,
    ) -> None:
        """Renew in place; a new one when the provider says it is gone."""
        assert calendar.id is not None
        try:
            renewed = _push(provider()).renew(_remote(channel), lifetime=self._lifetime())
        except ProviderError as exc:
            if exc.kind is ErrorKind.GONE:
                log.info("subscription %s is gone at the provider: a new one", channel.key)
                self._replace(session, provider, account, calendar, channels, base, now, changes)
                return
            log.warning("could not renew subscription %s: %s", channel.key, exc)
            channel.failures += 1
            channel.last_error = str(exc)[:500]
            channel.last_attempt_at = now
            session.add(channel)
            session.commit()
            return
        except ValueError as exc:
            log.warning("could not renew subscription %s: %s", channel.key, exc)
            return
        channel.expires_at = renewed.expires_at
        channel.renewed_at, channel.renew_requested_at = now, None
        channel.failures, channel.last_error, channel.last_attempt_at = 0, None, now
        session.add(channel)
        session.commit()
        changes.renewed.append(calendar.id)

    def _replace(
        self,
        session: Session,
        provider: Callable[[], object],
        account: Account,
        calendar: Calendar,
        old: list[PushSubscription],
        base: str,
        now: datetime,
        changes: ChannelChanges,
    ) -> None:
        """New subscription first, then stop the old ones: no gap in which a change goes
        unheard."""
        assert calendar.id is not None
        name = str(account.provider)
        key = f"calsync-{secrets.token_hex(16)}"
        address = webhook_address(base, name, key)
        channel = PushSubscription(
            calendar_id=calendar.id,
            provider=name,
            key=key,
            secret=secrets.token_urlsafe(32),
            address=address,
            created_at=now,
            last_attempt_at=now,
        )
        # Committed before the provider is asked: Google's first ("sync") message and Graph's
        # validation handshake may arrive before it answers, and must find a known key.
        session.add(channel)
        session.commit()
        try:
            made = _push(provider()).subscribe(
                calendar.provider_calendar_id,
                address=address,
                secret=channel.secret,
                lifetime=self._lifetime(),
            )
        except (ProviderError, ValueError) as exc:
            log.warning("could not make a push channel for calendar %s: %s", calendar.id, exc)
            session.delete(channel)
            self._record_failure(session, calendar.id, name, old, str(exc), now)
            session.commit()
            changes.failed.append(calendar.id)
            return
        channel.remote_id, channel.expires_at = made.remote_id, made.expires_at
        channel.resource, channel.renewed_at = made.resource or None, now
        session.add(channel)
        session.commit()
        changes.created.append(calendar.id)
        for previous in old:
            self._stop(session, provider, account, previous, now, changes)
        session.commit()

    def _record_failure(
        self,
        session: Session,
        calendar_id: int,
        provider: str,
        old: list[PushSubscription],
        error: str,
        now: datetime,
    ) -> None:
        # The failure is kept on a failing row so the dashboard can show it and retries back off.
        failing = next((c for c in old if c.state == ChannelState.FAILING), None)
        if failing is None:
            failing = PushSubscription(
                calendar_id=calendar_id,
                provider=provider,
                key=f"calsync-{secrets.token_hex(16)}",
                secret=secrets.token_urlsafe(32),
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
        provider: Callable[[], object],
        account: Account,
        channel: PushSubscription,
        now: datetime,
        changes: ChannelChanges,
    ) -> None:
        if channel.remote_id and account.state == AccountState.ACTIVE:
            try:
                _push(provider()).unsubscribe(_remote(channel))
            except (ProviderError, ValueError) as exc:
                # Already gone at the provider, or unreachable: it expires there by itself.
                log.info("stopping subscription %s: %s", channel.key, exc)
        channel.state, channel.stopped_at = ChannelState.STOPPED, now
        session.add(channel)
        changes.stopped.append(channel.key)

    def stop_calendar_channels(self, calendar_ids: list[int]) -> int:
        """Stop every live subscription of these calendars now (sync turned off, disconnect)."""
        changes = ChannelChanges()
        now = self.clock.now()
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            rows = session.exec(
                select(PushSubscription, Account)
                .join(Calendar, col(PushSubscription.calendar_id) == Calendar.id)
                .join(Account, col(Calendar.account_id) == Account.id)
                .where(
                    col(PushSubscription.calendar_id).in_(calendar_ids),
                    col(PushSubscription.state) != ChannelState.STOPPED,
                )
            ).all()
            for channel, account in rows:
                self._stop(session, partial(pool.get, account), account, channel, now, changes)
            pool.finish(session, SyncReport())
            session.commit()
        return len(changes.stopped)

    def key_known(self, provider: str, key: str) -> bool:
        """Blocking: whether a live subscription of this provider has this key (a validation
        handshake is answered only for calsync's own)."""
        with Session(self.db) as session:
            return (
                session.exec(
                    select(PushSubscription.id).where(
                        PushSubscription.key == key,
                        PushSubscription.provider == provider,
                        col(PushSubscription.state) != ChannelState.STOPPED,
                    )
                ).first()
                is not None
            )

    def stop_unknown_wanted(self, label: str) -> bool:
        """Whether a notification of this unknown subscription should lead to a stop call: not
        when it was tried within UNKNOWN_STOP_PERIOD (in memory: no database work)."""
        now = self.clock.now()
        with self._unknown_lock:
            tried = self._unknown_tried.get(label)
            return tried is None or now - tried >= UNKNOWN_STOP_PERIOD

    def _claim_unknown(self, label: str) -> bool:
        """Note that this unknown subscription is tried now; False when it was tried lately."""
        now = self.clock.now()
        with self._unknown_lock:
            tried = self._unknown_tried.get(label)
            if tried is not None and now - tried < UNKNOWN_STOP_PERIOD:
                return False
            self._unknown_tried[label] = now
            self._unknown_tried.move_to_end(label)
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

    def stop_unknown_all(self, pushes: Sequence[Incoming]) -> int:
        """Blocking: stop_unknown for each; how many were stopped."""
        return sum(self.stop_unknown(push) for push in pushes)

    def stop_unknown(self, push: Incoming) -> bool:
        """Stop a subscription calsync no longer wants (or never knew), so the provider stops
        sending.

        Stopping needs a login: the account of the calendar the notice names (Google's
        resource URI), or, for a subscription calsync still knows as stopped, that calendar's
        account. Forged notifications must not spend the user's quota: see UNKNOWN_STOP_PERIOD.
        """
        notice = push.notice
        if not notice.remote_id or not self._claim_unknown(push.label):
            return False
        pool = ProviderPool(self.vault, self.provider_factory)
        with Session(self.db, expire_on_commit=False) as session:
            known_query = select(PushSubscription)
            if push.key is not None:
                known_query = known_query.where(PushSubscription.key == push.key)
            else:
                known_query = known_query.where(PushSubscription.remote_id == notice.remote_id)
            known = session.exec(known_query).first()
            query = select(Account).join(Calendar, col(Calendar.account_id) == Account.id)
            if known is not None:
                query = query.where(Calendar.id == known.calendar_id)
            elif notice.calendar:
                query = query.where(Calendar.provider_calendar_id == notice.calendar)
            else:
                return False
            accounts = session.exec(
                query.where(
                    Account.state == AccountState.ACTIVE, Account.provider == push.provider
                ).limit(5)
            ).all()
            stopped = False
            remote = Subscription(notice.remote_id, None, resource=notice.resource)
            for account in accounts:
                if not self._stop_allowed(account.id):
                    log.info("not stopping unknown %s: too many such stops", push.label)
                    continue
                try:
                    _push(pool.get(account)).unsubscribe(remote)
                except (ProviderError, ValueError) as exc:
                    log.info("stopping unknown %s: %s", push.label, exc)
                    continue
                stopped = True
                break
            pool.finish(session, SyncReport())
            session.commit()
        return stopped


def note_poll(db: sa.Engine, clock: Clock, calendar_id: int, since: datetime | None) -> bool:
    """A poll found changes: if the calendar's healthy subscription announced nothing since
    `since`, count it against it; repeated, it is failing and the calendar polled."""
    now = clock.now()
    with Session(db) as session:
        channel = next(
            (
                c
                for c in session.exec(
                    select(PushSubscription).where(
                        PushSubscription.calendar_id == calendar_id,
                        PushSubscription.state == ChannelState.ACTIVE,
                    )
                )
                if healthy(c, now)
            ),
            None,
        )
        if channel is None:
            return False
        # Only a change notice announces a change: the message that opens every Google
        # channel says nothing about the calendar.
        announcements = select(Notification.id).where(
            Notification.channel_id == channel.key,
            col(Notification.kind).in_(ANNOUNCING),
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
