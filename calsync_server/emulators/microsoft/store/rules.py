"""What Graph accepts in an event body (write rules): known and read-only properties, their
values, start and end with their zones, extended properties and attendees."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Any

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.store.model import NULL_TIME, EventRecord, Resource
from calsync_server.emulators.microsoft.zones import UnknownZone, windows_name, zone_info

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
SENSITIVITY = ("normal", "personal", "private", "confidential")
IMPORTANCE = ("low", "normal", "high")
RESPONSES = ("none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded")
# What a client may write; anything else is a property Graph does not know (400).
WRITABLE = frozenset(
    {
        "subject",
        "body",
        "start",
        "end",
        "isAllDay",
        "location",
        "locations",
        "showAs",
        "sensitivity",
        "importance",
        "categories",
        "isReminderOn",
        "reminderMinutesBeforeStart",
        "attendees",
        "recurrence",
        "isOnlineMeeting",
        "onlineMeetingProvider",
        "responseRequested",
        "allowNewTimeProposals",
        "hideAttendees",
        "transactionId",
        "singleValueExtendedProperties",
    }
)
# Server-owned properties: Graph ignores them in a request body; the admin API and scenario
# (trusted) may set the ones an invitation from someone else carries.
READ_ONLY = frozenset(
    {
        "@odata.etag",
        "@odata.context",
        "id",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "iCalUId",
        "webLink",
        "type",
        "seriesMasterId",
        "originalStart",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "hasAttachments",
        "bodyPreview",
        "onlineMeetingUrl",
        "isCancelled",
        "isOrganizer",
        "responseStatus",
        "organizer",
    }
)
EXTENDED_ID = re.compile(
    r"^(String|Integer|Boolean|SystemTime|Double|Binary|Long|Short|Float|Currency|CLSID)\s+"
    r"(\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}\s+"
    r"(Name\s+\S.*|Id\s+0x[0-9a-fA-F]+)|0x[0-9a-fA-F]{1,4})$"
)


def event_times(
    body: Resource, previous: EventRecord | None
) -> tuple[datetime, datetime, str, str, bool]:
    """Start, end (UTC), their zones and isAllDay, validated as Graph does."""
    all_day = bool(body.get("isAllDay", previous.is_all_day if previous else False))
    parsed: list[tuple[datetime, str]] = []
    for name in ("start", "end"):
        value = body.get(name)
        if value is None:
            if previous is None:
                raise errors.bad_request(
                    f"The '{name}' property is required.", "ErrorPropertyValidationFailure"
                )
            moment = previous.start if name == "start" else previous.end
            zone = previous.start_zone if name == "start" else previous.end_zone
            if previous.is_all_day:
                local = moment.replace(tzinfo=None)
            else:
                local = moment.astimezone(zone_info(zone)).replace(tzinfo=None)
            parsed.append((local, zone))
            continue
        if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
            raise errors.bad_request(f"Invalid '{name}': needs dateTime and timeZone.")
        zone = value.get("timeZone") or "UTC"
        try:
            zone_info(zone)
        except UnknownZone:
            raise errors.bad_request(
                f"A valid TimeZone value must be specified. The following TimeZone value is "
                f"not supported: '{zone}'.",
                "TimeZoneNotSupportedException",
            ) from None
        text = value["dateTime"]
        try:
            local = datetime.fromisoformat(text[:26] if len(text) > 26 else text)
        except ValueError:
            raise errors.bad_request(f"Invalid '{name}.dateTime': {text}") from None
        parsed.append((local.replace(tzinfo=None), zone))
    (start_local, start_zone), (end_local, end_zone) = parsed
    if all_day:
        midnight = time(0, 0)
        if (
            start_local.time() != midnight
            or end_local.time() != midnight
            or windows_name(start_zone) != windows_name(end_zone)
        ):
            raise errors.bad_request(
                "Your request can't be completed. If an event is marked as all-day, its "
                "start and end time must be set to midnight, and they must be in the same "
                "time zone.",
                "ErrorPropertyValidationFailure",
            )
        # All-day events float: stored as the dates, read the same in every zone.
        start = start_local.replace(tzinfo=UTC)
        end = end_local.replace(tzinfo=UTC)
    else:
        start = start_local.replace(tzinfo=zone_info(start_zone)).astimezone(UTC)
        end = end_local.replace(tzinfo=zone_info(end_zone)).astimezone(UTC)
    if end < start:
        raise errors.bad_request(
            "The end time of the event must be after its start time.",
            "ErrorPropertyValidationFailure",
        )
    return start, end, start_zone, end_zone, all_day


def check_fields(body: Resource, trusted: bool) -> None:
    for key in body:
        if key in WRITABLE or key in READ_ONLY or key.startswith("@odata"):
            continue
        raise errors.bad_request(
            f"The property '{key}' does not exist on type 'microsoft.graph.event'. Make sure "
            "to only use property names that are defined by the type.",
            "RequestBodyRead",
        )
    for key, allowed in (
        ("showAs", SHOW_AS),
        ("sensitivity", SENSITIVITY),
        ("importance", IMPORTANCE),
    ):
        if key in body and body[key] not in allowed:
            raise errors.bad_request(
                f"Cannot convert the literal '{body[key]}' to the expected type "
                f"'microsoft.graph.{key}'.",
                "RequestBodyRead",
            )
    response = body.get("responseStatus")
    if trusted and isinstance(response, dict) and response.get("response") not in RESPONSES:
        raise errors.bad_request("Invalid responseStatus.")


def read_extended(body: Resource, into: dict[str, str]) -> None:
    properties = body.get("singleValueExtendedProperties")
    if properties is None:
        return
    if not isinstance(properties, list):
        raise errors.bad_request("singleValueExtendedProperties must be a collection.")
    for entry in properties:
        if not isinstance(entry, dict):
            raise errors.bad_request("Invalid extended property.")
        key, value = entry.get("id"), entry.get("value")
        if not isinstance(key, str) or not EXTENDED_ID.match(key.strip()):
            raise errors.bad_request(
                f"The extended property id '{key}' is not valid.", "ErrorInvalidProperty"
            )
        if not isinstance(value, str):
            raise errors.bad_request("An extended property's value must be a string.")
        into[key.strip()] = value


def read_attendees(value: Any) -> list[Resource]:
    if not isinstance(value, list):
        raise errors.bad_request("attendees must be a collection.")
    attendees: list[Resource] = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), dict):
            raise errors.bad_request("An attendee needs an emailAddress.")
        attendees.append(
            {
                "type": entry.get("type", "required"),
                "status": entry.get("status") or {"response": "none", "time": NULL_TIME},
                "emailAddress": entry["emailAddress"],
            }
        )
    return attendees
