"""The JSON API's wire schemas (msgspec): what the server sends and the dashboard reads."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.domain import (
    AccountState,
    BusyTitle,
    CalendarRole,
    CalendarStatus,
    ChannelState,
    JobState,
    PollReason,
    Provider,
    PushState,
    SubscriptionNotice,
    SyncKind,
    SyncStatus,
)

# Paging: enough for a screenful, small enough that one page is never a heavy query.
DEFAULT_PAGE = 100
MAX_PAGE = 1000

PageLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)]
# Ids beyond this are refused before they reach the database: the id columns are INTEGER, which
# PostgreSQL holds in 32 bits (a bigger id failed there with 500). Exact as a JSON number too.
MAX_ID = 2**31 - 1
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class Schema(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every wire type: unknown fields are refused, not silently dropped."""


class Problem(Schema):
    """One thing wrong with a request: what, which parameter or body field, and where."""

    message: str
    # The parameter or body field's name (`data`: the body as a whole); absent when unknown.
    key: str = ""
    # body, query, path, header or cookie; absent when unknown.
    source: str = ""


class ApiError(Schema):
    """Every error the API answers (4xx and 5xx): a sentence, and for an invalid request the
    problems one by one."""

    error: Annotated[str, msgspec.Meta(min_length=1)]
    detail: list[Problem] | None = None


class ChannelCounts(Schema):
    active: int
    expiring: int
    failing: int


class Status(Schema):
    accounts: int
    calendars: int
    calendars_syncing: int
    busy_blocks: int
    queue_depth: int
    last_sync_at: datetime | None
    channels: ChannelCounts
    # True when push channels can be made (a public URL is set); otherwise polling only.
    push_enabled: bool = False
    # Calendars whose blocks' deletes the safety catch holds until the user says.
    calendars_needing_you: int = 0


class AccountOut(Schema):
    id: int
    provider: Provider
    email: str
    state: AccountState
    calendars: int
    created_at: datetime
    token_expires_at: datetime | None = None
    # When the account was last signed in (a re-authorisation renews it).
    authorized_at: datetime | None = None
    # Real Google only: when the login ends if the user's OAuth app is still in "Testing"
    # (Google then expires refresh tokens 7 days after sign-in). The dashboard warns before.
    testing_login_expires_at: datetime | None = None


class DisconnectReport(Schema):
    account_id: int
    email: str
    blocks_deleted: int
    channels_stopped: int
    token_revoked: bool
    notes: list[str] = []


# The user's rules (domain.md "Rules the user chooses"): a title pattern is plain words, or a
# regular expression written /like this/; at most 50 per calendar. Each pattern is checked by
# the server when set (not empty, at most 200 characters, a regex that compiles).
TitlePatterns = Annotated[list[str], msgspec.Meta(max_length=50)]


class WorkingHoursSetting(Schema):
    """A target's working hours: weekdays (mon, tue, wed, thu, fri, sat, sun) and a range of
    the day in the calendar's own zone ("09:00" to "17:00"; "24:00" is midnight)."""

    days: Annotated[list[str], msgspec.Meta(max_length=7)]
    start: Annotated[str, msgspec.Meta(max_length=5)]
    end: Annotated[str, msgspec.Meta(max_length=5)]


class CalendarOut(Schema):
    id: int
    account_id: int
    provider_calendar_id: str
    name: str
    sync_enabled: bool
    role: CalendarRole
    busy_title: BusyTitle
    include_all_day: bool
    read_only: bool
    events: int
    busy_blocks: int
    last_sync_at: datetime | None
    channel_state: ChannelState | None
    color: str | None = None
    account_email: str = ""
    # The user's choice: when sync is turned off, the blocks this calendar holds stay.
    keep_blocks_when_off: bool = False
    # How it hears of changes: "polled" by design (and why) is not "failing".
    push: PushState = PushState.OFF
    polled_because: PollReason | None = None
    # As a source: title filters, and whether tentative or unanswered invitations block.
    title_include: list[str] = []
    title_exclude: list[str] = []
    block_tentative: bool = True
    # As a target: working hours (None: any time), no block for an event that invites this
    # calendar's own account, overlapping or touching blocks merged into one.
    working_hours: WorkingHoursSetting | None = None
    skip_invited: bool = False
    merge_blocks: bool = False
    # "needs_you" while the safety catch holds deletes of its blocks (`held`).
    status: CalendarStatus = CalendarStatus.OK
    held: list[HeldDeletes] = []


