"""Google Calendar speaking calsync's provider protocol: the client's calls, mapped both ways."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from google.oauth2.credentials import Credentials

from calsync_server.providers.credentials import GoogleOAuth, StoredCredentials
from calsync_server.providers.google import credentials as google_credentials
from calsync_server.providers.google import mapping
from calsync_server.providers.google.client import (
    BATCH_SIZE,
    WRITE_CONCURRENCY,
    GoogleCalendarProvider,
)
from calsync_server.providers.google.wire import BlockWrite, BlockWriteKind
from calsync_server.providers.google.wire import ProviderError as GoogleError
from calsync_server.providers.model import (
    BlockAction,
    BlockIds,
    BlockOp,
    BlockResult,
    CallStats,
    Capabilities,
    ChangeSet,
    ErrorKind,
    ProviderCalendar,
    ProviderError,
    PushKind,
    RemoteEvent,
    Subscription,
)
from calsync_server.providers.pacing import Quota, pacer
from calsync_server.providers.retry import RetryPolicy

T = TypeVar("T")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


CAPABILITIES = Capabilities(
    block_ids=BlockIds.CLIENT,
    push=PushKind.CHANNEL,
    push_lifetime=timedelta(days=7),
    renew_in_place=False,
    batch_size=BATCH_SIZE,
    max_concurrency=WRITE_CONCURRENCY,
)

_WRITE_KINDS = {
    BlockAction.CREATE: BlockWriteKind.INSERT,
    BlockAction.UPDATE: BlockWriteKind.PATCH,
    BlockAction.DELETE: BlockWriteKind.DELETE,
    BlockAction.READ: BlockWriteKind.GET,
}


class GoogleProvider:
    """One Google account. Not thread-safe (httplib2): one instance per sync job."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        credentials: Credentials,
        *,
        root_url: str,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        account_id: int | None = None,
        quota: Quota | None = None,
        user_key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # Google's quota is per user: every provider object of the user (`user_key`) shares
        # one pacer.
        paced = pacer(f"google:{user_key}", quota) if quota and user_key else None
        self.client = GoogleCalendarProvider(
            credentials,
            root_url=root_url,
            retry=retry,
            timeout=timeout,
            pacer=paced,
            sleep=sleep,
        )
        self.stats: CallStats = self.client.stats  # the client's counters, not a copy
        self.account_id = account_id
        self._token_at_start = credentials.token

    @classmethod
    def from_stored(
        cls,
        stored: StoredCredentials,
        *,
        root_url: str,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        account_id: int | None = None,
        quota: Quota | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> GoogleProvider:
        if not isinstance(stored, GoogleOAuth):
            raise ValueError(f"a Google account needs Google OAuth tokens, not {stored!r}")
        return cls(
            google_credentials.to_google(stored, root_url),
            root_url=root_url,
            retry=retry,
            timeout=timeout,
            account_id=account_id,
            quota=quota,
            # The login's refresh token stands for the user (an account id is only unique
            # within one database).
            user_key=_digest(stored.refresh_token) if stored.refresh_token else None,
            sleep=sleep,
        )

    def credentials_to_store(self, previous: StoredCredentials) -> StoredCredentials | None:
        """The login to seal back when google-auth refreshed the token on the way, else None."""
        credentials = self.client.credentials
        if credentials is None or credentials.token == self._token_at_start:
            return None
        client_id = previous.client_id if isinstance(previous, GoogleOAuth) else "calsync"
        return google_credentials.from_google(credentials, client_id)

    def close(self) -> None:
        self.client.close()

    def block_id(self, digest: str) -> str | None:
        return mapping.block_id(digest)

    def list_calendars(self) -> list[ProviderCalendar]:
        return [mapping.calendar(c) for c in self._mapped(self.client.list_calendars)]

    def read_changes(
        self, calendar_id: str, *, cursor: str | None, window: tuple[datetime, datetime]
    ) -> ChangeSet:
        feed = self._mapped(
            lambda: self.client.fetch_events(
                calendar_id, sync_token=cursor, time_min=window[0], time_max=window[1]
            )
        )
        events: list[RemoteEvent] = []
        removed: list[str] = []
        for item in feed.items:
            event = mapping.remote_event(item)
            if event is None:
                removed.append(str(item["id"]))
            else:
                events.append(event)
        return ChangeSet(
            events=tuple(events),
            removed=tuple(removed),
            cursor=feed.next_sync_token,
            full=feed.full,
        )

    def list_blocks(
        self, calendar_id: str, *, window: tuple[datetime, datetime]
    ) -> list[RemoteEvent]:
        items = self._mapped(lambda: self.client.list_busy_blocks(calendar_id, time_min=window[0]))
        found = (mapping.remote_event(item) for item in items)
        return [event for event in found if event is not None and event.is_block]

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        writes = [self._write(op) for op in ops]
        results: list[BlockResult] = []
        for op, result in zip(ops, self._mapped(lambda: self.client.write(writes)), strict=True):
            if result.error is not None:
                error = mapping.error(result.error)
                if error.kind is ErrorKind.CURSOR_EXPIRED:
                    # 410 on a block is the block gone (only a listing has a cursor to expire).
                    error = ProviderError(ErrorKind.GONE, error.detail)
                error.account_id = self.account_id
                results.append(BlockResult(op, error=error))
                continue
            block = mapping.remote_event(result.resource) if result.resource else None
            results.append(BlockResult(op, block=block))
        return results

    def _write(self, op: BlockOp) -> BlockWrite:
        body = None
        event_id = op.block_id
        if op.action is BlockAction.CREATE:
            if event_id is None and op.digest is not None:
                event_id = mapping.block_id(op.digest)
            if op.content is None or event_id is None:
                raise ValueError("a block create needs its content and its digest")
            body = mapping.block_body(op.content, event_id)
        elif op.action is BlockAction.UPDATE:
            if op.content is None:
                raise ValueError("a block update needs its content")
            body = mapping.block_body(op.content)
        if event_id is None:
            raise ValueError(f"a block {op.action.value} needs the block's id")
        return BlockWrite(
            _WRITE_KINDS[op.action], op.calendar_id, event_id, body=body, if_match=op.version
        )

    def _mapped(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except GoogleError as exc:
            error = mapping.error(exc)
            error.account_id = self.account_id
            raise error from exc

    # -- push: Google channels ------------------------------------------------------------------

    def subscribe(
        self, calendar_id: str, *, address: str, secret: str, lifetime: timedelta
    ) -> Subscription:
        """A channel: its id is the last path segment of ``address`` (calsync's own key)."""
        channel_id = address.rstrip("/").rsplit("/", 1)[-1]
        info = self._mapped(
            lambda: self.client.watch(
                calendar_id,
                channel_id=channel_id,
                token=secret,
                address=address,
                ttl_seconds=int(lifetime.total_seconds()),
            )
        )
        return Subscription(info.channel_id, info.expires_at, resource=info.resource_id)

    def renew(self, subscription: Subscription, *, lifetime: timedelta) -> Subscription:
        """Google renews no channel in place: the caller makes a new one, then stops this."""
        raise ProviderError(ErrorKind.GONE, "Google channels are replaced, not renewed")

    def unsubscribe(self, subscription: Subscription) -> None:
        try:
            self._mapped(
                lambda: self.client.stop_channel(subscription.remote_id, subscription.resource)
            )
        except ProviderError as exc:
            if exc.kind is not ErrorKind.GONE:
                raise
