"""Example tests of the planner: each rule of domain.md on its own, one test per rule."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync_server.providers.google import mapping
from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    DesiredBlock,
    ExistingBlock,
    SourceEvent,
    block_digest,
    is_blocking,
    plan_busy_blocks,
    source_key,
    sync_window,
)
from shared.domain import BusyTitle, CalendarRole
from tests.sync.builders import NOW, all_day, calendar, google_ids, source_event, timed, when

WINDOW = sync_window(NOW, "UTC", 90)
SOON = ("2024-06-10T10:00:00Z", "2024-06-10T11:00:00Z")


def plan(
    calendars: list[CalendarView],
    events: list[SourceEvent],
    existing: list[ExistingBlock] | None = None,
    **options: Any,
) -> BusyBlockPlan:
    return plan_busy_blocks(
        calendars,
        events,
        existing or [],
        now=NOW,
        time_zone="UTC",
        horizon_days=90,
        block_id=google_ids,
        **options,
    )


def block_event_id(target: CalendarView, key: str) -> str:
    """Google's id of the block (the digest in base32hex), as calsync always gave it."""
    return mapping.block_id(block_digest(target, key))


def resource(block: DesiredBlock) -> dict[str, Any]:
    """The Google body of the block's create."""
    return mapping.block_body(block.content, block.provider_event_id)


def patch_body(block: DesiredBlock) -> dict[str, Any]:
    return mapping.block_body(block.content)


def as_existing(block: DesiredBlock, **changes: Any) -> ExistingBlock:
    """The block as calsync wrote it, with ``changes`` (a user's edit, a wrong title...)."""
    written = ExistingBlock(
        target_calendar_id=block.target_calendar_id,
        source_calendar_id=block.source_calendar_id,
        source_key=block.source_key,
        provider_event_id=block.provider_event_id,
        summary=block.summary,
        start=block.start,
        end=block.end,
        source_fingerprint=block.fingerprint,
        end_at=block.end_at,
    )
    return dataclasses.replace(written, **changes)


def blocks(event: dict[str, Any], source: CalendarView | None = None) -> bool:
    source = source or calendar(1)
    return is_blocking(source_event(source.id, event), source, WINDOW)


# Which events block


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"status": "cancelled"}, "cancelled"),
        ({"transparency": "transparent"}, "shown as free"),
        (
            {"attendees": [{"email": "me@x", "self": True, "responseStatus": "declined"}]},
            "declined",
        ),
        ({"eventType": "workingLocation", "transparency": "opaque"}, "working location"),
        ({"eventType": "birthday"}, "birthday"),
        (
            {"extendedProperties": {"private": {"calsync": "busy-block", "calsync_source": "k"}}},
            "calsync's own block",
        ),
    ],
)
def test_events_that_do_not_block(fields: dict[str, Any], why: str) -> None:
    assert not blocks(timed("e1", *SOON, **fields)), why


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"status": "tentative"},
        {"attendees": [{"email": "me@x", "self": True, "responseStatus": "needsAction"}]},
        {"attendees": [{"email": "me@x", "self": True, "responseStatus": "tentative"}]},
        {"attendees": [{"email": "me@x", "self": True, "responseStatus": "accepted"}]},
        # Someone else declining does not free the user.
        {"attendees": [{"email": "other@x", "responseStatus": "declined"}]},
        {"eventType": "outOfOffice"},
        {"eventType": "focusTime"},
        {"eventType": "fromGmail"},
        {"transparency": "opaque"},
    ],
)
def test_events_that_block(fields: dict[str, Any]) -> None:
    assert blocks(timed("e1", *SOON, **fields))


def test_a_busy_block_never_blocks_whatever_its_title() -> None:
    event = timed(
        "e1",
        *SOON,
        summary="Real meeting",
        extendedProperties={"private": {"calsync": "busy-block"}},
    )
    assert not blocks(event)


def test_a_block_titled_busy_without_the_mark_is_a_user_event_and_blocks() -> None:
    assert blocks(timed("e1", *SOON, summary="Busy"))


