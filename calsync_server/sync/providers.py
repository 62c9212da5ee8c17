"""One provider per account for the length of a sync, with refreshed tokens sealed back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from calsync_server.accounts.vault import CredentialVault, StoredCredentials
from calsync_server.db.models import Account
from calsync_server.providers.base import (
    BlockWrite,
    CalendarProvider,
    CallStats,
    ChannelInfo,
    EventFeed,
    ProviderCalendar,
    ReauthRequired,
    WriteResult,
)
from calsync_server.providers.google import GoogleCalendarProvider, RetryPolicy
from calsync_server.sync.report import SyncReport

ProviderFactory = Callable[[StoredCredentials], CalendarProvider]


def google_provider_factory(root_url: str, retry: RetryPolicy | None = None) -> ProviderFactory:
    def build(credentials: StoredCredentials) -> CalendarProvider:
        return GoogleCalendarProvider(
            credentials.to_google(root_url), root_url=root_url, retry=retry
        )

    return build


class AccountProvider:
    """One account's provider that names the account in a failed login: a sync of one calendar
    also writes into the user's other accounts, and only the one whose refresh failed must be
    marked `needs_reauth`."""

    def __init__(self, account_id: int, provider: CalendarProvider) -> None:
        self.account_id = account_id
        self.provider = provider
        self.stats: CallStats = provider.stats  # the same counters, not a copy

    def _tag(self, exc: ReauthRequired) -> None:
        if exc.account_id is None:
            exc.account_id = self.account_id

    def list_calendars(self) -> list[ProviderCalendar]:
        try:
            return self.provider.list_calendars()
        except ReauthRequired as exc:
            self._tag(exc)
            raise

    def fetch_events(
        self, calendar_id: str, *, sync_token: str | None, time_min: datetime, time_max: datetime
    ) -> EventFeed:
        try:
            return self.provider.fetch_events(
                calendar_id, sync_token=sync_token, time_min=time_min, time_max=time_max
            )
        except ReauthRequired as exc:
            self._tag(exc)
            raise

    def list_busy_blocks(self, calendar_id: str, *, time_min: datetime) -> list[dict[str, Any]]:
        try:
            return self.provider.list_busy_blocks(calendar_id, time_min=time_min)
        except ReauthRequired as exc:
            self._tag(exc)
            raise

    def write(self, writes: Sequence[BlockWrite]) -> list[WriteResult]:
        try:
            return self.provider.write(writes)
        except ReauthRequired as exc:
            self._tag(exc)
            raise

    def watch(
        self, calendar_id: str, *, channel_id: str, token: str, address: str, ttl_seconds: int
    ) -> ChannelInfo:
        try:
            return self.provider.watch(
                calendar_id,
                channel_id=channel_id,
                token=token,
                address=address,
                ttl_seconds=ttl_seconds,
            )
        except ReauthRequired as exc:
            self._tag(exc)
            raise

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        try:
            self.provider.stop_channel(channel_id, resource_id)
        except ReauthRequired as exc:
            self._tag(exc)
            raise

    def close(self) -> None:
        self.provider.close()


class ProviderPool:
    """Opens each account's provider once per sync; providers are not shared across threads."""

    def __init__(self, vault: CredentialVault, factory: ProviderFactory) -> None:
        self._vault = vault
        self._factory = factory
        self._open: dict[int, tuple[CalendarProvider, StoredCredentials]] = {}

    def get(self, account: Account) -> CalendarProvider:
        assert account.id is not None
        if account.id not in self._open:
            if account.credentials_encrypted is None:
                raise ValueError(f"account {account.email} has no stored credentials")
            stored = self._vault.open(account.credentials_encrypted)
            self._open[account.id] = (self._factory(stored), stored)
        return AccountProvider(account.id, self._open[account.id][0])

    def finish(self, session: Session, report: SyncReport) -> None:
        """Add up calls and retries, seal back tokens a provider refreshed on the way, and
        close the providers."""
        for account_id, (provider, stored) in self._open.items():
            provider.close()
            report.provider_calls += provider.stats.calls
            report.retries += provider.stats.retries
            for text in provider.stats.notes:
                report.note(text)
            credentials = getattr(provider, "credentials", None)
            if credentials is None or credentials.token == stored.access_token:
                continue
            fresh = StoredCredentials.from_google(credentials, stored.client_id)
            account = session.get(Account, account_id)
            if account is not None:
                account.credentials_encrypted = self._vault.seal(fresh)
                account.token_expires_at = fresh.expiry
                session.add(account)
        self._open.clear()
