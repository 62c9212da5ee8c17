"""Echoes: calsync's own writes coming back are told apart from the user's edits of a block."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from calsync_server.providers.model import RemoteEvent
from calsync_server.sync.echoes import BlockChange, classify_block_change
from calsync_server.sync.planner import ExistingBlock
from tests.sync.builders import remote, when

MARK = {"private": {"calsync": "busy-block", "calsync_source": "key"}}
STORED = ExistingBlock(
    target_calendar_id=2,
    source_calendar_id=1,
    source_key="key",
    provider_event_id="b1",
    summary="Busy",
    start=when({"dateTime": "2024-06-10T10:00:00+02:00", "timeZone": "Europe/Berlin"}),
    end=when({"dateTime": "2024-06-10T11:00:00+02:00", "timeZone": "Europe/Berlin"}),
    etag='"1"',
)


def incoming(**changes: Any) -> RemoteEvent:
    resource: dict[str, Any] = {
        "id": "b1",
        "etag": '"2"',
        "status": "confirmed",
        "summary": "Busy",
        # Google answers in the calendar's offset, not the string calsync sent.
        "start": {"dateTime": "2024-06-10T08:00:00Z", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-06-10T09:00:00Z", "timeZone": "Europe/Berlin"},
        "transparency": "opaque",
        "visibility": "private",
        "extendedProperties": MARK,
        **changes,
    }
    return remote(resource, "Europe/Berlin")


def test_the_stored_etag_is_an_echo() -> None:
    assert classify_block_change(STORED, incoming(etag='"1"', summary="x")) is BlockChange.ECHO


def test_the_fields_calsync_wrote_are_an_echo_even_with_a_new_etag() -> None:
    assert classify_block_change(STORED, incoming()) is BlockChange.ECHO


def test_an_all_day_block_coming_back_is_an_echo() -> None:
    stored = dataclasses.replace(
        STORED, start=when({"date": "2024-06-10"}), end=when({"date": "2024-06-11"})
    )
    echo = incoming(start={"date": "2024-06-10"}, end={"date": "2024-06-11"})
    assert classify_block_change(stored, echo) is BlockChange.ECHO


@pytest.mark.parametrize(
    "changes",
    [
        {"summary": "Lunch"},
        {"start": {"dateTime": "2024-06-10T07:00:00Z", "timeZone": "Europe/Berlin"}},
        {"end": {"dateTime": "2024-06-10T09:30:00Z", "timeZone": "Europe/Berlin"}},
        {"start": {"date": "2024-06-10"}, "end": {"date": "2024-06-11"}},
        {"transparency": "transparent"},
        {"extendedProperties": {}},
    ],
    ids=["retitled", "moved", "lengthened", "made-all-day", "freed", "unmarked"],
)
def test_anything_calsync_did_not_write_is_a_user_modification(changes: dict[str, Any]) -> None:
    assert classify_block_change(STORED, incoming(**changes)) is BlockChange.USER_MODIFIED


def test_a_cancelled_block_was_deleted_by_the_user() -> None:
    gone = None  # the provider reports the block removed
    assert classify_block_change(STORED, gone) is BlockChange.USER_DELETED


def test_a_stored_block_without_etag_is_compared_by_its_fields() -> None:
    stored = dataclasses.replace(STORED, etag=None)
    assert classify_block_change(stored, incoming(etag=None)) is BlockChange.ECHO
    assert classify_block_change(stored, incoming(etag=None, summary="x")) is (
        BlockChange.USER_MODIFIED
    )


def test_another_event_is_refused() -> None:
    with pytest.raises(ValueError, match="not the stored block"):
        classify_block_change(STORED, incoming(id="other"))