def test_a_deleted_event_never_blocks() -> None:
    source = calendar(1)
    event = source_event(1, timed("e1", *SOON), is_deleted=True)
    assert not is_blocking(event, source, WINDOW)


def test_all_day_events_block_only_when_the_source_includes_them() -> None:
    event = all_day("e1", "2024-06-11", "2024-06-12")
    assert not blocks(event, calendar(1))
    assert blocks(event, calendar(1, include_all_day=True))
    assert not blocks({**event, "transparency": "transparent"}, calendar(1, include_all_day=True))


def test_events_of_a_target_only_calendar_do_not_block() -> None:
    assert not blocks(timed("e1", *SOON), calendar(1, role=CalendarRole.TARGET))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-06-09T10:00:00Z", "2024-06-09T11:00:00Z", False),  # yesterday
        ("2024-06-09T23:00:00Z", "2024-06-10T00:00:00Z", False),  # ends as the window starts
        ("2024-06-09T23:00:00Z", "2024-06-10T00:30:00Z", True),  # straddles the start
        ("2024-06-10T01:00:00Z", "2024-06-10T02:00:00Z", True),  # earlier today: still in
        ("2024-09-07T23:00:00Z", "2024-09-08T01:00:00Z", True),  # straddles the end
        ("2024-09-08T00:00:00Z", "2024-09-08T01:00:00Z", False),  # starts as the window ends
    ],
)
def test_events_block_only_when_they_overlap_the_window(
    start: str, end: str, expected: bool
) -> None:
    assert blocks(timed("e1", start, end)) is expected


def test_a_cancelled_stub_without_times_does_not_block() -> None:
    assert not blocks({"id": "e1", "status": "cancelled"})


# The window


def test_the_window_runs_from_local_midnight_today_for_horizon_days() -> None:
    assert sync_window(NOW, "UTC", 90) == (
        datetime(2024, 6, 10, tzinfo=UTC),
        datetime(2024, 9, 8, tzinfo=UTC),
    )
    # 08:00 UTC is 04:00 in New York: today there began at 04:00 UTC.
    assert sync_window(NOW, "America/New_York", 1) == (
        datetime(2024, 6, 10, 4, tzinfo=UTC),
        datetime(2024, 6, 11, 4, tzinfo=UTC),
    )


def test_the_window_starts_at_local_midnight_across_a_spring_dst_change() -> None:
    # Berlin goes to summer time at 01:00 UTC on 31 March 2024: that day lasts 23 hours.
    now = datetime(2024, 3, 31, 10, 0, tzinfo=UTC)

    start, end = sync_window(now, "Europe/Berlin", 1)

    assert start == datetime(2024, 3, 30, 23, 0, tzinfo=UTC)
    assert end == datetime(2024, 3, 31, 22, 0, tzinfo=UTC)


def test_the_window_follows_local_days_across_an_autumn_dst_change() -> None:
    # New York falls back on 3 November 2024: local midnight moves from UTC-4 to UTC-5.
    now = datetime(2024, 11, 2, 3, 30, tzinfo=UTC)  # still 1 November, 23:30 local

    start, end = sync_window(now, "America/New_York", 3)

    assert start == datetime(2024, 11, 1, 4, 0, tzinfo=UTC)
    assert end == datetime(2024, 11, 4, 5, 0, tzinfo=UTC)


def test_the_window_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        sync_window(datetime(2024, 6, 10), "UTC", 90)


def test_an_event_across_a_dst_change_gets_a_block_with_the_same_local_times() -> None:
    source, target = calendar(1), calendar(2)
    event = timed("e1", "2024-03-31T01:30:00", "2024-03-31T03:30:00", "Europe/Berlin")

    result = plan_busy_blocks(
        [source, target],
        [source_event(1, event, calendar_time_zone="Europe/Berlin")],
        [],
        now=datetime(2024, 3, 30, 12, tzinfo=UTC),
        time_zone="Europe/Berlin",
        horizon_days=2,
        block_id=google_ids,
    )

    (block,) = result.creates
    assert block.start == when({"dateTime": "2024-03-31T01:30:00", "timeZone": "Europe/Berlin"})
    assert block.end == when({"dateTime": "2024-03-31T03:30:00", "timeZone": "Europe/Berlin"})
    assert block.end_at - block.start_at == timedelta(hours=1)


