"""The rows' codec: calsync's times in the start/end columns as they always were, and the
fingerprints of rows written before the engine spoke calsync's types carried over."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from calsync_server.providers.model import EventTime
from calsync_server.sync import stored
from calsync_server.sync.planner import block_fingerprint


def test_times_read_and_write_the_shape_the_columns_hold() -> None:
    berlin = {"dateTime": "2024-06-10T10:00:00+02:00", "timeZone": "Europe/Berlin"}
    moment = stored.decode_time(berlin)
    assert moment == EventTime.at(datetime(2024, 6, 10, 8, tzinfo=UTC), "Europe/Berlin")
    assert stored.encode_time(moment) == berlin
    assert stored.encode_time(EventTime.on(date(2024, 6, 10))) == {"date": "2024-06-10"}
    utc = stored.encode_time(EventTime.at(datetime(2024, 6, 10, 8, tzinfo=timezone(timedelta()))))
    assert utc == {"dateTime": "2024-06-10T08:00:00Z"}


def test_a_wall_clock_time_is_read_in_its_zone_else_the_calendars() -> None:
    local = stored.decode_time({"dateTime": "2024-06-10T10:00:00"}, "Europe/Berlin")
    assert local is not None
    assert local.to_utc() == datetime(2024, 6, 10, 8, tzinfo=UTC)
    assert stored.decode_time({"summary": "no time"}) is None
    assert stored.decode_time({"dateTime": "tomorrow"}) is None


def test_a_fingerprint_hashed_over_older_text_is_carried_over() -> None:
    """A block row from before (its start/end as Google wrote them, in local time with a
    zone) keeps matching its unchanged source, so a block deleted by hand stays deleted."""
    start = {"dateTime": "2024-06-10T10:00:00", "timeZone": "Europe/Berlin"}
    end = {"dateTime": "2024-06-10T11:00:00", "timeZone": "Europe/Berlin"}
    old = stored.fingerprint("Busy", start, end)
    begins, ends = stored.decode_time(start), stored.decode_time(end)
    assert begins is not None
    assert ends is not None
    now = block_fingerprint("Busy", begins, ends)
    assert old != now  # the text differs ...
    assert stored.carried_fingerprint(old, "Busy", start, end) == now  # ... the meaning not
    # A fingerprint that is not the hash of its own row (the source changed since) stays.
    assert stored.carried_fingerprint("other", "Busy", start, end) == "other"
