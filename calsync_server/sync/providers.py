"""One provider per account for the length of a sync, built through the registry by the
account's provider name and id, with refreshed logins sealed back."""

from __future__ import annotations

from sqlmodel import Session

from calsync_server.accounts.vault import CredentialVault, StoredCredentials
from calsync_server.db.models import Account
from calsync_server.providers.credentials import expiry_of
from calsync_server.providers.model import Provider
from calsync_server.providers.registry import ProviderFactory, RefreshesCredentials
from calsync_server.sync.report import SyncReport


class ProviderPool:
    """Opens each account's provider once per sync; providers are not shared across threads."""

    def __init__(self, vault: CredentialVault, factory: ProviderFactory) -> None:
        self._vault = vault
        self._factory = factory
        self._open: dict[int, tuple[Provider, StoredCredentials]] = {}

    def get(self, account: Account) -> Provider:
        assert account.id is not None
        if account.id not in self._open:
            if account.credentials_encrypted is None:
                raise ValueError(f"account {account.email} has no stored credentials")
            stored = self._vault.open(account.credentials_encrypted)
            provider = self._factory(str(account.provider), account.id, stored)
            self._open[account.id] = (provider, stored)
        return self._open[account.id][0]

    def finish(self, session: Session, report: SyncReport) -> None:
        """Add up calls and retries, seal back logins a provider refreshed on the way, and
        close the providers."""
        for account_id, (provider, stored) in self._open.items():
            provider.close()
            report.provider_calls += provider.stats.calls
            report.retries += provider.stats.retries
            for text in provider.stats.notes:
                report.note(text)
            if not isinstance(provider, RefreshesCredentials):
                continue
            fresh = provider.credentials_to_store(stored)
            if fresh is None:
                continue
            account = session.get(Account, account_id)
            if account is not None:
                account.credentials_encrypted = self._vault.seal(fresh)
                account.token_expires_at = expiry_of(fresh)
                session.add(account)
        self._open.clear()

    def close(self) -> None:
        """Close the providers and seal nothing back (a dry run writes nothing anywhere)."""
        for provider, _stored in self._open.values():
            provider.close()
        self._open.clear()