# What a busy block looks like


def test_a_private_source_puts_nothing_of_the_event_into_the_block() -> None:
    event = timed(
        "e1",
        "2024-06-10T10:00:00+02:00",
        "2024-06-10T11:00:00+02:00",
        "Europe/Berlin",
        summary="Salary talk",
        description="secret",
        location="Room 1",
        attendees=[{"email": "boss@example.com"}],
        hangoutLink="https://meet.example.com/x",
        conferenceData={"entryPoints": []},
        visibility="public",
        reminders={"useDefault": True},
    )

    (block,) = plan([calendar(1), calendar(2)], [source_event(1, event)]).creates

    key = source_key(calendar(1), "e1")
    assert resource(block) == {
        "id": block_event_id(calendar(2), key),
        "summary": "Busy",
        "start": {"dateTime": "2024-06-10T10:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-06-10T11:00:00+02:00", "timeZone": "Europe/Berlin"},
        "transparency": "opaque",
        "visibility": "private",
        "status": "confirmed",
        "reminders": {"useDefault": False, "overrides": []},
        "attendees": [],
        "extendedProperties": {"private": {"calsync": "busy-block", "calsync_source": key}},
    }
    assert patch_body(block) == {k: v for k, v in resource(block).items() if k != "id"}
    assert block.source_key == key
    assert block.source_provider_event_id == "e1"


def test_a_titled_source_shows_busy_and_the_title_only() -> None:
    source = calendar(1, busy_title=BusyTitle.TITLE)
    event = timed("e1", *SOON, summary="Dentist", description="secret", location="Main St")

    (block,) = plan([source, calendar(2)], [source_event(1, event)]).creates

    assert block.summary == "Busy - Dentist"
    assert "description" not in resource(block)
    assert "location" not in resource(block)


@pytest.mark.parametrize("summary", [None, "", "   "])
def test_a_titled_source_without_a_title_shows_busy(summary: str | None) -> None:
    source = calendar(1, busy_title=BusyTitle.TITLE)
    event = timed("e1", *SOON, summary=summary)

    (block,) = plan([source, calendar(2)], [source_event(1, event)]).creates

    assert block.summary == "Busy"


def test_an_all_day_event_gives_an_all_day_block() -> None:
    source = calendar(1, include_all_day=True)
    event = all_day("e1", "2024-06-11", "2024-06-13")

    (block,) = plan([source, calendar(2)], [source_event(1, event)]).creates

    assert resource(block)["start"] == {"date": "2024-06-11"}
    assert resource(block)["end"] == {"date": "2024-06-13"}


def test_a_block_does_not_share_the_sources_dicts() -> None:
    (block,) = plan([calendar(1), calendar(2)], [source_event(1, timed("e1", *SOON))]).creates

    resource(block)["start"]["dateTime"] = "changed"

    assert block.start == when({"dateTime": SOON[0]})


# Who gets blocks


def test_each_blocking_event_gets_one_block_in_every_other_calendar() -> None:
    calendars = [calendar(1), calendar(2), calendar(3)]
    events = [source_event(1, timed("a", *SOON)), source_event(2, timed("b", *SOON))]

    creates = plan(calendars, events).creates

    pairs = sorted((b.source_calendar_id, b.target_calendar_id) for b in creates)
    assert pairs == [(1, 2), (1, 3), (2, 1), (2, 3)]


@pytest.mark.parametrize(
    "target",
    [
        calendar(2, sync_enabled=False),
        calendar(2, role=CalendarRole.SOURCE),
        calendar(2, read_only=True),
        calendar(2, account_active=False),
        calendar(2, user_id=2),
    ],
    ids=["disabled", "source-only", "read-only", "needs-reauth", "other-user"],
)
def test_calendars_that_get_no_block(target: CalendarView) -> None:
    assert plan([calendar(1), target], [source_event(1, timed("e1", *SOON))]).is_empty


