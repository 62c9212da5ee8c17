"""What the API reads, always through the token's user: status, lists and pages of rows."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from calsync_server.db.models import (
    Account,
    BusyBlock,
    Calendar,
    Event,
    Notification,
    PushSubscription,
    SyncJob,
    SyncLog,
)
from calsync_server.providers.model import PushKind
from calsync_server.push.channels import healthy, push_kind
from calsync_server.sync import stored
from shared.domain import (
    AccountState,
    CalendarStatus,
    ChannelState,
    JobState,
    NotificationOutcome,
    PollReason,
    Provider,
    PushState,
    SubscriptionNotice,
    SyncStatus,
)
from shared.schemas import (
    MAX_ID,
    AccountOut,
    BusyBlockOut,
    BusyBlockPage,
    CalendarOut,
    ChannelCounts,
    ChannelOut,
    HeldBlock,
    HeldDeletes,
    Status,
    SyncLogOut,
    SyncLogPage,
    WorkingHoursSetting,
)
from shared.settings import Settings

# A channel with less than this left counts as "expiring" in the status.
EXPIRING_WITHIN = timedelta(hours=24)
# Google ends the refresh tokens of an OAuth app in "Testing" this long after sign-in.
TESTING_APP_LOGIN_LIFETIME = timedelta(days=7)


class BadCursor(ValueError):
    pass


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        value = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("cursor is not one this server gave out") from None
    if prefix != "id" or not 0 < value <= MAX_ID:
        raise BadCursor("cursor is not one this server gave out")
    return value


def user_calendar_ids(session: Session, user_id: int) -> list[int]:
    return [
        cid
        for cid in session.exec(
            select(Calendar.id)
            .join(Account, col(Calendar.account_id) == Account.id)
            .where(Account.user_id == user_id)
        )
        if cid is not None
    ]


def owned_calendar(session: Session, user_id: int, calendar_id: int) -> Calendar | None:
    row = session.exec(
        select(Calendar)
        .join(Account, col(Calendar.account_id) == Account.id)
        .where(Calendar.id == calendar_id, Account.user_id == user_id)
    ).first()
    return row


def synced_copy(session: Session, user_id: int, calendar: Calendar) -> tuple[Calendar, str] | None:
    """The same provider calendar, reached through another of the user's accounts, with sync
    on, and that account's email: one calendar through two accounts is one calendar."""
    row = session.exec(
        select(Calendar, Account)
        .join(Account, col(Calendar.account_id) == Account.id)
        .where(
            Account.user_id == user_id,
            Calendar.provider_calendar_id == calendar.provider_calendar_id,
            Calendar.id != calendar.id,
            col(Calendar.sync_enabled).is_(True),
        )
        .order_by(col(Calendar.id))
    ).first()
    return None if row is None else (row[0], row[1].email)


def owned_account(session: Session, user_id: int, account_id: int) -> Account | None:
    return session.exec(
        select(Account).where(Account.id == account_id, Account.user_id == user_id)
    ).first()


def _counts(
    session: Session, column: Any, calendar_ids: Sequence[int], *where: Any
) -> dict[int, int]:
    if not calendar_ids:
        return {}
    rows = session.exec(
        select(column, func.count()).where(col(column).in_(calendar_ids), *where).group_by(column)
    ).all()
    return {int(k): int(v) for k, v in rows}


def _live_channels(session: Session, calendar_ids: Sequence[int]) -> list[PushSubscription]:
    if not calendar_ids:
        return []
    return list(
        session.exec(
            select(PushSubscription)
            .where(
                col(PushSubscription.calendar_id).in_(calendar_ids),
                col(PushSubscription.state) != ChannelState.STOPPED,
            )
            .order_by(col(PushSubscription.id))
        )
    )


def _channel_of(channels: list[PushSubscription], now: datetime) -> dict[int, PushSubscription]:
    """Each calendar's channel that speaks for it: a healthy one before a failing one."""
    chosen: dict[int, PushSubscription] = {}
    for channel in channels:
        current = chosen.get(channel.calendar_id)
        if current is None or (healthy(channel, now) and not healthy(current, now)):
            chosen[channel.calendar_id] = channel
        elif healthy(channel, now) == healthy(current, now) and channel.id and current.id:
            chosen[channel.calendar_id] = channel if channel.id > current.id else current
    return chosen


