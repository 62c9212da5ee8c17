"""The planner's types: calendars, source events and blocks as it reads them, and its plan.

Plain frozen dataclasses, built by the engine from rows (rows.py) and by tests by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from calsync_server.providers.model import BlockContent, EventTime, RemoteEvent
from calsync_server.sync import rules as rule
from calsync_server.sync.rules import NO_RULES, CalendarRules, Removed
from shared.domain import BusyTitle, CalendarRole


@dataclass(frozen=True, slots=True)
class CalendarView:
    """What the planner needs to know of a calendar, its account and its settings."""

    id: int
    user_id: int
    provider_calendar_id: str
    sync_enabled: bool
    role: CalendarRole
    busy_title: BusyTitle
    include_all_day: bool
    read_only: bool
    # False when the account needs re-authorisation: nothing is read or written for it.
    account_active: bool
    # The user's choice: when sync is turned off, the blocks this calendar holds stay.
    keep_blocks_when_off: bool = False
    # The calendar's zone (working hours are read in it) and its own account's addresses
    # (an event inviting one of them is already there).
    time_zone: str = "UTC"
    addresses: frozenset[str] = frozenset()
    rules: CalendarRules = NO_RULES
    # Its events could not be planned this time (their data breaks the planner): it gives no
    # block, and every block standing for it is left as it is, as for a refused login.
    unplannable: bool = False

    @property
    def is_writable_target(self) -> bool:
        """Whether calsync can write into this calendar at all (deleting included)."""
        return self.account_active and not self.read_only

    @property
    def receives_blocks(self) -> bool:
        return self.sync_enabled and self.role.is_target and self.is_writable_target

    @property
    def gives_blocks(self) -> bool:
        return (
            self.sync_enabled
            and self.role.is_source
            and self.account_active
            and not self.unplannable
        )

    @property
    def keeps_blocks_while_off(self) -> bool:
        """Sync is off and the user chose to keep the blocks this calendar held."""
        return not self.sync_enabled and self.keep_blocks_when_off


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """A stored event instance of one calendar; soft-deleted ones never block. ``time_zone`` is
    its calendar's: an all-day event floats with it."""

    calendar_id: int
    event: RemoteEvent
    is_deleted: bool = False
    time_zone: str = "UTC"

    @property
    def start_at(self) -> datetime:
        return self.event.start.to_utc(self.time_zone)

    @property
    def end_at(self) -> datetime:
        return self.event.end.to_utc(self.time_zone)


@dataclass(frozen=True, slots=True)
class ExistingBlock:
    """A busy block calsync knows of (from its table, or listed from the provider by its mark)."""

    target_calendar_id: int
    source_calendar_id: int
    source_key: str
    provider_event_id: str
    summary: str
    start: EventTime | None
    end: EventTime | None
    user_modified: bool = False
    # A tombstone: the user deleted the block by hand, so it is not at the provider any more.
    user_deleted: bool = False
    source_fingerprint: str | None = None
    # When the block ends; a block that ended is history. Read from ``end`` when None.
    end_at: datetime | None = None
    etag: str | None = None
    # A merged block's members' source calendars (sorted, distinct; ``source_calendar_id`` is
    # the first member's). Empty for a block of one event, and for a row written before
    # migration 0015 (the plan's restamps fill it in).
    member_sources: tuple[int, ...] = ()

    @property
    def sources(self) -> frozenset[int]:
        """Every source calendar the block stands for."""
        return frozenset((self.source_calendar_id, *self.member_sources))


@dataclass(frozen=True, slots=True)
class DesiredBlock:
    """The busy block one target calendar should hold for one blocking source instance."""

    target_calendar_id: int
    source_calendar_id: int
    source_provider_event_id: str
    source_key: str
    # The block's identity (hex); ``provider_event_id`` is the id the provider gives it, None
    # where the provider assigns ids (Graph): then it is stored when the create answers.
    digest: str
    provider_event_id: str | None
    summary: str
    start: EventTime
    end: EventTime
    start_at: datetime
    end_at: datetime
    fingerprint: str
    # A merged block's members' source calendars (sorted, distinct); empty for one event's.
    member_sources: tuple[int, ...] = ()

    @property
    def sources(self) -> frozenset[int]:
        """Every source calendar the block stands for."""
        return frozenset((self.source_calendar_id, *self.member_sources))

    @property
    def content(self) -> BlockContent:
        """Everything calsync writes into the block; the provider adds privacy and its mark."""
        return BlockContent(self.summary, self.start, self.end, self.source_key)


@dataclass(frozen=True, slots=True)
class BusyBlockPlan:
    """What the applier must do; ``preserved`` is a report (hand-edited blocks), not an action."""

    creates: tuple[DesiredBlock, ...] = ()
    patches: tuple[tuple[ExistingBlock, DesiredBlock], ...] = ()
    deletes: tuple[ExistingBlock, ...] = ()
    preserved: tuple[ExistingBlock, ...] = field(default=())
    # Blocks that show what is wanted but whose rows name too few member sources (written
    # before migration 0015, or adopted from a listing): the applier rewrites the row only, no
    # provider call. Bookkeeping, not a change: ``is_empty`` ignores them.
    restamps: tuple[tuple[ExistingBlock, DesiredBlock], ...] = ()
    # What the user's rules took away (events per rule) and merged (blocks into merged ones,
    # merged ones): a report for the sync log.
    removed: tuple[tuple[Removed, int], ...] = ()
    merged: tuple[int, int] = (0, 0)

    @property
    def is_empty(self) -> bool:
        return not (self.creates or self.patches or self.deletes)

    @property
    def notes(self) -> list[str]:
        return rule.removal_notes(self.removed, self.merged)