@pytest.mark.parametrize(
    "source",
    [
        calendar(1, sync_enabled=False),
        calendar(1, role=CalendarRole.TARGET),
        calendar(1, account_active=False),
    ],
    ids=["disabled", "target-only", "needs-reauth"],
)
def test_calendars_that_give_no_block(source: CalendarView) -> None:
    assert plan([source, calendar(2)], [source_event(1, timed("e1", *SOON))]).is_empty


def test_the_same_invitation_in_two_calendars_gives_a_block_per_copy() -> None:
    # Invited twice (once per address): each copy is its own source instance.
    calendars = [calendar(1), calendar(2)]
    events = [source_event(1, timed("same", *SOON)), source_event(2, timed("same", *SOON))]

    creates = plan(calendars, events).creates

    assert len({b.source_key for b in creates}) == 2


# Ids


def test_block_ids_are_base32hex_of_32_characters() -> None:
    key = source_key(calendar(1), "e1")
    assert re.fullmatch(r"[a-v0-9]{32}", block_event_id(calendar(2), key))


def test_block_ids_and_source_keys_are_deterministic_and_distinct() -> None:
    key = source_key(calendar(1), "e1")
    assert key == source_key(calendar(1), "e1")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key != source_key(calendar(2), "e1")
    assert key != source_key(calendar(1), "e2")
    assert block_event_id(calendar(2), key) == block_event_id(calendar(2), key)
    assert block_event_id(calendar(2), key) != block_event_id(calendar(3), key)
    assert block_event_id(calendar(2), key) != block_event_id(
        calendar(2), source_key(calendar(1), "e2")
    )


def test_the_source_key_does_not_depend_on_the_title() -> None:
    calendars = [calendar(1), calendar(2)]
    first = plan(calendars, [source_event(1, timed("e1", *SOON, summary="A"))]).creates
    second = plan(calendars, [source_event(1, timed("e1", *SOON, summary="B"))]).creates
    assert first[0].source_key == second[0].source_key
    assert first[0].provider_event_id == second[0].provider_event_id


# Existing blocks


def wanted_block(event: dict[str, Any] | None = None) -> DesiredBlock:
    (block,) = plan(
        [calendar(1), calendar(2)], [source_event(1, event or timed("e1", *SOON))]
    ).creates
    return block


CALENDARS = [calendar(1), calendar(2)]


def test_a_correct_block_needs_nothing() -> None:
    block = wanted_block()
    assert plan(CALENDARS, [source_event(1, timed("e1", *SOON))], [as_existing(block)]).is_empty


def test_a_block_whose_offset_the_provider_rewrote_is_still_correct() -> None:
    block = wanted_block()
    rewritten = as_existing(block, start=when({"dateTime": "2024-06-10T12:00:00+02:00"}))
    assert plan(CALENDARS, [source_event(1, timed("e1", *SOON))], [rewritten]).is_empty


def test_a_moved_or_retitled_source_patches_its_block() -> None:
    old = as_existing(wanted_block())
    moved = timed("e1", "2024-06-10T12:00:00Z", "2024-06-10T13:00:00Z")

    result = plan(CALENDARS, [source_event(1, moved)], [old])

    ((existing, desired),) = result.patches
    assert existing is old
    assert desired.start == when({"dateTime": "2024-06-10T12:00:00Z"})
    assert not result.creates
    assert not result.deletes


def test_a_deleted_or_freed_source_deletes_its_block() -> None:
    old = as_existing(wanted_block())
    for event in [
        source_event(1, {"id": "e1", "status": "cancelled"}),
        source_event(1, timed("e1", *SOON, transparency="transparent")),
        source_event(1, timed("e1", *SOON), is_deleted=True),
    ]:
        assert plan(CALENDARS, [event], [old]).deletes == (old,)


def test_an_orphan_block_is_deleted() -> None:
    old = as_existing(wanted_block())
    assert plan(CALENDARS, [], [old]).deletes == (old,)


