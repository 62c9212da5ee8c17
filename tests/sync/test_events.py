"""Parsing Google event resources into EventSnapshots: times, all-day, cancelled items, marks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from calsync_server.sync.events import EventSnapshot, instant_of, shows_same_time
from tests.sync.builders import all_day, timed


def test_timed_event_with_an_offset_keeps_google_start_and_gives_utc_instants() -> None:
    resource = timed("e1", "2024-06-10T10:00:00+02:00", "2024-06-10T11:30:00+02:00")

    snapshot = EventSnapshot.from_google(resource, "America/New_York")

    assert snapshot.start == {"dateTime": "2024-06-10T10:00:00+02:00"}
    assert snapshot.start_at == datetime(2024, 6, 10, 8, 0, tzinfo=UTC)
    assert snapshot.end_at == datetime(2024, 6, 10, 9, 30, tzinfo=UTC)
    assert snapshot.all_day is False


def test_a_local_date_time_is_read_in_its_own_time_zone_not_the_calendars() -> None:
    # 10 March 2024 is the first day of daylight saving time in New York (UTC-4).
    resource = timed("e1", "2024-03-10T09:00:00", "2024-03-10T10:00:00", "America/New_York")

    snapshot = EventSnapshot.from_google(resource, "Europe/Berlin")

    assert snapshot.start == {"dateTime": "2024-03-10T09:00:00", "timeZone": "America/New_York"}
    assert snapshot.start_at == datetime(2024, 3, 10, 13, 0, tzinfo=UTC)


def test_an_offset_wins_over_the_time_zone() -> None:
    resource = timed("e1", "2024-06-10T10:00:00Z", "2024-06-10T11:00:00Z", "Asia/Tokyo")

    assert EventSnapshot.from_google(resource, "UTC").start_at == datetime(
        2024, 6, 10, 10, tzinfo=UTC
    )


def test_a_local_date_time_without_time_zone_is_read_in_the_calendars() -> None:
    resource = timed("e1", "2024-01-15T09:00:00", "2024-01-15T10:00:00")

    snapshot = EventSnapshot.from_google(resource, "Europe/Berlin")

    assert snapshot.start_at == datetime(2024, 1, 15, 8, 0, tzinfo=UTC)


def test_an_event_across_a_dst_change_lasts_its_real_length() -> None:
    # 01:30 CET to 03:30 CEST on 31 March 2024 is one hour, not two.
    resource = timed("e1", "2024-03-31T01:30:00", "2024-03-31T03:30:00", "Europe/Berlin")

    snapshot = EventSnapshot.from_google(resource, "UTC")

    assert snapshot.start_at is not None
    assert snapshot.end_at is not None
    assert (snapshot.end_at - snapshot.start_at).total_seconds() == 3600


def test_all_day_events_end_exclusive_at_midnight_in_the_calendars_time_zone() -> None:
    snapshot = EventSnapshot.from_google(all_day("e1", "2024-03-31", "2024-04-01"), "Europe/Berlin")

    assert snapshot.all_day is True
    assert snapshot.start == {"date": "2024-03-31"}
    assert snapshot.start_at == datetime(2024, 3, 30, 23, 0, tzinfo=UTC)
    # The clocks went forward that day: the day is 23 hours long.
    assert snapshot.end_at == datetime(2024, 3, 31, 22, 0, tzinfo=UTC)


def test_missing_fields_default_as_google_defaults_them() -> None:
    snapshot = EventSnapshot.from_google(
        timed("e1", "2024-06-10T10:00:00Z", "2024-06-10T11:00:00Z"), "UTC"
    )

    assert snapshot.status == "confirmed"
    assert snapshot.transparency == "opaque"
    assert snapshot.event_type == "default"
    assert snapshot.self_response_status is None
    assert snapshot.is_busy_block is False
    assert snapshot.block_source_key is None
    assert snapshot.recurring_event_id is None
    assert snapshot.updated is None


def test_a_cancelled_item_may_carry_only_its_id() -> None:
    snapshot = EventSnapshot.from_google({"id": "gone", "status": "cancelled"}, "UTC")

    assert snapshot.status == "cancelled"
    assert (snapshot.start, snapshot.end, snapshot.start_at, snapshot.end_at) == (None,) * 4
    assert snapshot.summary is None
    assert snapshot.all_day is False


def test_a_cancelled_exception_of_a_series_keeps_its_series_id() -> None:
    resource = {
        "id": "series_20240611T090000Z",
        "status": "cancelled",
        "recurringEventId": "series",
        "originalStartTime": {"dateTime": "2024-06-11T09:00:00Z"},
    }

    snapshot = EventSnapshot.from_google(resource, "UTC")

    assert snapshot.recurring_event_id == "series"
    assert snapshot.start_at is None


def test_the_self_attendee_gives_the_response_status() -> None:
    resource = timed(
        "e1",
        "2024-06-10T10:00:00Z",
        "2024-06-10T11:00:00Z",
        attendees=[
            {"email": "boss@example.com", "responseStatus": "accepted", "organizer": True},
            {"email": "me@example.com", "self": True, "responseStatus": "declined"},
        ],
    )

    assert EventSnapshot.from_google(resource, "UTC").self_response_status == "declined"


def test_calsyncs_mark_and_source_key_come_from_private_extended_properties() -> None:
    resource = timed(
        "b1",
        "2024-06-10T10:00:00Z",
        "2024-06-10T11:00:00Z",
        etag='"3181"',
        updated="2024-06-01T12:00:00.123Z",
        extendedProperties={"private": {"calsync": "busy-block", "calsync_source": "abc"}},
    )

    snapshot = EventSnapshot.from_google(resource, "UTC")

    assert snapshot.is_busy_block is True
    assert snapshot.block_source_key == "abc"
    assert snapshot.etag == '"3181"'
    assert snapshot.updated == datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_a_shared_extended_property_is_not_calsyncs_mark() -> None:
    resource = timed(
        "e1",
        "2024-06-10T10:00:00Z",
        "2024-06-10T11:00:00Z",
        extendedProperties={"shared": {"calsync": "busy-block"}},
    )

    assert EventSnapshot.from_google(resource, "UTC").is_busy_block is False


def test_a_resource_without_id_is_refused() -> None:
    with pytest.raises(ValueError, match="id"):
        EventSnapshot.from_google({"status": "confirmed"}, "UTC")


def test_times_compare_as_instants_and_keep_a_wanted_time_zone() -> None:
    wanted = {"dateTime": "2024-06-10T10:00:00+02:00", "timeZone": "Europe/Berlin"}

    assert shows_same_time(
        {"dateTime": "2024-06-10T08:00:00Z", "timeZone": "Europe/Berlin"}, wanted
    )
    assert not shows_same_time({"dateTime": "2024-06-10T08:00:00Z"}, wanted)
    assert not shows_same_time(
        {"dateTime": "2024-06-10T09:00:00Z", "timeZone": "Europe/Berlin"}, wanted
    )
    # A zone the provider added to a time calsync wrote without one is fine.
    assert shows_same_time(
        {"dateTime": "2024-06-10T08:00:00Z", "timeZone": "UTC"},
        {"dateTime": "2024-06-10T10:00:00+02:00"},
    )
    assert not shows_same_time({"date": "2024-06-10"}, {"dateTime": "2024-06-10T00:00:00Z"})
    assert shows_same_time({"date": "2024-06-10"}, {"date": "2024-06-10"})
    assert instant_of(None, "UTC") is None
