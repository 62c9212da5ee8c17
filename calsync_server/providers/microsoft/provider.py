"""One Microsoft 365 / Outlook.com account as a calsync provider (Microsoft Graph v1.0)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import msgspec

from calsync_server.providers.credentials import MicrosoftTokenCache, StoredCredentials
from calsync_server.providers.microsoft import blocks, delta, push
from calsync_server.providers.microsoft.client import MAILBOX_CONCURRENCY, GraphClient, TokenSource
from calsync_server.providers.microsoft.mapping import to_calendar
from calsync_server.providers.microsoft.signin import MsalTokens
from calsync_server.providers.microsoft.wire import CalendarPage, Me
from calsync_server.providers.model import (
    BlockIds,
    BlockOp,
    BlockResult,
    CallStats,
    Capabilities,
    ChangeSet,
    ProviderCalendar,
    PushKind,
    RemoteEvent,
    Subscription,
)
from calsync_server.providers.pacing import Quota, pacer

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
LOGIN_ROOT = "https://login.microsoftonline.com/"

CAPABILITIES = Capabilities(
    block_ids=BlockIds.SERVER,
    push=PushKind.SUBSCRIPTION,
    push_lifetime=push.MAX_LIFETIME,
    renew_in_place=True,
    batch_size=20,
    max_concurrency=MAILBOX_CONCURRENCY,
)


class MicrosoftProvider:
    """A `PushProvider` over Graph for one mailbox. Blocking; safe to call from several worker
    threads (at most 4 requests of the mailbox are in flight at once, process-wide)."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        tokens: TokenSource,
        *,
        mailbox_key: str,
        graph_root: str = GRAPH_ROOT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = delta.PAGE_SIZE,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        quota: Quota | None = None,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stats = CallStats()
        self.tokens = tokens
        self.clock = clock
        self.page_size = page_size
        self.client = GraphClient(
            graph_root,
            tokens,
            mailbox_key=mailbox_key,
            stats=self.stats,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
            transport=transport,
            sleep=sleep,
            clock=clock,
            # Graph's quota is per mailbox: every provider object of it shares one pacer.
            pacer=pacer(f"microsoft:{mailbox_key}", quota) if quota else None,
        )
        self.writer = blocks.BlockWriter(self.client, max_attempts=max_attempts)
        # The serialized token cache after MSAL rotated a token during this provider's life.
        self.rotated_cache: str | None = None
        # Who the mailbox's owner is, once /me told it (owner_addresses).
        self._owner: frozenset[str] | None = None

    @classmethod
    def from_token_cache(
        cls,
        token_cache: str,
        home_account_id: str,
        *,
        client_id: str,
        login_root: str = LOGIN_ROOT,
        tenant: str = "common",
        graph_root: str = GRAPH_ROOT,
        client_secret: str | None = None,
        verify: str | None = None,
        on_cache_change: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> MicrosoftProvider:
        """The provider of an account signed in earlier: its serialized MSAL cache and home
        account id. ``on_cache_change`` gets the cache again whenever MSAL rotated a token
        (store it sealed); ``verify`` is a CA bundle for an emulator's TLS login."""
        tokens = MsalTokens.from_cache(
            token_cache,
            home_account_id,
            client_id=client_id,
            authority=login_root.rstrip("/") + "/" + tenant,
            client_secret=client_secret,
            verify=verify,
            on_cache_change=on_cache_change,
        )
        return cls(
            tokens, mailbox_key=home_account_id, graph_root=graph_root, clock=clock, sleep=sleep
        )

    @classmethod
    def from_stored(
        cls,
        credentials: StoredCredentials,
        *,
        client_id: str | None,
        login_root: str = LOGIN_ROOT,
        graph_root: str = GRAPH_ROOT,
        verify: str | None = None,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        quota: Quota | None = None,
        timeout_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> MicrosoftProvider:
        """The provider of a stored Microsoft login; a token MSAL rotates on the way is kept
        for `credentials_to_store` (the engine seals it back into the account)."""
        if not isinstance(credentials, MicrosoftTokenCache):
            raise ValueError(f"a Microsoft account needs a token cache login, not {credentials!r}")
        app_id = credentials.client_id or client_id
        if app_id is None:
            raise ValueError("a Microsoft account needs the Entra app id it was signed in with")
        tokens = MsalTokens.from_cache(
            credentials.cache,
            credentials.home_account_id,
            client_id=app_id,
            authority=login_root.rstrip("/") + "/common",
            verify=verify,
        )
        provider = cls(
            tokens,
            mailbox_key=credentials.home_account_id,
            graph_root=graph_root,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            quota=quota,
            timeout_s=timeout_s,
            clock=clock,
            sleep=sleep,
        )
        tokens.on_cache_change = provider._keep_cache
        return provider

    def _keep_cache(self, serialized: str) -> None:
        self.rotated_cache = serialized

    def credentials_to_store(self, previous: StoredCredentials) -> StoredCredentials | None:
        """The login with the rotated token cache, None when MSAL changed nothing."""
        if self.rotated_cache is None or not isinstance(previous, MicrosoftTokenCache):
            return None
        if self.rotated_cache == previous.cache:
            return None
        return msgspec.structs.replace(previous, cache=self.rotated_cache)

    def owner_addresses(self) -> frozenset[str]:
        """The mailbox's mail, user principal name and SMTP proxy addresses (one /me call)."""
        if self._owner is None:
            answer = self.client.call(
                "GET", "/me", params={"$select": "mail,userPrincipalName,proxyAddresses"}
            )
            self._owner = owner_addresses(msgspec.convert(answer.body, Me))
        return self._owner

    def known_owner_addresses(self) -> frozenset[str] | None:
        return self._owner

    # ------------------------------------------------------------------------- Provider

    def list_calendars(self) -> list[ProviderCalendar]:
        url: str | None = "/me/calendars"
        params: dict[str, str] | None = {"$top": "100"}
        found: list[ProviderCalendar] = []
        while url is not None:
            answer = self.client.call("GET", url, params=params)
            page = msgspec.convert(answer.body, CalendarPage)
            found.extend(to_calendar(c) for c in page.value)
            url, params = page.next_link, None
        return found

    def read_changes(
        self, calendar_id: str, *, cursor: str | None, window: tuple[datetime, datetime]
    ) -> ChangeSet:
        return delta.read_changes(
            self.client, calendar_id, cursor=cursor, window=window, page_size=self.page_size
        )

    def list_blocks(
        self, calendar_id: str, *, window: tuple[datetime, datetime]
    ) -> list[RemoteEvent]:
        """Marked blocks, by `$filter` on the extended property. Delta items never carry the
        mark: the engine recognises echoes of its writes by the ids and versions it stored."""
        return blocks.list_blocks(self.client, calendar_id, window)

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        """Creates carry transactionId = a GUID of the op's digest (Graph returns the first
        event for a repeated one); a delete of a block that is gone answers GONE, which the
        engine counts as done; a conditional update that met a newer version answers STALE."""
        return self.writer.apply(ops)

    def block_id(self, digest: str) -> str | None:
        del digest  # Graph assigns event ids
        return None

    def close(self) -> None:
        self.client.close()

    # --------------------------------------------------------------------- PushProvider

    def subscribe(
        self, calendar_id: str, *, address: str, secret: str, lifetime: timedelta
    ) -> Subscription:
        return push.subscribe(
            self.client,
            calendar_id,
            address=address,
            secret=secret,
            lifetime=lifetime,
            now=self.clock(),
        )

    def renew(self, subscription: Subscription, *, lifetime: timedelta) -> Subscription:
        return push.renew(self.client, subscription, lifetime=lifetime, now=self.clock())

    def unsubscribe(self, subscription: Subscription) -> None:
        push.unsubscribe(self.client, subscription)


def owner_addresses(me: Me) -> frozenset[str]:
    """The addresses /me names (lower case); a user principal name that is no address (no
    "@") is left out, as is a proxy address of another kind than SMTP (X500:, SIP:)."""
    found = [me.mail, me.userPrincipalName]
    found += [p[len("smtp:") :] for p in me.proxyAddresses if p.lower().startswith("smtp:")]
    return frozenset(a.strip().lower() for a in found if a and "@" in a)