def test_a_user_modified_block_is_preserved_not_patched_nor_deleted() -> None:
    edited = as_existing(wanted_block(), summary="Lunch", user_modified=True)
    moved = timed("e1", "2024-06-10T12:00:00Z", "2024-06-10T13:00:00Z")

    for events in ([source_event(1, moved)], []):
        result = plan(CALENDARS, events, [edited])
        assert result.is_empty
        assert result.preserved == (edited,)


def test_a_block_the_user_deleted_stays_deleted_while_the_source_is_unchanged() -> None:
    tombstone = as_existing(wanted_block(), user_deleted=True)
    assert plan(CALENDARS, [source_event(1, timed("e1", *SOON))], [tombstone]).is_empty


def test_a_changed_source_brings_a_deleted_block_back_as_a_create() -> None:
    tombstone = as_existing(wanted_block(), user_deleted=True)
    moved = timed("e1", "2024-06-10T12:00:00Z", "2024-06-10T13:00:00Z")

    result = plan(CALENDARS, [source_event(1, moved)], [tombstone])

    (fresh,) = result.creates
    assert fresh.provider_event_id == tombstone.provider_event_id
    assert resource(fresh)["status"] == "confirmed"


def test_blocks_that_ended_are_history() -> None:
    past = timed("e1", "2024-06-09T10:00:00Z", "2024-06-09T11:00:00Z")
    old = as_existing(
        wanted_block(timed("e1", *SOON)),
        start=when(past["start"]),
        end=when(past["end"]),
        end_at=datetime(2024, 6, 9, 11, tzinfo=UTC),
    )
    # Its source is gone or out of the window: the block stays as it is.
    assert plan(CALENDARS, [], [old]).is_empty
    assert plan(CALENDARS, [source_event(1, past)], [old]).is_empty


def test_an_ended_block_is_not_rewritten_for_an_ended_source() -> None:
    earlier_today = timed("e1", "2024-06-10T06:00:00Z", "2024-06-10T07:00:00Z")
    block = wanted_block(earlier_today)
    ended = as_existing(block, summary="Busy - old title")
    assert plan(CALENDARS, [source_event(1, earlier_today)], [ended]).is_empty


def test_an_ended_block_whose_source_moved_ahead_is_patched() -> None:
    # Yesterday's meeting moved to today: the block (same deterministic id) must follow it.
    block = wanted_block()
    yesterday = timed("e1", "2024-06-09T10:00:00Z", "2024-06-09T11:00:00Z")
    ended = as_existing(
        block,
        start=when(yesterday["start"]),
        end=when(yesterday["end"]),
        end_at=datetime(2024, 6, 9, 11, tzinfo=UTC),
    )

    result = plan(CALENDARS, [source_event(1, timed("e1", *SOON))], [ended])

    assert [pair[0] for pair in result.patches] == [ended]


def test_an_ended_block_without_end_at_is_read_from_its_end() -> None:
    yesterday = timed("e1", "2024-06-09T10:00:00Z", "2024-06-09T11:00:00Z")
    ended = as_existing(
        wanted_block(), start=when(yesterday["start"]), end=when(yesterday["end"]), end_at=None
    )
    assert plan(CALENDARS, [], [ended]).is_empty


def test_an_all_day_block_lasts_until_its_day_ends_in_the_target_calendar() -> None:
    # 08:00 UTC is still the evening before in Honolulu: the block of yesterday's all-day
    # event (yesterday in UTC, where its source read it) still shows there as today's, so
    # once its event is gone it goes too; it is history only when the day is over there.
    source = calendar(1, include_all_day=True)
    target = dataclasses.replace(calendar(2), time_zone="Pacific/Honolulu")
    (block,) = plan(
        [source, target], [source_event(1, all_day("e1", "2024-06-10", "2024-06-11"))]
    ).creates
    yesterday = as_existing(
        block,
        start=when({"date": "2024-06-09"}),
        end=when({"date": "2024-06-10"}),
        end_at=datetime(2024, 6, 10, tzinfo=UTC),  # midnight in the source's zone
    )

    assert plan([source, target], [], [yesterday]).deletes == (yesterday,)
    over_there = plan_busy_blocks(
        [source, target],
        [],
        [yesterday],
        now=datetime(2024, 6, 10, 10, tzinfo=UTC),  # midnight in Honolulu
        time_zone="UTC",
        horizon_days=90,
        block_id=google_ids,
    )
    assert over_there.is_empty


