"""calsync's tables: users, accounts, calendars, events, busy blocks, channels, jobs and logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from shared.domain import (
    AccountState,
    BusyTitle,
    CalendarRole,
    ChannelState,
    JobState,
    NotificationOutcome,
    Provider,
    SyncKind,
    SyncStatus,
)

# Constraint names are fixed so migrations and both databases agree on them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite would hand back naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("calsync stores only timezone-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fk(target: str, *, nullable: bool = False, ondelete: str = "CASCADE") -> Any:
    """A foreign key column that goes away with its parent, unless told otherwise."""
    return Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=True
        ),
    )


def _when(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable))


def _json(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.JSON, nullable=nullable))


def _enum(enum: type[Any], default: Any) -> Any:
    # Stored as plain strings (no native enum type) so adding a value needs no migration.
    return Field(
        default=default,
        sa_column=sa.Column(sa.String(32), nullable=False, server_default=str(default)),
    )


class User(SQLModel, table=True):
    __tablename__ = "user"

    id: int | None = Field(default=None, primary_key=True)
    # Unique: `calsync users remove NAME` and `rotate-token NAME` must name one person.
    name: str = Field(max_length=200, unique=True)
    # sha256 of the API bearer token; the token itself is never stored.
    api_token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _when(nullable=False)


class BusyFeed(SQLModel, table=True):
    """A user's free/busy feed: an iCalendar URL anyone holding it can read (issue 19), for a
    calendar calsync cannot write (a locked-down work tenant subscribes by URL)."""

    __tablename__ = "busy_feed"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("user.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    # The URL's public part: finds the row, so the secret is compared in constant time.
    key: str = Field(max_length=32, unique=True)
    # sha256 of the URL's secret part; the secret itself is never stored.
    secret_hash: str = Field(max_length=64)
    created_at: datetime = _when(nullable=False)


class Account(SQLModel, table=True):
    __tablename__ = "account"
    __table_args__ = (sa.UniqueConstraint("user_id", "provider", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _fk("user.id")
    provider: Provider = _enum(Provider, Provider.GOOGLE)
    email: str = Field(max_length=320)
    state: AccountState = _enum(AccountState, AccountState.ACTIVE)
    # OAuth tokens, Fernet-encrypted with the key in CALSYNC_HOME; never plaintext.
    credentials_encrypted: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True)
    )
    token_expires_at: datetime | None = _when()
    # When the user last signed in: Google apps left in "Testing" lose the login 7 days later.
    authorized_at: datetime | None = _when()
    created_at: datetime = _when(nullable=False)
    # Every address the provider knows the account's owner by (lower case, sorted; CalDAV's
    # calendar-user-address-set, Graph's mail and user principal name): an invitation to any
    # of them is one to the account ("already there"). Not secret. None until a sign-in or a
    # discovery told them: the account's email stands alone then.
    addresses: list[str] | None = _json()


class Calendar(SQLModel, table=True):
    __tablename__ = "calendar"
    __table_args__ = (sa.UniqueConstraint("account_id", "provider_calendar_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _fk("account.id")
    provider_calendar_id: str = Field(max_length=1024)
    name: str = Field(max_length=1024)
    color: str | None = Field(default=None, max_length=16)
    time_zone: str | None = Field(default=None, max_length=64)
    access_role: str = Field(default="owner", max_length=32)
    # Off when first imported: nothing is written until the user chooses (seed rule).
    sync_enabled: bool = False
    role: CalendarRole = _enum(CalendarRole, CalendarRole.BOTH)
    busy_title: BusyTitle = _enum(BusyTitle, BusyTitle.PRIVATE)
    include_all_day: bool = False
    # The user's choice: when sync is turned off, the blocks this calendar held stay in it.
    keep_blocks_when_off: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    # Set when the provider refused a write: never a target again.
    read_only: bool = False
    # The user's rules (domain.md "Rules the user chooses", sync/rules.py). As a source: title
    # patterns (plain words, or /regex/), and whether tentative or unanswered invitations block.
    title_include: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False, server_default="[]")
    )
    title_exclude: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False, server_default="[]")
    )
    block_tentative: bool = Field(
        default=True, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true())
    )
    # As a target: {"days": ["mon", ...], "start": "09:00", "end": "17:00"} or None (off);
    # no block for an event that invites this calendar's own account; merged blocks.
    working_hours: dict[str, Any] | None = _json()
    skip_invited: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    merge_blocks: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    sync_token: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # The safety catch (sync/safety.py): as a source whose read suddenly came back far emptier,
    # the deletes of its blocks held until the user confirms or it recovers, as
    # {"since": ISO time, "targets": [{"target_calendar_id", "count", "sample": [...]}]}.
    held_deletes: dict[str, Any] | None = _json()
    last_sync_at: datetime | None = _when()
    last_full_sync_at: datetime | None = _when()


class Event(SQLModel, table=True):
    """One instance of a provider event (recurring events are stored expanded)."""

    __tablename__ = "event"
    __table_args__ = (sa.UniqueConstraint("calendar_id", "provider_event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    calendar_id: int = _fk("calendar.id")
    provider_event_id: str = Field(max_length=1024)
    recurring_event_id: str | None = Field(default=None, max_length=1024)
    etag: str | None = Field(default=None, max_length=128)
    status: str = Field(default="confirmed", max_length=16)
    summary: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # The event's start/end as calsync's codec writes them (sync/stored.py: a day, or an instant
    # with the zone its provider named, so blocks copy the zone exactly); start_at/end_at are
    # their UTC instants for queries.
    start: dict[str, Any] | None = _json()
    end: dict[str, Any] | None = _json()
    start_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True, index=True)
    )
    end_at: datetime | None = _when()
    all_day: bool = False
    transparency: str = Field(default="opaque", max_length=16)
    event_type: str = Field(default="default", max_length=32)
    self_response_status: str | None = Field(default=None, max_length=16)
    provider_updated_at: datetime | None = _when()
    is_deleted: bool = False
    # The attendees' addresses (lower case), for the already-invited rule; None for rows
    # stored before they were kept (read again by the next full sync).
    attendees: list[str] | None = _json()


class BusyBlock(SQLModel, table=True):
    """A block calsync wrote (or will write) into a target calendar for one source instance."""

    __tablename__ = "busy_block"
    __table_args__ = (
        sa.UniqueConstraint("target_calendar_id", "source_key"),
        sa.UniqueConstraint("target_calendar_id", "provider_event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target_calendar_id: int = _fk("calendar.id")
    source_calendar_id: int = _fk("calendar.id")
    source_event_id: int | None = _fk("event.id", nullable=True, ondelete="SET NULL")
    # Opaque, stable key of (source calendar, source instance id); never the title.
    source_key: str = Field(max_length=128)
    provider_event_id: str = Field(max_length=1024)
    etag: str | None = Field(default=None, max_length=128)
    summary: str = Field(max_length=1100)
    start: dict[str, Any] | None = _json()
    end: dict[str, Any] | None = _json()
    start_at: datetime | None = _when()
    end_at: datetime | None = _when()
    # The user changed or deleted the block by hand: left alone until the source changes.
    user_modified: bool = False
    user_deleted: bool = False
    # Fingerprint of the source event when this block was last written, to tell a change of
    # the source (which makes a fresh block) from a hand edit of the block.
    source_fingerprint: str | None = Field(default=None, max_length=64)
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)
    # The sync that last wrote the block (SyncLog.sync_key): explain names it exactly. None
    # for a row adopted by a full reconcile, or written before migration 0014.
    sync_key: str | None = Field(default=None, max_length=32)
    # A merged block's members' source calendar ids (sorted; source_calendar_id is the first
    # member's): a block standing for a source whose login is refused is left, whichever
    # member came first. None for a block of one event (and rows before migration 0015).
    member_sources: list[int] | None = _json()


class PushSubscription(SQLModel, table=True):
    """A calendar's push subscription, whatever the provider calls it (a Google channel, a
    Graph subscription): carried over from `push_channel` (migration 0008)."""

    __tablename__ = "push_subscription"

    id: int | None = Field(default=None, primary_key=True)
    calendar_id: int = _fk("calendar.id")
    # The provider's name (Account.provider): which parser reads /webhooks/{provider}/{key}.
    provider: str = Field(default="google", max_length=32)
    # Our own random key, the webhook path's last segment. A Google channel's id is the key;
    # channels made before the key existed keep their channel id as their key.
    key: str = Field(max_length=64, unique=True)
    # The provider's id for it (Google channel id, Graph subscription id); None until made.
    remote_id: str | None = Field(default=None, max_length=256, index=True)
    # What the provider watches (Google's resource id, Graph's resource path).
    resource: str | None = Field(default=None, max_length=1024)
    # The per-subscription secret the provider echoes (Google's channel token, Graph's
    # clientState): a notification without it is forged.
    secret: str = Field(max_length=256)
    address: str = Field(max_length=2048)
    expires_at: datetime | None = _when()
    state: ChannelState = _enum(ChannelState, ChannelState.ACTIVE)
    # Failed deliveries or renewals in a row; the scheduler falls back to polling meanwhile.
    failures: int = 0
    # Polls that found changes no notification had announced (domain.md: an unhealthy sign).
    unannounced_changes: int = 0
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    last_attempt_at: datetime | None = _when()
    # The last notification's sequence number (Google's message number), for duplicates.
    last_sequence: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_notification_at: datetime | None = _when()
    # When it was made or last renewed in place: renewal in place comes at about half-life.
    renewed_at: datetime | None = _when()
    # A lifecycle notice asked for renewal now (Graph's reauthorizationRequired).
    renew_requested_at: datetime | None = _when()
    created_at: datetime = _when(nullable=False)
    stopped_at: datetime | None = _when()


class Notification(SQLModel, table=True):
    """A push notification as received, whatever became of it."""

    __tablename__ = "notification"

    id: int | None = Field(default=None, primary_key=True)
    # The key of the subscription it came for (Google: the channel id, as before).
    channel_id: str = Field(max_length=64, index=True)
    calendar_id: int | None = _fk("calendar.id", nullable=True)
    message_number: int | None = Field(default=None, sa_type=sa.BigInteger)
    # What it said, in calsync's words (NoticeKind: opened, changed, missed, ...).
    kind: str = Field(max_length=16)
    outcome: NotificationOutcome = _enum(NotificationOutcome, NotificationOutcome.ENQUEUED)
    received_at: datetime = _when(nullable=False)


class SyncJob(SQLModel, table=True):
    __tablename__ = "sync_job"
    __table_args__ = (
        # At most one waiting job per calendar: notifications coalesce into it.
        sa.Index(
            "uq_sync_job_one_queued_per_calendar",
            "calendar_id",
            unique=True,
            sqlite_where=sa.text("state = 'queued'"),
            postgresql_where=sa.text("state = 'queued'"),
        ),
        # At most one sync per calendar runs at a time, across every process.
        sa.Index(
            "uq_sync_job_one_running_per_calendar",
            "calendar_id",
            unique=True,
            sqlite_where=sa.text("state = 'running'"),
            postgresql_where=sa.text("state = 'running'"),
        ),
        sa.Index("ix_sync_job_state_run_after", "state", "run_after"),
    )

    id: int | None = Field(default=None, primary_key=True)
    calendar_id: int = _fk("calendar.id")
    kind: SyncKind = _enum(SyncKind, SyncKind.MANUAL)
    full: bool = False
    state: JobState = _enum(JobState, JobState.QUEUED)
    attempts: int = 0
    run_after: datetime = _when(nullable=False)
    # A running job whose lease has expired belongs to a crashed process: it is taken again.
    lease_expires_at: datetime | None = _when()
    worker: str | None = Field(default=None, max_length=128)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = _when(nullable=False)
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()


class SyncLog(SQLModel, table=True):
    """One row per calendar per sync, as the user reads it."""

    __tablename__ = "sync_log"

    id: int | None = Field(default=None, primary_key=True)
    calendar_id: int = _fk("calendar.id")
    job_id: int | None = _fk("sync_job.id", nullable=True, ondelete="SET NULL")
    kind: SyncKind = _enum(SyncKind, SyncKind.MANUAL)
    trigger: str = Field(default="", max_length=64)
    status: SyncStatus = _enum(SyncStatus, SyncStatus.SUCCESS)
    started_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    finished_at: datetime | None = _when()
    events_fetched: int = 0
    events_created: int = 0
    events_updated: int = 0
    events_deleted: int = 0
    blocks_created: int = 0
    blocks_updated: int = 0
    blocks_deleted: int = 0
    provider_calls: int = 0
    retries: int = 0
    notes: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # A random key the sync takes as it starts, before its log row exists: every block row it
    # writes carries it (BusyBlock.sync_key). A job run twice (a retry) is two syncs.
    sync_key: str | None = Field(default=None, max_length=32, index=True)


class OAuthFlow(SQLModel, table=True):
    """A sign-in that was started and not finished yet. Kept in the database so that any server
    process can finish it, and deleted when used, so its state works once."""

    __tablename__ = "oauth_flow"

    # sha256 of the `state` that travels through the browser; the state itself is not stored.
    state_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = _fk("user.id")
    provider: Provider = _enum(Provider, Provider.GOOGLE)
    # What the provider's sign-in keeps until the redirect comes back, opaque here: Google's
    # PKCE verifier, MSAL's whole flow (verifier, nonce, state). Only the challenge leaves.
    flow_state: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    redirect_uri: str = Field(max_length=2048)
    created_at: datetime = _when(nullable=False)
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))


class Lease(SQLModel, table=True):
    """A job one server process does for all of them (making push channels): whoever holds an
    unexpired lease does it; a holder that dies loses it when it expires."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime = _when(nullable=False)
