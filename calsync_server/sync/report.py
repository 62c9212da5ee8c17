"""What one sync did, counted as the sync log shows it (domain.md "Sync log")."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.domain import SyncStatus

LOGGED_COUNTS = (
    "events_fetched",
    "events_created",
    "events_updated",
    "events_deleted",
    "blocks_created",
    "blocks_updated",
    "blocks_deleted",
    "provider_calls",
    "retries",
)


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """How far a sync is: "reading" the calendar's changes, "writing" blocks (done of total)."""

    phase: str
    events_read: int
    blocks_done: int
    blocks_total: int


@dataclass(slots=True)
class SyncReport:
    events_fetched: int = 0
    events_created: int = 0
    events_updated: int = 0
    events_deleted: int = 0
    blocks_created: int = 0
    blocks_updated: int = 0
    blocks_deleted: int = 0
    provider_calls: int = 0
    retries: int = 0
    failed_writes: int = 0
    # Source calendars whose blocks could not be planned (their data broke the planner).
    unplanned: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # Whether trying again later may succeed (the job queue retries with backoff).
    retryable: bool = False
    # Nothing was done: the job waits for another first sync of the user, whose pass takes it
    # over (user_pass.first_sync_running); the queue runs it later, not counted as an attempt.
    deferred: bool = False
    # This sync's own key, taken as it starts (its log row is written only as it ends): its
    # log and every block row it writes carry it, so explain names the writer exactly.
    sync_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Told how far the sync is as it goes (the CLI's bar, the dashboard's live stream); the
    # block operations the plan holds, of which `blocks_done` have been answered.
    listener: Callable[[SyncProgress], None] | None = None
    blocks_total: int = 0
    blocks_done: int = 0

    def progress(self, phase: str) -> None:
        if self.listener is not None:
            self.listener(
                SyncProgress(phase, self.events_fetched, self.blocks_done, self.blocks_total)
            )

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def counts(self) -> dict[str, int]:
        """The counts a sync log row records, under the row's own column names."""
        return {name: getattr(self, name) for name in LOGGED_COUNTS}

    @property
    def status(self) -> SyncStatus:
        if self.error is not None:
            return SyncStatus.ERROR
        return SyncStatus.PARTIAL if self.failed_writes or self.unplanned else SyncStatus.SUCCESS

    @property
    def changes(self) -> int:
        return self.blocks_created + self.blocks_updated + self.blocks_deleted
