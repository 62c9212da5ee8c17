"""The rows' codec: calsync's times in the start/end columns, in calsync's own keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from calsync_server.providers.model import EventTime
from calsync_server.sync import stored


def test_times_read_and_write_the_shape_the_columns_hold() -> None:
    berlin = {"instant": "2024-06-10T10:00:00+02:00", "zone": "Europe/Berlin"}
    moment = stored.decode_time(berlin)
    assert moment == EventTime.at(datetime(2024, 6, 10, 8, tzinfo=UTC), "Europe/Berlin")
    assert stored.encode_time(moment) == berlin
    day = stored.encode_time(EventTime.on(date(2024, 6, 10)))
    assert day == {"day": "2024-06-10"}
    assert stored.is_all_day(day)
    assert not stored.is_all_day(berlin)
    assert not stored.is_all_day(None)
    utc = stored.encode_time(EventTime.at(datetime(2024, 6, 10, 8, tzinfo=timezone(timedelta()))))
    assert utc == {"instant": "2024-06-10T08:00:00Z"}


def test_a_wall_clock_time_is_read_in_its_zone_else_the_calendars() -> None:
    local = stored.decode_time({"instant": "2024-06-10T10:00:00"}, "Europe/Berlin")
    assert local is not None
    assert local.to_utc() == datetime(2024, 6, 10, 8, tzinfo=UTC)
    zoned = stored.decode_time({"instant": "2024-06-10T10:00:00", "zone": "Asia/Tokyo"})
    assert zoned is not None
    assert zoned.to_utc() == datetime(2024, 6, 10, 1, tzinfo=UTC)
    assert stored.decode_time({"summary": "no time"}) is None
    assert stored.decode_time({"instant": "tomorrow"}) is None
    # Google's keys are not read: every row holds calsync's since the migration.
    assert stored.decode_time({"dateTime": "2024-06-10T08:00:00Z"}) is None
