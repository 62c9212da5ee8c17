"""The sync logs the dashboard has loaded, newest first, and where the next older page starts:
pages, live updates and reloads merged without a gap or a duplicate."""

from __future__ import annotations

from collections.abc import Collection

from shared.schemas import SyncLogOut, SyncLogPage


class SyncLogHistory:
    def __init__(self) -> None:
        self.entries: list[SyncLogOut] = []
        # The cursor of the next older page; None once the oldest entry is loaded.
        self.older: str | None = None
        self.started = False

    @property
    def complete(self) -> bool:
        return self.started and self.older is None

    def newest(self, page: SyncLogPage, calendar_ids: Collection[int] | None = None) -> None:
        """The newest page, fetched (again): it replaces what it covers. Older entries already
        loaded stay when they join up with it; after a gap (more new syncs than a page) they
        go, and the pages start again from this one. Entries of calendars no longer there
        (a disconnected account) go too."""
        items = page.items
        kept: list[SyncLogOut] = []
        older = page.next_cursor
        if items and page.next_cursor is not None and self.started:
            oldest_new = items[-1].id
            joins = any(entry.id >= oldest_new for entry in self.entries)
            kept = [entry for entry in self.entries if entry.id < oldest_new]
            if joins and kept:
                older = self.older
            else:
                kept = []
        self.entries = items + kept
        self.older = older
        self.started = True
        if calendar_ids is not None:
            wanted = set(calendar_ids)
            self.entries = [entry for entry in self.entries if entry.calendar_id in wanted]

    def add_older(self, page: SyncLogPage, cursor: str) -> bool:
        """The page `cursor` named, appended; ignored (False) when the history moved on since
        it was asked for (a reload started the pages again)."""
        if cursor != self.older:
            return False
        oldest = self.entries[-1].id if self.entries else None
        self.entries.extend(e for e in page.items if oldest is None or e.id < oldest)
        self.older = page.next_cursor
        return True

    def finished(self, logs: list[SyncLogOut]) -> None:
        """Syncs that just ended (the live stream): each replaces its running entry or joins
        the top. One older than everything loaded waits for its page, so no gap opens."""
        if not logs:
            return
        oldest = self.entries[-1].id if self.entries and not self.complete else None
        by_id = {entry.id: entry for entry in self.entries}
        for log in logs:
            if oldest is None or log.id >= oldest:
                by_id[log.id] = log
        self.entries = sorted(by_id.values(), key=lambda entry: entry.id, reverse=True)