def test_an_all_day_blocks_instants_are_its_days_in_the_target_calendar() -> None:
    # What the block is stored, held and purged by: 2024-06-10 in Honolulu, not in UTC.
    source = calendar(1, include_all_day=True)
    target = dataclasses.replace(calendar(2), time_zone="Pacific/Honolulu")
    (block,) = plan(
        [source, target], [source_event(1, all_day("e1", "2024-06-10", "2024-06-11"))]
    ).creates
    assert (block.start_at, block.end_at) == (
        datetime(2024, 6, 10, 10, tzinfo=UTC),
        datetime(2024, 6, 11, 10, tzinfo=UTC),
    )


def test_a_lost_login_deletes_no_block() -> None:
    old = as_existing(wanted_block())
    calendars = [calendar(1, account_active=False), calendar(2)]
    assert plan(calendars, [source_event(1, timed("e1", *SOON))], [old]).is_empty
    assert plan(calendars, [], [old]).is_empty


@pytest.mark.parametrize(
    "calendars",
    [
        [calendar(1), calendar(2, read_only=True)],
        [calendar(1), calendar(2, account_active=False)],
    ],
    ids=["read-only", "needs-reauth"],
)
def test_blocks_calsync_cannot_write_are_left_alone(calendars: list[CalendarView]) -> None:
    old = as_existing(wanted_block())
    assert plan(calendars, [], [old]).is_empty


def test_turning_a_source_off_removes_the_blocks_it_sourced() -> None:
    old = as_existing(wanted_block())
    calendars = [calendar(1, sync_enabled=False), calendar(2)]
    assert plan(calendars, [source_event(1, timed("e1", *SOON))], [old]).deletes == (old,)


def test_turning_a_target_off_removes_its_blocks_unless_the_user_keeps_them() -> None:
    old = as_existing(wanted_block())
    events = [source_event(1, timed("e1", *SOON))]
    assert plan([calendar(1), calendar(2, sync_enabled=False)], events, [old]).deletes == (old,)
    kept = [calendar(1), calendar(2, sync_enabled=False, keep_blocks_when_off=True)]
    assert plan(kept, events, [old]).is_empty
    # The choice is about turning sync off: a calendar made a source loses its blocks all the same.
    made_source = [calendar(1), calendar(2, role=CalendarRole.SOURCE, keep_blocks_when_off=True)]
    assert plan(made_source, events, [old]).deletes == (old,)


def _ended_and_edited() -> list[ExistingBlock]:
    """A block that ended an hour ago, and one the user moved by hand: both in calendar 2."""
    past = timed("e1", "2024-06-10T06:00:00Z", "2024-06-10T07:00:00Z")
    ended = as_existing(wanted_block(past))
    edited = dataclasses.replace(as_existing(wanted_block(timed("e2", *SOON))), user_modified=True)
    return [ended, edited]


@pytest.mark.parametrize(
    "target",
    [calendar(2, sync_enabled=False), calendar(2, role=CalendarRole.SOURCE)],
    ids=["sync-off", "made-source"],
)
def test_a_calendar_that_stops_being_a_target_loses_every_block_past_ones_included(
    target: CalendarView,
) -> None:
    blocks_in_it = _ended_and_edited()
    events = [
        source_event(1, timed("e1", "2024-06-10T06:00:00Z", "2024-06-10T07:00:00Z")),
        source_event(1, timed("e2", *SOON)),
    ]
    for passed in (events, []):  # the sources still there, or gone
        result = plan([calendar(1), target], passed, blocks_in_it)
        assert sorted(result.deletes, key=lambda b: b.source_key) == sorted(
            blocks_in_it, key=lambda b: b.source_key
        )
        assert not result.creates
        assert not result.patches
        assert not result.preserved


