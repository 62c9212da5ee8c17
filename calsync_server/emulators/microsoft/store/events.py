"""The Graph emulator's events as clients see them: occurrences of a series computed from its
master, exceptions, views of a window, lookups by either id spelling, the change log delta
reads, and each event rendered as Graph answers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.recurrence import occurrence_starts
from calsync_server.emulators.microsoft.store.mailboxes import MailboxStore
from calsync_server.emulators.microsoft.store.model import (
    CalendarRecord,
    EventRecord,
    Item,
    Mailbox,
    Resource,
    graph_time,
    item_of,
    occurrence_id,
    parse_occurrence_id,
)
from calsync_server.emulators.microsoft.zones import zone_info


def local_text(moment: datetime, zone: str, all_day: bool) -> str:
    if all_day:
        # All-day events come back midnight to midnight whatever zone is asked for.
        local = moment.replace(tzinfo=None)
    else:
        local = moment.astimezone(zone_info(zone)).replace(tzinfo=None)
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


class EventStore(MailboxStore):
    def find(self, mailbox: Mailbox, event_id: str, calendar_id: str | None = None) -> Item:
        """The event or occurrence an id (either spelling) names, in the mailbox's calendars."""
        with self.lock:
            occurrence = parse_occurrence_id(event_id)
            if occurrence is not None:
                master_key, original = occurrence
                master = self._record(mailbox, master_key, calendar_id)
                item = self._occurrence_item(master, original)
                if item is None:
                    raise errors.item_not_found()
                return item
            record = self._record(mailbox, event_id, calendar_id)
            return item_of(record)

    def _record(self, mailbox: Mailbox, event_id: str, calendar_id: str | None) -> EventRecord:
        entry = self.event_index.get(event_id)
        if entry is None or entry[0] not in mailbox.calendars:
            raise errors.item_not_found()
        if calendar_id is not None and entry[0] != calendar_id:
            raise errors.item_not_found()
        record = self.calendars[entry[0]].events.get(entry[1])
        if record is None:
            raise errors.item_not_found()
        return record

    def _occurrence_item(self, master: EventRecord, original: datetime) -> Item | None:
        """The occurrence of `master` that starts (originally) at `original`: None if the
        series has no such occurrence or it was deleted; its exception if it was changed."""
        if master.kind != "seriesMaster" or original in master.cancelled_starts:
            return None
        exception_id = master.exceptions.get(original)
        if exception_id is not None:
            return item_of(self.calendars[master.calendar_id].events[exception_id])
        for start in self._series_starts(master, original + timedelta(seconds=1)):
            if start == original:
                return self._make_occurrence(master, start)
            if start > original:
                break
        return None

    def _make_occurrence(self, master: EventRecord, start: datetime) -> Item:
        return Item(
            occurrence_id(master.id, start),
            occurrence_id(master.rest_id, start),
            "occurrence",
            start,
            start + (master.end - master.start),
            master,
            start,
        )

    def _series_starts(self, master: EventRecord, until: datetime) -> list[datetime]:
        assert master.recurrence is not None
        zone_name = master.recurrence["range"].get("recurrenceTimeZone") or master.start_zone
        if master.is_all_day:
            first = master.start.replace(tzinfo=None).replace(tzinfo=UTC)
            zone = zone_info("UTC")
        else:
            first, zone = master.start, zone_info(zone_name)
        starts: list[datetime] = []
        for local in occurrence_starts(
            master.recurrence, first, zone, self.config.max_occurrences_per_series
        ):
            moment = local.astimezone(UTC)
            if moment >= until:
                break
            starts.append(moment)
        return starts

    def series_items(self, master: EventRecord, begin: datetime, finish: datetime) -> list[Item]:
        """The occurrences and exceptions of a series that overlap the window."""
        calendar = self.calendars[master.calendar_id]
        items: list[Item] = []
        length = master.end - master.start
        for start in self._series_starts(master, finish):
            if start in master.cancelled_starts or start in master.exceptions:
                continue
            if start + length > begin:
                items.append(self._make_occurrence(master, start))
        for exception_id in master.exceptions.values():
            exception = calendar.events[exception_id]
            if exception.end > begin and exception.start < finish:
                items.append(item_of(exception))
        return items

    def view_items(self, calendar: CalendarRecord, begin: datetime, finish: datetime) -> list[Item]:
        """calendarView: single instances, occurrences and exceptions in the window, by start.
        Masters are not in a view; their occurrences are."""
        with self.lock:
            items: list[Item] = []
            for record in calendar.events.values():
                if record.kind == "seriesMaster":
                    items.extend(self.series_items(record, begin, finish))
                elif (
                    record.kind == "singleInstance" and record.end > begin and record.start < finish
                ):
                    items.append(item_of(record))
            items.sort(key=lambda item: (item.start, item.id))
            return items

    def list_records(self, calendar: CalendarRecord) -> list[EventRecord]:
        """`/events`: single instances and series masters (not occurrences or exceptions)."""
        with self.lock:
            return [
                r
                for r in sorted(calendar.events.values(), key=lambda r: (r.created, r.id))
                if r.kind in ("singleInstance", "seriesMaster")
            ]

    def render(
        self,
        item: Item,
        zone: str | None = None,
        immutable: bool = False,
        expand: tuple[str, ...] | None = None,
    ) -> Resource:
        """The event as Graph answers it, in `zone` (UTC when not asked) with either id."""
        with self.lock:
            record = item.record
            zone = zone or "UTC"
            master_id: str | None = None
            if item.kind == "occurrence":
                master_id = record.id if immutable else record.rest_id
            elif item.kind == "exception" and record.series_master_id is not None:
                master = self.calendars[record.calendar_id].events.get(record.series_master_id)
                if master is not None:
                    master_id = master.id if immutable else master.rest_id
            fields = record.fields
            body = fields.get("body") or {"contentType": "text", "content": ""}
            resource: Resource = {
                "@odata.etag": f'W/"{record.change_key}"',
                "id": item.id if immutable else item.rest_id,
                "createdDateTime": graph_time(record.created),
                "lastModifiedDateTime": graph_time(record.modified),
                "changeKey": record.change_key,
                "categories": list(fields.get("categories") or []),
                "transactionId": record.transaction_id,
                "originalStartTimeZone": record.start_zone,
                "originalEndTimeZone": record.end_zone,
                "iCalUId": record.ical_uid,
                "reminderMinutesBeforeStart": fields.get("reminderMinutesBeforeStart", 15),
                "isReminderOn": fields.get("isReminderOn", True),
                "hasAttachments": False,
                "subject": fields.get("subject", ""),
                "bodyPreview": str(body.get("content") or "")[:255],
                "importance": fields.get("importance", "normal"),
                "sensitivity": fields.get("sensitivity", "normal"),
                "isAllDay": record.is_all_day,
                "isCancelled": record.is_cancelled,
                "isOrganizer": record.is_organizer,
                "responseRequested": fields.get("responseRequested", True),
                "seriesMasterId": master_id,
                "showAs": fields.get("showAs", "busy"),
                "type": item.kind,
                "webLink": f"https://outlook.office365.com/owa/?itemid={item.rest_id}",
                "onlineMeetingUrl": None,
                "isOnlineMeeting": fields.get("isOnlineMeeting", False),
                "responseStatus": {"response": record.response, "time": record.response_time},
                "body": body,
                "start": {
                    "dateTime": local_text(item.start, zone, record.is_all_day),
                    "timeZone": zone,
                },
                "end": {
                    "dateTime": local_text(item.end, zone, record.is_all_day),
                    "timeZone": zone,
                },
                "location": fields.get("location") or {"displayName": ""},
                "locations": list(fields.get("locations") or []),
                "recurrence": record.recurrence if item.kind == "seriesMaster" else None,
                "attendees": list(fields.get("attendees") or []),
                "organizer": record.organizer,
            }
            if item.original_start is not None and item.kind in ("occurrence", "exception"):
                resource["originalStart"] = graph_time(item.original_start)
            if expand is not None:
                resource["singleValueExtendedProperties"] = [
                    {"id": key, "value": value}
                    for key, value in record.extended.items()
                    if not expand or key.lower() in expand
                ]
            return resource

    def changed_since(self, calendar: CalendarRecord, seq: int) -> list[str]:
        """Immutable ids of events changed after `seq`, oldest first, each once."""
        with self.lock:
            return list(dict.fromkeys(i for s, i in calendar.log if s > seq))

    def last_seq(self, calendar: CalendarRecord) -> int:
        with self.lock:
            return calendar.log[-1][0] if calendar.log else 0

    def item_by_immutable(self, calendar: CalendarRecord, immutable_id: str) -> Item | None:
        """An item of the calendar by its immutable id, occurrences included; None if gone."""
        with self.lock:
            occurrence = parse_occurrence_id(immutable_id)
            if occurrence is not None:
                master = calendar.events.get(occurrence[0])
                return None if master is None else self._occurrence_item(master, occurrence[1])
            record = calendar.events.get(immutable_id)
            return None if record is None else item_of(record)

    def rest_id_of(self, calendar: CalendarRecord, immutable_id: str) -> str:
        """The REST spelling of an id, also for items that are gone (kept from the log)."""
        item = self.item_by_immutable(calendar, immutable_id)
        if item is not None:
            return item.rest_id
        with self.lock:
            return self.gone.get(immutable_id, immutable_id)