class HeldBlock(Schema):
    title: str
    start: str | None
    end: str | None


class HeldDeletes(Schema):
    """The safety catch: this calendar's read suddenly returned far fewer events, and these
    deletes of its blocks in one target wait until the user confirms or it recovers."""

    target_calendar_id: int
    count: int
    sample: list[HeldBlock] = []
    since: str | None = None


class CalendarPatch(Schema):
    """Only the fields given change; `null` or absent leaves a setting as it is."""

    sync_enabled: bool | None = None
    role: CalendarRole | None = None
    busy_title: BusyTitle | None = None
    include_all_day: bool | None = None
    keep_blocks_when_off: bool | None = None
    title_include: TitlePatterns | None = None
    title_exclude: TitlePatterns | None = None
    block_tentative: bool | None = None
    # Working hours to set, or "off" for none.
    working_hours: WorkingHoursSetting | Literal["off"] | None = None
    skip_invited: bool | None = None
    merge_blocks: bool | None = None


class BusyBlockOut(Schema):
    id: int
    target_calendar_id: int
    source_calendar_id: int
    summary: str
    start_at: datetime | None
    end_at: datetime | None
    all_day: bool
    user_modified: bool
    user_deleted: bool
    # The event the block keeps (a merged block's first member), for explain; None once gone.
    source_event_id: int | None = None


class BusyBlockPage(Schema):
    items: list[BusyBlockOut]
    next_cursor: str | None


class SyncLogOut(Schema):
    id: int
    calendar_id: int
    kind: SyncKind
    trigger: str
    status: SyncStatus
    started_at: datetime
    finished_at: datetime | None
    events_fetched: int
    events_created: int
    events_updated: int
    events_deleted: int
    blocks_created: int
    blocks_updated: int
    blocks_deleted: int
    provider_calls: int
    retries: int
    notes: list[str]
    error: str | None


class SyncLogPage(Schema):
    items: list[SyncLogOut]
    next_cursor: str | None


class ChannelOut(Schema):
    calendar_id: int
    calendar_name: str
    # None: the calendar has no channel (no public URL, or not yet made): it is polled.
    state: ChannelState | None
    channel_id: str | None
    expires_at: datetime | None
    last_notification_at: datetime | None
    failures: int
    polling: bool
    unannounced_changes: int = 0
    # Why the calendar has no working channel (the provider's refusal), while it is failing.
    last_error: str | None = None
    # "polled" by design (no public URL, a provider without push; why in polled_because) is
    # not "failing".
    push: PushState = PushState.PENDING
    polled_because: PollReason | None = None
    # The calendar's account: what needs the user there (a login to renew, an app password
    # refused) stops the calendar's updates whatever its channel says.
    provider: Provider = Provider.GOOGLE
    account_email: str = ""
    account_state: AccountState = AccountState.ACTIVE
    # As AccountOut.testing_login_expires_at: when the login ends (real Google, "Testing" app).
    login_expires_at: datetime | None = None
    # The latest lifecycle notice the provider sent about the calendar's subscriptions, when.
    notice: SubscriptionNotice | None = None
    notice_at: datetime | None = None


class SyncRequest(Schema):
    calendar_id: Id | None = None
    full: bool = False


class JobOut(Schema):
    id: int
    calendar_id: int
    state: JobState
    full: bool
    coalesced: bool


