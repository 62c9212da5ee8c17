"""The domain's vocabulary (handbook domain.md) as enums, shared by server, dashboard and wire."""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    GOOGLE = "google"
    # A CalDAV login (iCloud, Fastmail, Nextcloud, any RFC 4791 server): polled by design.
    CALDAV = "caldav"
    # Microsoft 365 and Outlook.com through Microsoft Graph (MSAL's token cache).
    MICROSOFT = "microsoft"


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


class CalendarStatus(StrEnum):
    """Whether a calendar needs the user (the safety catch holds deletes of its blocks)."""

    OK = "ok"
    NEEDS_YOU = "needs_you"


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


class PushState(StrEnum):
    """How a calendar hears of changes: by push, or by polling, and whether that is a fault."""

    ACTIVE = "active"  # a working push subscription
    PENDING = "pending"  # push is wanted and not made yet: polled meanwhile
    FAILING = "failing"  # push should work and does not: polled meanwhile (a fault)
    POLLED = "polled"  # polled by design (see PollReason): not a fault
    OFF = "off"  # sync is off: neither


class PollReason(StrEnum):
    """Why a calendar is polled by design."""

    NO_PUBLIC_URL = "no_public_url"  # no public URL for providers to reach
    PROVIDER_WITHOUT_PUSH = "provider_without_push"  # CalDAV has none


class SubscriptionNotice(StrEnum):
    """A provider's lifecycle notice about a push subscription (Graph's), the latest of which
    the channels screen shows: what happened to the subscription, and what calsync did."""

    REAUTHORIZE = "reauthorize"  # renew it now: calsync renews it in place
    REMOVED = "removed"  # the provider removed it: calsync makes a new one (polled meanwhile)
    MISSED = "missed"  # the provider lost notifications: calsync syncs the calendar


class NotificationOutcome(StrEnum):
    """What the webhook did with a received push notification."""

    ENQUEUED = "enqueued"
    COALESCED = "coalesced"
    SYNC_MESSAGE = "sync_message"
    DUPLICATE = "duplicate"
    FORGED = "forged"
    UNKNOWN_CHANNEL = "unknown_channel"
    # A lifecycle notice acted on without a sync (Graph's reauthorizationRequired: renew now).
    LIFECYCLE = "lifecycle"
