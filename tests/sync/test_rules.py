"""Example tests of the rules a user chooses (domain.md "Rules the user chooses"), one per rule,
through the planner: what blocks each target receives."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    ExistingBlock,
    SourceEvent,
    plan_busy_blocks,
    source_key,
)
from calsync_server.sync.rules import (
    CalendarRules,
    Removed,
    RuleError,
    TitleFilter,
    WorkingHours,
    merged_key,
)
from calsync_server.sync.verdicts import PlanTrace
from shared.domain import BusyTitle, CalendarRole
from tests.sync.builders import NOW, all_day, calendar, google_ids, source_event, timed
from tests.sync.test_planner_properties import apply_plan

WEEKDAYS_9_TO_5 = WorkingHours.parse(["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00")


def with_rules(view: CalendarView, **rules: Any) -> CalendarView:
    return dataclasses.replace(view, rules=CalendarRules(**rules))


def plan(
    calendars: list[CalendarView],
    events: list[SourceEvent],
    existing: list[ExistingBlock] | None = None,
    now: datetime = NOW,
) -> BusyBlockPlan:
    return plan_busy_blocks(
        calendars,
        events,
        existing or [],
        now=now,
        time_zone="UTC",
        horizon_days=90,
        block_id=google_ids,
    )


def spans(result: BusyBlockPlan, target_id: int = 2) -> list[tuple[str, str]]:
    """The blocks a target receives, as UTC start/end texts, in order."""
    return sorted(
        (d.start_at.isoformat(), d.end_at.isoformat())
        for d in result.creates
        if d.target_calendar_id == target_id
    )


def event(event_id: str, start: str, end: str, **fields: Any) -> SourceEvent:
    return source_event(1, timed(event_id, start, end, **fields))


# -- title filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include", "exclude", "title", "blocks"),
    [
        ((), ("lunch",), "Team LUNCH", False),
        ((), ("lunch",), "Lunchroom tour", True),  # plain words match whole words
        ((), ("/^focus/",), "Focus block", False),
        ((), ("/^focus/",), "Deep focus", True),
        (("client", "/1:1|one-on-one/"), (), "One-on-one with Sam", True),
        (("client",), (), "Standup", False),
        (("client",), ("internal",), "Client call (internal)", False),
        ((), ("c++",), "C++ review", False),  # plain words need no escaping
    ],
)
def test_title_filters_of_a_source(
    include: tuple[str, ...], exclude: tuple[str, ...], title: str, blocks: bool
) -> None:
    source = with_rules(calendar(1), titles=TitleFilter(include, exclude))
    result = plan(
        [source, calendar(2)],
        [event("e1", "2024-06-10T10:00:00Z", "2024-06-10T11:00:00Z", summary=title)],
    )

    assert bool(result.creates) is blocks
    assert result.removed == (() if blocks else ((Removed.TITLE, 1),))


@pytest.mark.parametrize("pattern", ["/(unclosed/", "/[a-/", "   ", "x" * 201])
def test_a_bad_title_pattern_is_refused_when_set(pattern: str) -> None:
    with pytest.raises(RuleError):
        TitleFilter(exclude=(pattern,))


# -- tentative -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "blocks_when_off"),
    [("tentative", False), ("needsAction", False), ("accepted", True), (None, True)],
)
def test_tentative_and_unanswered_invitations_block_or_not(
    answer: str | None, blocks_when_off: bool
) -> None:
    fields: dict[str, Any] = {}
    if answer is not None:
        fields["attendees"] = [{"email": "me@example.com", "self": True, "responseStatus": answer}]
    events = [event("e1", "2024-06-10T10:00:00Z", "2024-06-10T11:00:00Z", **fields)]

    assert plan([calendar(1), calendar(2)], events).creates  # default: they block
    off = with_rules(calendar(1), block_tentative=False)
    assert bool(plan([off, calendar(2)], events).creates) is blocks_when_off


# -- already invited -------------------------------------------------------------------------------


def test_no_block_where_the_target_account_is_invited() -> None:
    invite = event(
        "e1",
        "2024-06-10T10:00:00Z",
        "2024-06-10T11:00:00Z",
        attendees=[{"email": "Me@Work.example"}, {"email": "boss@work.example"}],
    )
    work = dataclasses.replace(calendar(2), addresses=frozenset({"me@work.example"}))
    home = dataclasses.replace(calendar(3), addresses=frozenset({"me@home.example"}))

    default = plan([calendar(1), work, home], [invite])
    assert {d.target_calendar_id for d in default.creates} == {2, 3}  # off by default

    result = plan([calendar(1), with_rules(work, skip_invited=True), home], [invite])
    assert {d.target_calendar_id for d in result.creates} == {3}
    assert result.removed == ((Removed.INVITED, 1),)


# -- working hours ---------------------------------------------------------------------------------


def test_working_hours_clip_a_block_and_drop_one_outside() -> None:
    target = with_rules(calendar(2), working_hours=WEEKDAYS_9_TO_5)
    # Monday 10 June 2024: 08:00-10:00 is clipped to 09:00; 18:00-19:00 gives none.
    events = [
        event("e1", "2024-06-10T08:00:00Z", "2024-06-10T10:00:00Z"),
        event("e2", "2024-06-10T18:00:00Z", "2024-06-10T19:00:00Z"),
        event("e3", "2024-06-15T10:00:00Z", "2024-06-15T11:00:00Z"),  # a Saturday
    ]

    result = plan([calendar(1), target], events)

    assert spans(result) == [("2024-06-10T09:00:00+00:00", "2024-06-10T10:00:00+00:00")]
    assert result.removed == ((Removed.HOURS, 2),)
    assert result.notes == ["2 events outside working hours"]
    # The unclipped end keeps the event's own time; the clipped one is the window's edge.
    (block,) = result.creates
    assert block.source_key == source_key(calendar(1), "e1")


def test_working_hours_follow_the_target_zone_across_a_dst_change() -> None:
    hours = WorkingHours.parse(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "09:00", "17:00")
    target = dataclasses.replace(
        with_rules(calendar(2), working_hours=hours), time_zone="Europe/Berlin"
    )
    # An all-day-long event from Friday 29 March to Tuesday 2 April 2024: Berlin moves to
    # summer time on Sunday 31 March, so 09:00 there is 08:00 UTC on Friday/Saturday and
    # 07:00 UTC from Sunday on.
    long = event("e1", "2024-03-29T00:00:00Z", "2024-04-02T00:00:00Z")

    result = plan([calendar(1), target], [long], now=datetime(2024, 3, 28, tzinfo=UTC))

    assert spans(result) == [
        ("2024-03-29T08:00:00+00:00", "2024-03-29T16:00:00+00:00"),
        ("2024-03-30T08:00:00+00:00", "2024-03-30T16:00:00+00:00"),
        ("2024-03-31T07:00:00+00:00", "2024-03-31T15:00:00+00:00"),
        ("2024-04-01T07:00:00+00:00", "2024-04-01T15:00:00+00:00"),
    ]
    keys = [d.source_key for d in sorted(result.creates, key=lambda d: d.start_at)]
    assert keys[0] == source_key(calendar(1), "e1")  # the first piece keeps the event's key
    assert keys[1:] == [f"{keys[0]}:2024-03-{day}" for day in ("30", "31")] + [
        f"{keys[0]}:2024-04-01"
    ]


def test_an_all_day_event_in_working_hours_blocks_the_working_day() -> None:
    source = calendar(1, include_all_day=True)
    target = with_rules(calendar(2), working_hours=WEEKDAYS_9_TO_5)
    holiday = source_event(1, all_day("h1", "2024-06-14", "2024-06-17"))  # Fri to Sun

    result = plan([source, target], [holiday])

    assert spans(result) == [("2024-06-14T09:00:00+00:00", "2024-06-14T17:00:00+00:00")]


@pytest.mark.parametrize(
    ("days", "start", "end"),
    [
        ([], "09:00", "17:00"),
        (["funday"], "09:00", "17:00"),
        (["mon"], "17:00", "09:00"),
        (["mon"], "9", "17:00"),
        (["mon"], "09:00", "24:30"),
        (["mon"], "09:61", "10:00"),
    ],
)
def test_bad_working_hours_are_refused(days: list[str], start: str, end: str) -> None:
    with pytest.raises(RuleError):
        WorkingHours.parse(days, start, end)


# -- merge -------------------------------------------------------------------------------------


def test_overlapping_and_touching_blocks_from_any_source_merge_into_one() -> None:
    target = with_rules(calendar(3), merge=True)
    events = [
        event("a", "2024-06-10T09:00:00Z", "2024-06-10T10:00:00Z"),
        source_event(2, timed("b", "2024-06-10T09:30:00Z", "2024-06-10T11:00:00Z")),
        event("c", "2024-06-10T11:00:00Z", "2024-06-10T11:30:00Z"),  # touches b
        event("d", "2024-06-10T12:00:00Z", "2024-06-10T13:00:00Z"),  # apart
    ]
    calendars = [calendar(1, busy_title=BusyTitle.TITLE), calendar(2), target]

    result = plan(calendars, events)

    assert spans(result, 3) == [
        ("2024-06-10T09:00:00+00:00", "2024-06-10T11:30:00+00:00"),
        ("2024-06-10T12:00:00+00:00", "2024-06-10T13:00:00+00:00"),
    ]
    merged, alone = sorted((d for d in result.creates if d.target_calendar_id == 3), key=str)
    keys = [source_key(calendars[0], "a"), source_key(calendars[1], "b")]
    keys.append(source_key(calendars[0], "c"))
    assert {merged.source_key, alone.source_key} == {
        merged_key(keys),
        source_key(calendars[0], "d"),
    }
    # Titles differ (one private source): the merged block shows only "Busy".
    assert {d.summary for d in result.creates if d.target_calendar_id == 3} == {
        "Busy",
        "Busy - Standup",
    }
    assert result.notes == ["3 blocks merged into 1"]
    # Calendars without merge still get one block per event.
    assert len([d for d in result.creates if d.target_calendar_id == 2]) == 3


def test_a_merged_block_over_a_source_whose_login_is_refused_is_kept_whole() -> None:
    """Soak seed 7 day 64: a merged block covers a Family event and a Personal event, then
    Family's account needs sign-in. The block is left alone and Personal's event gets no second
    block (whose deterministic id the merged block, moved in place, may already hold)."""
    personal, family = calendar(1), calendar(2)
    target = with_rules(calendar(3, role=CalendarRole.TARGET), merge=True)
    alone = [source_event(1, timed("p", "2024-06-10T09:30:00Z", "2024-06-10T11:00:00Z"))]
    both = [*alone, source_event(2, timed("f", "2024-06-10T09:00:00Z", "2024-06-10T10:00:00Z"))]
    blocks: list[ExistingBlock] = []
    # Personal's block first, then Family's event joins it: the block is moved in place.
    for calendars, events in (
        ([personal, family, target], alone),
        ([personal, family, target], both),
    ):
        blocks = apply_plan(blocks, plan(calendars, events, blocks))
    (merged,) = [b for b in blocks if b.target_calendar_id == 3]
    signed_out = dataclasses.replace(family, account_active=False)

    result = plan([personal, signed_out, target], both, blocks)

    in_team = [d for d in result.creates if d.target_calendar_id == 3]
    assert in_team == []
    assert [b for b in result.deletes if b.target_calendar_id == 3] == []
    after = [b for b in apply_plan(blocks, result) if b.target_calendar_id == 3]
    assert len({b.provider_event_id for b in after}) == len(after)
    assert [(b.start, b.end) for b in after] == [(merged.start, merged.end)]


def merged_in_place(
    first: SourceEvent, joiner: SourceEvent, calendars: list[CalendarView]
) -> list[ExistingBlock]:
    """The blocks after ``first`` gets its own block and ``joiner`` then joins it: the single
    block moved in place to the merged key (it keeps ``first``'s block's id)."""
    blocks: list[ExistingBlock] = []
    for events in ([first], [first, joiner]):
        blocks = apply_plan(blocks, plan(calendars, events, blocks))
    return blocks


def test_a_merged_block_naming_the_active_source_stays_while_another_member_is_signed_out() -> None:
    """The other ordering of soak seed 7 day 64: the merged block's row names Personal (its
    first member, still signed in) and Family's login is refused. The block stands for
    Family's time too: it is neither deleted nor moved onto Personal's event (a refused login
    deletes no block), and Personal's event gets no second block under it."""
    personal, family = calendar(1), calendar(2)
    target = with_rules(calendar(3, role=CalendarRole.TARGET), merge=True)
    own = source_event(1, timed("p", "2024-06-10T09:00:00Z", "2024-06-10T10:00:00Z"))
    joiner = source_event(2, timed("f", "2024-06-10T09:30:00Z", "2024-06-10T11:00:00Z"))
    blocks = merged_in_place(own, joiner, [personal, family, target])
    (merged,) = [b for b in blocks if b.target_calendar_id == 3]
    assert merged.source_calendar_id == personal.id
    assert merged.sources == {personal.id, family.id}
    signed_out = dataclasses.replace(family, account_active=False)
    trace = PlanTrace()

    result = plan_busy_blocks(
        [personal, signed_out, target],
        [own, joiner],
        blocks,
        now=NOW,
        time_zone="UTC",
        horizon_days=90,
        block_id=google_ids,
        trace=trace,
    )

    assert [d for d in result.creates if d.target_calendar_id == 3] == []
    assert [b for b, _ in result.patches if b.target_calendar_id == 3] == []
    assert [b for b in result.deletes if b.target_calendar_id == 3] == []
    assert [b for b in apply_plan(blocks, result) if b.target_calendar_id == 3] == [merged]
    # Explain names the merged block as the one standing for Personal's event in Team.
    assert trace.blocks[(3, source_key(personal, "p"))] == [merged.source_key]


