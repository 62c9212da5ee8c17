"""One provider per account for the length of a sync, built through the registry by the
account's provider name and id (or taken from the providers kept across syncs), with
refreshed logins sealed back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from calsync_server.accounts.service import note_owner
from calsync_server.accounts.vault import CredentialVault, StoredCredentials
from calsync_server.db.models import Account
from calsync_server.providers.credentials import expiry_of
from calsync_server.providers.model import Provider
from calsync_server.providers.registry import KnowsOwner, ProviderFactory, RefreshesCredentials
from calsync_server.sync.report import SyncReport

# A kept provider nobody took for this long is closed (its sockets and TLS state freed).
IDLE_SECONDS = 600.0
# Idle providers kept per account: as many as syncs of the account ran at once, bounded.
KEPT_PER_ACCOUNT = 4


@dataclass(slots=True)
class _Kept:
    provider: Provider
    name: str
    # The sealed login it was built from (or last sealed back): a different one in the
    # account's row means the login changed (refreshed elsewhere, signed in again).
    sealed: bytes
    stored: StoredCredentials
    idle_since: float = 0.0


class ProviderCache:
    """Providers kept across syncs, per account, each lent to one sync at a time.

    Building one costs what a propagation's critical path cannot spare (Google's client from
    its discovery document, Graph's TLS context and MSAL app): a sync takes an idle provider
    of the account if it was built from the login the account's row still holds, and gives it
    back when it ends. Thread-safe.
    """

    def __init__(
        self, *, idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: dict[int, list[_Kept]] = {}

    def take(self, account_id: int, name: str, sealed: bytes) -> _Kept | None:
        """An idle provider of the account built from exactly this login; others of the
        account (an older login) are closed."""
        with self._lock:
            kept = self._idle.get(account_id, [])
            found = next((k for k in kept if k.sealed == sealed and k.name == name), None)
            stale = [k for k in kept if k is not found and k.sealed != sealed]
            left = [k for k in kept if k is not found and k.sealed == sealed]
            if left:
                self._idle[account_id] = left
            else:
                self._idle.pop(account_id, None)
        for k in stale:
            k.provider.close()
        return found

    def give_back(self, account_id: int, kept: _Kept) -> None:
        now = self._clock()
        kept.idle_since = now
        closing: list[_Kept] = []
        with self._lock:
            self._idle.setdefault(account_id, []).append(kept)
            for key in list(self._idle):
                fresh = [k for k in self._idle[key] if now - k.idle_since < self._idle_seconds]
                closing += [k for k in self._idle[key] if k not in fresh]
                closing += fresh[:-KEPT_PER_ACCOUNT]
                fresh = fresh[-KEPT_PER_ACCOUNT:]
                if fresh:
                    self._idle[key] = fresh
                else:
                    del self._idle[key]
        for k in closing:
            k.provider.close()

    def forget(self, account_id: int) -> None:
        """Close the account's idle providers (it is leaving, or its login was withdrawn)."""
        with self._lock:
            kept = self._idle.pop(account_id, [])
        for k in kept:
            k.provider.close()

    def close(self) -> None:
        with self._lock:
            kept = [k for ks in self._idle.values() for k in ks]
            self._idle.clear()
        for k in kept:
            k.provider.close()


def _reset(provider: Provider) -> None:
    """A kept provider's counters start again for the sync that takes it (in place: a
    provider's client may count into the same object)."""
    stats = provider.stats
    stats.calls = stats.requests = stats.retries = 0
    stats.notes.clear()


class ProviderPool:
    """Opens each account's provider once per sync; providers are not shared across threads.
    With a cache, providers come from it and go back to it when the sync ends."""

    def __init__(
        self, vault: CredentialVault, factory: ProviderFactory, cache: ProviderCache | None = None
    ) -> None:
        self._vault = vault
        self._factory = factory
        self._cache = cache
        self._open: dict[int, _Kept] = {}

    def get(self, account: Account) -> Provider:
        assert account.id is not None
        if account.id not in self._open:
            sealed = account.credentials_encrypted
            if sealed is None:
                raise ValueError(f"account {account.email} has no stored credentials")
            name = str(account.provider)
            kept = self._cache.take(account.id, name, sealed) if self._cache else None
            if kept is None:
                stored = self._vault.open(sealed)
                kept = _Kept(self._factory(name, account.id, stored), name, sealed, stored)
            else:
                _reset(kept.provider)
            self._open[account.id] = kept
        return self._open[account.id].provider

    def finish(self, session: Session, report: SyncReport) -> None:
        """Add up calls and retries, seal back logins a provider refreshed on the way, and
        give the providers back (or close them)."""
        for account_id, kept in self._open.items():
            provider = kept.provider
            report.provider_calls += provider.stats.calls
            report.retries += provider.stats.retries
            for text in provider.stats.notes:
                report.note(text)
            if isinstance(provider, KnowsOwner):
                # A CalDAV login's discovery ran again (or the login kept what it found
                # before the column existed): the account row learns the owner's addresses.
                known = provider.known_owner_addresses()
                account = session.get(Account, account_id) if known is not None else None
                if known is not None and account is not None and note_owner(account, known):
                    session.add(account)
            if isinstance(provider, RefreshesCredentials):
                fresh = provider.credentials_to_store(kept.stored)
                if fresh is not None and fresh != kept.stored:
                    account = session.get(Account, account_id)
                    if account is not None:
                        sealed = self._vault.seal(fresh)
                        account.credentials_encrypted = sealed
                        account.token_expires_at = expiry_of(fresh)
                        session.add(account)
                        kept.sealed, kept.stored = sealed, fresh
        # A failed sync's providers are not kept: a refused login or a broken connection
        # must not follow the account into its next sync.
        self._release(keep=report.error is None)

    def close(self) -> None:
        """Give the providers back and seal nothing (a dry run writes nothing anywhere)."""
        self._release(keep=True)

    def _release(self, *, keep: bool) -> None:
        for account_id, kept in self._open.items():
            if keep and self._cache is not None:
                self._cache.give_back(account_id, kept)
            else:
                kept.provider.close()
        self._open.clear()
