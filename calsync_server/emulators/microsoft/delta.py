"""calendarView delta per calendar: rounds frozen in opaque skip and delta tokens, with Graph's
empty pages, repeated items and `@removed` entries."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.store import CalendarRecord, Mailbox, Resource, Store

# What a round says of an id: the item as it is now, or that it went. `deleted` entries come
# without `type` (the item is gone); `moved` ones (out of the window) still carry it.
ITEM, DELETED, MOVED = "item", "deleted", "moved"
Entry = tuple[str, str]


@dataclass
class Cursor:
    """What a token remembers: the calendar and window of its round, and what the client
    will know once the round is done (in-window ids and their versions)."""

    owner: str
    calendar_id: str
    begin: datetime
    finish: datetime
    generation: int
    issued_at: datetime
    snapshot: dict[str, int]
    log_seq: int
    # Set for skip tokens only: the round's pages and which one this token opens.
    pages: list[list[Entry]] = field(default_factory=list)
    page: int = 0


@dataclass(frozen=True)
class Prefs:
    zone: str | None
    immutable: bool
    page_size: int | None


class DeltaRounds:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cursors: dict[str, Cursor] = {}

    def _save(self, cursor: Cursor) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._cursors[token] = cursor
        return token

    def _cursor(self, mailbox: Mailbox, token: str) -> tuple[Cursor, CalendarRecord]:
        with self._lock:
            cursor = self._cursors.get(token)
        if cursor is None or cursor.owner != mailbox.oid:
            raise errors.invalid_delta_token()
        calendar = self.store.calendar(mailbox, cursor.calendar_id)
        lifetime = timedelta(seconds=self.store.config.delta_token_lifetime_s)
        if cursor.generation != calendar.generation:
            raise errors.sync_state_not_found(calendar.expire_status)
        if self.store.now() - cursor.issued_at > lifetime:
            raise errors.sync_state_not_found()
        return cursor, calendar

    def first(
        self,
        mailbox: Mailbox,
        calendar: CalendarRecord,
        begin: datetime,
        finish: datetime,
        prefs: Prefs,
        link_base: str,
    ) -> Resource:
        """A new round from scratch: every item in the window."""
        start = Cursor(
            mailbox.oid, calendar.id, begin, finish, calendar.generation, self.store.now(), {}, 0
        )
        return self._round(start, calendar, prefs, link_base, initial=True)

    def resume(
        self, mailbox: Mailbox, query: dict[str, str], prefs: Prefs, link_base: str
    ) -> Resource:
        skip, delta = query.get("$skiptoken"), query.get("$deltatoken")
        if skip is not None:
            cursor, calendar = self._cursor(mailbox, skip)
            return self._page(cursor, calendar, prefs, link_base)
        assert delta is not None
        cursor, calendar = self._cursor(mailbox, delta)
        return self._round(cursor, calendar, prefs, link_base, initial=False)

    def _round(
        self,
        previous: Cursor,
        calendar: CalendarRecord,
        prefs: Prefs,
        link_base: str,
        *,
        initial: bool,
    ) -> Resource:
        store = self.store
        with store.lock:
            log_seq = store.last_seq(calendar)
            items = store.view_items(calendar, previous.begin, previous.finish)
            current = {item.id: item.version for item in items}
            entries: list[Entry] = [
                (item.id, ITEM) for item in items if previous.snapshot.get(item.id) != item.version
            ]
            if not initial:
                gone = [i for i in previous.snapshot if i not in current]
                # Changes outside the window arrive as removed too, as Graph sends them.
                gone += [
                    i
                    for i in store.changed_since(calendar, previous.log_seq)
                    if i not in current and i not in previous.snapshot
                ]
                for immutable_id in dict.fromkeys(gone):
                    item = store.item_by_immutable(calendar, immutable_id)
                    if item is not None and item.kind == "seriesMaster":
                        continue  # a master is never in a view; its occurrences speak for it
                    entries.append((immutable_id, DELETED if item is None else MOVED))
        if store.config.delta_series_masters:
            entries = self._as_masters(calendar, entries)
        size = max(1, prefs.page_size or store.config.delta_page_size)
        chunks = [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]
        if store.config.delta_repeat_items:
            # The same item again at the top of the next page: clients keep the newest.
            for index in range(1, len(chunks)):
                chunks[index] = [chunks[index - 1][-1], *chunks[index]]
        if store.config.delta_empty_first_page:
            chunks.insert(0, [])
        cursor = Cursor(
            previous.owner,
            calendar.id,
            previous.begin,
            previous.finish,
            calendar.generation,
            store.now(),
            current,
            log_seq,
            chunks,
            0,
        )
        return self._page(cursor, calendar, prefs, link_base)

    def _as_masters(self, calendar: CalendarRecord, entries: list[Entry]) -> list[Entry]:
        """Changed occurrences and exceptions sent as their series' master row, once."""
        found: list[Entry] = []
        for immutable_id, what in entries:
            key = immutable_id
            item = self.store.item_by_immutable(calendar, immutable_id) if what == ITEM else None
            if item is not None and item.kind == "occurrence":
                key = item.record.id
            elif item is not None and item.kind == "exception" and item.record.series_master_id:
                key = item.record.series_master_id
            if (key, what) not in found:
                found.append((key, what))
        return found

    def _page(
        self, cursor: Cursor, calendar: CalendarRecord, prefs: Prefs, link_base: str
    ) -> Resource:
        store = self.store
        values: list[Resource] = []
        for immutable_id, what in cursor.pages[cursor.page]:
            item = store.item_by_immutable(calendar, immutable_id)
            if what == ITEM and item is not None:
                values.append(store.render(item, prefs.zone, prefs.immutable))
                continue
            removed: dict[str, Any] = {
                "@odata.type": "#microsoft.graph.event",
                "id": immutable_id if prefs.immutable else store.rest_id_of(calendar, immutable_id),
                "@removed": {"reason": "deleted"},
            }
            if what == MOVED and item is not None:
                removed["type"] = item.kind
            values.append(removed)
        answer: Resource = {
            "@odata.context": f"{link_base.split('/v1.0/')[0]}/v1.0/$metadata#Collection(event)",
            "value": values,
        }
        if cursor.page + 1 < len(cursor.pages):
            following = Cursor(**{**cursor.__dict__, "page": cursor.page + 1})
            answer["@odata.nextLink"] = f"{link_base}?$skiptoken={self._save(following)}"
        else:
            done = Cursor(**{**cursor.__dict__, "pages": [], "page": 0, "issued_at": store.now()})
            answer["@odata.deltaLink"] = f"{link_base}?$deltatoken={self._save(done)}"
        return answer
