"""What Google accepts as an event and what it makes of it (write rules), and the writes:
insert, update, patch and delete, each a new stored version in the calendar's change log."""

from __future__ import annotations

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.recurrence import (
    Series,
    format_timestamp,
    parse_event_time,
    parse_series,
)
from calsync_server.emulators.google.store.lists import ListStore
from calsync_server.emulators.google.store.model import (
    EVENT_ID,
    EVENT_TYPES,
    PATCH_REPLACES,
    SERVER_FIELDS,
    Calendar,
    Resource,
    StoredEvent,
    base32hex_id,
    public_copy,
)


class Store(ListStore):
    """All the emulator's state: calendars, accounts, events, lists and the writes to them."""

    def _build(
        self,
        calendar: Calendar,
        body: Resource,
        event_id: str,
        previous: StoredEvent | None,
        author: str,
        trusted: bool,
    ) -> StoredEvent:
        """A new stored version of an event from a full client body (insert, update, or a
        patch already merged into the previous body)."""
        now = self.now()
        resource: Resource = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        status = resource.get("status") or "confirmed"
        if status not in ("confirmed", "tentative", "cancelled"):
            raise errors.invalid("Invalid value for: status")
        event_type = resource.get("eventType") or "default"
        if event_type not in EVENT_TYPES:
            raise errors.invalid("Invalid event type.")
        if previous is not None:
            before = previous.resource.get("eventType", "default")
            if event_type != before:
                raise errors.GoogleError(
                    400, "eventTypeRestriction", "The event type cannot be changed."
                )
        if resource.get("transparency") not in (None, "opaque", "transparent"):
            raise errors.invalid("Invalid value for: transparency")
        if resource.get("visibility") not in (None, "default", "public", "private", "confidential"):
            raise errors.invalid("Invalid value for: visibility")
        start = parse_event_time(resource.get("start"), calendar.time_zone, "start")
        end = parse_event_time(resource.get("end"), calendar.time_zone, "end")
        if start.all_day != end.all_day:
            raise errors.bad_request(
                "Start and end times must either both be date or both be dateTime."
            )
        if end.instant < start.instant or (start.all_day and end.instant == start.instant):
            raise errors.GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
        series: Series | None = None
        if resource.get("recurrence"):
            if not isinstance(resource["recurrence"], list):
                raise errors.invalid("Invalid recurrence rule.")
            series = parse_series(resource["recurrence"], start, end)
        if event_type == "workingLocation":
            # Working location is always public and free, whatever the client sent.
            resource["visibility"] = "public"
            resource["transparency"] = "transparent"
        attendees = resource.get("attendees")
        if attendees is not None:
            if not isinstance(attendees, list):
                raise errors.invalid("Invalid attendees.")
            marked = []
            for attendee in attendees:
                if not isinstance(attendee, dict) or not attendee.get("email"):
                    raise errors.required("Missing attendee email.")
                entry = {k: v for k, v in attendee.items() if k != "self"}
                entry.setdefault("responseStatus", "needsAction")
                if str(entry["email"]).lower() == calendar.id.lower():
                    entry["self"] = True
                marked.append(entry)
            resource["attendees"] = marked
        organizer: Resource = {"email": calendar.id, "displayName": calendar.summary, "self": True}
        if trusted and isinstance(body.get("organizer"), dict):
            organizer = dict(body["organizer"])
            if organizer.get("email") == calendar.id:
                organizer["self"] = True
        elif previous is not None:
            organizer = previous.resource.get("organizer", organizer)
        sequence = int(resource.get("sequence") or 0)
        if previous is not None:
            sequence = int(previous.resource.get("sequence", 0))
            if (previous.start, previous.end, previous.resource.get("recurrence")) != (
                start,
                end,
                resource.get("recurrence"),
            ):
                sequence += 1
            for key in ("recurringEventId", "originalStartTime"):
                if key in previous.resource:
                    resource[key] = previous.resource[key]
        creator = previous.resource["creator"] if previous is not None else {"email": author}
        if trusted and isinstance(body.get("creator"), dict):
            creator = body["creator"]
        created = previous.resource["created"] if previous is not None else format_timestamp(now)
        resource.update(
            kind="calendar#event",
            etag=self._etag(),
            id=event_id,
            status=status,
            htmlLink=f"https://www.google.com/calendar/event?eid={event_id}",
            created=created,
            updated=format_timestamp(now),
            creator=creator,
            organizer=organizer,
            iCalUID=resource.get("iCalUID")
            or (previous.resource.get("iCalUID") if previous else None)
            or f"{event_id}@google.com",
            sequence=sequence,
            eventType=event_type,
        )
        resource.setdefault("reminders", {"useDefault": True})
        return StoredEvent(resource, 0, start, end, series, now)

    def _store(self, calendar: Calendar, event: StoredEvent) -> None:
        calendar.seq += 1
        event.seq = calendar.seq
        calendar.events[event.id] = event
        calendar.log_seqs.append(calendar.seq)
        calendar.log_ids.append(event.id)
        master_id = event.master_id
        if master_id is not None:
            calendar.exceptions.setdefault(master_id, set()).add(event.id)

    @staticmethod
    def _check_if_match(event: StoredEvent, if_match: str | None) -> None:
        if if_match and if_match.strip() != "*" and if_match.strip() != event.resource["etag"]:
            raise errors.condition_not_met()

    def insert_event(
        self,
        email: str,
        calendar_id: str,
        body: Resource,
        *,
        trusted: bool = False,
    ) -> Resource:
        with self.lock:
            calendar = self._writable(email, calendar_id, trusted)
            event_id = body.get("id")
            if event_id is None:
                event_id = base32hex_id()
                while event_id in calendar.events:
                    event_id = base32hex_id()
            elif not isinstance(event_id, str) or not EVENT_ID.match(event_id):
                raise errors.invalid("Invalid resource id value.")
            elif event_id in calendar.events:
                # Deleted events keep their id: re-inserting it is a duplicate, as on Google.
                raise errors.duplicate()
            fields = {
                k: v
                for k, v in body.items()
                if k not in ("recurringEventId", "originalStartTime") or trusted
            }
            event = self._build(calendar, fields, event_id, None, email, trusted)
            self._store(calendar, event)
            calendar_key = calendar.id
            result = public_copy(event.resource)
        self._notify([calendar_key])
        return result

    def update_event(
        self,
        email: str,
        calendar_id: str,
        event_id: str,
        body: Resource,
        *,
        patch: bool,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> Resource:
        with self.lock:
            calendar = self._writable(email, calendar_id, trusted)
            current, _stored = self._lookup(calendar, event_id)
            self._check_if_match(current, if_match)
            if patch:
                merged = _merge(current.resource, body)
            else:
                merged = dict(body)
                for key in ("recurringEventId", "originalStartTime", "iCalUID"):
                    if key in current.resource:
                        merged[key] = current.resource[key]
            event = self._build(calendar, merged, current.id, current, email, trusted)
            self._store(calendar, event)
            calendar_key = calendar.id
            result = public_copy(event.resource)
        self._notify([calendar_key])
        return result

    def delete_event(
        self,
        email: str,
        calendar_id: str,
        event_id: str,
        *,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> None:
        with self.lock:
            calendar = self._writable(email, calendar_id, trusted)
            current, _stored = self._lookup(calendar, event_id)
            if current.cancelled:
                raise errors.deleted()
            self._check_if_match(current, if_match)
            self._cancel(calendar, current)
            if current.series is not None:
                for exception_id in sorted(calendar.exceptions.get(current.id, ())):
                    exception = calendar.events[exception_id]
                    if not exception.cancelled:
                        self._cancel(calendar, exception)
            calendar_key = calendar.id
        self._notify([calendar_key])

    def _cancel(self, calendar: Calendar, event: StoredEvent) -> None:
        resource = {
            **event.resource,
            "status": "cancelled",
            "etag": self._etag(),
            "updated": format_timestamp(self.now()),
        }
        self._store(
            calendar,
            StoredEvent(resource, 0, event.start, event.end, event.series, self.now()),
        )


def _merge(base: Resource, patch: Resource) -> Resource:
    """PATCH semantics: sent fields replace, omitted stay, objects merge, arrays replace whole,
    and null clears."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key not in PATCH_REPLACES
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
