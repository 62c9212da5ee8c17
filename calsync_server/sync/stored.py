"""The one codec between calsync's types and the event and busy_block rows' columns.

The JSON start/end columns hold an event time in calsync's own keys: ``{"day"}`` for an
all-day date, ``{"instant", "zone"}`` for an aware instant and the zone its provider named.
(Rows once held Google's keys, from when they kept Google's objects whole; the migration
event_time_keys renamed them and re-hashed the block fingerprints taken over them.) The kind,
answer and transparency columns keep the words they always had. Nothing else knows these keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync_server.providers.model import EventKind, EventTime, Response

_DAY, _INSTANT, _ZONE = "day", "instant", "zone"

_KIND_WORDS = {
    EventKind.DEFAULT: "default",
    EventKind.OUT_OF_OFFICE: "outOfOffice",
    EventKind.FOCUS_TIME: "focusTime",
    EventKind.WORKING_ELSEWHERE: "workingLocation",
    EventKind.BIRTHDAY: "birthday",
}
_KINDS = {word: kind for kind, word in _KIND_WORDS.items()}
_RESPONSE_WORDS = {
    Response.NEEDS_ACTION: "needsAction",
    Response.TENTATIVE: "tentative",
    Response.ACCEPTED: "accepted",
    Response.DECLINED: "declined",
}
_RESPONSES = {word: response for response, word in _RESPONSE_WORDS.items()}
CANCELLED = "cancelled"
CONFIRMED = "confirmed"
TRANSPARENT = "transparent"
OPAQUE = "opaque"


def encode_time(moment: EventTime) -> dict[str, str]:
    """An event time as the start/end column holds it: the instant with its own offset."""
    if moment.day is not None:
        return {_DAY: moment.day.isoformat()}
    assert moment.instant is not None
    text = moment.instant.isoformat()
    # UTC as "Z", as providers write it (RFC 3339): the text rows always held.
    encoded = {_INSTANT: text[:-6] + "Z" if text.endswith("+00:00") else text}
    if moment.zone:
        encoded[_ZONE] = moment.zone
    return encoded


def decode_time(value: Any, default_zone: str = "UTC") -> EventTime | None:
    """A start/end column's object as an event time; None when absent or unreadable. A
    wall-clock time without an offset is read in its zone, else in ``default_zone``."""
    if not isinstance(value, Mapping):
        return None
    zone = str(value[_ZONE]) if value.get(_ZONE) else None
    try:
        if value.get(_INSTANT):
            moment = datetime.fromisoformat(str(value[_INSTANT]))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(zone or default_zone))
            return EventTime.at(moment, zone)
        if value.get(_DAY):
            return EventTime.on(date.fromisoformat(str(value[_DAY])))
    except (ValueError, ZoneInfoNotFoundError):
        return None
    return None


def fingerprint(
    summary: str, start: Mapping[str, Any] | None, end: Mapping[str, Any] | None
) -> str:
    """Hash of what a block shows (its start/end in the column's shape)."""
    shown = json.dumps([summary, start, end], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(shown.encode()).hexdigest()


def is_all_day(value: Mapping[str, Any] | None) -> bool:
    """Whether a start/end column holds an all-day date."""
    return bool(value) and _DAY in (value or {})


def kind_word(kind: EventKind) -> str:
    return _KIND_WORDS[kind]


def kind_of(word: str | None) -> EventKind:
    return _KINDS.get(word or "", EventKind.DEFAULT)


def response_word(response: Response) -> str | None:
    return _RESPONSE_WORDS.get(response)


def response_of(word: str | None) -> Response:
    return _RESPONSES.get(word or "", Response.NONE)
