"""Google Calendar's calendars, event feeds, batch writes and errors, as its client speaks them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


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
