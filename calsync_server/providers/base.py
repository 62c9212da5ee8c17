"""What calsync needs of a calendar provider, and the failures a provider can report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from calsync_server.providers.model import CallStats as CallStats


@dataclass(frozen=True, slots=True)
class ProviderCalendar:
    provider_calendar_id: str
    name: str
    time_zone: str | None
    color: str | None
    access_role: str
    primary: bool = False

    @property
    def writable(self) -> bool:
        return self.access_role in ("owner", "writer")


@dataclass(frozen=True, slots=True)
class EventFeed:
    """Every item of one list (all pages), and the token that continues from it."""

    items: list[dict[str, Any]]
    next_sync_token: str | None
    full: bool


class BlockWriteKind(StrEnum):
    INSERT = "insert"
    PATCH = "patch"
    DELETE = "delete"
    GET = "get"


@dataclass(frozen=True, slots=True)
class BlockWrite:
    """One call of a batch against one event of one calendar."""

    kind: BlockWriteKind
    calendar_id: str
    event_id: str
    body: dict[str, Any] | None = None
    # The version the write expects to find (If-Match): a newer one fails it as stale.
    if_match: str | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    write: BlockWrite
    resource: dict[str, Any] | None = None
    error: ProviderError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    channel_id: str
    resource_id: str
    expires_at: datetime | None


class ProviderError(Exception):
    """A provider answered with an error (or could not be reached)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying with backoff (domain.md "Provider failures")."""
        if self.status in (0, 429, 500, 502, 503, 504):
            return True
        return self.status == 403 and self.reason in ("rateLimitExceeded", "userRateLimitExceeded")

    @property
    def gone(self) -> bool:
        return self.status in (404, 410)

    @property
    def forbidden(self) -> bool:
        return self.status == 403 and not self.transient


class SyncTokenExpired(ProviderError):
    """410 on a sync token: the calendar needs a full sync."""


class ReauthRequired(ProviderError):
    """The login was revoked or expired and refreshing it failed."""

    # Which calsync account's login failed (set by the provider pool): a sync touches several.
    account_id: int | None = None


class ProviderUnavailable(ProviderError):
    """Transient failures outlasted the retries; the job is kept for later."""


class CalendarProvider(Protocol):
    """One account's connection to its provider. Blocking: call it from a worker thread."""

    stats: CallStats

    def list_calendars(self) -> list[ProviderCalendar]: ...

    def fetch_events(
        self,
        calendar_id: str,
        *,
        sync_token: str | None,
        time_min: datetime,
        time_max: datetime,
    ) -> EventFeed:
        """Incremental from `sync_token` when given, else everything in [time_min, time_max)."""
        ...

    def list_busy_blocks(self, calendar_id: str, *, time_min: datetime) -> list[dict[str, Any]]:
        """calsync-marked events of a calendar (by the private mark, never the title)."""
        ...

    def write(self, writes: Sequence[BlockWrite]) -> list[WriteResult]:
        """Run writes in batches, retrying transient failures; one result per write, in order."""
        ...

    def watch(
        self, calendar_id: str, *, channel_id: str, token: str, address: str, ttl_seconds: int
    ) -> ChannelInfo: ...

    def stop_channel(self, channel_id: str, resource_id: str) -> None: ...

    def close(self) -> None:
        """Let go of the provider's connections; it is not used again."""
        ...
