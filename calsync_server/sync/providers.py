"""One provider per account for the length of a sync, with refreshed tokens sealed back."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from calsync_server.accounts.vault import CredentialVault, StoredCredentials
from calsync_server.db.models import Account
from calsync_server.providers.base import CalendarProvider
from calsync_server.providers.google import GoogleCalendarProvider, RetryPolicy
from calsync_server.sync.report import SyncReport

ProviderFactory = Callable[[StoredCredentials], CalendarProvider]


def google_provider_factory(root_url: str, retry: RetryPolicy | None = None) -> ProviderFactory:
    def build(credentials: StoredCredentials) -> CalendarProvider:
        return GoogleCalendarProvider(
            credentials.to_google(root_url), root_url=root_url, retry=retry
        )

    return build


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
        return self._open[account.id][0]

    def finish(self, session: Session, report: SyncReport) -> None:
        """Add up calls and retries, and seal back tokens a provider refreshed on the way."""
        for account_id, (provider, stored) in self._open.items():
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