def test_a_target_that_stays_one_keeps_history_and_hand_edits() -> None:
    result = plan(CALENDARS, [], _ended_and_edited())
    assert not result.deletes
    assert [b.user_modified for b in result.preserved] == [True]


def test_a_block_sourced_from_a_block_is_deleted() -> None:
    block = wanted_block()
    looped = timed("e1", *SOON, extendedProperties={"private": {"calsync": "busy-block"}})
    assert plan(CALENDARS, [source_event(1, looped)], [as_existing(block)]).deletes


def test_a_block_across_users_is_deleted() -> None:
    block = as_existing(wanted_block())
    calendars = [calendar(1), calendar(2, user_id=2)]
    assert plan(calendars, [source_event(1, timed("e1", *SOON))], [block]).deletes == (block,)


def test_duplicates_keep_the_block_with_the_deterministic_id() -> None:
    block = wanted_block()
    right = as_existing(block)
    copy = as_existing(block, provider_event_id="copy0000")

    result = plan(CALENDARS, [source_event(1, timed("e1", *SOON))], [copy, right])

    assert result.deletes == (copy,)
    assert not result.creates
    assert not result.patches


def test_a_wrong_block_with_another_id_is_patched_under_its_own_id() -> None:
    old = as_existing(wanted_block(), provider_event_id="legacy00", summary="Busy - leak")

    ((existing, desired),) = plan(CALENDARS, [source_event(1, timed("e1", *SOON))], [old]).patches

    assert existing.provider_event_id == "legacy00"
    assert desired.summary == "Busy"


def test_plans_are_ordered_whatever_the_input_order() -> None:
    calendars = [calendar(i) for i in (3, 1, 2)]
    events = [source_event(c, timed(f"e{i}", *SOON)) for c in (2, 1, 3) for i in range(3)]

    first = plan(calendars, events)
    second = plan(list(reversed(calendars)), list(reversed(events)))

    assert first == second
    assert [(b.target_calendar_id, b.source_key) for b in first.creates] == sorted(
        (b.target_calendar_id, b.source_key) for b in first.creates
    )


def test_unknown_calendars_and_twice_passed_events_are_refused() -> None:
    with pytest.raises(ValueError, match="calendar 9"):
        plan(CALENDARS, [source_event(9, timed("e1", *SOON))])
    with pytest.raises(ValueError, match="twice"):
        plan(CALENDARS, [source_event(1, timed("e1", *SOON))] * 2)


SHARED = "team@group.calendar.google.com"


def test_one_calendar_through_two_accounts_is_one_calendar() -> None:
    # Calendars 2 and 3 are one Google calendar seen through two logins, both turned on:
    # calendar 2 (the lower id) speaks for it; the copy gives and receives nothing.
    calendars = [
        calendar(1),
        calendar(2, provider_calendar_id=SHARED),
        calendar(3, provider_calendar_id=SHARED),
    ]
    event = timed("e1", *SOON)
    events = [source_event(1, event), source_event(2, event), source_event(3, event)]

    result = plan(calendars, events)

    assert sorted((d.source_calendar_id, d.target_calendar_id) for d in result.creates) == [
        (1, 2),
        (2, 1),
    ]
    # Blocks seen through the copy are the same provider events as the first copy's: untouched.
    in_copy = as_existing(
        plan(
            [calendar(1), calendar(3, provider_calendar_id=SHARED)], [source_event(1, event)]
        ).creates[0]
    )
    assert in_copy.target_calendar_id == 3
    assert not plan(calendars, events, [in_copy]).deletes


def test_the_copy_that_is_on_speaks_for_the_calendar() -> None:
    calendars = [
        calendar(1),
        calendar(2, provider_calendar_id=SHARED, sync_enabled=False),
        calendar(3, provider_calendar_id=SHARED),
    ]
    event = timed("e1", *SOON)
    result = plan(calendars, [source_event(2, event), source_event(3, event)])
    assert [(d.source_calendar_id, d.target_calendar_id) for d in result.creates] == [(3, 1)]