class SyncAccepted(Schema):
    jobs: list[JobOut]


class StreamEvent(Schema):
    """One server-sent event's data; `type` is also the SSE event name."""

    type: str
    # An object for most events; a list for `channels`.
    data: Any = None


STREAM_TYPES = (
    "hello",  # sent once on connect: the current status
    "sync.started",
    "sync.finished",
    "counters",
    "channels",
)


class OAuthAuthorize(Schema):
    """Start a sign-in with Google or Microsoft; `login_hint` preselects the account (an
    email)."""

    login_hint: Annotated[str, msgspec.Meta(min_length=3, max_length=320)] | None = None


class OAuthAuthorization(Schema):
    """Open `auth_url` in a browser; the provider sends it back to the server (at
    `redirect_uri`), which finishes the sign-in. `state` names the pending sign-in and works
    once, until `expires_at`."""

    auth_url: str
    state: str
    redirect_uri: str
    expires_at: datetime


class CalDAVLogin(Schema):
    """Connect a CalDAV account (iCloud: https://caldav.icloud.com/ with the Apple ID and an
    app-specific password). The server checks the login before anything is stored; the
    password is sealed at rest and never answered back."""

    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2048, pattern=r"^https?://")]
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class CalDAVConnected(Schema):
    """The account connected (or, for the same login, reconnected) and its calendars, each
    with sync off until turned on."""

    account_id: int
    email: str
    reauthorised: bool
    calendars: list[str]


class ReadinessCheck(Schema):
    """One thing a ready server needs: `database`, `workers`, `scheduler` or `queue`."""

    name: str
    ok: bool
    detail: str = ""


class Readiness(Schema):
    """`GET /readyz`: 200 when every check is ok, else 503 with the same body."""

    ready: bool
    checks: list[ReadinessCheck]


# -- purge (issue 19): calsync's blocks found at the providers by the mark, and deleted ---------


class PurgeRequest(Schema):
    """Which blocks: the user's every account, one account, or one calendar. `dry_run` (the
    default) only lists what would go; `stop_sync` also makes the calendars stop receiving
    blocks (role source, or sync off for a target only) so the next sync does not write them
    again."""

    account_id: Id | None = None
    calendar_id: Id | None = None
    dry_run: bool = True
    stop_sync: bool = False


class PurgeBlockOut(Schema):
    title: str
    # ISO 8601: a date for an all-day block, else an instant with its offset.
    start: str
    end: str
    # Why its delete failed, in the provider's words (only in `failed`).
    reason: str | None = None


class PurgeCalendarOut(Schema):
    calendar_id: int
    name: str
    account_id: int
    account_email: str
    provider: str
    found: int
    # The first few blocks found, by start.
    sample: list[PurgeBlockOut] = []
    # The listing failed (the provider's words): nothing is known of this calendar's blocks.
    error: str | None = None
    # Sync is on and it is a target: the next sync writes its blocks again.
    receives_blocks: bool = False
    deleted: int = 0
    already_gone: int = 0
    failed: list[PurgeBlockOut] = []
    # "source" or "off" when `stop_sync` made it stop receiving blocks.
    stopped: str | None = None


class PurgeReport(Schema):
    dry_run: bool
    found: int
    deleted: int = 0
    already_gone: int = 0
    # Blocks left at the providers (failed deletes), plus calendars that could not be listed.
    left: int = 0
    calendars: list[PurgeCalendarOut] = []
    # Accounts whose login needs renewing: nothing of theirs was looked at.
    skipped: list[str] = []
    notes: list[str] = []


# -- explain and the dry run (issue 19): why, and what a sync would do now ----------------------

MAX_EXPLAINED = 20


