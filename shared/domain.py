"""The domain's vocabulary (handbook domain.md) as enums, shared by server, dashboard and wire."""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    GOOGLE = "google"
    # A CalDAV login (iCloud, Fastmail, Nextcloud, any RFC 4791 server): polled by design.
    CALDAV = "caldav"


class AccountState(StrEnum):
    ACTIVE = "active"
    # A refresh failed: the account's calendars stop syncing and no busy block is deleted.
    NEEDS_REAUTH = "needs_reauth"


class CalendarRole(StrEnum):
    SOURCE = "source"
    TARGET = "target"
    BOTH = "both"

    @property
    def is_source(self) -> bool:
        return self in (CalendarRole.SOURCE, CalendarRole.BOTH)

    @property
    def is_target(self) -> bool:
        return self in (CalendarRole.TARGET, CalendarRole.BOTH)


class BusyTitle(StrEnum):
    """What a source calendar lets its busy blocks show."""

    PRIVATE = "private"  # "Busy", nothing else of the event
    TITLE = "title"  # "Busy - <title>"


class SyncKind(StrEnum):
    WEBHOOK = "webhook"
    POLLING = "polling"
    MANUAL = "manual"
    FULL = "full"


class SyncStatus(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"
    ERROR = "error"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ChannelState(StrEnum):
    ACTIVE = "active"
    FAILING = "failing"
    STOPPED = "stopped"


class NotificationOutcome(StrEnum):
    """What the webhook did with a received push notification."""

    ENQUEUED = "enqueued"
    COALESCED = "coalesced"
    SYNC_MESSAGE = "sync_message"
    DUPLICATE = "duplicate"
    FORGED = "forged"
    UNKNOWN_CHANNEL = "unknown_channel"
