"""The Graph emulator's writes: create (once per transactionId), PATCH (an occurrence becomes
an exception), delete (an occurrence, a series with its exceptions), and attendee responses;
each one logged for delta and told to subscriptions."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.recurrence import normalise
from calsync_server.emulators.microsoft.store.events import EventStore
from calsync_server.emulators.microsoft.store.model import (
    CalendarRecord,
    Change,
    EventRecord,
    Item,
    Mailbox,
    Resource,
    b64,
    graph_time,
    item_of,
    new_ids,
)
from calsync_server.emulators.microsoft.store.rules import (
    WRITABLE,
    check_fields,
    event_times,
    read_attendees,
    read_extended,
)
from calsync_server.emulators.microsoft.zones import zone_info


class Store(EventStore):
    """All the Graph emulator's state: calendars, mailboxes, events and the writes to them."""

    def _check_writable(self, calendar: CalendarRecord, trusted: bool) -> None:
        if not calendar.can_edit and not trusted:
            raise errors.access_denied()

    def _touch(self, calendar: CalendarRecord, record: EventRecord) -> None:
        record.seq = next(self._seq)
        record.modified = self.now()
        record.change_key = b64(secrets.token_bytes(12)).rstrip("=")
        calendar.log.append((record.seq, record.id))

    def _apply(self, record: EventRecord, body: Resource, mailbox: Mailbox, trusted: bool) -> None:
        for key in WRITABLE - {"start", "end", "isAllDay", "recurrence", "transactionId"}:
            if key == "singleValueExtendedProperties":
                continue
            if key in body:
                value = body[key]
                record.fields[key] = read_attendees(value) if key == "attendees" else value
        read_extended(body, record.extended)
        if trusted:
            if "isCancelled" in body:
                record.is_cancelled = bool(body["isCancelled"])
            if "isOrganizer" in body:
                record.is_organizer = bool(body["isOrganizer"])
            if isinstance(body.get("responseStatus"), dict):
                record.response = str(body["responseStatus"]["response"])
                record.response_time = graph_time(self.now())
            if isinstance(body.get("organizer"), dict):
                record.organizer = body["organizer"]
        if record.organizer is None:
            record.organizer = {"emailAddress": {"name": mailbox.name, "address": mailbox.email}}

    def create_event(
        self,
        mailbox: Mailbox,
        calendar_id: str | None,
        body: Resource,
        *,
        trusted: bool = False,
    ) -> tuple[Item, bool]:
        """A new event (201), or the one an earlier POST with the same transactionId made:
        then the flag is False and nothing new is stored."""
        check_fields(body, trusted)
        with self.lock:
            calendar = self.calendar(mailbox, calendar_id)
            self._check_writable(calendar, trusted)
            transaction = body.get("transactionId")
            now = self.now()
            if isinstance(transaction, str) and transaction:
                earlier = calendar.transactions.get(transaction)
                window = timedelta(seconds=self.config.transaction_window_s)
                if earlier is not None and now - earlier[1] < window:
                    existing = calendar.events.get(earlier[0])
                    if existing is not None:
                        return item_of(existing), False
            start, end, start_zone, end_zone, all_day = event_times(body, None)
            immutable, rest = new_ids()
            record = EventRecord(
                id=immutable,
                rest_id=rest,
                calendar_id=calendar.id,
                fields={},
                start=start,
                end=end,
                start_zone=start_zone,
                end_zone=end_zone,
                is_all_day=all_day,
                kind="singleInstance",
                created=now,
                modified=now,
                change_key="",
                seq=0,
                transaction_id=transaction if isinstance(transaction, str) else None,
                ical_uid="040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper(),
            )
            if body.get("recurrence") is not None:
                local_day = (
                    start.date() if all_day else start.astimezone(zone_info(start_zone)).date()
                )
                record.recurrence = normalise(body["recurrence"], local_day)
                record.kind = "seriesMaster"
                # The master starts at the series' first occurrence, as Outlook moves it.
                starts = self._series_starts(record, datetime.max.replace(tzinfo=UTC))
                if starts:
                    length = end - start
                    record.start, record.end = starts[0], starts[0] + length
            self._apply(record, body, mailbox, trusted)
            calendar.events[immutable] = record
            self.event_index[immutable] = (calendar.id, immutable)
            self.event_index[rest] = (calendar.id, immutable)
            self._touch(calendar, record)
            if record.transaction_id:
                calendar.transactions[record.transaction_id] = (immutable, now)
            item = item_of(record)
        self._notify([Change.of(mailbox.oid, record, "created")])
        return item, True

    def _check_if_match(self, record: EventRecord, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        tag = if_match.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') != record.change_key:
            raise errors.change_key_mismatch()

    def update_event(
        self,
        mailbox: Mailbox,
        event_id: str,
        body: Resource,
        *,
        calendar_id: str | None = None,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> Item:
        """PATCH: merges the given properties; an occurrence patched becomes an exception."""
        check_fields(body, trusted)
        with self.lock:
            item = self.find(mailbox, event_id, calendar_id)
            calendar = self.calendars[item.record.calendar_id]
            self._check_writable(calendar, trusted)
            record = self._materialise(calendar, item) if item.kind == "occurrence" else item.record
            self._check_if_match(record, if_match)
            if "recurrence" in body and record.kind in ("occurrence", "exception"):
                raise errors.bad_request("An occurrence cannot have a recurrence.")
            if any(k in body for k in ("start", "end", "isAllDay")):
                start, end, start_zone, end_zone, all_day = event_times(body, record)
                record.start, record.end = start, end
                record.start_zone, record.end_zone, record.is_all_day = (
                    start_zone,
                    end_zone,
                    all_day,
                )
            if body.get("recurrence") is not None and record.kind != "exception":
                record.recurrence = normalise(body["recurrence"], record.start.date())
                record.kind = "seriesMaster"
            self._apply(record, body, mailbox, trusted)
            self._touch(calendar, record)
            result = item_of(record)
        self._notify([Change.of(mailbox.oid, record, "updated")])
        return result

    def _materialise(self, calendar: CalendarRecord, item: Item) -> EventRecord:
        """An occurrence turned into a stored exception of its master."""
        master = item.record
        assert item.original_start is not None
        immutable, rest = new_ids()
        record = EventRecord(
            id=item.id,
            rest_id=item.rest_id,
            calendar_id=calendar.id,
            fields=dict(master.fields),
            start=item.start,
            end=item.end,
            start_zone=master.start_zone,
            end_zone=master.end_zone,
            is_all_day=master.is_all_day,
            kind="exception",
            created=master.created,
            modified=master.modified,
            change_key=master.change_key,
            seq=master.seq,
            series_master_id=master.id,
            original_start=item.original_start,
            is_cancelled=master.is_cancelled,
            is_organizer=master.is_organizer,
            response=master.response,
            response_time=master.response_time,
            organizer=master.organizer,
            extended=dict(master.extended),
            ical_uid=master.ical_uid,
        )
        del immutable, rest  # an exception keeps its occurrence's ids
        calendar.events[record.id] = record
        self.event_index[record.id] = (calendar.id, record.id)
        self.event_index[record.rest_id] = (calendar.id, record.id)
        master.exceptions[item.original_start] = record.id
        return record

    def delete_event(
        self,
        mailbox: Mailbox,
        event_id: str,
        *,
        calendar_id: str | None = None,
        if_match: str | None = None,
        trusted: bool = False,
    ) -> None:
        with self.lock:
            item = self.find(mailbox, event_id, calendar_id)
            calendar = self.calendars[item.record.calendar_id]
            self._check_writable(calendar, trusted)
            changes: list[Change] = []
            if item.kind in ("occurrence", "exception"):
                master_id = (
                    item.record.id if item.kind == "occurrence" else item.record.series_master_id
                )
                master = calendar.events.get(master_id or "")
                assert item.original_start is not None
                assert master is not None
                if item.kind == "exception":
                    self._check_if_match(item.record, if_match)
                    self._drop(calendar, item.record)
                    master.exceptions.pop(item.original_start, None)
                master.cancelled_starts.add(item.original_start)
                # The occurrence itself is what a client saw go; the log carries its id.
                self._touch(calendar, master)
                calendar.log.append((master.seq, item.id))
                self.gone[item.id] = item.rest_id
                # Graph reports a deleted occurrence as an update of its master.
                changes.append(Change.of(mailbox.oid, master, "updated"))
            else:
                record = item.record
                self._check_if_match(record, if_match)
                for exception_id in list(record.exceptions.values()):
                    self._drop(calendar, calendar.events[exception_id])
                self._drop(calendar, record)
                changes.append(Change.of(mailbox.oid, record, "deleted"))
        self._notify(changes)

    def _drop(self, calendar: CalendarRecord, record: EventRecord) -> None:
        calendar.events.pop(record.id, None)
        self.event_index.pop(record.id, None)
        self.event_index.pop(record.rest_id, None)
        self.gone[record.id] = record.rest_id
        calendar.log.append((next(self._seq), record.id))

    def respond(self, mailbox: Mailbox, event_id: str, response: str) -> None:
        """accept / tentativelyAccept / decline: the attendee's own response."""
        with self.lock:
            item = self.find(mailbox, event_id)
            calendar = self.calendars[item.record.calendar_id]
            if item.record.is_organizer:
                raise errors.bad_request(
                    "Your request can't be completed. You can't respond to a meeting you "
                    "organized.",
                    "ErrorInvalidRequest",
                )
            record = self._materialise(calendar, item) if item.kind == "occurrence" else item.record
            record.response = response
            record.response_time = graph_time(self.now())
            self._touch(calendar, record)
        self._notify([Change.of(mailbox.oid, record, "updated")])
