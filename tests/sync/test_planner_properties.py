"""Property tests of the planner: random users, calendars, events and blocks keep the invariant.

A perfect provider is simulated by ``apply_plan``; an independent oracle (``expected_blocks``)
restates the rules from the generated specs, not from the planner's own helpers.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calsync_server.providers.google import mapping
from calsync_server.providers.model import EventTime
from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    DesiredBlock,
    ExistingBlock,
    SourceEvent,
    block_fingerprint,
    plan_busy_blocks,
    source_key,
)
from shared.domain import BusyTitle, CalendarRole
from tests.sync.builders import google_ids, remote, when

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
# Clocks near DST changes in New York (10 March, 3 November) and Berlin (31 March, 27 October).
BASES = (
    datetime(2024, 3, 8, tzinfo=UTC),
    datetime(2024, 3, 29, tzinfo=UTC),
    datetime(2024, 10, 25, tzinfo=UTC),
    datetime(2024, 6, 10, tzinfo=UTC),
)
EVENT_IDS = tuple(f"ev{n}" for n in range(6))
SUMMARIES = (None, "", "   ", "Standup", "Zahnarzt 🦷")
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass(frozen=True)
class EventSpec:
    """What was generated for one event, so the oracle need not trust the parser."""

    calendar_id: int
    event_id: str
    stub: bool  # a cancelled item carrying only its id
    status: str | None
    transparency: str | None
    event_type: str | None
    self_response: str | None
    busy_block: bool
    summary: str | None
    is_deleted: bool
    start: dict[str, Any]
    end: dict[str, Any]
    start_at: datetime
    end_at: datetime
    all_day: bool

    def resource(self) -> dict[str, Any]:
        if self.stub:
            return {"id": self.event_id, "status": "cancelled"}
        resource: dict[str, Any] = {
            "id": self.event_id,
            "start": self.start,
            "end": self.end,
            "description": "never copied",
            "location": "never copied",
        }
        optional = {
            "status": self.status,
            "transparency": self.transparency,
            "eventType": self.event_type,
            "summary": self.summary,
        }
        resource.update({k: v for k, v in optional.items() if v is not None})
        if self.self_response is not None:
            resource["attendees"] = [
                {"email": "other@example.com", "responseStatus": "accepted"},
                {"email": "me@example.com", "self": True, "responseStatus": self.self_response},
            ]
        if self.busy_block:
            resource["extendedProperties"] = {
                "private": {"calsync": "busy-block", "calsync_source": "some-key"}
            }
        return resource


@dataclass(frozen=True)
class Scenario:
    now: datetime
    time_zone: str
    horizon_days: int
    calendars: tuple[CalendarView, ...]
    calendar_zones: dict[int, str]
    specs: tuple[EventSpec, ...]
    existing: tuple[ExistingBlock, ...]

    @property
    def by_id(self) -> dict[int, CalendarView]:
        return {calendar.id: calendar for calendar in self.calendars}

    def events(self) -> list[SourceEvent]:
        return [
            SourceEvent(
                calendar_id=spec.calendar_id,
                event=remote(spec.resource(), self.calendar_zones[spec.calendar_id]),
                is_deleted=spec.is_deleted,
                time_zone=self.calendar_zones[spec.calendar_id],
            )
            for spec in self.specs
        ]

    def plan(
        self, existing: list[ExistingBlock], events: list[SourceEvent] | None = None
    ) -> BusyBlockPlan:
        return plan_busy_blocks(
            self.calendars,
            self.events() if events is None else events,
            existing,
            now=self.now,
            time_zone=self.time_zone,
            horizon_days=self.horizon_days,
            block_id=google_ids,
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@st.composite
def event_specs(
    draw: st.DrawFn,
    calendar_id: int,
    zone: str,
    now: datetime,
    horizon_days: int,
    event_id: str | None = None,
) -> EventSpec:
    if event_id is None:
        event_id = draw(st.sampled_from(EVENT_IDS))
    all_day = draw(st.integers(0, 3)) == 0
    if all_day:
        today = now.astimezone(ZoneInfo(zone)).date()
        first = today + timedelta(days=draw(st.integers(-3, horizon_days + 2)))
        last = first + timedelta(days=draw(st.integers(1, 3)))
        start: dict[str, Any] = {"date": first.isoformat()}
        end: dict[str, Any] = {"date": last.isoformat()}
        start_at = _midnight(first, zone)
        end_at = _midnight(last, zone)
    else:
        start_at = now + timedelta(minutes=15 * draw(st.integers(-192, (horizon_days + 1) * 96)))
        end_at = start_at + timedelta(minutes=15 * draw(st.integers(0, 144)))
        style = draw(st.sampled_from(("utc", "local", "offset")))
        event_zone = draw(st.sampled_from(ZONES))
        start, end = (_timed_object(moment, style, event_zone) for moment in (start_at, end_at))
    return EventSpec(
        calendar_id=calendar_id,
        event_id=event_id,
        stub=draw(st.integers(0, 11)) == 0,
        status=draw(st.sampled_from((None, None, "confirmed", "tentative", "cancelled"))),
        transparency=draw(st.sampled_from((None, None, "opaque", "transparent"))),
        event_type=draw(
            st.sampled_from(
                (
                    None,
                    None,
                    None,
                    "default",
                    "outOfOffice",
                    "focusTime",
                    "workingLocation",
                    "birthday",
                    "fromGmail",
                )
            )
        ),
        self_response=draw(
            st.sampled_from((None, None, "needsAction", "declined", "tentative", "accepted"))
        ),
        busy_block=draw(st.integers(0, 7)) == 0,
        summary=draw(st.sampled_from(SUMMARIES)),
        is_deleted=draw(st.integers(0, 9)) == 0,
        start=start,
        end=end,
        start_at=start_at,
        end_at=end_at,
        all_day=all_day,
    )


def event_ids(*, min_size: int = 0, max_size: int) -> st.SearchStrategy[list[str]]:
    """A calendar's events' ids, distinct: drawn first, as a list of distinct specs would throw
    most of its draws away (six ids)."""
    return st.lists(st.sampled_from(EVENT_IDS), min_size=min_size, max_size=max_size, unique=True)


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def _timed_object(moment: datetime, style: str, zone: str) -> dict[str, Any]:
    if style == "utc":
        return {"dateTime": _iso(moment).replace("+00:00", "Z")}
    local = moment.astimezone(ZoneInfo(zone))
    if style == "local":
        # A wall-clock time that DST makes ambiguous would not name this instant: use offsets.
        # (fold=0: the text keeps no fold, and is read as the first of the two instants.)
        naive = local.replace(tzinfo=None, fold=0)
        if naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) == moment:
            return {"dateTime": naive.isoformat(), "timeZone": zone}
    return {"dateTime": _iso(local), "timeZone": zone}


def calendar_views(draw: st.DrawFn, users: int) -> list[CalendarView]:
    calendars: list[CalendarView] = []
    for user_id in range(1, users + 1):
        own: list[str] = []
        for _ in range(draw(st.integers(1, 4))):
            calendar_id = len(calendars) + 1
            provider_id = f"user{user_id}-cal{calendar_id}@example.com"
            if own and draw(st.integers(0, 3)) == 0:
                # The same calendar again, through another of the user's accounts.
                provider_id = draw(st.sampled_from(own))
            own.append(provider_id)
            calendars.append(
                CalendarView(
                    id=calendar_id,
                    user_id=user_id,
                    provider_calendar_id=provider_id,
                    sync_enabled=draw(st.integers(0, 4)) > 0,
                    role=draw(st.sampled_from(list(CalendarRole))),
                    busy_title=draw(st.sampled_from(list(BusyTitle))),
                    include_all_day=draw(st.booleans()),
                    read_only=draw(st.integers(0, 6)) == 0,
                    account_active=draw(st.integers(0, 6)) > 0,
                    keep_blocks_when_off=draw(st.booleans()),
                )
            )
    return calendars


def written(desired: DesiredBlock, provider_event_id: str | None = None) -> ExistingBlock:
    """The block a perfect provider holds after calsync wrote ``desired``."""
    return ExistingBlock(
        target_calendar_id=desired.target_calendar_id,
        source_calendar_id=desired.source_calendar_id,
        source_key=desired.source_key,
        provider_event_id=provider_event_id or desired.provider_event_id,
        summary=desired.summary,
        start=desired.start,
        end=desired.end,
        source_fingerprint=desired.fingerprint,
        end_at=desired.end_at,
        member_sources=desired.member_sources,
    )


@st.composite
def existing_blocks(
    draw: st.DrawFn,
    now: datetime,
    calendars: list[CalendarView],
    specs: list[EventSpec],
    wanted: tuple[DesiredBlock, ...],
) -> list[ExistingBlock]:
    """Blocks as calsync may find them: right, wrong, hand-edited, deleted, ended, orphaned."""
    blocks: list[ExistingBlock] = []
    yesterday = now - timedelta(days=1)
    for desired in wanted:
        fate = draw(
            st.sampled_from(
                (
                    "missing",
                    "missing",
                    "missing",
                    "right",
                    "retitled",
                    "moved",
                    "all-day",
                    "other-id",
                    "ended",
                )
            )
        )
        if fate == "missing":
            continue
        block = written(desired)
        if fate == "retitled":
            block = dataclasses.replace(block, summary="Busy - leaked title")
        elif fate == "moved":
            later = desired.end_at + timedelta(hours=1)
            block = dataclasses.replace(
                block, end=when({"dateTime": _iso(later)}), end_at=later, source_fingerprint="stale"
            )
        elif fate == "all-day":
            block = dataclasses.replace(
                block, start=when({"date": "2024-01-01"}), end=when({"date": "2024-01-02"})
            )
        elif fate == "other-id":
            block = dataclasses.replace(block, provider_event_id="legacy" + desired.source_key[:8])
        elif fate == "ended":
            block = dataclasses.replace(
                block,
                start=when({"dateTime": _iso(yesterday - timedelta(hours=1))}),
                end=when({"dateTime": _iso(yesterday)}),
                end_at=yesterday,
            )
        hand = draw(
            st.sampled_from((None, None, None, "modified", "deleted", "deleted-then-moved"))
        )
        if hand == "modified":
            block = dataclasses.replace(block, user_modified=True)
        elif hand == "deleted":
            block = dataclasses.replace(block, user_deleted=True)
        elif hand == "deleted-then-moved":
            # The source changed after the user deleted the block: a fresh one is due.
            block = dataclasses.replace(block, user_deleted=True, source_fingerprint="older")
        blocks.append(block)

    # Orphans and blocks the rules do not want: any target, any source, real or vanished keys.
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(calendars))
        real_key = draw(st.booleans())
        if specs and real_key:
            spec = draw(st.sampled_from(specs))
            source = next(c for c in calendars if c.id == spec.calendar_id)
            key = source_key(source, spec.event_id)
        else:
            source = draw(st.sampled_from(calendars))
            key = source_key(source, f"vanished{draw(st.integers(0, 3))}")
        ended = draw(st.booleans())
        end_at = yesterday if ended else now + timedelta(hours=draw(st.integers(1, 48)))
        blocks.append(
            ExistingBlock(
                target_calendar_id=target.id,
                source_calendar_id=source.id,
                source_key=key,
                provider_event_id=f"orphan{len(blocks)}",
                summary="Busy",
                start=when({"dateTime": _iso(end_at - timedelta(hours=1))}),
                end=when({"dateTime": _iso(end_at)}),
                user_modified=draw(st.integers(0, 4)) == 0,
                user_deleted=draw(st.integers(0, 4)) == 0,
                source_fingerprint="whatever",
                end_at=end_at,
            )
        )
    # One block per (target, source key), as the busy_block table's unique constraint keeps it.
    unique: dict[tuple[int, str], ExistingBlock] = {}
    for block in blocks:
        unique.setdefault((block.target_calendar_id, block.source_key), block)
    return list(unique.values())


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    now = draw(st.sampled_from(BASES)) + timedelta(minutes=draw(st.integers(0, 4 * 24 * 60)))
    time_zone = draw(st.sampled_from(ZONES))
    horizon_days = draw(st.integers(1, 5))
    calendars = calendar_views(draw, draw(st.integers(1, 3)))
    zones = {calendar.id: draw(st.sampled_from(ZONES)) for calendar in calendars}
    specs: list[EventSpec] = []
    for calendar in calendars:
        specs += [
            draw(event_specs(calendar.id, zones[calendar.id], now, horizon_days, event_id))
            for event_id in draw(event_ids(max_size=5))
        ]
    scenario = Scenario(
        now=now,
        time_zone=time_zone,
        horizon_days=horizon_days,
        calendars=tuple(calendars),
        calendar_zones=zones,
        specs=tuple(specs),
        existing=(),
    )
    wanted = scenario.plan([]).creates
    existing = draw(existing_blocks(now, calendars, specs, wanted))
    return dataclasses.replace(scenario, existing=tuple(existing))


def apply_plan(existing: list[ExistingBlock], plan: BusyBlockPlan) -> list[ExistingBlock]:
    """A perfect provider (and local table) after the applier carried out ``plan``."""
    deleted = {id(block) for block in plan.deletes}
    patched = {id(block): desired for block, desired in plan.patches}
    assert len(deleted) == len(plan.deletes), "a block deleted twice"
    assert len(patched) == len(plan.patches), "a block patched twice"
    assert not deleted & patched.keys(), "a block both deleted and patched"
    assert (deleted | patched.keys()) <= {id(block) for block in existing}
    created_at = {(d.target_calendar_id, d.source_key) for d in plan.creates}
    assert len(created_at) == len(plan.creates), "two creates for one place"

    after: list[ExistingBlock] = []
    for block in existing:
        if id(block) in deleted:
            continue
        if id(block) in patched:
            after.append(written(patched[id(block)], provider_event_id=block.provider_event_id))
        elif block.user_deleted and (block.target_calendar_id, block.source_key) in created_at:
            continue  # the fresh block takes the tombstone's place (409 -> patch)
        else:
            after.append(block)
    for desired in plan.creates:
        taken = {
            b.provider_event_id
            for b in after
            if b.target_calendar_id == desired.target_calendar_id and not b.user_deleted
        }
        assert desired.provider_event_id not in taken, "an insert would meet a live block"
        after.append(written(desired))
    return after


@dataclass(frozen=True)
class Expected:
    summary: str
    start: EventTime | None
    end: EventTime | None
    end_at: datetime


def spec_blocks(spec: EventSpec, source: CalendarView, window: tuple[datetime, datetime]) -> bool:
    """domain.md "Which events block", restated from the generated spec."""
    return (
        not spec.stub
        and not spec.is_deleted
        and spec.status != "cancelled"
        and spec.transparency != "transparent"
        and spec.self_response != "declined"
        and spec.event_type not in ("workingLocation", "birthday")
        and not spec.busy_block
        and (source.include_all_day or not spec.all_day)
        and spec.start_at < window[1]
        and spec.end_at > window[0]
    )


def copies(scenario: Scenario) -> set[int]:
    """Calendars another of the user's accounts syncs already (the same provider calendar):
    some other copy is on and, if this one is on too, came first (the lower id)."""
    return {
        calendar.id
        for calendar in scenario.calendars
        for other in scenario.calendars
        if other.id != calendar.id
        and other.user_id == calendar.user_id
        and other.provider_calendar_id == calendar.provider_calendar_id
        and other.sync_enabled
        and (not calendar.sync_enabled or other.id < calendar.id)
    }


def expected_blocks(scenario: Scenario) -> dict[tuple[int, str], Expected]:
    """domain.md's invariant: one block per (writable target, blocking instance) of one user;
    one calendar through two accounts counts once."""
    zone = ZoneInfo(scenario.time_zone)
    today = scenario.now.astimezone(zone).date()
    window = (
        _midnight(today, scenario.time_zone),
        _midnight(today + timedelta(days=scenario.horizon_days), scenario.time_zone),
    )
    calendars = scenario.by_id
    second = copies(scenario)
    expected: dict[tuple[int, str], Expected] = {}
    for spec in scenario.specs:
        source = calendars[spec.calendar_id]
        if not (
            source.id not in second
            and source.sync_enabled
            and source.role in (CalendarRole.SOURCE, CalendarRole.BOTH)
            and source.account_active
            and spec_blocks(spec, source, window)
        ):
            continue
        title = (spec.summary or "").strip()
        summary = f"Busy - {title}" if source.busy_title is BusyTitle.TITLE and title else "Busy"
        for target in scenario.calendars:
            if (
                target.id != source.id
                and target.id not in second
                and target.user_id == source.user_id
                and target.sync_enabled
                and target.role in (CalendarRole.TARGET, CalendarRole.BOTH)
                and not target.read_only
                and target.account_active
            ):
                place = (target.id, source_key(source, spec.event_id))
                zone = scenario.calendar_zones[spec.calendar_id]
                expected[place] = Expected(
                    summary, when(spec.start, zone), when(spec.end, zone), spec.end_at
                )
    return expected


def has_ended(block: ExistingBlock, now: datetime) -> bool:
    end = block.end_at or (block.end.to_utc("UTC") if block.end is not None else None)
    return end is not None and end <= now


def left_alone(block: ExistingBlock, scenario: Scenario) -> bool:
    """The documented cases where an unwanted block stays: calsync must not or cannot touch it,
    the user keeps it, or it is history or a hand edit in a calendar that is still a target."""
    target = scenario.by_id[block.target_calendar_id]
    source = scenario.by_id[block.source_calendar_id]
    if target.read_only or not target.account_active or target.id in copies(scenario):
        return True
    if not target.sync_enabled:
        return target.keep_blocks_when_off  # the user's choice when turning it off
    if target.role not in (CalendarRole.TARGET, CalendarRole.BOTH):
        return False  # no longer a target: every block goes, past ones included
    return block.user_modified or has_ended(block, scenario.now) or not source.account_active


def place(block: ExistingBlock | DesiredBlock) -> tuple[int, str]:
    return (block.target_calendar_id, block.source_key)


@PROPERTY_SETTINGS
@given(scenarios())
def test_applying_the_plan_yields_the_invariant(scenario: Scenario) -> None:
    after = apply_plan(list(scenario.existing), scenario.plan(list(scenario.existing)))
    expected = expected_blocks(scenario)

    for where, want in expected.items():
        here = [block for block in after if place(block) == where]
        live = [block for block in here if not block.user_deleted]
        if any(block.user_modified for block in live):
            continue  # the user's edit stands for the block
        if not live:
            # Only a block the user deleted, with the source unchanged since, may be missing.
            assert want.start is not None
            assert want.end is not None
            fingerprint = block_fingerprint(want.summary, want.start, want.end)
            assert any(b.source_fingerprint == fingerprint for b in here), (where, want)
            continue
        (block,) = live
        if has_ended(block, scenario.now) and want.end_at <= scenario.now:
            continue  # history on both sides
        assert (block.summary, block.start, block.end) == (want.summary, want.start, want.end)

    for block in after:
        if place(block) not in expected:
            assert left_alone(block, scenario), block


@PROPERTY_SETTINGS
@given(scenarios())
def test_planning_again_after_applying_yields_an_empty_plan(scenario: Scenario) -> None:
    first = scenario.plan(list(scenario.existing))
    after = apply_plan(list(scenario.existing), first)

    second = scenario.plan(after)

    assert second.is_empty, second
    assert second.preserved == first.preserved


@PROPERTY_SETTINGS
@given(scenarios())
def test_never_two_blocks_per_target_and_source(scenario: Scenario) -> None:
    after = apply_plan(list(scenario.existing), scenario.plan(list(scenario.existing)))

    live = [block for block in after if not block.user_deleted]
    assert max(Counter(place(block) for block in live).values(), default=0) <= 1
    ids = Counter((block.target_calendar_id, block.provider_event_id) for block in live)
    assert max(ids.values(), default=0) <= 1


@PROPERTY_SETTINGS
@given(scenarios())
def test_never_a_block_from_a_block_nor_across_users(scenario: Scenario) -> None:
    plan = scenario.plan(list(scenario.existing))
    calendars = scenario.by_id
    second = copies(scenario)
    spec_at = {
        source_key(calendars[spec.calendar_id], spec.event_id): spec
        for spec in scenario.specs
        if spec.calendar_id not in second
    }

    for desired in [*plan.creates, *(d for _, d in plan.patches)]:
        source, target = (
            calendars[desired.source_calendar_id],
            calendars[desired.target_calendar_id],
        )
        spec = spec_at[desired.source_key]
        assert not spec.busy_block
        assert spec.calendar_id == source.id
        assert source.id != target.id
        assert source.user_id == target.user_id
        assert (
            mapping.block_body(desired.content, desired.provider_event_id)["extendedProperties"][
                "private"
            ]["calsync"]
            == "busy-block"
        )
        assert "description" not in mapping.block_body(desired.content, desired.provider_event_id)
    for block, desired in plan.patches:
        assert place(block) == place(desired)


@PROPERTY_SETTINGS
@given(scenarios())
def test_the_plan_never_touches_what_it_must_leave_alone(scenario: Scenario) -> None:
    plan = scenario.plan(list(scenario.existing))

    for block in plan.deletes:
        assert not left_alone(block, scenario), block
    for block, desired in plan.patches:
        target = scenario.by_id[block.target_calendar_id]
        assert not block.user_modified
        assert not block.user_deleted
        assert target.is_writable_target
        assert not (has_ended(block, scenario.now) and desired.end_at <= scenario.now)
    for block in plan.preserved:
        assert block.user_modified
    # A block the user deleted comes back only when its source shows something new.
    tombstones = {place(b): b.source_fingerprint for b in scenario.existing if b.user_deleted}
    for desired in plan.creates:
        assert tombstones.get(place(desired)) != desired.fingerprint, desired


@PROPERTY_SETTINGS
@given(scenarios())
def test_planning_per_source_key_gives_the_same_plan(scenario: Scenario) -> None:
    # The engine plans only the keys a change touched: slices must agree with the whole.
    events = scenario.events()
    whole = scenario.plan(list(scenario.existing), events)
    calendars = scenario.by_id
    events_of: dict[str, list[SourceEvent]] = defaultdict(list)
    for event in events:
        events_of[source_key(calendars[event.calendar_id], event.event.id)].append(event)
    blocks_of: dict[str, list[ExistingBlock]] = defaultdict(list)
    for block in scenario.existing:
        blocks_of[block.source_key].append(block)

    creates: list[DesiredBlock] = []
    patches: list[tuple[ExistingBlock, DesiredBlock]] = []
    deletes: list[ExistingBlock] = []
    for key in events_of.keys() | blocks_of.keys():
        part = scenario.plan(blocks_of[key], events_of[key])
        creates += part.creates
        patches += part.patches
        deletes += part.deletes

    assert sorted(creates, key=place) == sorted(whole.creates, key=place)
    assert sorted(patches, key=lambda p: place(p[0])) == sorted(
        whole.patches, key=lambda p: place(p[0])
    )
    assert sorted(deletes, key=place) == sorted(whole.deletes, key=place)