def push_of(
    calendar: Calendar,
    provider: str,
    channel: PushSubscription | None,
    now: datetime,
    settings: Settings | None,
) -> tuple[PushState, PollReason | None]:
    """How a calendar hears of changes, and why it is polled when that is by design: a
    provider without push or no public URL is "polled", never "failing"."""
    if not calendar.sync_enabled:
        return PushState.OFF, None
    if push_kind(provider) is PushKind.NONE:
        return PushState.POLLED, PollReason.PROVIDER_WITHOUT_PUSH
    if settings is not None and not settings.public_url:
        return PushState.POLLED, PollReason.NO_PUBLIC_URL
    if channel is not None and healthy(channel, now):
        return PushState.ACTIVE, None
    if channel is not None and channel.state == ChannelState.FAILING:
        return PushState.FAILING, None
    return PushState.PENDING, None


def status(session: Session, user_id: int, now: datetime, settings: Settings) -> Status:
    calendar_ids = user_calendar_ids(session, user_id)
    accounts = session.exec(
        select(func.count()).select_from(Account).where(Account.user_id == user_id)
    ).one()
    syncing = (
        session.exec(
            select(func.count())
            .select_from(Calendar)
            .where(col(Calendar.id).in_(calendar_ids), col(Calendar.sync_enabled).is_(True))
        ).one()
        if calendar_ids
        else 0
    )
    blocks = sum(
        _counts(session, BusyBlock.target_calendar_id, calendar_ids, _live_block()).values()
    )
    depth = sum(
        _counts(
            session, SyncJob.calendar_id, calendar_ids, SyncJob.state == JobState.QUEUED
        ).values()
    )
    last = (
        session.exec(
            select(func.max(Calendar.last_sync_at)).where(col(Calendar.id).in_(calendar_ids))
        ).one()
        if calendar_ids
        else None
    )
    channels = _channel_of(_live_channels(session, calendar_ids), now).values()
    active = [c for c in channels if healthy(c, now)]
    return Status(
        accounts=int(accounts),
        calendars=len(calendar_ids),
        calendars_syncing=int(syncing),
        busy_blocks=blocks,
        queue_depth=depth,
        last_sync_at=last,
        channels=ChannelCounts(
            active=len(active),
            expiring=sum(
                1
                for c in active
                if c.expires_at is not None and c.expires_at - now < EXPIRING_WITHIN
            ),
            failing=sum(1 for c in channels if c.state == ChannelState.FAILING),
        ),
        push_enabled=bool(settings.public_url),
        # Counted here: a JSON column holds "no hold" as JSON null on some databases.
        calendars_needing_you=sum(
            1
            for held in session.exec(
                select(Calendar.held_deletes).where(col(Calendar.id).in_(calendar_ids))
            )
            if held
        ),
    )


def _live_block() -> Any:
    # A block the user deleted by hand is a tombstone row, not a block anyone can see.
    return col(BusyBlock.user_deleted).is_(False)


def accounts(session: Session, user_id: int, settings: Settings) -> list[AccountOut]:
    rows = list(
        session.exec(select(Account).where(Account.user_id == user_id).order_by(col(Account.id)))
    )
    counts = _counts(session, Calendar.account_id, [a.id for a in rows if a.id])
    return [account_out(a, counts.get(a.id or 0, 0), settings) for a in rows]


def testing_login_end(account: Account, settings: Settings | None) -> datetime | None:
    """When the account's login ends because the user's Google app is still in "Testing"
    (only Google's logins end so); None when it does not."""
    if (
        settings is not None
        and settings.uses_real_google
        and account.provider == Provider.GOOGLE
        and account.authorized_at is not None
    ):
        return account.authorized_at + TESTING_APP_LOGIN_LIFETIME
    return None


def account_out(account: Account, calendars: int, settings: Settings) -> AccountOut:
    assert account.id is not None
    testing_expiry = testing_login_end(account, settings)
    return AccountOut(
        id=account.id,
        provider=account.provider,
        email=account.email,
        state=AccountState(account.state),
        calendars=calendars,
        created_at=account.created_at,
        token_expires_at=account.token_expires_at,
        authorized_at=account.authorized_at,
        testing_login_expires_at=testing_expiry,
    )


