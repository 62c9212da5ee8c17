"""The registry: a provider's name (``Account.provider``) -> how calsync builds it.

With the composition root (runtime, cli, demo, the tests' world), the only code that names a
concrete provider: the engine, push and accounts code ask here. A provider is imported only
when an account of it is opened, so loading the registry loads no provider's libraries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from calsync_server.providers.credentials import CalDAVPassword, StoredCredentials
from calsync_server.providers.model import Capabilities, Provider, PushParser
from calsync_server.providers.pacing import Quota
from calsync_server.providers.retry import RetryPolicy
from calsync_server.providers.signin import OAuthSignIn
from shared.clock import Clock, SystemClock
from shared.settings import MICROSOFT_GRAPH_ROOT, MICROSOFT_LOGIN_ROOT, Settings

GOOGLE = "google"
CALDAV = "caldav"
MICROSOFT = "microsoft"

# (provider name, calsync account id, the account's stored login) -> the account's provider.
ProviderFactory = Callable[[str, int | None, StoredCredentials], Provider]


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Where each provider is (one root per provider, so a setting points it at its emulator)."""

    google_api_url: str
    retry: RetryPolicy | None = None
    timeout: float = 30.0
    microsoft_graph_url: str = MICROSOFT_GRAPH_ROOT
    microsoft_login_url: str = MICROSOFT_LOGIN_ROOT
    # A CA bundle for the login authority's TLS (an emulator's); None: the system's.
    microsoft_ca_file: str | None = None
    microsoft_client_id: str | None = None
    # The quotas calsync paces its calls under, per Google user and per Graph mailbox (the
    # settings say which; None: unpaced).
    google_quota: Quota | None = None
    microsoft_quota: Quota | None = None
    # The engine's clock (what a provider dates: a Graph subscription's expiry, an HTTP-date
    # Retry-After, a CalDAV block's DTSTAMP) and how a provider waits before a retry: tests
    # give a fixed clock and a sleep that records the waits instead of taking them.
    clock: Clock = field(default_factory=SystemClock)
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        retry: RetryPolicy | None = None,
        *,
        timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> ProviderConfig:
        return cls(
            settings.google_api_url,
            retry,
            timeout,
            clock=clock or SystemClock(),
            microsoft_graph_url=settings.microsoft_graph_url,
            microsoft_login_url=settings.microsoft_login_url,
            microsoft_ca_file=settings.microsoft_ca_file,
            microsoft_client_id=settings.microsoft_client_id,
            google_quota=(
                Quota(settings.google_calls_per_minute, settings.quota_minute_seconds)
                if _paced(settings, settings.uses_real_google)
                else None
            ),
            microsoft_quota=(
                Quota(settings.microsoft_calls_per_10_minutes, 10 * settings.quota_minute_seconds)
                if _paced(settings, _is_graph(settings.microsoft_graph_url))
                else None
            ),
        )


def _paced(settings: Settings, real_provider: bool) -> bool:
    return settings.quota_pacing == "on" or (settings.quota_pacing == "auto" and real_provider)


def _is_graph(url: str) -> bool:
    return url.rstrip("/") == MICROSOFT_GRAPH_ROOT.rstrip("/")


class UnknownProvider(ValueError):
    pass


@runtime_checkable
class RefreshesCredentials(Protocol):
    """A provider whose login may be refreshed during a sync: the new one is sealed back."""

    def credentials_to_store(self, previous: StoredCredentials) -> StoredCredentials | None: ...


@runtime_checkable
class KnowsOwner(Protocol):
    """A provider that can tell every address its account's owner is known by (an alias
    invited to a meeting is the owner invited), as plain lower-case addresses."""

    def owner_addresses(self) -> frozenset[str]:
        """The owner's addresses, asking the provider when not known yet (ProviderError)."""
        ...

    def known_owner_addresses(self) -> frozenset[str] | None:
        """The owner's addresses when already known without a call (None: not known)."""
        ...


