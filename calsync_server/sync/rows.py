"""The engine's reads of the database: calendars as the planner sees them, stored events and
block rows turned into the planner's types, and the queries every part of the engine shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel import Session, col, select

from calsync_server.db.models import Account, BusyBlock, Calendar, Event
from calsync_server.providers.model import RemoteEvent
from calsync_server.sync import stored
from calsync_server.sync.planner import CalendarView, ExistingBlock, SourceEvent
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rules import CalendarRules, TitleFilter, WorkingHours
from shared.domain import AccountState, BusyTitle, CalendarRole
from shared.schemas import CalendarPatch, WorkingHoursSetting

_CHUNK = 500  # keeps IN (...) lists well inside every database's limits


def chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def calendar_rules(calendar: Calendar) -> CalendarRules:
    """The rules the user set on a calendar; ValueError (RuleError) when a stored one cannot
    stand (the API refuses them when set, so only a hand-edited row has one)."""
    hours = calendar.working_hours
    return CalendarRules(
        titles=TitleFilter(tuple(calendar.title_include), tuple(calendar.title_exclude)),
        block_tentative=calendar.block_tentative,
        working_hours=None if hours is None else WorkingHours.stored(hours),
        skip_invited=calendar.skip_invited,
        merge=calendar.merge_blocks,
    )


def set_rules(calendar: Calendar, patch: CalendarPatch) -> None:
    """Apply the rules a settings change gives (absent: unchanged); RuleError, and the row
    left as it was, when one cannot stand (a bad regular expression, bad hours)."""
    include = calendar.title_include if patch.title_include is None else patch.title_include
    exclude = calendar.title_exclude if patch.title_exclude is None else patch.title_exclude
    TitleFilter(tuple(include), tuple(exclude))
    hours: WorkingHours | bool | None = patch.working_hours is None
    if isinstance(patch.working_hours, WorkingHoursSetting):
        given = patch.working_hours
        hours = WorkingHours.parse(given.days, given.start, given.end)
    # Checked whole before anything changes: a refused change saves nothing.
    calendar.title_include = [p.strip() for p in include]
    calendar.title_exclude = [p.strip() for p in exclude]
    if isinstance(hours, WorkingHours):
        calendar.working_hours = hours.to_stored()
    elif patch.working_hours == "off":
        calendar.working_hours = None
    for name in ("block_tentative", "skip_invited", "merge_blocks"):
        value = getattr(patch, name)
        if value is not None:
            setattr(calendar, name, value)


def own_addresses(calendar: Calendar, account: Account) -> frozenset[str]:
    """The addresses an invitation to this calendar's owner names: the account's email, every
    other address its provider knows the owner by (account.addresses: a CalDAV principal's
    aliases, Graph's mail and user principal name), and the calendar's id where it is an
    address (Google's calendars are)."""
    found = {account.email.strip().lower()}
    found.update(a.strip().lower() for a in account.addresses or ())
    if "@" in calendar.provider_calendar_id and "/" not in calendar.provider_calendar_id:
        found.add(calendar.provider_calendar_id.strip().lower())
    return frozenset(found)


def calendar_view(calendar: Calendar, account: Account, zone: str = "UTC") -> CalendarView:
    """``zone``: the user's, for a calendar that names none of its own (Graph's)."""
    assert calendar.id is not None
    return CalendarView(
        id=calendar.id,
        user_id=account.user_id,
        provider_calendar_id=calendar.provider_calendar_id,
        sync_enabled=calendar.sync_enabled,
        # Columns hold plain strings; the planner works with the enums.
        role=CalendarRole(calendar.role),
        busy_title=BusyTitle(calendar.busy_title),
        include_all_day=calendar.include_all_day,
        read_only=calendar.read_only,
        account_active=account.state == AccountState.ACTIVE,
        keep_blocks_when_off=calendar.keep_blocks_when_off,
        time_zone=calendar.time_zone or zone,
        addresses=own_addresses(calendar, account),
        rules=calendar_rules(calendar),
    )


def frozen_view(calendar: Calendar, account: Account) -> CalendarView:
    """A calendar whose settings calsync cannot read (a value it does not know): nothing is
    read from or written to it, and no block is deleted because of it, as for a lost login."""
    assert calendar.id is not None
    return CalendarView(
        id=calendar.id,
        user_id=account.user_id,
        provider_calendar_id=calendar.provider_calendar_id,
        sync_enabled=False,
        role=CalendarRole.BOTH,
        busy_title=BusyTitle.PRIVATE,
        include_all_day=False,
        read_only=True,
        account_active=False,
    )


def user_views(
    calendars: dict[int, Calendar], accounts: dict[int, Account], report: SyncReport
) -> dict[int, CalendarView]:
    """The planner's view of each of the user's calendars; one with settings calsync cannot
    read is frozen, never a reason to fail the others' syncs."""
    views: dict[int, CalendarView] = {}
    zone = user_time_zone(calendars.values())
    for cid, calendar in calendars.items():
        account = accounts[calendar.account_id]
        try:
            views[cid] = calendar_view(calendar, account, zone)
        except ValueError as exc:
            views[cid] = frozen_view(calendar, account)
            report.note(f"{calendar.name} is left alone: its settings cannot be read ({exc})")
    return views


def user_calendars(
    session: Session, user_id: int
) -> tuple[dict[int, Account], dict[int, Calendar]]:
    """The user's accounts and all their calendars (synced or not), by id."""
    accounts = {
        a.id: a
        for a in session.exec(select(Account).where(Account.user_id == user_id))
        if a.id is not None
    }
    calendars = {
        c.id: c
        for c in session.exec(select(Calendar).where(col(Calendar.account_id).in_(list(accounts))))
        if c.id is not None
    }
    return accounts, calendars


def user_time_zone(calendars: Iterable[Calendar]) -> str:
    """The user's zone for "start of today": their first calendar that names one."""
    for calendar in sorted(calendars, key=lambda c: c.id or 0):
        if calendar.time_zone:
            return calendar.time_zone
    return "UTC"


def events_by_id(session: Session, calendar_id: int, ids: Sequence[str]) -> list[Event]:
    return [
        event
        for chunk in chunks(ids)
        for event in session.exec(
            select(Event).where(
                Event.calendar_id == calendar_id, col(Event.provider_event_id).in_(chunk)
            )
        )
    ]


def event_columns(event: RemoteEvent, calendar_zone: str) -> dict[str, Any]:
    """What the provider now shows of an event, as its row's columns (all but the row's id,
    calendar and provider id)."""
    return {
        "recurring_event_id": event.series_id,
        "etag": event.version,
        "status": stored.CANCELLED if event.cancelled else stored.CONFIRMED,
        "summary": event.title or None,
        "start": stored.encode_time(event.start),
        "end": stored.encode_time(event.end),
        "start_at": event.start.to_utc(calendar_zone),
        "end_at": event.end.to_utc(calendar_zone),
        "all_day": event.all_day,
        "transparency": stored.OPAQUE if event.busy else stored.TRANSPARENT,
        "event_type": stored.kind_word(event.kind),
        "self_response_status": stored.response_word(event.response),
        "provider_updated_at": event.updated,
        "is_deleted": event.cancelled,
        "attendees": sorted({address.strip().lower() for address in event.attendees}),
    }


def store_event(row: Event, event: RemoteEvent, calendar_zone: str) -> None:
    """Write what the provider now shows of an event into its row (columns as they were)."""
    for name, value in event_columns(event, calendar_zone).items():
        setattr(row, name, value)


def source_of(row: Event, calendar_zone: str) -> SourceEvent | None:
    """A stored event as the planner reads it; None when its times cannot be read (it cannot
    block, so its blocks are planned away as for any event that does not block)."""
    start = stored.decode_time(row.start, calendar_zone)
    end = stored.decode_time(row.end, calendar_zone)
    if start is None or end is None:
        return None
    event = RemoteEvent(
        id=row.provider_event_id,
        start=start,
        end=end,
        title=row.summary or "",
        series_id=row.recurring_event_id,
        version=row.etag,
        cancelled=row.status == stored.CANCELLED,
        busy=row.transparency != stored.TRANSPARENT,
        kind=stored.kind_of(row.event_type),
        response=stored.response_of(row.self_response_status),
        updated=row.provider_updated_at,
        attendees=tuple(row.attendees or ()),
    )
    return SourceEvent(row.calendar_id, event, row.is_deleted, time_zone=calendar_zone)


def existing_of(row: BusyBlock) -> ExistingBlock:
    return ExistingBlock(
        target_calendar_id=row.target_calendar_id,
        source_calendar_id=row.source_calendar_id,
        source_key=row.source_key,
        provider_event_id=row.provider_event_id,
        summary=row.summary,
        start=stored.decode_time(row.start),
        end=stored.decode_time(row.end),
        user_modified=row.user_modified,
        user_deleted=row.user_deleted,
        source_fingerprint=row.source_fingerprint,
        end_at=row.end_at,
        etag=row.etag,
        member_sources=tuple(row.member_sources or ()),
    )
