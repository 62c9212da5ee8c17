"""events.list and events.instances: full and incremental (sync token) lists, and pages."""

from __future__ import annotations

import bisect
import secrets
from collections import OrderedDict

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.recurrence import format_timestamp
from calsync_server.emulators.google.store.events import EventStore
from calsync_server.emulators.google.store.model import (
    MAX_CURSORS,
    Calendar,
    ListQuery,
    PageCursor,
    Resource,
    StoredEvent,
    SyncState,
)


class ListStore(EventStore):
    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self._sync_tokens: dict[str, SyncState] = {}
        self._cursors: OrderedDict[str, PageCursor] = OrderedDict()

    def list_events(self, email: str, calendar_id: str, query: ListQuery) -> Resource:
        with self.lock:
            calendar, role = self.resolve_calendar(email, calendar_id)
            if query.page_token:
                return self._page(calendar, role, self._cursor(calendar, query), query.max_results)
            if query.sync_token:
                state = self._sync_tokens.get(query.sync_token)
                if (
                    state is None
                    or state.calendar_id != calendar.id
                    or state.generation != calendar.generation
                ):
                    raise errors.full_sync_required()
                if state.single_events != query.single_events:
                    raise errors.invalid(
                        "The singleEvents parameter must match the one of the initial sync.",
                        "singleEvents",
                    )
                items = self._changed_items(calendar, state)
                sync = SyncState(
                    calendar.id,
                    calendar.seq,
                    calendar.generation,
                    state.single_events,
                    state.window,
                    state.event_types,
                )
            else:
                items = self._full_items(calendar, query)
                sync = SyncState(
                    calendar.id,
                    calendar.seq,
                    calendar.generation,
                    query.single_events,
                    query.window,
                    query.event_types,
                )
            cursor = PageCursor(calendar.id, items, 0, sync)
            return self._page(calendar, role, cursor, query.max_results)

    def list_instances(
        self, email: str, calendar_id: str, event_id: str, query: ListQuery
    ) -> Resource:
        with self.lock:
            calendar, role = self.resolve_calendar(email, calendar_id)
            if query.page_token:
                return self._page(calendar, role, self._cursor(calendar, query), query.max_results)
            master = calendar.events.get(event_id)
            if master is None or master.series is None:
                raise errors.not_found()
            if master.cancelled:
                raise errors.deleted()
            items = [
                self._view(item)
                for item in self._series_items(calendar, master, query.window)
                if query.show_deleted or not item.cancelled
            ]
            return self._page(
                calendar, role, PageCursor(calendar.id, items, 0, None), query.max_results
            )

    def _cursor(self, calendar: Calendar, query: ListQuery) -> PageCursor:
        """Where the list the page token continues stands (a token is good once)."""
        cursor = self._cursors.pop(query.page_token or "", None)
        if cursor is None or cursor.calendar_id != calendar.id:
            raise errors.invalid("Invalid page token value.", "pageToken")
        return cursor

    def _page(self, calendar: Calendar, role: str, cursor: PageCursor, size: int) -> Resource:
        chunk = cursor.items[cursor.offset : cursor.offset + size]
        cursor.offset += len(chunk)
        body: Resource = {
            "kind": "calendar#events",
            "etag": calendar.etag,
            "summary": calendar.summary,
            "description": calendar.description,
            "updated": format_timestamp(self.now()),
            "timeZone": calendar.time_zone,
            "accessRole": role,
            "defaultReminders": [],
        }
        if cursor.offset < len(cursor.items):
            token = secrets.token_urlsafe(24)
            self._cursors[token] = cursor
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
            body["nextPageToken"] = token
        elif cursor.sync is not None:
            token = "C" + secrets.token_urlsafe(24)
            self._sync_tokens[token] = cursor.sync
            body["nextSyncToken"] = token
        body["items"] = chunk
        return body

    def _full_items(self, calendar: Calendar, query: ListQuery) -> list[Resource]:
        window = query.window
        if not query.single_events:
            found: list[StoredEvent] = []
            for event in calendar.events.values():
                if event.cancelled and not query.show_deleted:
                    continue
                if not self._matches(event.resource, query):
                    continue
                if query.updated_min is not None and event.updated_at < query.updated_min:
                    continue
                if event.series is not None:
                    if not self._series_overlaps(event, window):
                        continue
                elif not window.overlaps(event.start.instant, event.end.instant):
                    continue
                found.append(event)
            if query.order_by == "updated":
                found.sort(key=lambda e: e.seq)
            return [self._view(e) for e in found]
        expanded: list[StoredEvent] = []
        for event in calendar.events.values():
            if event.series is not None:
                if event.cancelled and not query.show_deleted:
                    continue
                candidates = self._series_items(calendar, event, window)
            elif self._is_exception(calendar, event):
                continue  # shown in its series' place
            elif not window.overlaps(event.start.instant, event.end.instant):
                continue
            else:
                candidates = [event]
            for item in candidates:
                if item.cancelled and not query.show_deleted:
                    continue
                if not self._matches(item.resource, query):
                    continue
                if query.updated_min is not None and item.updated_at < query.updated_min:
                    continue
                expanded.append(item)
        if query.order_by == "updated":
            expanded.sort(key=lambda e: e.seq)
        else:
            expanded.sort(key=lambda e: (e.start.instant, e.id))
        return [self._view(e) for e in expanded]

    def _changed_items(self, calendar: Calendar, state: SyncState) -> list[Resource]:
        start = bisect.bisect_right(calendar.log_seqs, state.seq)
        changed = dict.fromkeys(calendar.log_ids[start:])
        window = state.window
        out: dict[str, Resource] = {}
        type_filter = ListQuery(event_types=state.event_types)

        def add(item: StoredEvent) -> None:
            if item.cancelled:
                # Deleted items always come back, whatever the window: the client must learn.
                out[item.id] = self._cancelled_view(item.resource)
            elif self._matches(item.resource, type_filter):
                out[item.id] = item.resource

        for event_id in changed:
            event = calendar.events[event_id]
            if state.single_events and event.series is not None:
                for item in self._series_items(calendar, event, window):
                    add(item)
            elif state.single_events and self._is_exception(calendar, event):
                if event.cancelled or window.overlaps(event.start.instant, event.end.instant):
                    add(event)
            elif event.cancelled:
                add(event)
            elif event.series is not None:
                if self._series_overlaps(event, window):
                    add(event)
            elif window.overlaps(event.start.instant, event.end.instant):
                add(event)
        return list(out.values())