def provider_factory(config: ProviderConfig) -> ProviderFactory:
    """Builds each account's provider by its name, with the account's id (its errors say it)."""

    def build(name: str, account_id: int | None, credentials: StoredCredentials) -> Provider:
        if name == GOOGLE:
            from calsync_server.providers.google.provider import GoogleProvider

            return GoogleProvider.from_stored(
                credentials,
                root_url=config.google_api_url,
                retry=config.retry,
                timeout=config.timeout,
                account_id=account_id,
                quota=config.google_quota,
                sleep=config.sleep,
            )
        if name == CALDAV:
            return caldav_provider(credentials, config)
        if name == MICROSOFT:
            from calsync_server.providers.microsoft import MicrosoftProvider

            retry = config.retry
            return MicrosoftProvider.from_stored(
                credentials,
                client_id=config.microsoft_client_id,
                login_root=config.microsoft_login_url,
                graph_root=config.microsoft_graph_url,
                verify=config.microsoft_ca_file,
                max_attempts=retry.attempts if retry else 5,
                backoff_s=retry.base_seconds if retry else 0.5,
                quota=config.microsoft_quota,
                # A stalled answer is a timeout after the configured seconds, as for Google
                # and CalDAV (it was Graph's client's own 30 s whatever the config said).
                timeout_s=config.timeout,
                clock=config.clock.now,
                sleep=config.sleep,
            )
        raise UnknownProvider(f"calsync cannot open {name!r} accounts yet")

    return build


def caldav_provider(
    credentials: StoredCredentials, config: ProviderConfig, *, max_tries: int = 4
) -> Provider:
    """A CalDAV login's provider: the server URL, user name and password are all in the login
    (each account may live on another server). ``max_tries`` 1: a sign-in, a person waiting."""
    if not isinstance(credentials, CalDAVPassword):
        raise ValueError(f"a CalDAV account needs a CalDAV password login, not {credentials!r}")
    from calsync_server.providers.caldav import CalDAVProvider

    return CalDAVProvider.from_login(
        credentials,
        timeout=config.timeout,
        max_tries=max_tries,
        clock=config.clock.now,
        sleep=config.sleep,
    )


def capabilities(name: str) -> Capabilities:
    """What a provider can do, without opening an account (the scheduler and push ask: a
    provider whose push is NONE is polled by design, and no channel is tried for it)."""
    if name == GOOGLE:
        from calsync_server.providers.google.provider import CAPABILITIES as google

        return google
    if name == CALDAV:
        from calsync_server.providers.caldav import CAPABILITIES as caldav

        return caldav
    if name == MICROSOFT:
        from calsync_server.providers.microsoft import CAPABILITIES as microsoft

        return microsoft
    raise UnknownProvider(f"calsync knows no provider {name!r}")


def push_parser(name: str) -> PushParser | None:
    """The pure reader of a provider's webhook requests (/webhooks/{name}/{key}); None for a
    provider without push. Parsing is pure: no I/O, no clock."""
    if name == GOOGLE:
        from calsync_server.providers.google.push import PARSER

        return PARSER
    if name == MICROSOFT:
        from calsync_server.providers.microsoft.push import parse_notification

        return PushParser(
            parse=lambda request: parse_notification(request.query, request.body),
            # Several notices per POST, each under a kilobyte.
            max_body=1024 * 1024,
            accepted_status=202,
        )
    return None


def block_identity(name: str) -> Callable[[str], str | None]:
    """The pure id a provider gives a block of this identity digest (None: the provider assigns
    it). Google's ids are the digest in base32hex, byte for byte what calsync always gave."""
    if name == GOOGLE:
        from calsync_server.providers.google.mapping import block_id

        return block_id
    if name == CALDAV:
        from calsync_server.providers.caldav.mapping import block_name

        return block_name
    # Microsoft (and any provider that assigns ids): the digest is only the create's
    # transactionId; the id is stored when Graph answers.
    return lambda digest: None


def revoke_address(name: str, config: ProviderConfig) -> str | None:
    """Where a provider revokes a login's grant (POST ``token=``), None where there is none."""
    if name == GOOGLE:
        from calsync_server.providers.google.client import revoke_uri

        return revoke_uri(config.google_api_url)
    return None


def oauth_sign_in(name: str, config: ProviderConfig, home: Path) -> OAuthSignIn:
    """The redirect sign-in of a provider that has one (Google: its OAuth client kept in
    ``home``; Microsoft: the Entra app id from the settings)."""
    if name == GOOGLE:
        from calsync_server.providers.google.signin import GoogleSignIn

        return GoogleSignIn(home, config.google_api_url)
    if name == MICROSOFT:
        from calsync_server.providers.microsoft.signin import MicrosoftSignIn

        return MicrosoftSignIn(
            config.microsoft_client_id, config.microsoft_login_url, config.microsoft_ca_file
        )
    raise UnknownProvider(f"{name!r} accounts have no redirect sign-in")