def calendars(
    session: Session,
    user_id: int,
    now: datetime,
    only: int | None = None,
    settings: Settings | None = None,
) -> list[CalendarOut]:
    query = (
        select(Calendar, Account)
        .join(Account, col(Calendar.account_id) == Account.id)
        .where(Account.user_id == user_id)
        .order_by(col(Calendar.account_id), col(Calendar.id))
    )
    if only is not None:
        query = query.where(Calendar.id == only)
    rows = session.exec(query).all()
    ids = [c.id for c, _ in rows if c.id]
    events = _counts(session, Event.calendar_id, ids, col(Event.is_deleted).is_(False))
    blocks = _counts(session, BusyBlock.target_calendar_id, ids, _live_block())
    channels = _channel_of(_live_channels(session, ids), now)
    result = []
    for calendar, account in rows:
        assert calendar.id is not None
        channel = channels.get(calendar.id)
        push, polled_because = push_of(calendar, str(account.provider), channel, now, settings)
        result.append(
            CalendarOut(
                id=calendar.id,
                account_id=calendar.account_id,
                provider_calendar_id=calendar.provider_calendar_id,
                name=calendar.name,
                sync_enabled=calendar.sync_enabled,
                role=calendar.role,
                busy_title=calendar.busy_title,
                include_all_day=calendar.include_all_day,
                keep_blocks_when_off=calendar.keep_blocks_when_off,
                read_only=calendar.read_only,
                events=events.get(calendar.id, 0),
                busy_blocks=blocks.get(calendar.id, 0),
                last_sync_at=calendar.last_sync_at,
                channel_state=ChannelState(channel.state) if channel else None,
                color=calendar.color,
                account_email=account.email,
                push=push,
                polled_because=polled_because,
                title_include=list(calendar.title_include),
                title_exclude=list(calendar.title_exclude),
                block_tentative=calendar.block_tentative,
                working_hours=_working_hours(calendar.working_hours),
                skip_invited=calendar.skip_invited,
                merge_blocks=calendar.merge_blocks,
                status=CalendarStatus.NEEDS_YOU if calendar.held_deletes else CalendarStatus.OK,
                held=held_of(calendar.held_deletes),
            )
        )
    return result


def held_of(stored: dict[str, Any] | None) -> list[HeldDeletes]:
    """The safety catch's held deletes as the calendar row keeps them (sync/holds.py)."""
    if not stored:
        return []
    return [
        HeldDeletes(
            target_calendar_id=int(t["target_calendar_id"]),
            count=int(t["count"]),
            sample=[
                HeldBlock(title=str(b.get("title", "")), start=b.get("start"), end=b.get("end"))
                for b in t.get("sample", [])
            ],
            since=stored.get("since"),
        )
        for t in stored.get("targets", [])
    ]


def _working_hours(stored: dict[str, Any] | None) -> WorkingHoursSetting | None:
    if not stored:
        return None
    return WorkingHoursSetting(
        days=list(stored.get("days") or []),
        start=str(stored.get("start", "")),
        end=str(stored.get("end", "")),
    )


def busy_blocks(
    session: Session,
    user_id: int,
    *,
    target_calendar_id: int | None,
    source_calendar_id: int | None,
    limit: int,
    after: int | None,
) -> BusyBlockPage:
    calendar_ids = user_calendar_ids(session, user_id)
    query = (
        select(BusyBlock)
        .where(col(BusyBlock.target_calendar_id).in_(calendar_ids), _live_block())
        .order_by(col(BusyBlock.id))
        .limit(limit + 1)
    )
    if target_calendar_id is not None:
        query = query.where(BusyBlock.target_calendar_id == target_calendar_id)
    if source_calendar_id is not None:
        query = query.where(BusyBlock.source_calendar_id == source_calendar_id)
    if after is not None:
        query = query.where(col(BusyBlock.id) > after)
    rows = list(session.exec(query)) if calendar_ids else []
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        BusyBlockOut(
            id=b.id or 0,
            target_calendar_id=b.target_calendar_id,
            source_calendar_id=b.source_calendar_id,
            summary=b.summary,
            start_at=b.start_at,
            end_at=b.end_at,
            all_day=stored.is_all_day(b.start),
            user_modified=b.user_modified,
            user_deleted=b.user_deleted,
            source_event_id=b.source_event_id,
        )
        for b in rows
    ]
    return BusyBlockPage(
        items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None
    )


def sync_log_out(row: SyncLog) -> SyncLogOut:
    return SyncLogOut(
        id=row.id or 0,
        calendar_id=row.calendar_id,
        kind=row.kind,
        trigger=row.trigger,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        events_fetched=row.events_fetched,
        events_created=row.events_created,
        events_updated=row.events_updated,
        events_deleted=row.events_deleted,
        blocks_created=row.blocks_created,
        blocks_updated=row.blocks_updated,
        blocks_deleted=row.blocks_deleted,
        provider_calls=row.provider_calls,
        retries=row.retries,
        notes=list(row.notes),
        error=row.error,
    )