def test_an_event_leaving_a_block_kept_for_a_signed_out_source_gets_an_id_of_its_own() -> None:
    """Soak seed 7 day 64, next step: while the merged block stands for signed-out Family, its
    other member (Personal's event, whose single block it was moved in place from, so it holds
    that block's deterministic id) moves away. Its new block is created under an id no block
    in Team holds: the usual one would meet the merged block (the provider's "exists", and
    UNIQUE(target_calendar_id, provider_event_id) on the row's insert)."""
    personal, family = calendar(1), calendar(2)
    target = with_rules(calendar(3, role=CalendarRole.TARGET), merge=True)
    own = source_event(1, timed("p", "2024-06-10T09:30:00Z", "2024-06-10T11:00:00Z"))
    joiner = source_event(2, timed("f", "2024-06-10T09:00:00Z", "2024-06-10T10:00:00Z"))
    calendars = [personal, family, target]
    blocks = merged_in_place(own, joiner, calendars)
    (merged,) = [b for b in blocks if b.target_calendar_id == 3]
    usual = plan(calendars, [own]).creates
    assert merged.provider_event_id in {d.provider_event_id for d in usual}
    signed_out = [personal, dataclasses.replace(family, account_active=False), target]
    moved = source_event(1, timed("p", "2024-06-10T13:00:00Z", "2024-06-10T14:00:00Z"))

    result = plan(signed_out, [moved, joiner], blocks)

    (fresh,) = [d for d in result.creates if d.target_calendar_id == 3]
    assert fresh.source_key == source_key(personal, "p")
    assert fresh.provider_event_id != merged.provider_event_id
    assert [b for b, _ in result.patches if b.target_calendar_id == 3] == []
    assert [b for b in result.deletes if b.target_calendar_id == 3] == []
    after = apply_plan(blocks, result)  # asserts no insert meets a live block
    in_team = sorted((b for b in after if b.target_calendar_id == 3), key=lambda b: b.end_at or NOW)
    assert [b.provider_event_id for b in in_team] == [
        merged.provider_event_id,
        fresh.provider_event_id,
    ]
    # Deterministic: planning again (a retry after a crash lost the row) gives the same id.
    assert plan(signed_out, [moved, joiner], blocks).creates == result.creates
    assert plan(signed_out, [moved, joiner], after).is_empty

    # Family signs in again: the merged block becomes Family's own (moved, its id kept) and
    # Personal's block stays where it is.
    back = plan(calendars, [moved, joiner], after)
    settled = apply_plan(after, back)
    assert not back.creates
    assert sorted(b.provider_event_id for b in settled if b.target_calendar_id == 3) == sorted(
        [merged.provider_event_id, fresh.provider_event_id]
    )
    assert plan(calendars, [moved, joiner], settled).is_empty


def test_a_merged_block_whose_row_predates_its_members_is_restamped_without_a_write() -> None:
    """A merged block's row written before calsync kept its members' sources names only its
    first: the plan leaves the provider alone and has the applier write the members into it."""
    personal, family = calendar(1), calendar(2)
    target = with_rules(calendar(3, role=CalendarRole.TARGET), merge=True)
    own = source_event(1, timed("p", "2024-06-10T09:00:00Z", "2024-06-10T10:00:00Z"))
    joiner = source_event(2, timed("f", "2024-06-10T09:30:00Z", "2024-06-10T11:00:00Z"))
    calendars = [personal, family, target]
    blocks = merged_in_place(own, joiner, calendars)
    older = [
        dataclasses.replace(b, member_sources=()) if b.target_calendar_id == 3 else b
        for b in blocks
    ]

    result = plan(calendars, [own, joiner], older)

    assert result.is_empty
    ((row, wanted),) = result.restamps
    assert row.target_calendar_id == 3
    assert wanted.member_sources == (personal.id, family.id)
    assert plan(calendars, [own, joiner], blocks).restamps == ()
