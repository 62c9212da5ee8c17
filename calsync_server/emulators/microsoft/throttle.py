"""Outlook's per-mailbox limits: 10,000 requests in any 10 minutes, 4 requests at once."""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.config import Clock, GraphEmulatorConfig


class Throttle:
    """Counts per mailbox; the admin API can switch it off or change the numbers."""

    def __init__(self, config: GraphEmulatorConfig, clock: Clock) -> None:
        self.clock = clock
        self.enabled = config.throttling
        self.limit = config.requests_per_window
        self.window_s = config.throttle_window_s
        self.concurrent = config.concurrent_requests
        self._lock = threading.Lock()
        self._recent: dict[str, deque[datetime]] = {}
        self._in_flight: dict[str, int] = {}
        self.rejected = 0  # requests answered 429: what a pacing test checks is 0

    def enter(self, mailbox: str) -> None:
        """Admit one request of `mailbox`, or answer 429 with Retry-After; every admitted
        request must `leave`."""
        with self._lock:
            if not self.enabled:
                self._in_flight[mailbox] = self._in_flight.get(mailbox, 0) + 1
                return
            now = self.clock.now()
            window = timedelta(seconds=self.window_s)
            recent = self._recent.setdefault(mailbox, deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if self._in_flight.get(mailbox, 0) >= self.concurrent:
                self.rejected += 1
                raise errors.throttled(1, "MailboxConcurrency")
            if len(recent) >= self.limit:
                wait = (recent[0] + window - now).total_seconds()
                self.rejected += 1
                raise errors.throttled(max(1, math.ceil(wait)), "MailboxRequests")
            recent.append(now)
            self._in_flight[mailbox] = self._in_flight.get(mailbox, 0) + 1

    def leave(self, mailbox: str) -> None:
        with self._lock:
            self._in_flight[mailbox] = max(0, self._in_flight.get(mailbox, 0) - 1)

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "requests_per_window": self.limit,
                "window_s": self.window_s,
                "concurrent_requests": self.concurrent,
                "rejected": self.rejected,
            }

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if "enabled" in body:
                self.enabled = bool(body["enabled"])
            if "requests_per_window" in body:
                self.limit = int(body["requests_per_window"])
            if "window_s" in body:
                self.window_s = float(body["window_s"])
            if "concurrent_requests" in body:
                self.concurrent = int(body["concurrent_requests"])
            self._recent.clear()
            self.rejected = 0
        return self.settings()
