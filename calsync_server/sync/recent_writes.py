"""Which calendars this process wrote busy blocks to lately: their notifications are most
likely the echoes of those writes, whose syncs can wait behind a person's change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

# How long after calsync's writes a calendar's notification is taken for their echo: providers
# push within seconds (Google's and Graph's notices can lag by tens of seconds).
ECHO_WINDOW_S = 30.0


class RecentWrites:
    """Calendars written to, and when (one process's own writes: another process's are not
    seen, and their echoes are then synced as any change is)."""

    def __init__(
        self, window_s: float = ECHO_WINDOW_S, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._written: dict[int, float] = {}

    def wrote(self, calendar_ids: Iterable[int]) -> None:
        """Blocks are being written to these calendars now."""
        now = self.clock()
        with self._lock:
            for calendar_id in calendar_ids:
                # Re-inserted, so the dict stays in the order of the last writes.
                self._written.pop(calendar_id, None)
                self._written[calendar_id] = now
            # The oldest first: what left the window is forgotten (the dict stays small).
            horizon = now - self.window_s
            while self._written:
                oldest = next(iter(self._written))
                if self._written[oldest] > horizon:
                    break
                del self._written[oldest]

    def lately(self, calendar_id: int) -> bool:
        """Whether calsync wrote to the calendar within the window."""
        with self._lock:
            when = self._written.get(calendar_id)
        return when is not None and self.clock() - when < self.window_s