def sync_logs(
    session: Session,
    user_id: int,
    *,
    calendar_id: int | None,
    status: SyncStatus | None,
    limit: int,
    before: int | None,
) -> SyncLogPage:
    """Newest first; the cursor walks back in time."""
    calendar_ids = user_calendar_ids(session, user_id)
    query = (
        select(SyncLog)
        .where(col(SyncLog.calendar_id).in_(calendar_ids))
        .order_by(col(SyncLog.id).desc())
        .limit(limit + 1)
    )
    if calendar_id is not None:
        query = query.where(SyncLog.calendar_id == calendar_id)
    if status is not None:
        query = query.where(SyncLog.status == status)
    if before is not None:
        query = query.where(col(SyncLog.id) < before)
    rows = list(session.exec(query)) if calendar_ids else []
    more = len(rows) > limit
    items = [sync_log_out(r) for r in rows[:limit]]
    return SyncLogPage(
        items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None
    )


def logs_since(session: Session, user_id: int, after_id: int, limit: int = 200) -> list[SyncLogOut]:
    """For the live stream: the user's logs newer than the last one it sent, oldest first."""
    calendar_ids = user_calendar_ids(session, user_id)
    if not calendar_ids:
        return []
    rows = session.exec(
        select(SyncLog)
        .where(col(SyncLog.calendar_id).in_(calendar_ids), col(SyncLog.id) > after_id)
        .order_by(col(SyncLog.id))
        .limit(limit)
    )
    return [sync_log_out(r) for r in rows]


def last_log_id(session: Session) -> int:
    return int(session.exec(select(func.max(SyncLog.id))).one() or 0)


def channels(
    session: Session, user_id: int, now: datetime, settings: Settings | None = None
) -> list[ChannelOut]:
    rows = session.exec(
        select(Calendar, Account)
        .join(Account, col(Calendar.account_id) == Account.id)
        .where(Account.user_id == user_id, col(Calendar.sync_enabled).is_(True))
        .order_by(col(Calendar.id))
    ).all()
    ids = [c.id for c, _ in rows if c.id]
    chosen = _channel_of(_live_channels(session, ids), now)
    notices = _latest_notices(session, ids)
    result = []
    for calendar, account in rows:
        assert calendar.id is not None
        channel = chosen.get(calendar.id)
        push, polled_because = push_of(calendar, str(account.provider), channel, now, settings)
        notice = notices.get(calendar.id)
        result.append(
            ChannelOut(
                calendar_id=calendar.id,
                calendar_name=calendar.name,
                state=ChannelState(channel.state) if channel else None,
                channel_id=channel.remote_id if channel and channel.remote_id else None,
                expires_at=channel.expires_at if channel else None,
                last_notification_at=channel.last_notification_at if channel else None,
                failures=channel.failures if channel else 0,
                polling=channel is None or not healthy(channel, now),
                unannounced_changes=channel.unannounced_changes if channel else 0,
                last_error=(
                    channel.last_error
                    if channel and channel.state == ChannelState.FAILING
                    else None
                ),
                push=push,
                polled_because=polled_because,
                provider=account.provider,
                account_email=account.email,
                account_state=AccountState(account.state),
                login_expires_at=testing_login_end(account, settings),
                notice=SubscriptionNotice(notice.kind) if notice else None,
                notice_at=notice.received_at if notice else None,
            )
        )
    return result


_LIFECYCLE = [notice.value for notice in SubscriptionNotice]
# Notices the webhook acted on: a forged or repeated one says nothing about the subscription.
_OBEYED = [
    NotificationOutcome.LIFECYCLE,
    NotificationOutcome.ENQUEUED,
    NotificationOutcome.COALESCED,
]


def _latest_notices(session: Session, calendar_ids: Sequence[int]) -> dict[int, Notification]:
    """Each calendar's latest lifecycle notice (of any of its subscriptions, a replaced one's
    too: "removed" is heard on the subscription that is then replaced); the scheduler keeps
    notifications a week."""
    if not calendar_ids:
        return {}
    newest = (
        select(func.max(Notification.id))
        .where(
            col(Notification.calendar_id).in_(calendar_ids),
            col(Notification.kind).in_(_LIFECYCLE),
            col(Notification.outcome).in_(_OBEYED),
        )
        .group_by(col(Notification.calendar_id))
    )
    rows = session.exec(select(Notification).where(col(Notification.id).in_(newest)))
    return {n.calendar_id: n for n in rows if n.calendar_id is not None}