class ExplainBlock(Schema):
    """A block standing (or to stand) for the event in one target, and what the plan does."""

    summary: str
    start_at: datetime | None
    end_at: datetime | None
    # matches, create, update, delete, preserved, hand_deleted, history, left
    outcome: str
    outcome_words: str
    provider_event_id: str | None = None
    # "calsync", "changed by hand", "deleted by hand"; empty for a block not written yet.
    written_by: str = ""
    written_at: datetime | None = None
    # The sync that wrote it, when calsync did (its log row).
    sync_log_id: int | None = None
    sync_calendar_id: int | None = None


class ExplainTarget(Schema):
    calendar_id: int
    calendar_name: str
    verdict: str
    reason: str
    blocks: list[ExplainBlock] = []


class ExplainEvent(Schema):
    event_id: int
    calendar_id: int
    calendar_name: str
    provider_event_id: str
    title: str | None
    start_at: datetime | None
    end_at: datetime | None
    all_day: bool
    # blocks, or the first rule that said no (cancelled, free, declined, title, hours, ...)
    verdict: str
    reason: str
    targets: list[ExplainTarget] = []


class Explanation(Schema):
    events: list[ExplainEvent]
    truncated: bool = False


class PlannedChange(Schema):
    action: str  # create, update, delete
    summary: str
    start_at: datetime | None
    end_at: datetime | None
    reason: str
    held: bool = False  # a delete the safety catch would hold


class PlannedTarget(Schema):
    calendar_id: int
    calendar_name: str
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    held: int = 0
    # The first MAX_PLANNED_ITEMS changes; the counts are whole.
    changes: list[PlannedChange] = []


MAX_PLANNED_ITEMS = 200


class PlanPreview(Schema):
    """What a sync would change now, read from the providers and written nowhere."""

    calendars_read: list[int]
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    held: int = 0
    targets: list[PlannedTarget] = []
    notes: list[str] = []


# -- the free/busy feed (issue 19): a secret iCalendar URL of the user's busy times -------------


class FeedOut(Schema):
    """Whether the user has a feed; `url` only in the answer that made it (rotation): calsync
    keeps a hash of its secret, never the URL itself."""

    enabled: bool
    created_at: datetime | None = None
    url: str | None = None


# -- the week view: the person's events and calsync's blocks in a time range -------------------

# The longest range one request may ask for (a week view asks for 7 days).
MAX_TIMELINE_DAYS = 35
# At most this many events and this many blocks in one answer (`truncated` says when more).
MAX_TIMELINE_ITEMS = 5000


class TimelineEvent(Schema):
    """One of the person's own events. Timed events have `start_at`/`end_at` (UTC); all-day
    ones also `start_day`/`end_day` (the end day exclusive, as calendars store it)."""

    id: int
    calendar_id: int
    summary: str | None
    start_at: datetime | None
    end_at: datetime | None
    all_day: bool
    start_day: date | None = None
    end_day: date | None = None
    free: bool = False  # shown as free (transparent): it blocks no time
    declined: bool = False
    kind: str = "default"


class TimelineBlock(Schema):
    """One of calsync's busy blocks: in `target_calendar_id`, standing for an event of
    `source_calendar_id` (`source_event_id` when that event is still known)."""

    id: int
    target_calendar_id: int
    source_calendar_id: int
    source_event_id: int | None
    summary: str
    start_at: datetime | None
    end_at: datetime | None
    all_day: bool
    start_day: date | None = None
    end_day: date | None = None
    user_modified: bool = False


class Timeline(Schema):
    """`GET /api/v1/timeline`: what lies in [start, end) in the user's calendars."""

    start: datetime
    end: datetime
    events: list[TimelineEvent]
    blocks: list[TimelineBlock]
    truncated: bool = False


class SyncProgressOut(Schema):
    """The live stream's `sync.progress`: how far a running sync of a calendar is. `phase` is
    "reading" (its changes), "read" (stored: `events_read` known) or "writing" (blocks:
    `blocks_done` of `blocks_total` answered by the providers)."""

    calendar_id: int
    phase: str
    events_read: int = 0
    blocks_done: int = 0
    blocks_total: int = 0
