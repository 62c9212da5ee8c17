"""The Google emulator's events as clients see them: instances of a series generated in their
place, exceptions, deleted items, query matching, and lookups by id (instance ids included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.recurrence import EventTime, instance_suffix, time_field
from calsync_server.emulators.google.store.accounts import AccountStore
from calsync_server.emulators.google.store.model import (
    INSTANCE_ID,
    Calendar,
    ListQuery,
    Resource,
    StoredEvent,
    Window,
    public_copy,
)


class EventStore(AccountStore):
    def _horizon(self) -> datetime:
        return self.now() + timedelta(days=self.config.expansion_horizon_days)

    @staticmethod
    def _cancelled_view(resource: Resource) -> Resource:
        """What a list shows of a deleted item: Google guarantees only these fields."""
        view: Resource = {
            "kind": "calendar#event",
            "etag": resource.get("etag"),
            "id": resource["id"],
            "status": "cancelled",
        }
        if resource.get("recurringEventId"):
            view["recurringEventId"] = resource["recurringEventId"]
            view["originalStartTime"] = resource["originalStartTime"]
        return view

    def _instance(self, master: StoredEvent, original: datetime) -> StoredEvent:
        """A generated (unstored) instance of `master` starting at `original`."""
        series = master.series
        assert series is not None
        tz = series.tz
        iid = f"{master.id}_{instance_suffix(original, series.all_day, tz)}"
        resource = {k: v for k, v in master.resource.items() if k != "recurrence"}
        end = original + series.duration
        if series.all_day:
            # All-day durations are whole days in local time, whatever DST does.
            end = (original.astimezone(tz) + series.duration).astimezone(UTC)
        start_field = time_field(original, series.all_day, tz)
        resource.update(
            id=iid,
            recurringEventId=master.id,
            originalStartTime=start_field,
            start=start_field,
            end=time_field(end, series.all_day, tz),
        )
        return StoredEvent(
            resource,
            master.seq,
            EventTime(original, series.all_day, tz),
            EventTime(end, series.all_day, tz),
            None,
            master.updated_at,
        )

    def _series_items(
        self, calendar: Calendar, master: StoredEvent, window: Window
    ) -> list[StoredEvent]:
        """The instances of a series overlapping `window`: generated ones, stored exceptions
        in their place, and exceptions moved into the window from elsewhere. Bounded by the
        window's end, or by the configured horizon and instance cap."""
        series = master.series
        assert series is not None
        cap = self.config.max_instances_per_series
        if window.time_max is not None:
            cap = max(cap, 20_000)
        starts = series.occurrences(window.time_min, window.time_max, cap, self._horizon())
        exception_ids = calendar.exceptions.get(master.id, set())
        found: list[StoredEvent] = []
        seen: set[str] = set()
        for original in starts:
            instance = self._instance(master, original)
            seen.add(instance.id)
            stored = calendar.events.get(instance.id) if exception_ids else None
            if stored is None:
                found.append(instance)
            elif stored.cancelled or window.overlaps(stored.start.instant, stored.end.instant):
                found.append(stored)
        for exception_id in exception_ids - seen:
            stored = calendar.events[exception_id]
            if not stored.cancelled and window.overlaps(stored.start.instant, stored.end.instant):
                found.append(stored)
        if master.cancelled:
            # A deleted series: every instance is gone, whatever its exceptions said.
            return [self._as_cancelled(item) for item in found]
        return found

    @staticmethod
    def _as_cancelled(item: StoredEvent) -> StoredEvent:
        if item.cancelled:
            return item
        return StoredEvent(
            {**item.resource, "status": "cancelled"},
            item.seq,
            item.start,
            item.end,
            None,
            item.updated_at,
        )

    def _series_overlaps(self, master: StoredEvent, window: Window) -> bool:
        if window.time_min is None and window.time_max is None:
            return True
        assert master.series is not None
        return bool(master.series.occurrences(window.time_min, window.time_max, 1, self._horizon()))

    @staticmethod
    def _matches(resource: Resource, query: ListQuery) -> bool:
        event_type = resource.get("eventType", "default")
        if query.event_types is not None and event_type not in query.event_types:
            return False
        if query.private_properties or query.shared_properties:
            props = resource.get("extendedProperties") or {}
            private = props.get("private") or {}
            shared = props.get("shared") or {}
            if any(private.get(k) != v for k, v in query.private_properties):
                return False
            if any(shared.get(k) != v for k, v in query.shared_properties):
                return False
        if query.ical_uid is not None and resource.get("iCalUID") != query.ical_uid:
            return False
        if query.q:
            text = " ".join(
                str(resource.get(k, "")) for k in ("summary", "description", "location")
            ).lower()
            if not all(word in text for word in query.q.lower().split()):
                return False
        return True

    def _is_exception(self, calendar: Calendar, event: StoredEvent) -> bool:
        master_id = event.master_id
        if master_id is None:
            return False
        master = calendar.events.get(master_id)
        return master is not None and master.series is not None

    def _view(self, event: StoredEvent) -> Resource:
        return self._cancelled_view(event.resource) if event.cancelled else event.resource

    def _lookup(self, calendar: Calendar, event_id: str) -> tuple[StoredEvent, bool]:
        """The event with this id and whether it is stored; an instance id of a live series
        resolves to its generated instance, as Google lets clients get and edit instances."""
        stored = calendar.events.get(event_id)
        if stored is not None:
            return stored, True
        match = INSTANCE_ID.match(event_id)
        if match:
            master = calendar.events.get(match["master"])
            if master is not None and master.series is not None and not master.cancelled:
                suffix = match["suffix"]
                series = master.series
                try:
                    if "T" in suffix:
                        moment = datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                    else:
                        local = master.start.instant.astimezone(series.tz)
                        day = datetime.strptime(suffix, "%Y%m%d")
                        moment = local.replace(year=day.year, month=day.month, day=day.day)
                        moment = moment.astimezone(UTC)
                except ValueError:
                    raise errors.not_found() from None
                starts = series.occurrences(
                    moment - timedelta(seconds=1) - series.duration,
                    moment + timedelta(seconds=1),
                    10,
                    moment + timedelta(seconds=1),
                )
                if moment in starts:
                    return self._instance(master, moment), False
        raise errors.not_found()

    def get_event(self, email: str, calendar_id: str, event_id: str) -> Resource:
        with self.lock:
            calendar, _ = self.resolve_calendar(email, calendar_id)
            event, _ = self._lookup(calendar, event_id)
            return public_copy(event.resource)

    def events_of(self, calendar_id: str) -> list[Resource]:
        """Every stored event of a calendar, for the scenario's live changes."""
        with self.lock:
            calendar = self.calendars.get(calendar_id)
            return (
                []
                if calendar is None
                else [public_copy(e.resource) for e in calendar.events.values()]
            )
